"""The hosted demo: each browser session has its own workspace, and shared resources are limited.

Two AppTest sessions stand for two visitors of one server (they share the process and
its folders, as two browsers do).
"""

import json
import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from streamlit.testing.v1 import AppTest

import core.config
import core.demo
import core.embeddings
from core.config import SAMPLE_DATASET, ConfigError, TrainConfig
from core.demo import DEMO_RUN, JobSlot, check_quota, remove_expired_workspaces, workspace
from core.launch import launch_training
from core.runs import RunDir, list_runs
from tests.dashboard_helpers import class_zip_entries, make_zip
from tests.helpers import make_color_dataset, run_cli

PROJ_ROOT = Path(__file__).resolve().parents[1]
APP = str(PROJ_ROOT / "streamlit_app.py")


@pytest.fixture
def demo(tmp_path, monkeypatch) -> SimpleNamespace:
    data, runs, cache = tmp_path / "data", tmp_path / "runs", tmp_path / "cache"
    data.mkdir()
    monkeypatch.setattr(core.config, "DATA_ROOT", data)
    monkeypatch.setattr(core.config, "RUNS_DIR", runs)
    monkeypatch.setattr(core.embeddings, "CACHE_DIR", cache)
    for name, value in (("DATA_ROOT", data), ("RUNS_DIR", runs), ("CACHE_DIR", cache), ("DEMO_MODE", 1)):
        monkeypatch.setenv(f"TLS_{name}", str(value))
    return SimpleNamespace(data=data, runs=runs, cache=cache, tmp=tmp_path)


def visitor(page: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def upload(at: AppTest, path: Path) -> AppTest:
    at.radio(key="source").set_value("Upload a zip").run()
    at.file_uploader[0].set_value((path.name, path.read_bytes(), "application/zip")).run()
    assert not at.exception
    return at


def texts(at: AppTest) -> str:
    kinds = ("markdown", "caption", "info", "success", "error", "warning", "subheader", "text")
    return "\n".join(str(e.value) for kind in kinds for e in at.get(kind))


def fake_active_run(runs_dir: Path, name: str) -> Path:
    """A run folder as a training process keeps it while it trains (this process stands in)."""
    run = runs_dir / name
    run.mkdir(parents=True)
    (run / "config.json").write_text(TrainConfig(data=str(SAMPLE_DATASET)).to_json())
    status = {"state": "running", "pid": os.getpid(), "started_at": time.time(), "epochs": 5}
    (run / "status.json").write_text(json.dumps(status))
    return run


def test_visitors_see_only_their_own_uploads(demo):
    alice = upload(visitor("pages/data.py"), make_zip(demo.tmp / "alice.zip", class_zip_entries("alice/")))
    bob = upload(visitor("pages/data.py"), make_zip(demo.tmp / "bob.zip", class_zip_entries("bob/")))
    assert alice.selectbox(key="folder").value.endswith("uploads/alice/alice")
    assert bob.selectbox(key="folder").options == [bob.selectbox(key="folder").value]
    assert bob.selectbox(key="folder").value.endswith("uploads/bob/bob")
    alice.run()
    assert [o for o in alice.selectbox(key="folder").options if "bob" in o] == []
    assert alice.session_state["workspace"] != bob.session_state["workspace"]


def test_two_uploads_are_two_datasets_not_one_named_uploads(tmp_path, monkeypatch):
    monkeypatch.setattr(core.config, "DATA_ROOT", tmp_path)
    space = workspace({})  # not a demo: the machine's own folders
    for name in ("alice", "bob"):
        for cls in ("horses", "humans"):
            (space.uploads_dir / name / cls).mkdir(parents=True)
            (space.uploads_dir / name / cls / "a.png").write_bytes(b"")
    assert [p.name for p in space.datasets()] == ["alice", "bob"]


def test_a_visitor_cannot_see_or_stop_another_visitors_run(demo):
    alice = visitor("pages/train.py")
    run = fake_active_run(workspace(alice.session_state).runs_dir, "20260101-000000-alice")
    alice.run()
    assert [b for b in alice.button if b.label == "Stop"], "the owner sees the Stop button"
    bob = visitor("pages/train.py")
    assert not [b for b in bob.button if b.label == "Stop"]
    assert run.name not in texts(bob)
    bob.switch_page("pages/checkpoints.py").run()
    assert run.name not in texts(bob) and not bob.exception
    bob_runs = list_runs(workspace(bob.session_state).runs_dir)
    assert [r.name for r in bob_runs] == [DEMO_RUN.name]  # the ready model, a copy of his own
    bob.switch_page("pages/predict.py").run()
    assert [o for o in bob.selectbox[0].options if "alice" in o] == []


def test_the_shared_cache_cannot_be_cleared_from_a_demo_page(demo):
    (demo.cache / "x").mkdir(parents=True)
    (demo.cache / "x" / "a.npy").write_bytes(b"0" * 100)
    home = visitor("pages/home.py")
    assert not [b for b in home.button if "Clear the embedding cache" in b.label]
    assert "shared by every visitor" in texts(home)


def test_workspaces_expire_after_the_time_limit(demo):
    old, new = {}, {}
    old_space, new_space = workspace(old), workspace(new)
    long_ago = time.time() - core.demo.SESSION_TTL_S - 60
    for folder in (old_space.runs_dir, old_space.data_dir):
        os.utime(folder, (long_ago, long_ago))
    assert remove_expired_workspaces() == [old["workspace"]]
    assert not old_space.runs_dir.exists() and not old_space.data_dir.exists()
    assert new_space.runs_dir.is_dir()


def test_an_upload_over_the_session_quota_is_refused_and_removed(demo, monkeypatch):
    monkeypatch.setattr(core.demo, "SESSION_QUOTA_BYTES", 3 * 1024**2)  # the ready model takes ~2 MB
    big = {f"big/{c}/{i}.png": os.urandom(400_000) for c in ("a", "b") for i in range(2)}
    at = upload(visitor("pages/data.py"), make_zip(demo.tmp / "big.zip", big))
    assert "unpacks to more than" in texts(at)
    space = workspace(at.session_state)
    assert not space.uploads_dir.exists() or not any(space.uploads_dir.iterdir())
    with pytest.raises(ConfigError, match="at most 3 MB per visitor"):
        (space.runs_dir / "filler").write_bytes(b"0" * 2 * 1024**2)
        check_quota(space.runs_dir)


def test_an_unusable_upload_is_removed(demo):
    entries = {"x/horses/a.png": b"not an image", "x/humans/b.png": b"not an image"}
    at = upload(visitor("pages/data.py"), make_zip(demo.tmp / "x.zip", entries))
    assert "That zip cannot be used" in texts(at)
    space = workspace(at.session_state)
    assert not any(space.uploads_dir.iterdir())


def test_demo_jobs_are_limited_and_a_refusal_says_why(demo, trained_run):
    slots = [JobSlot().acquire() for _ in range(core.demo.JOB_SLOTS)]  # other visitors' jobs
    try:
        with pytest.raises(ConfigError, match="the demo is busy"):
            JobSlot().acquire()
        result = run_cli("core.evaluate", "--run", str(trained_run), "--split", "train")
    finally:
        for slot in slots:
            slot.release()
    assert result.returncode == 2 and "the demo is busy" in result.stderr


def test_a_run_refused_by_the_demo_limits_says_why_on_its_status(demo):
    config = TrainConfig(data=str(SAMPLE_DATASET), backbone="mobilenet_v2_0.35", image_size=96, epochs=50)
    run_dir = launch_training(config, workspace({}).runs_dir)
    status = wait_for_state(run_dir, ("failed", "interrupted"))
    assert status["state"] == "failed" and "the demo trains at most 5 epochs" in status["error"]


def wait_for_state(run_dir: Path, states: tuple, timeout: float = 120) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = RunDir(run_dir).status()
        if status.get("state") in states:
            return status
        time.sleep(0.2)
    raise AssertionError(f"still {RunDir(run_dir).status()}")


def test_health_decisions_stay_in_the_visitors_workspace_and_travel_with_the_run(demo, monkeypatch):
    """Two visitors decide differently about the same sample; each run applies its visitor's."""
    import core.launch
    from core.exclusions import Exclusions, load_exclusions, save_exclusions
    from core.train import prepare_data

    monkeypatch.setattr(core.launch, "_spawn", lambda run, args, mode: None)
    sample = demo.data / "sample"
    make_color_dataset(sample, per_class=6)
    alice, bob = workspace({}), workspace({})
    save_exclusions(sample, Exclusions(excluded=["red/0.png", "red/1.png"]), alice.data_dir)
    assert not load_exclusions(sample, bob.data_dir) and not load_exclusions(sample)  # nothing shared
    config = TrainConfig(data=str(sample), backbone="mobilenet_v2_0.35", image_size=96)
    runs = {name: launch_training(config, space.runs_dir, space.data_dir) for name, space in
            (("alice", alice), ("bob", bob))}  # fmt: skip
    counts = {}
    for name, run_dir in runs.items():
        report = prepare_data(config, run_dir, log=lambda message: None)
        counts[name] = sum(len(split.paths) for split in report.splits.values())
    assert counts == {"alice": 10, "bob": 12}
    assert json.loads((runs["alice"] / "dataset.json").read_text())["excluded"] == ["red/0.png", "red/1.png"]
    assert sorted(p.name for p in (sample / "red").iterdir())[:2] == ["0.png", "1.png"]  # never touched
