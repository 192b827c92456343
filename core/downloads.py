"""Download the full horse-or-human dataset (the reference tutorial's data) into DATA_ROOT.

    DATA_ROOT/downloads/horse-or-human/train/{horses,humans}
    DATA_ROOT/downloads/horse-or-human/validation/{horses,humans}

The URL base can be moved with TLS_HORSE_OR_HUMAN_URL_BASE (a mirror, or a test server).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

from core.uploads import UploadError, dataset_root, safe_extract_zip

DEFAULT_URL_BASE = "https://storage.googleapis.com/learning-datasets"
URL_BASE_ENV = "TLS_HORSE_OR_HUMAN_URL_BASE"
HORSE_OR_HUMAN_ZIPS = {"train": "horse-or-human.zip", "validation": "validation-horse-or-human.zip"}
_CHUNK = 256 * 1024

ProgressCallback = Callable[[float, str], None]  # (fraction 0..1, what is happening)


class DownloadError(RuntimeError):
    """A download failed; the message says why in a user's words."""


def url_base(override: str | None = None) -> str:
    """The argument, else $TLS_HORSE_OR_HUMAN_URL_BASE, else Google's public bucket."""
    return (override or os.environ.get(URL_BASE_ENV) or DEFAULT_URL_BASE).rstrip("/")


def horse_or_human_dir(data_root: str | os.PathLike) -> Path:
    return Path(data_root) / "downloads" / "horse-or-human"


def download_file(
    url: str, dest: Path, progress: ProgressCallback | None = None, timeout: float = 30
) -> Path:
    """Stream `url` into `dest`, reporting the fraction done when the size is known.

    Raises:
        DownloadError: the server cannot be reached, or answers with an error.
    """
    host = urllib.parse.urlsplit(url).netloc or url
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(dest, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            done = 0
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                done += len(chunk)
                if progress:
                    fraction = done / total if total else 0.0
                    progress(min(fraction, 1.0), f"{done / 1024**2:.1f} of {total / 1024**2:.1f} MB")
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"{host} answered {exc.code} ({exc.reason}) for {url}") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(
            f"could not reach {host} ({reason}). Check the internet connection, or put the "
            f"dataset's class folders under the data folder yourself."
        ) from None
    except ValueError as exc:  # e.g. a malformed URL
        raise DownloadError(f"cannot download {url!r}: {exc}") from None
    return dest


def download_horse_or_human(
    data_root: str | os.PathLike, base: str | None = None, progress: ProgressCallback | None = None
) -> Path:
    """Download and unpack both splits; replace an earlier copy only once both succeeded.

    Returns the dataset folder (holding train/ and validation/).

    Raises:
        DownloadError: unreachable server, HTTP error, or an archive that is not a safe zip.
    """
    final = horse_or_human_dir(data_root)
    final.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".horse-or-human.", dir=final.parent))
    try:
        for index, (split, filename) in enumerate(HORSE_OR_HUMAN_ZIPS.items()):
            step = _scaled(progress, index, len(HORSE_OR_HUMAN_ZIPS), f"{split}: ")
            archive = download_file(f"{url_base(base)}/{filename}", stage / filename, step)
            if progress:
                progress((index + 1) / len(HORSE_OR_HUMAN_ZIPS), f"{split}: unpacking")
            try:
                raw = safe_extract_zip(archive, stage / f"{split}-raw")
            except UploadError as exc:
                raise DownloadError(f"{filename}: {exc}") from None
            os.replace(dataset_root(raw), stage / split)
            archive.unlink()
            shutil.rmtree(stage / f"{split}-raw", ignore_errors=True)
        if final.exists():
            shutil.rmtree(final)
        os.replace(stage, final)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return final


def _scaled(
    progress: ProgressCallback | None, index: int, count: int, prefix: str
) -> ProgressCallback | None:
    if progress is None:
        return None
    return lambda fraction, text: progress((index + fraction) / count, prefix + text)
