"""Safe zip extraction, the dataset download (against a local server), dataset discovery,
run summaries and the GPU probe: the dashboard's Streamlit-free helpers in core/."""

import stat
import time
import zipfile
from pathlib import Path

import pytest

from core.catalog import dataset_signature, find_datasets, looks_like_dataset
from core.data import scan_dataset
from core.downloads import URL_BASE_ENV, DownloadError, download_horse_or_human, url_base
from core.reports import format_duration
from core.system import parse_nvidia_smi_list
from core.uploads import (
    UploadError,
    extract_dataset_upload,
    name_was_taken,
    safe_extract_zip,
    upload_of,
    upload_problem,
)
from tests.dashboard_helpers import class_zip_entries, free_port, make_zip, png_bytes, serve_directory


def test_extract_upload_unwraps_a_top_folder(tmp_path):
    archive = make_zip(tmp_path / "pets.zip", class_zip_entries("pets/"))
    folder = extract_dataset_upload(archive, tmp_path / "uploads", "My Pets!.zip")
    assert folder == tmp_path / "uploads" / "My-Pets" / "pets"
    assert sorted(p.name for p in folder.iterdir()) == ["horses", "humans"]
    again = extract_dataset_upload(archive, tmp_path / "uploads", "My Pets!.zip")
    assert again.parent.name == "My-Pets-2"  # never merged into the first upload
    assert upload_of(tmp_path / "uploads", again) == tmp_path / "uploads" / "My-Pets-2"
    assert not name_was_taken(tmp_path / "uploads", folder, "My Pets!.zip")
    assert name_was_taken(tmp_path / "uploads", again, "My Pets!.zip")


def test_upload_problem_says_why_an_upload_cannot_train(tmp_path):
    def problem(name: str, entries: dict) -> str | None:
        archive = make_zip(tmp_path / name, entries)
        return upload_problem(extract_dataset_upload(archive, tmp_path / "uploads", name), scan_dataset)

    assert problem("good.zip", class_zip_entries()) is None
    loose = {"a.png": png_bytes((1, 2, 3)), "b.png": png_bytes((3, 2, 1))}
    assert problem("loose.zip", loose).startswith("it holds no dataset")
    unreadable = problem("broken.zip", {"a/x.png": b"not a png", "b/y.png": b"nor this"})
    assert unreadable and "no dataset" not in unreadable  # the scan's own reason


@pytest.mark.parametrize(
    "name, message",
    [
        ("../evil.png", "leaves its folder"),
        ("a/../../evil.png", "leaves its folder"),
        ("/etc/evil", "absolute"),
    ],
)
def test_extract_refuses_paths_outside(tmp_path, name, message):
    archive = make_zip(tmp_path / "bad.zip", {"ok/a.png": png_bytes((1, 2, 3)), name: b"x"})
    with pytest.raises(UploadError, match=message):
        safe_extract_zip(archive, tmp_path / "out" / "bad")
    assert not (tmp_path / "out" / "bad").exists()
    assert not (tmp_path / "out" / "evil.png").exists() and not (tmp_path / "evil.png").exists()
    assert [p.name for p in (tmp_path / "out").iterdir()] == []  # no staging folder left behind


def test_extract_refuses_symlinks(tmp_path):
    path = tmp_path / "link.zip"
    with zipfile.ZipFile(path, "w") as archive:
        info = zipfile.ZipInfo("horses/link.png")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(info, "/etc/passwd")
    with pytest.raises(UploadError, match="symbolic link"):
        safe_extract_zip(path, tmp_path / "out")


def test_extract_caps_file_count_and_size(tmp_path):
    archive = make_zip(tmp_path / "many.zip", {f"c/{i}.txt": b"0123456789" for i in range(6)})
    with pytest.raises(UploadError, match="more than 5 files"):
        safe_extract_zip(archive, tmp_path / "a", max_files=5)
    with pytest.raises(UploadError, match="unpacks to more than"):
        safe_extract_zip(archive, tmp_path / "b", max_bytes=50)
    assert safe_extract_zip(archive, tmp_path / "c", max_bytes=60, max_files=6).is_dir()


def test_extract_rejects_a_file_that_is_not_a_zip(tmp_path):
    (tmp_path / "x.zip").write_bytes(b"not a zip at all")
    with pytest.raises(UploadError, match="not a valid zip"):
        safe_extract_zip(tmp_path / "x.zip", tmp_path / "out")


def _serve_horse_or_human(root: Path) -> Path:
    make_zip(root / "horse-or-human.zip", class_zip_entries(per_class=3))
    make_zip(root / "validation-horse-or-human.zip", class_zip_entries(per_class=2))
    return root


def test_download_from_a_local_server(tmp_path):
    served = _serve_horse_or_human(tmp_path / "served")
    seen = []
    with serve_directory(served) as base:
        folder = download_horse_or_human(tmp_path / "data", base, progress=lambda f, t: seen.append(f))
    assert folder == tmp_path / "data" / "downloads" / "horse-or-human"
    assert len(list((folder / "train" / "horses").iterdir())) == 3
    assert len(list((folder / "validation" / "humans").iterdir())) == 2
    assert sorted(p.name for p in folder.parent.iterdir()) == ["horse-or-human"]  # no zips or temp left
    assert seen and seen[-1] == 1.0 and seen == sorted(seen)


def test_download_unreachable_says_so_and_keeps_an_earlier_copy(tmp_path, monkeypatch):
    earlier = tmp_path / "data" / "downloads" / "horse-or-human" / "train"
    earlier.mkdir(parents=True)
    monkeypatch.setenv(URL_BASE_ENV, f"http://127.0.0.1:{free_port()}")
    with pytest.raises(DownloadError, match="could not reach 127.0.0.1"):
        download_horse_or_human(tmp_path / "data")
    assert earlier.is_dir()


def test_download_http_error_names_the_status(tmp_path):
    with serve_directory(tmp_path) as base:  # serves an empty folder: 404
        with pytest.raises(DownloadError, match="404"):
            download_horse_or_human(tmp_path / "data", base)


def test_url_base_precedence(monkeypatch):
    monkeypatch.delenv(URL_BASE_ENV, raising=False)
    assert url_base().startswith("https://storage.googleapis.com/")
    monkeypatch.setenv(URL_BASE_ENV, "http://mirror/x/")
    assert url_base() == "http://mirror/x"
    assert url_base("http://arg") == "http://arg"


def test_find_datasets(tmp_path):
    for folder in ("plain/cats", "plain/dogs", "nested/a/b/x", "nested/a/b/y"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "1.png").write_bytes(png_bytes((9, 9, 9)))
    (tmp_path / "split" / "train" / "cats").mkdir(parents=True)
    (tmp_path / "one-class" / "cats").mkdir(parents=True)
    (tmp_path / "one-class" / "cats" / "1.jpg").write_bytes(b"")
    (tmp_path / ".hidden" / "a").mkdir(parents=True)
    found = find_datasets(tmp_path, exclude=(tmp_path / "plain",))
    assert [p.relative_to(tmp_path).as_posix() for p in found] == ["nested/a/b", "split"]
    assert looks_like_dataset(tmp_path / "plain") and not looks_like_dataset(tmp_path / "one-class")


def test_dataset_signature_changes_when_a_class_folder_changes(tmp_path):
    (tmp_path / "cats").mkdir()
    before = dataset_signature(tmp_path)
    time.sleep(0.01)
    (tmp_path / "cats" / "new.png").write_bytes(b"")
    assert dataset_signature(tmp_path) > before


def test_format_duration():
    assert [format_duration(s) for s in (None, 42, 185, 3720)] == ["-", "42 s", "3 min 05 s", "1 h 02 min"]


def test_parse_nvidia_smi_list():
    text = "GPU 0: NVIDIA H200 (UUID: GPU-1234)\nGPU 1: Tesla T4 (UUID: GPU-5678)\n"
    assert parse_nvidia_smi_list(text) == ["NVIDIA H200", "Tesla T4"]
    assert parse_nvidia_smi_list("No devices found.") == []
