"""The embedding cache under faults: a full disk, concurrent clearing, orphaned temp files,
entries that are not finite vectors of the right length; and a NaN loss."""

import json
import os
import resource
import signal
import time

import numpy as np
import pytest

import core.embeddings
from core.embeddings import EmbeddingCache
from core.runs import RunError

DIGEST = "ab" * 32


def _temp_files(root):
    return [p for p in root.rglob("*") if ".tmp" in p.name]


def test_a_write_on_a_full_disk_fails_alone_and_leaves_no_temp_file(tmp_path):
    cache = EmbeddingCache(tmp_path)
    cache.put("x", "00" * 32, "plain", np.zeros(4, np.float32))  # the folders exist already
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1000, limits[1]))  # as a full disk: writes stop
    try:
        stored = cache.put("x", DIGEST, "plain", np.zeros(1280, np.float32))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, handler)
    assert stored is False and "written" in cache.write_error  # numpy's "1280 requested and 218 written"
    assert _temp_files(tmp_path) == [] and cache.get("x", DIGEST, "plain") is None


def test_clearing_while_a_training_writes_loses_nothing_but_the_cache(tmp_path, monkeypatch):
    cache, save = EmbeddingCache(tmp_path), np.save

    def clear_first(*args, **kwargs):  # another process clears just as this write begins
        monkeypatch.setattr(core.embeddings.np, "save", save)
        EmbeddingCache(tmp_path).clear()
        return save(*args, **kwargs)

    monkeypatch.setattr(core.embeddings.np, "save", clear_first)
    assert cache.put("x", DIGEST, "plain", np.ones(8, np.float32)) is not False
    assert cache.get("x", DIGEST, "plain") is not None


def test_clear_removes_orphaned_temp_files_but_not_a_live_writers(tmp_path):
    cache = EmbeddingCache(tmp_path)
    cache.put("x", DIGEST, "plain", np.ones(8, np.float32))
    folder = tmp_path / "x" / "plain" / "ab"
    orphan, live = folder / f".{DIGEST}.123-1.tmp.npy", folder / f".{DIGEST}.456-1.tmp.npy"
    for path in (orphan, live):
        path.write_bytes(b"half an embedding")
    old = time.time() - 3600
    os.utime(orphan, (old, old))  # its writer died an hour ago
    assert cache.clear() > 0
    assert not orphan.exists() and live.exists() and cache.files() == []


@pytest.mark.parametrize(
    "entry",
    [np.full(8, np.nan, np.float32), np.ones(5, np.float32), np.ones((2, 4), np.float32), np.arange(8)],
    ids=["nan", "wrong-length", "not-a-vector", "integers"],
)
def test_unusable_entries_are_treated_as_missing(tmp_path, entry):
    cache = EmbeddingCache(tmp_path)
    path = tmp_path / "x" / "plain" / DIGEST[:2] / f"{DIGEST}.npy"
    path.parent.mkdir(parents=True)
    np.save(path, entry)
    assert cache.get("x", DIGEST, "plain", dim=8) is None
    np.save(path, np.ones(8, np.float32))
    assert cache.get("x", DIGEST, "plain", dim=8) is not None


def test_a_run_whose_loss_became_nan_fails_instead_of_completing(tmp_path):
    from core.train import _refuse_diverged

    records = [
        {"epoch": 1, "loss": 0.5, "val_loss": 0.6},
        {"epoch": 2, "loss": float("nan"), "val_loss": 0.7},
    ]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    with pytest.raises(RunError, match="the loss became nan at epoch 2"):
        _refuse_diverged(tmp_path)
