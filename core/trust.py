"""Trust a prediction: calibrated confidence, and "none of these" for photos of no known class.

- **Calibration** by temperature scaling (Guo et al., 2017): one number T divides the
  model's logits (here log-probabilities, equal to the logits up to a constant), fitted on
  the validation split to minimise the cross-entropy. The ranking of classes never
  changes, so accuracy does not either; the expected calibration error (ECE) says how far
  "90% sure" is from being right 90% of the time, before and after.
- **Open set**: a photo's score is the cosine distance from its embedding (the pooled
  backbone output) to its K-th nearest training embedding. The threshold is the
  ACCEPT_RATE quantile of the validation photos' scores, so about 95% of photos of the
  known classes are accepted; a photo scoring above it is "unknown" (none of these).

`core.evaluate` fits both on the validation split and stores them with the run:

    RUN/trust.json             {"temperature", "openset": {"k", "threshold", "accept_rate", ...}}
    RUN/trust_embeddings.npy   the training embeddings, unit length, float16

No TensorFlow here: the caller computes probabilities and embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.runs import read_json, write_json_atomic

TRUST_FILE = "trust.json"
EMBEDDINGS_FILE = "trust_embeddings.npy"
ACCEPT_RATE = 0.95  # the share of known-class validation photos the open-set threshold accepts
NEIGHBOURS = 1  # K: the distance to the nearest training photo (a leak-free validation split)
MAX_REFERENCE = 5000  # at most this many training embeddings are kept with the run
ECE_BINS = 15
RELIABILITY_BINS = 10
EPSILON = 1e-7
CHUNK = 1024


def log_probabilities(probs: np.ndarray) -> np.ndarray:
    return np.log(np.clip(probs, EPSILON, 1.0))


def with_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log p / T): T > 1 softens over-confident probabilities, T < 1 sharpens them."""
    z = log_probabilities(np.asarray(probs, np.float64)) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def nll(probs: np.ndarray, y_true: np.ndarray) -> float:
    return float(-log_probabilities(probs[np.arange(len(y_true)), y_true]).mean())


def fit_temperature(probs: np.ndarray, y_true: np.ndarray) -> float:
    """The T in [0.05, 20] that minimises the cross-entropy of `probs` at T."""
    from scipy.optimize import minimize_scalar

    found = minimize_scalar(
        lambda log_t: nll(with_temperature(probs, float(np.exp(log_t))), y_true),
        bounds=(np.log(0.05), np.log(20.0)),
        method="bounded",
    )
    return float(np.exp(found.x))


def reliability(probs: np.ndarray, y_true: np.ndarray, bins: int = RELIABILITY_BINS) -> list[dict]:
    """Per confidence bin: mean confidence, accuracy and count (empty bins left out)."""
    confidence, correct = probs.max(axis=1), probs.argmax(axis=1) == y_true
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    rows = []
    for b in range(bins):
        inside = which == b
        if inside.any():
            rows.append(
                {
                    "lower": float(edges[b]),
                    "upper": float(edges[b + 1]),
                    "confidence": float(confidence[inside].mean()),
                    "accuracy": float(correct[inside].mean()),
                    "count": int(inside.sum()),
                }
            )
    return rows


def expected_calibration_error(probs: np.ndarray, y_true: np.ndarray, bins: int = ECE_BINS) -> float:
    """Sum over confidence bins of (share of photos) x |accuracy - mean confidence|."""
    return float(
        sum(r["count"] * abs(r["accuracy"] - r["confidence"]) for r in reliability(probs, y_true, bins))
        / max(len(y_true), 1)
    )


def unit_rows(embeddings: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
    return (embeddings / np.maximum(norms, 1e-12)).astype(np.float32)


def openset_scores(embeddings: np.ndarray, reference: np.ndarray, k: int = NEIGHBOURS) -> np.ndarray:
    """Cosine distance from each embedding to its k-th nearest reference embedding."""
    unit, reference = unit_rows(embeddings), unit_rows(np.asarray(reference, np.float32))
    k = max(1, min(k, len(reference)))
    scores = np.empty(len(unit), np.float32)
    for start in range(0, len(unit), CHUNK):
        similarity = unit[start : start + CHUNK] @ reference.T
        kth = -np.partition(-similarity, k - 1, axis=1)[:, k - 1]
        scores[start : start + len(similarity)] = 1.0 - kth
    return scores


@dataclass
class Trust:
    """A run's calibration and open-set threshold, applied to new predictions."""

    temperature: float
    threshold: float
    reference: np.ndarray  # unit training embeddings
    k: int = NEIGHBOURS

    def judge(self, probs: np.ndarray, embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(calibrated probabilities, open-set scores, unknown flags) for a batch."""
        scores = openset_scores(embeddings, self.reference, self.k)
        return with_temperature(probs, self.temperature), scores, scores > self.threshold


def load_trust(run_dir: str | Path) -> Trust | None:
    """The run's stored calibration and threshold; None for a run evaluated before they existed."""
    saved = read_json(Path(run_dir) / TRUST_FILE)
    try:
        reference = np.load(Path(run_dir) / EMBEDDINGS_FILE).astype(np.float32)
        return Trust(float(saved["temperature"]), float(saved["openset"]["threshold"]), reference,
                     int(saved["openset"]["k"]))  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError):
        return None


def fit_trust(
    run_dir: Path, val_probs: np.ndarray, y_val: np.ndarray, val_embeddings: np.ndarray, train_embeddings
) -> Trust:
    """Fit the temperature and the open-set threshold on validation; store them with the run."""
    reference = unit_rows(np.asarray(train_embeddings, np.float32))
    if len(reference) > MAX_REFERENCE:  # an even spread keeps every class represented
        reference = reference[np.linspace(0, len(reference) - 1, MAX_REFERENCE).round().astype(int)]
    reference = reference.astype(np.float16)
    scores = openset_scores(val_embeddings, reference)
    # The smallest score with at least ACCEPT_RATE of validation at or below it: rejects <= 5%.
    threshold = float(np.quantile(scores, ACCEPT_RATE, method="inverted_cdf"))
    trust = Trust(fit_temperature(val_probs, y_val), threshold, reference)
    np.save(run_dir / f".{EMBEDDINGS_FILE}.tmp.npy", reference)
    (run_dir / f".{EMBEDDINGS_FILE}.tmp.npy").replace(run_dir / EMBEDDINGS_FILE)
    write_json_atomic(
        run_dir / TRUST_FILE,
        {
            "temperature": trust.temperature,
            "openset": {
                "method": "cosine distance to the nearest training embedding",
                "k": trust.k,
                "threshold": trust.threshold,
                "accept_rate": ACCEPT_RATE,
                "reference_embeddings": len(reference),
            },
        },
    )
    return trust


def assess(
    run_dir: Path, split: str, probs: np.ndarray, y_true: np.ndarray, embeddings: np.ndarray, train_embeddings
) -> dict:
    """evaluation.json's "calibration" and "openset" for one split. The validation split fits
    (and stores) them; another split is judged with what validation fitted."""
    trust = load_trust(run_dir) if split != "validation" else None
    if trust is None:
        trust = fit_trust(run_dir, probs, y_true, embeddings, train_embeddings)
    calibrated, scores, unknown = trust.judge(probs, embeddings)
    return {
        "calibration": {
            "temperature": trust.temperature,
            "ece_before": expected_calibration_error(probs, y_true),
            "ece_after": expected_calibration_error(calibrated, y_true),
            "reliability_before": reliability(probs, y_true),
            "reliability_after": reliability(calibrated, y_true),
        },
        "openset": {
            "threshold": trust.threshold,
            "rejected": float(unknown.mean()),
            "score_quantiles": [float(q) for q in np.quantile(scores, [0.05, 0.5, 0.95])],
        },
    }
