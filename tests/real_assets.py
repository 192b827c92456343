"""Real ImageNet weights and the real horse-or-human data for the tests marked `real`.

Both live in a test cache (`TLS_TEST_CACHE`, default `.test-cache/` in the checkout):

- weights in `<cache>/keras/models/`, the session's KERAS_HOME, under the names Keras asks for;
- horse-or-human in `<cache>/data/downloads/horse-or-human/`, where the product's own
  downloader (`core.downloads`, honouring `TLS_HORSE_OR_HUMAN_URL_BASE`) puts it.

A missing file is taken from `../shared/` when that folder exists (CI, offline), else
downloaded: the weights from Keras's own URLs (`TLS_KERAS_WEIGHTS_URL_BASE` moves them to a
mirror), the data from the tutorial's bucket. When neither works the test fails with one
line that says what to do.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from pathlib import Path

import pytest

from core.downloads import DownloadError, download_file, download_horse_or_human, horse_or_human_dir
from tests.helpers import PROJ_ROOT

KERAS_WEIGHTS_URL_BASE = "https://storage.googleapis.com/tensorflow/keras-applications"
MOBILENET_V2_035 = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_{size}_no_top.h5"
MOBILENET_V2_100 = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"

# Keras's file name -> (its folder under Keras's URL base, the file in ../shared/weights that
# holds the same arrays). MobileNetV2 asks for the file of the model's input size; ../shared
# only has the 224 one, whose arrays have the same shapes and transfer well at smaller sizes.
REAL_WEIGHTS = {
    **{
        MOBILENET_V2_035.format(size=size): (
            "mobilenet_v2",
            "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5",
        )
        for size in (96, 128, 160, 192, 224)
    },
    MOBILENET_V2_100: ("mobilenet_v2", "mobilenet_v2_1.0_224_no_top.from-coral-tf2-ptq.h5"),
}
WHAT_TO_DO = (
    "connect to the internet once (the files are cached in {cache}), put ../shared/ beside the "
    "checkout, or deselect these tests with -m 'not real'"
)


def asset_cache() -> Path:
    return Path(os.environ.get("TLS_TEST_CACHE") or PROJ_ROOT / ".test-cache")


def shared_dir() -> Path:
    """The read-only folder of real weights and data beside the checkout (`TLS_SHARED_DIR` moves it)."""
    return Path(os.environ.get("TLS_SHARED_DIR") or PROJ_ROOT.parent / "shared")


def session_keras_home() -> Path:
    return asset_cache() / "keras"


@contextlib.contextmanager
def _cache_lock():
    """One process at a time fills the test cache (pytest-xdist's workers share it)."""
    asset_cache().mkdir(parents=True, exist_ok=True)
    with open(asset_cache() / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def ensure_real_weights() -> Path:
    """KERAS_HOME with every file of REAL_WEIGHTS in its models/ folder; fails the test otherwise."""
    with _cache_lock():
        return _ensure_real_weights()


def _ensure_real_weights() -> Path:
    models = session_keras_home() / "models"
    models.mkdir(parents=True, exist_ok=True)
    base = os.environ.get("TLS_KERAS_WEIGHTS_URL_BASE") or KERAS_WEIGHTS_URL_BASE
    for name, (folder, shared_name) in REAL_WEIGHTS.items():
        seed = shared_dir() / "weights" / shared_name
        _fetch(
            models / name, seed, f"{base.rstrip('/')}/{folder}/{name}", "real ImageNet weights unavailable"
        )
    return session_keras_home()


def horse_or_human_dataset() -> Path:
    """The real horse-or-human (train/ and validation/), from the cache, ../shared or a download."""
    with _cache_lock():
        return _horse_or_human_dataset()


def _horse_or_human_dataset() -> Path:
    data_root = asset_cache() / "data"
    folder = horse_or_human_dir(data_root)
    if (folder / "validation").is_dir():
        return folder
    seed = shared_dir() / "datasets" / "horse-or-human"
    if seed.is_dir():
        stage = folder.with_name(".seeding")
        shutil.rmtree(stage, ignore_errors=True)
        for split in ("train", "validation"):
            shutil.copytree(seed / split, stage / split)
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(stage, folder)
        return folder
    try:
        return download_horse_or_human(data_root)
    except DownloadError as exc:
        failure = f"the real horse-or-human data is unavailable ({_cause(exc)}): "
    pytest.fail(failure + WHAT_TO_DO.format(cache=folder), pytrace=False)


def _cause(error: DownloadError) -> str:
    """The downloader's first sentence (its advice is for the dashboard's user, not for tests)."""
    return str(error).split(". ")[0]


# Every 30th of the 1,199 PBC blood-cell photos (sorted paths), 40 in all: an unrelated subject
# for a model of horses and humans. ../shared holds them; online they come from the public
# GitHub copy that ../shared was made from (`TLS_PBC_URL_BASE` moves it to a mirror).
PBC_URL_BASE = (
    "https://raw.githubusercontent.com/AuralinACC/Blood-Cell-Classification/"
    "d2e7b75e11e21df3fb39f4d1d30004381663d96a/PBC_dataset_normal_DIB"
)
PBC_SAMPLE = (
    "basophil/BA_100102.jpg basophil/BA_127671.jpg basophil/BA_154572.jpg basophil/BA_177799.jpg "
    "basophil/BA_20161.jpg basophil/BA_223010.jpg basophil/BA_24720.jpg eosinophil/EO_104169.jpg "
    "eosinophil/EO_112884.jpg eosinophil/EO_120534.jpg eosinophil/EO_130195.jpg eosinophil/EO_142899.jpg "
    "eosinophil/EO_154678.jpg eosinophil/EO_161563.jpg erythroblast/ERB_112757.jpg "
    "erythroblast/ERB_129326.jpg erythroblast/ERB_144101.jpg erythroblast/ERB_163499.jpg "
    "erythroblast/ERB_181233.jpg erythroblast/ERB_196464.jpg lymphocyte/LY_100275.jpg "
    "lymphocyte/LY_128386.jpg lymphocyte/LY_153467.jpg lymphocyte/LY_173236.jpg lymphocyte/LY_191979.jpg "
    "lymphocyte/LY_21798.jpg lymphocyte/LY_249136.jpg monocyte/MO_105547.jpg monocyte/MO_122877.jpg "
    "monocyte/MO_142497.jpg monocyte/MO_155861.jpg monocyte/MO_181661.jpg monocyte/MO_198867.jpg "
    "monocyte/MO_216731.jpg neutrophil/BNE_111339.jpg neutrophil/BNE_127951.jpg "
    "neutrophil/BNE_143161.jpg neutrophil/BNE_160527.jpg neutrophil/BNE_175712.jpg "
    "neutrophil/BNE_190447.jpg"
).split()


def pbc_blood_cells() -> Path:
    """40 real blood-cell microscopy photos (PBC, CC BY 4.0) in class folders, from the test cache,
    ../shared or a download; fails the test with what to do when none works."""
    folder = asset_cache() / "data" / "pbc-blood-cells"
    base = os.environ.get("TLS_PBC_URL_BASE") or PBC_URL_BASE
    with _cache_lock():
        for name in PBC_SAMPLE:
            seed = shared_dir() / "datasets" / "pbc-blood-cells" / name
            _fetch(
                folder / name, seed, f"{base.rstrip('/')}/{name}", "the PBC blood-cell photos are unavailable"
            )
    return folder


def _fetch(target: Path, seed: Path, url: str, what: str) -> None:
    """`target` copied from `seed` in ../shared, else downloaded from `url`; never half a file.

    Fails the test with one line (`what`, the cause, what to do) when neither works."""
    if target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part")
    try:
        if seed.exists():
            shutil.copy(seed, partial)
        else:
            download_file(url, partial)
    except DownloadError as exc:
        partial.unlink(missing_ok=True)
        failure = f"{what} ({_cause(exc)}): " + WHAT_TO_DO.format(cache=target.parent)
    else:
        os.replace(partial, target)
        return
    pytest.fail(failure, pytrace=False)  # outside `except`: no "during handling" chain in the report
