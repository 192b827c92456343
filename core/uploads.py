"""Unpack a zip of class folders safely: the dashboard's upload and download paths.

A zip from a stranger can hold `../../etc/passwd`, absolute paths, symbolic links, or
a few kilobytes that inflate to terabytes. Every entry is checked before anything is
written, sizes are counted while inflating, and the result appears in its final place
only once complete (a temp folder, then a rename).
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from core.catalog import looks_like_dataset
from core.data import DatasetError

MAX_UNCOMPRESSED_BYTES = 2 * 1024**3  # 2 GiB: a few thousand photos
MAX_FILES = 50_000
MAX_NAME_BYTES = 255  # one file or folder name, on every common file system
MAX_DEPTH = 32  # folders inside folders; a dataset needs three
_CHUNK = 1 << 20


class UploadError(ValueError):
    """The archive is unsafe or unusable; the message says why in a user's words."""


def safe_name(text: str, default: str = "dataset") -> str:
    """A folder name made of letters, digits, '-', '_' and '.', from e.g. an upload's file name."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-._")
    return name[:64] or default


def unique_path(parent: Path, name: str) -> Path:
    """`parent/name`, or `parent/name-2`, `-3`, ... when it exists already."""
    candidate, n = Path(parent) / name, 1
    while candidate.exists():
        n += 1
        candidate = Path(parent) / f"{name}-{n}"
    return candidate


def check_members(
    archive: zipfile.ZipFile, max_bytes: int = MAX_UNCOMPRESSED_BYTES, max_files: int = MAX_FILES
) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    """Validate every entry; return (entry, safe relative path) for the files to extract.

    Raises:
        UploadError: an absolute path, a '..' component, a symbolic link, an encrypted
            entry, more than `max_files` files or more than `max_bytes` uncompressed.
    """
    members, total, folders = [], 0, set()
    for info in archive.infolist():
        name = info.filename.replace("\\", "/")
        path = PurePosixPath(name)
        if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
            raise UploadError(f"the zip holds an absolute path ({info.filename}): refused")
        if ".." in path.parts:
            raise UploadError(f"the zip holds a path that leaves its folder ({info.filename}): refused")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise UploadError(f"the zip holds a symbolic link ({info.filename}): refused")
        if info.flag_bits & 0x1:
            raise UploadError(f"the zip holds an encrypted file ({info.filename}): not supported")
        shown = info.filename if len(info.filename) <= 80 else info.filename[:77] + "..."
        if any(len(part.encode()) > MAX_NAME_BYTES for part in path.parts):
            raise UploadError(f"the zip holds a name longer than {MAX_NAME_BYTES} bytes ({shown})")
        if len(path.parts) > MAX_DEPTH:
            raise UploadError(f"the zip nests folders more than {MAX_DEPTH} deep ({shown})")
        folders.update(path.parents if not info.is_dir() else [path, *path.parents])
        if info.is_dir() or not path.parts:
            continue
        total += info.file_size
        members.append((info, path))
        if len(members) > max_files:
            raise UploadError(f"the zip holds more than {max_files:,} files: too many")
        if total > max_bytes:
            raise UploadError(f"the zip unpacks to more than {max_bytes / 1024**2:,.0f} MB: too large")
    if not members:
        raise UploadError("the zip is empty")
    clash = next((str(path) for _, path in members if path in folders), None)
    if clash:
        raise UploadError(f"the zip holds a file and a folder both named {clash}")
    return members


def safe_extract_zip(
    source: str | os.PathLike | BinaryIO,
    dest: str | os.PathLike,
    max_bytes: int = MAX_UNCOMPRESSED_BYTES,
    max_files: int = MAX_FILES,
) -> Path:
    """Extract the zip `source` (a path or a binary file object) into the new folder `dest`.

    Raises:
        UploadError: not a zip, unsafe or too large (see `check_members`), or `dest` exists.
    """
    dest = Path(dest)
    if dest.exists():
        raise UploadError(f"the folder exists already: {dest}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        with zipfile.ZipFile(source) as archive:
            members = check_members(archive, max_bytes, max_files)
            written = 0
            for info, relative in members:
                target = stage.joinpath(*relative.parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as src, open(target, "wb") as out:
                    while chunk := src.read(_CHUNK):
                        written += len(chunk)
                        if written > max_bytes:  # the headers lied about the sizes
                            raise UploadError(f"the zip unpacks to more than {max_bytes / 1024**2:,.0f} MB")
                        out.write(chunk)
        os.replace(stage, dest)
    except zipfile.BadZipFile:
        raise UploadError("the file is not a valid zip archive") from None
    except (zipfile.LargeZipFile, NotImplementedError, RuntimeError) as exc:
        raise UploadError(f"the zip cannot be read: {exc}") from None
    except OSError as exc:  # a full disk, or a name this file system refuses: nothing is kept
        raise UploadError(f"the zip cannot be unpacked here: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return dest


def dataset_root(folder: str | os.PathLike) -> Path:
    """Descend through wrapper folders: `x.zip` often holds `x/<class>/...` rather than `<class>/...`."""
    folder = Path(folder)
    while True:
        visible = [p for p in folder.iterdir() if not p.name.startswith((".", "__"))]
        if len(visible) == 1 and visible[0].is_dir():
            folder = visible[0]
        else:
            return folder


def extract_dataset_upload(
    source: BinaryIO | str | os.PathLike,
    uploads_dir: str | os.PathLike,
    filename: str,
    max_bytes: int = MAX_UNCOMPRESSED_BYTES,
    max_files: int = MAX_FILES,
) -> Path:
    """Unpack an uploaded zip of class folders into `uploads_dir/<name>`; return the dataset folder."""
    name = safe_name(Path(filename).stem, "upload")
    dest = safe_extract_zip(source, unique_path(Path(uploads_dir), name), max_bytes, max_files)
    return dataset_root(dest)


def upload_folders(uploads_dir: str | os.PathLike) -> list[Path]:
    """The uploaded datasets: the folders directly inside `uploads_dir`, by name."""
    folder = Path(uploads_dir)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _own_upload(uploads_dir: str | os.PathLike, folder: str | os.PathLike) -> Path:
    """`folder` if it is an upload directly inside `uploads_dir`; UploadError otherwise."""
    folder, root = Path(folder).resolve(), Path(uploads_dir).resolve()
    if folder.parent != root or not folder.is_dir():
        raise UploadError(f"not an uploaded dataset: {folder.name}")
    return folder


def rename_upload(uploads_dir: str | os.PathLike, folder: str | os.PathLike, new_name: str) -> Path:
    """Rename an uploaded dataset; refuses a name that is taken. Returns the new folder."""
    folder = _own_upload(uploads_dir, folder)
    name = safe_name(new_name, "")
    if not name:
        raise UploadError("the new name needs letters or digits")
    target = folder.parent / name
    if target.exists():
        raise UploadError(f"an upload named {name} exists already")
    folder.rename(target)
    return target


def delete_upload(uploads_dir: str | os.PathLike, folder: str | os.PathLike) -> None:
    """Delete an uploaded dataset's folder (runs trained on it keep their models)."""
    shutil.rmtree(_own_upload(uploads_dir, folder))


def upload_of(uploads_dir: str | os.PathLike, dataset: str | os.PathLike) -> Path:
    """The upload (a folder directly inside `uploads_dir`) that holds the dataset folder `dataset`."""
    return Path(uploads_dir) / Path(dataset).relative_to(uploads_dir).parts[0]


def name_was_taken(uploads_dir: str | os.PathLike, dataset: str | os.PathLike, filename: str) -> bool:
    """Whether the upload of `filename` had to get another name (`pets-2`) than its zip's."""
    return upload_of(uploads_dir, dataset).name != safe_name(Path(filename).stem, "upload")


def upload_problem(dataset: str | os.PathLike, scan: Callable[[str], object]) -> str | None:
    """Why an unpacked upload cannot be trained on, or None when it can. `scan` is the dataset
    scan (`core.data.scan_dataset`, or the dashboard's cached one); its DatasetError is the reason."""
    if not looks_like_dataset(dataset):
        return (
            "it holds no dataset: it needs one folder of images per class (at least two), "
            "or train/ and validation/ folders holding those."
        )
    try:
        scan(str(dataset))
    except DatasetError as exc:
        return str(exc)
    return None
