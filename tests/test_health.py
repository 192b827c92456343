"""Data health: each finding kind on synthetic embeddings and on real photos, the CLI contract,
and the Health tab's decisions honoured by training without touching the dataset folder."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.exclusions import Exclusions, load_findings, move_target, save_findings
from core.health import (
    Images,
    duplicate_findings,
    label_issue_findings,
    outlier_findings,
    read_findings,
)
from tests.helpers import horse_or_human_subset, make_color_dataset, run_cli, tree_digest, write_image
from tests.real_assets import pbc_blood_cells


def _clusters(n_per_class: int = 40, dim: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two well separated Gaussian clusters in `dim` dimensions (like two classes' embeddings)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(2, dim)) * 3
    x = np.concatenate([centres[c] + rng.normal(size=(n_per_class, dim)) for c in (0, 1)])
    return np.abs(x), np.repeat([0, 1], n_per_class)  # non-negative, as ReLU embeddings are


def _images(embeddings, labels, splits=None) -> Images:
    paths = [f"img{i}.png" for i in range(len(labels))]
    return Images(paths, np.asarray(labels), splits or ["all"] * len(labels), ["cats", "dogs"], embeddings)


def test_near_duplicates_within_a_split_are_duplicates_and_across_splits_are_leakage():
    x, y = _clusters()
    x = np.concatenate([x, x[3:4] * 1.001, x[50:51] + 0.001])  # two re-saved copies
    y = np.concatenate([y, [0, 1]])
    splits = ["train"] * 80 + ["train", "validation"]
    findings = duplicate_findings(_images(x, y, splits), [str(i) for i in range(82)], 0.98)
    by_kind = {f.kind: f for f in findings}
    assert sorted(by_kind) == ["duplicate", "leakage"]
    assert sorted(by_kind["duplicate"].files) == ["img3.png", "img80.png"]
    assert sorted(by_kind["leakage"].files) == ["img50.png", "img81.png"]
    assert by_kind["leakage"].splits == ["train", "validation"]
    assert by_kind["leakage"].label == "dogs" and not by_kind["leakage"].exact


def test_exact_duplicates_are_found_by_hash_even_with_different_labels():
    x, y = _clusters()
    digests = [str(i) for i in range(80)]
    digests[70] = digests[5]  # the same file saved in both class folders
    (finding,) = duplicate_findings(_images(x, y), digests, 0.999999)
    assert finding.exact and finding.files == ["img5.png", "img70.png"]
    assert finding.label is None  # conflicting labels: the user must decide


def test_mislabelled_embeddings_are_flagged_with_their_true_class():
    x, y = _clusters(n_per_class=60)
    flipped = [2, 17, 33, 64, 90]
    noisy = y.copy()
    noisy[flipped] = 1 - noisy[flipped]
    findings = label_issue_findings(_images(x, noisy))
    flagged = {int(f.files[0].removeprefix("img").removesuffix(".png")): f for f in findings}
    found = set(flipped) & set(flagged)
    assert len(found) >= 0.8 * len(flipped) and len(flagged) <= 2 * len(flipped)  # the issue's bar
    assert all(flagged[i].suggested == ["cats", "dogs"][y[i]] for i in found)
    assert all(0 <= f.score <= 1 for f in findings)


def test_a_clean_dataset_has_no_label_issues():
    x, y = _clusters(n_per_class=60)
    assert label_issue_findings(_images(x, y)) == []


def test_an_embedding_far_from_every_class_is_an_outlier():
    x, y = _clusters()
    far = np.abs(np.random.default_rng(1).normal(size=(1, x.shape[1]))) * 30
    far[0, : x.shape[1] // 2] = 0  # another direction entirely
    findings = outlier_findings(_images(np.concatenate([x, far]), np.concatenate([y, [0]])))
    assert [f.files for f in findings] == [["img80.png"]]
    assert outlier_findings(_images(x, y)) == []


def _split_colors(root: Path) -> Path:
    """train/ (6 per class) and validation/ (3 per class), no two files alike."""
    for split, count, seed in (("train", 6, 0), ("validation", 3, 500)):
        for name, color in (("red", (220, 40, 40)), ("blue", (40, 40, 220))):
            for i in range(count):
                write_image(root / split / name / f"{i}.png", color, seed=seed + i + 50 * (name == "blue"))
    return root


def test_cli_prints_findings_then_a_summary(tmp_path):
    data = _split_colors(tmp_path / "d")
    shutil.copy(data / "validation" / "red" / "0.png", data / "train" / "red" / "copy.png")
    result = run_cli("core.health", "--data", str(data), "--backbone", "mobilenet_v2_0.35",
                     "--weights", "none", "--image-size", "32", "--similarity", "1.0",
                     env={"TLS_CACHE_DIR": str(tmp_path / "cache")})  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    findings, summary = read_findings(lines)
    assert json.loads(lines[-1]) == summary and summary["images"] == 19
    leak = next(f for f in findings if f["kind"] == "leakage" and f["score"] == 1.0)
    assert sorted(leak["files"]) == sorted(
        [str(data / "train" / "red" / "copy.png"), str(data / "validation" / "red" / "0.png")]
    )
    assert set(leak) >= {"kind", "files", "label", "suggested", "score"} and leak["label"] == "red"
    assert summary["findings"]["leakage"] == sum(f["kind"] == "leakage" for f in findings)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data", "/no/such/dir"], "dataset folder not found"),
        (["--image-size", "8"], "--image-size must be between 32"),
        (["--backbone", "nope"], "argument --backbone: invalid choice"),
    ],
)
def test_cli_bad_input_is_one_error_line(tmp_path, color_dataset, args, message):
    result = run_cli("core.health", "--data", str(color_dataset), *args)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: {message}")


@pytest.mark.parametrize("split", [False, True], ids=["unsplit", "split"])
def test_training_honours_exclusions_and_never_touches_the_dataset(tmp_path, monkeypatch, split):
    from core import config
    from core.exclusions import Exclusions, save_exclusions

    data = _split_colors(tmp_path / "d") if split else make_color_dataset(tmp_path / "d", per_class=8)
    prefix = "train/" if split else ""
    monkeypatch.setattr(config, "DATA_ROOT", tmp_path / "data-root")
    saved = save_exclusions(data, Exclusions([f"{prefix}red/0.png"], {f"{prefix}blue/1.png": "red"}))
    assert saved.is_relative_to(tmp_path / "data-root")
    before = tree_digest(data)
    result = run_cli("core.train", "--data", str(data), "--runs-dir", str(tmp_path / "runs"),
                     "--backbone", "mobilenet_v2_0.35", "--weights", "none", "--image-size", "32",
                     "--epochs", "1", "--no-evaluate",
                     env={"TLS_DATA_ROOT": str(tmp_path / "data-root"),
                          "TLS_CACHE_DIR": str(tmp_path / "cache")})  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    run = Path(result.stdout.strip().splitlines()[-1])
    assert tree_digest(data) == before
    dataset = json.loads((run / "dataset.json").read_text())
    assert dataset["excluded"] == [f"{prefix}red/0.png"]
    assert dataset["relabelled"] == {f"{prefix}blue/1.png": "red"}
    used = {p.resolve(): p.parent.name for p in (run / "split").rglob("*.png")}
    assert (data / f"{prefix}red/0.png").resolve() not in used
    assert used[(data / f"{prefix}blue/1.png").resolve()] == "red"
    assert sum(dataset["counts"][s]["red"] for s in dataset["counts"]) == (9 if split else 8)


@pytest.mark.slow
def test_every_kind_is_found_on_real_photos(tmp_path, use_keras_home, monkeypatch):
    """Real MobileNetV2 x0.35 embeddings of 520 horse-or-human photos with problems planted:
    a validation photo re-saved into train, 5% of the training photos moved to the other
    class, a blood-cell photo, and one file saved twice."""
    from core.health import check_health, collect_images, embed

    monkeypatch.setattr("core.embeddings.CACHE_DIR", tmp_path / "cache")
    data = tmp_path / "d"
    horse_or_human_subset(data / "train", 250, stride=2)
    horse_or_human_subset(data / "validation", 10, split="validation", stride=12)
    leaked = sorted((data / "validation" / "horses").iterdir())[0]
    with Image.open(leaked) as image:  # re-saved at 90% size and lower quality
        image.resize((270, 270)).save(data / "train" / "horses" / "resaved.jpg", quality=80)
    moved = {}
    for source, target in (("humans", "horses"), ("horses", "humans")):
        for path in sorted((data / "train" / source).iterdir())[3::20]:  # 13 of each, spread out
            moved[str(data / "train" / target / path.name)] = source
            shutil.move(path, data / "train" / target / path.name)
    cells = pbc_blood_cells() / "basophil"
    shutil.copy(sorted(cells.iterdir())[0], data / "train" / "humans" / "cell.jpg")
    write_image(data / "train" / "humans" / "same.png", (10, 200, 10), size=64)
    shutil.copy(data / "train" / "humans" / "same.png", data / "train" / "humans" / "same-again.png")

    images, _ = collect_images(data)
    images.embeddings = embed(images.paths, "mobilenet_v2_0.35", 128)
    findings = check_health(images)
    files = {kind: [sorted(Path(p).name for p in f.files) for f in findings if f.kind == kind]
             for kind in ("leakage", "duplicate", "outlier")}  # fmt: skip
    assert files["leakage"] == [sorted([leaked.name, "resaved.jpg"])]
    assert ["same-again.png", "same.png"] in files["duplicate"]
    assert ["cell.jpg"] in files["outlier"]
    suggested = {f.files[0]: f.suggested for f in findings if f.kind == "label_issue"}
    flagged = set(suggested) & set(moved)
    assert len(flagged) >= 0.75 * len(moved) and len(suggested) <= 2.4 * len(moved)
    assert all(suggested[path] == moved[path] for path in flagged)  # back where it came from


def test_decisions_toggle_one_photo_at_a_time():
    decided = Exclusions()
    decided.set_excluded("red/1.png", True)
    decided.set_excluded("red/0.png", True)
    decided.set_excluded("red/0.png", True)  # twice: still once
    assert decided.excluded == ["red/0.png", "red/1.png"]
    decided.set_excluded("red/1.png", False)
    assert decided.excluded == ["red/0.png"]
    decided.set_moved("blue/3.png", "red", True)
    decided.set_moved("blue/4.png", "green", True)
    decided.set_moved("blue/4.png", "red", False)  # undoing another move leaves this one
    assert decided.relabelled == {"blue/3.png": "red", "blue/4.png": "green"}
    decided.set_moved("blue/3.png", "red", False)
    assert decided.relabelled == {"blue/4.png": "green"}


def test_only_a_label_issue_offers_a_move_and_only_to_a_class_the_dataset_has():
    issue = {"kind": "label_issue", "files": ["blue/3.png"], "label": "blue", "suggested": "red"}
    assert move_target(issue, ["blue", "red"]) == "red"
    assert move_target(issue, ["blue", "green"]) is None
    assert move_target({**issue, "kind": "outlier"}, ["blue", "red"]) is None


def test_findings_are_kept_outside_the_dataset_per_data_root(tmp_path):
    dataset = make_color_dataset(tmp_path / "colors", per_class=1)
    before = tree_digest(dataset)
    root, other = tmp_path / "root", tmp_path / "other"
    assert load_findings(dataset, root) is None
    lines = [json.dumps({"kind": "outlier", "files": ["x"]}), json.dumps({"summary": True})]
    saved = save_findings(dataset, lines, root)
    assert saved.is_relative_to(root)
    assert load_findings(dataset, root) == lines
    assert load_findings(dataset, other) is None  # another visitor's workspace sees none
    assert tree_digest(dataset) == before
