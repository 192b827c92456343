"""Data health: duplicates, leakage across splits, likely label errors and outliers.

    python -m core.health --data DIR [--backbone NAME] [--image-size N]

Everything but the exact duplicates comes from each photo's embedding, read from the
embedding cache training uses (one backbone pass serves both). Prints one JSON object per
finding and line, then a last line with the summary:

    {"kind": "duplicate"|"leakage"|"label_issue"|"outlier", "files": [...], "label": ...,
     "suggested": ..., "score": ...}

- duplicate: photos that are the same file (SHA-256) or the same picture (embedding cosine
  similarity >= NEAR_DUPLICATE_SIMILARITY: re-saved, resized, recompressed). `score` is the
  lowest similarity in the group, `label` the class when all agree (else null: conflicting).
- leakage: such a group that spans train / validation / test (`splits` says which).
- label_issue: a photo whose out-of-fold predicted probabilities (cross-validated logistic
  regression on the embeddings) disagree with its folder, found and ranked by cleanlab's
  confident learning. `score` is its label quality (0..1, low = likely wrong), `suggested`
  the class the embeddings point to.
- outlier: a photo far from every other photo (mean cosine distance to its nearest
  neighbours far above the dataset's usual: a robust z-score). `score` is that z-score.

File paths are as found under DIR. Exit 0 when it ran, 2 with one `error:` line for bad input.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from core.cli import OneLineParser, exit_now, fail

KINDS = ("leakage", "duplicate", "label_issue", "outlier")
# Cosine similarity from which two photos count as one: a photo re-saved at 90% size scores
# >= 0.996 with MobileNetV2; distinct frames of one horse-or-human subject score up to 0.996.
NEAR_DUPLICATE_SIMILARITY = 0.98
CV_FOLDS = 5
CV_C = 10.0  # logistic regression on unit-length embeddings: 1.0 underfits (too timid to flag)
OUTLIER_NEIGHBORS = 5
OUTLIER_Z = 5.0  # robust z-score (median and MAD) of the neighbour distance that flags an outlier
CHUNK = 1024  # rows of the similarity matrix computed at a time (memory stays O(CHUNK x N))


@dataclass
class Finding:
    kind: str
    files: list[str]
    label: str | None
    suggested: str | None
    score: float
    splits: list[str] = field(default_factory=list)  # each file's split ("all" when unsplit)
    exact: bool = False  # duplicates: byte-identical files


@dataclass
class Images:
    """The photos checked: paths as found, class indices, splits, and their embeddings."""

    paths: list[str]
    labels: np.ndarray
    splits: list[str]
    class_names: list[str]
    embeddings: np.ndarray | None = None


def unit_rows(embeddings: np.ndarray) -> np.ndarray:
    """Each row scaled to length 1, so a dot product is a cosine similarity."""
    norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
    return (embeddings / np.maximum(norms, 1e-12)).astype(np.float32)


def similar_pairs(embeddings: np.ndarray, threshold: float) -> list[tuple[int, int, float]]:
    """Every pair (i < j) whose cosine similarity is at least `threshold`."""
    unit = unit_rows(embeddings)
    pairs = []
    for start in range(0, len(unit), CHUNK):
        block = unit[start : start + CHUNK] @ unit.T
        rows, cols = np.nonzero(block >= threshold)
        for r, c in zip(rows, cols):
            i = start + int(r)
            if i < c:
                pairs.append((i, int(c), float(block[r, c])))
    return pairs


def groups_of(n: int, pairs: list[tuple[int, int, float]]) -> list[tuple[list[int], float]]:
    """Connected groups (union-find) of the pairs, each with its lowest pair similarity."""
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j, _ in pairs:
        parent[root(i)] = root(j)
    members: dict[int, list[int]] = {}
    for i in range(n):
        members.setdefault(root(i), []).append(i)
    lowest: dict[int, float] = {}
    for i, _, similarity in pairs:
        r = root(i)
        lowest[r] = min(lowest.get(r, 1.0), similarity)
    return [(group, lowest[r]) for r, group in members.items() if len(group) > 1]


def duplicate_findings(images: Images, digests: list[str], threshold: float) -> list[Finding]:
    """Groups of identical or near-identical photos: "leakage" when they span splits."""
    pairs = [(i, j, 1.0) for i, j in _equal_pairs(digests)]
    if images.embeddings is not None:
        pairs += similar_pairs(images.embeddings, threshold)
    findings = []
    for group, similarity in groups_of(len(images.paths), pairs):
        labels = {images.class_names[images.labels[i]] for i in group}
        splits = [images.splits[i] for i in group]
        findings.append(
            Finding(
                kind="leakage" if len(set(splits)) > 1 else "duplicate",
                files=[images.paths[i] for i in group],
                label=labels.pop() if len(labels) == 1 else None,
                suggested=None,
                score=round(min(similarity, 1.0), 4),
                splits=splits,
                exact=len({digests[i] for i in group}) == 1,
            )
        )
    return sorted(findings, key=lambda f: (KINDS.index(f.kind), -f.score))


def _equal_pairs(digests: list[str]) -> list[tuple[int, int]]:
    first: dict[str, int] = {}
    pairs = []
    for i, digest in enumerate(digests):
        if digest in first:
            pairs.append((first[digest], i))
        else:
            first[digest] = i
    return pairs


def out_of_fold_probabilities(embeddings: np.ndarray, labels: np.ndarray, seed: int = 0) -> np.ndarray | None:
    """Each photo's class probabilities from a model that never saw it (stratified K-fold);
    None when a class has fewer than 2 photos."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    folds = min(CV_FOLDS, int(np.bincount(labels).min()))
    if folds < 2:
        return None
    model = LogisticRegression(C=CV_C, max_iter=2000)
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    return cross_val_predict(model, unit_rows(embeddings), labels, cv=splitter, method="predict_proba")


def label_issue_findings(images: Images, seed: int = 0) -> list[Finding]:
    """Photos whose folder disagrees with what the other photos teach, most suspicious first."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    if images.embeddings is None or len(images.class_names) < 2:
        return []
    probs = out_of_fold_probabilities(images.embeddings, images.labels, seed)
    if probs is None:
        return []
    # n_jobs=1: cleanlab's default forks a process pool, which can hang in a process that has
    # TensorFlow's threads running (seen: a test waited 900 s); one process is fast enough here.
    ranked = find_label_issues(images.labels, probs, return_indices_ranked_by="self_confidence", n_jobs=1)
    quality = get_label_quality_scores(images.labels, probs)
    findings = []
    for i in ranked:
        others = probs[i].copy()
        others[images.labels[i]] = -1.0  # the suggestion is another class than the folder's
        findings.append(
            Finding(
                kind="label_issue",
                files=[images.paths[i]],
                label=images.class_names[images.labels[i]],
                suggested=images.class_names[int(others.argmax())],
                score=round(float(quality[i]), 4),
                splits=[images.splits[i]],
            )
        )
    return findings


def neighbour_distances(embeddings: np.ndarray, k: int = OUTLIER_NEIGHBORS) -> np.ndarray:
    """Each photo's mean cosine distance to its k nearest other photos."""
    unit = unit_rows(embeddings)
    k = min(k, len(unit) - 1)
    distances = np.empty(len(unit), np.float32)
    for start in range(0, len(unit), CHUNK):
        block = 1.0 - unit[start : start + CHUNK] @ unit.T
        block[np.arange(len(block)), np.arange(start, start + len(block))] = np.inf  # not itself
        distances[start : start + len(block)] = np.sort(block, axis=1)[:, :k].mean(axis=1)
    return distances


def robust_z(values: np.ndarray) -> np.ndarray:
    """(value - median) / (1.4826 x median absolute deviation): a z-score outliers cannot inflate."""
    median = np.median(values)
    spread = 1.4826 * np.median(np.abs(values - median))
    return (values - median) / max(spread, 1e-12)


def outlier_findings(images: Images) -> list[Finding]:
    """Photos far from every other photo, of any class; the farthest first."""
    if images.embeddings is None or len(images.paths) < 3:
        return []
    scores = robust_z(neighbour_distances(images.embeddings))
    return [
        Finding(
            kind="outlier",
            files=[images.paths[i]],
            label=images.class_names[images.labels[i]],
            suggested=None,
            score=round(float(scores[i]), 2),
            splits=[images.splits[i]],
        )
        for i in np.argsort(-scores)
        if scores[i] >= OUTLIER_Z
    ]


def collect_images(data: str | os.PathLike) -> tuple[Images, list]:
    """Every valid photo of the dataset (all splits), and the files that were skipped."""
    from core.data import scan_dataset

    report = scan_dataset(data)
    paths, labels, splits = [], [], []
    for split_name, split in report.splits.items():
        paths += split.paths
        labels += split.labels
        splits += [split_name] * len(split.paths)
    return Images(paths, np.asarray(labels, int), splits, report.class_names), report.skipped


def embed(paths: list[str], backbone: str, image_size: int, weights: str | None = "imagenet", progress=None):
    """Embeddings of `paths` through the cache training uses (the same extractor key)."""
    from core.config import TrainConfig
    from core.embeddings import EmbeddingCache, embed_paths
    from core.model import build_model, feature_extractor

    config = TrainConfig(data="-", backbone=backbone, image_size=image_size, weights=weights)
    extractor = feature_extractor(build_model(config, 2))  # the head is never used
    return embed_paths(extractor, config, paths, EmbeddingCache(), progress=progress)


def check_health(
    images: Images, similarity: float = NEAR_DUPLICATE_SIMILARITY, seed: int = 0
) -> list[Finding]:
    """Every finding, by kind: leakage, duplicates, label issues, outliers."""
    from core.embeddings import file_digest

    digests = [file_digest(p) for p in images.paths]
    return (
        duplicate_findings(images, digests, similarity)
        + label_issue_findings(images, seed)
        + outlier_findings(images)
    )


def finding_json(finding: Finding) -> str:
    return json.dumps(asdict(finding))


def read_findings(lines: list[str]) -> tuple[list[dict], dict]:
    """(findings, summary) from the command's output lines."""
    records = [json.loads(line) for line in lines if line.strip().startswith("{")]
    summary = next((r for r in records if r.get("summary")), {})
    return [r for r in records if r.get("kind") in KINDS], summary


def main(argv: list[str] | None = None) -> int:
    from core.backbones import BACKBONES, WeightsUnavailableError
    from core.config import ConfigError
    from core.data import DatasetError

    parser = OneLineParser(prog="python -m core.health", description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="a folder of class folders, or one already split")
    parser.add_argument("--backbone", choices=sorted(BACKBONES), default="mobilenet_v2")
    parser.add_argument("--image-size", type=int, help="square input size (default: the backbone's own)")
    parser.add_argument("--weights", choices=["imagenet", "none"], default="imagenet", help="'none': tests")
    parser.add_argument(
        "--similarity",
        type=float,
        default=NEAR_DUPLICATE_SIMILARITY,
        help=f"cosine similarity from which photos are near-duplicates (default {NEAR_DUPLICATE_SIMILARITY})",
    )
    args = parser.parse_args(argv)
    size = args.image_size or BACKBONES[args.backbone].default_size
    if not 32 <= size <= 1024:
        return fail(f"--image-size must be between 32 and 1024, got {size}")
    started = time.time()
    try:
        images, skipped = collect_images(args.data)
        weights = None if args.weights == "none" else "imagenet"
        images.embeddings = embed(images.paths, args.backbone, size, weights)
        findings = check_health(images, args.similarity)
    except (DatasetError, ConfigError, WeightsUnavailableError) as exc:
        return fail(str(exc))
    for finding in findings:
        print(finding_json(finding), flush=True)
    counts = {kind: sum(f.kind == kind for f in findings) for kind in KINDS}
    summary = {
        "summary": True,
        "data": str(args.data),
        "images": len(images.paths),
        "classes": images.class_names,
        "skipped": len(skipped),
        "findings": counts,
        "backbone": args.backbone,
        "image_size": size,
        "seconds": round(time.time() - started, 1),
    }
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    exit_now(main())
