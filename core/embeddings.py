"""A disk cache of backbone embeddings: run the frozen base once, not once per epoch.

An entry is keyed by the feature extractor (backbone, weights, image size, feature layer,
pooling), the file's content hash and the variant ("plain", or the k-th augmented view
under one augmentation config). A second run on the same data with another head or
classifier reads every embedding from here and skips the backbone; changing one file
changes its hash, so only that file is recomputed.

    python -m core.embeddings            # where the cache is and how large
    python -m core.embeddings --clear    # empty it
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import sys
import threading
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from core.config import PROJ_ROOT, AugmentConfig, TrainConfig

CACHE_DIR = Path(os.environ.get("TLS_CACHE_DIR", PROJ_ROOT / "cache" / "embeddings"))
CACHE_LIMIT_BYTES = int(float(os.environ.get("TLS_CACHE_LIMIT_GB", "4")) * 1024**3)
WRITE_THREADS = 8
ORPHAN_AGE_S = 60.0  # a temp file this old belongs to a writer that died
_digests: dict[tuple[str, int, int], str] = {}


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, remembered per (path, mtime, size) within this process."""
    stat = os.stat(path)
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    if key not in _digests:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _digests[key] = digest.hexdigest()
    return _digests[key]


def extractor_key(config: TrainConfig) -> str:
    """Names the feature extractor: what must match for a cached embedding to be reused."""
    parts = [
        config.backbone,
        str(config.weights),
        str(config.image_size),
        config.feature_layer or "top",
        config.pooling,
    ]
    return "-".join(parts).replace("/", "_")


def augment_variant(augment: AugmentConfig, view: int) -> str:
    """The variant name of the `view`-th augmented view under `augment`."""
    digest = hashlib.sha256(json.dumps(asdict(augment), sort_keys=True).encode()).hexdigest()[:12]
    return f"aug-{digest}-{view}"


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    engine: str | None = None  # what computed the misses, and why (core.engine); None: all cached


class EmbeddingCache:
    """One .npy file per (extractor, file hash, variant), with a size limit.

    Other processes may read, write and clear the same folder at any moment: every
    operation tolerates files and folders vanishing under it. A failed write (a full
    disk) removes its temp file and is remembered in `write_error`; the embedding is
    still used, only not cached.
    """

    def __init__(self, root: str | os.PathLike | None = None, limit_bytes: int | None = None):
        self.root = Path(root or CACHE_DIR)  # read at call time, so tests and pages can move it
        self.limit_bytes = CACHE_LIMIT_BYTES if limit_bytes is None else limit_bytes
        self.write_error: str | None = None

    def _path(self, extractor: str, digest: str, variant: str) -> Path:
        return self.root / extractor / variant / digest[:2] / f"{digest}.npy"

    def get(self, extractor: str, digest: str, variant: str, dim: int | None = None) -> np.ndarray | None:
        """The entry, or None when missing or unusable: half-written, not a finite vector,
        or (with `dim`) of another length. An unusable entry is then simply recomputed."""
        try:
            embedding = np.load(self._path(extractor, digest, variant))
        except (OSError, ValueError, EOFError):
            return None
        if embedding.ndim != 1 or embedding.dtype.kind != "f" or not np.isfinite(embedding).all():
            return None
        return embedding if dim is None or embedding.shape[0] == dim else None

    def put(self, extractor: str, digest: str, variant: str, embedding: np.ndarray) -> bool:
        """Store atomically; False (and `write_error` set, no temp file left) when it cannot."""
        path = self._path(extractor, digest, variant)
        # Unique per process and thread: two writers of one entry must not share a temp file.
        tmp = path.with_name(f".{path.stem}.{os.getpid()}-{threading.get_ident()}.tmp.npy")
        for _ in range(3):  # a concurrent clear() may remove the folder just made
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                with open(tmp, "wb") as handle:
                    np.save(handle, embedding)
                os.replace(tmp, path)
                return True
            except FileNotFoundError as exc:
                self.write_error = f"{exc.strerror or exc} ({self.root})"
            except OSError as exc:
                self.write_error = f"{exc.strerror or exc} ({self.root})"
                break
        with contextlib.suppress(OSError):
            tmp.unlink()
        return False

    def files(self) -> list[Path]:
        return [p for p in self._walk() if p.name.endswith(".npy") and not p.name.startswith(".")]

    def orphans(self, older_than_s: float = ORPHAN_AGE_S) -> list[Path]:
        """Temp files left by writers that died (a live writer's is only milliseconds old)."""
        now = time.time()
        return [p for p in self._walk() if p.name.endswith(".tmp.npy") and now - _mtime(p) > older_than_s]

    def _walk(self) -> list[Path]:
        return [Path(folder, name) for folder, _, names in os.walk(self.root) for name in names]

    def size_bytes(self) -> int:
        return sum(_size(p) for p in self.files())

    def clear(self) -> int:
        """Delete every entry, orphaned temp files and the folders left empty; return the
        bytes freed. Safe while a training writes: its new entries are simply written again."""
        freed = 0
        for path in self.files() + self.orphans():
            freed += _size(path)
            with contextlib.suppress(FileNotFoundError):  # another process removed it meanwhile
                path.unlink()
        for folder, _, _ in sorted(os.walk(self.root), reverse=True)[:-1]:  # not the root itself
            with contextlib.suppress(OSError):
                os.rmdir(folder)  # only succeeds when empty
        return freed

    def enforce_limit(self) -> int:
        """Delete the least recently written entries until under the limit; return bytes freed."""
        files = sorted(self.files(), key=_mtime)
        total, freed = sum(_size(p) for p in files), 0
        for path in files:
            if total - freed <= self.limit_bytes:
                break
            freed += _size(path)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        return freed


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def embed_paths(
    extractor_model,
    config: TrainConfig,
    paths: list[str],
    cache: EmbeddingCache | None,
    variant: str = "plain",
    augment: AugmentConfig | None = None,
    stats: CacheStats | None = None,
    progress: Callable[[int, int], None] | None = None,
    keys: list[str] | None = None,
) -> np.ndarray | list[np.ndarray]:
    """Embeddings (N, D) for `paths` in order: cached ones read, the others computed and stored.

    `extractor_model` is a Keras extractor (run in the fastest engine, see core.engine) or a
    ready `core.engine.Engine`. `progress(done, total)` is called after each computed batch.
    A multi-output extractor (auto mode: several layers in one forward pass) passes `keys`,
    the cache key of each output in order; then one array per output comes back, and an
    image is recomputed unless every output of it is cached.
    """
    from core.pipeline import image_batches

    stats = stats if stats is not None else CacheStats()
    outputs_keys = keys or [extractor_key(config)]
    digests = [file_digest(p) for p in paths] if cache else [None] * len(paths)
    shapes = getattr(extractor_model, "output_shape", None)  # a wrong-length entry: recompute
    dims = [shape[-1] for shape in shapes] if isinstance(shapes, list) else [(shapes or (None,))[-1]]
    found = [_cached_outputs(cache, outputs_keys, d, variant, dims) if cache else None for d in digests]
    missing = [i for i, e in enumerate(found) if e is None]
    stats.hits += len(paths) - len(missing)
    stats.misses += len(missing)
    if missing:
        batches = image_batches(
            [paths[i] for i in missing],
            config.image_size,
            config.batch_size,
            augment=augment,
            seed=config.seed + zlib.crc32(variant.encode()) % 1000,
        )
        done, writes, queued = [], [], set()  # queued: a photo stored twice is written once
        with ThreadPoolExecutor(WRITE_THREADS) as pool:  # writes overlap the batches computing

            def store(outputs: np.ndarray | list[np.ndarray]) -> None:
                for embeddings in zip(*(outputs if isinstance(outputs, list) else [outputs])):
                    i = missing[len(done)]
                    found[i] = embeddings
                    done.append(i)
                    if cache and digests[i] not in queued:
                        queued.add(digests[i])
                        for key, embedding in zip(outputs_keys, embeddings):
                            writes.append(pool.submit(cache.put, key, digests[i], variant, embedding))
                if progress:
                    progress(len(done), len(missing))

            engine = _run_batches(extractor_model, config, batches, len(missing), store)
            stats.engine = engine.describe()
            for write in writes:
                write.result()  # a failed write (a full disk) leaves only this entry uncached
    if cache and missing:
        cache.enforce_limit()
    arrays = [
        np.stack([f[j] for f in found]).astype(np.float32) if found else np.zeros((0, 0), np.float32)
        for j in range(len(outputs_keys))
    ]
    return arrays if keys else arrays[0]


def _run_batches(extractor_model, config: TrainConfig, batches, total: int, store: Callable):
    """Feed every decoded batch to the engine (chosen on the first batch, which is its probe)
    and hand its outputs to `store`; tf.data decodes the next batches meanwhile."""
    from core.engine import Engine, extractor_engine

    engine = extractor_model if isinstance(extractor_model, Engine) else None
    for batch in batches.as_numpy_iterator():
        if engine is None:
            engine = extractor_engine(extractor_model, config, probe=batch, images=total)
        store(engine.run(batch))  # one array per output
    return engine


def _cached_outputs(
    cache: EmbeddingCache, keys: list[str], digest: str, variant: str, dims: list[int | None]
) -> tuple | None:
    """Every output's cached embedding of one image, or None unless all of them are cached
    (each of its output's length, where known)."""
    dims = dims if len(dims) == len(keys) else [None] * len(keys)
    embeddings = tuple(cache.get(key, digest, variant, dim) for key, dim in zip(keys, dims))
    return None if any(e is None for e in embeddings) else embeddings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.embeddings", description=__doc__.split("\n")[0])
    parser.add_argument("--clear", action="store_true", help="delete every cached embedding")
    args = parser.parse_args(argv)
    cache = EmbeddingCache()
    if args.clear:
        print(f"cleared {cache.clear() / 1e6:.1f} MB from {cache.root}")
    else:
        print(
            f"{cache.root}: {len(cache.files())} embeddings, {cache.size_bytes() / 1e6:.1f} MB "
            f"(limit {cache.limit_bytes / 1e9:.1f} GB)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
