"""Auto mode: the best classifier for the user's data, chosen by measurement.

One forward pass per image pools features from the top of the backbone and from the ends
of its two previous resolution stages (one multi-output extractor); every layer's
embeddings go into the embedding cache under their own key. Then candidates — logistic
regression with C chosen by cross-validation, the Keras head trained to convergence, a
linear SVM, kNN — are scored by stratified k-fold cross-validation on the TRAINING split
(macro-F1; the rarest class bounds the folds). The validation split is never used to
choose: it only reports the winner, as in every other run.

The winner is one ordinary run: logistic regression and the Keras head fold into
`best.keras` (backbone up to the winning layer, pooling, dense), so predict, Grad-CAM,
export and evaluation work unchanged; an SVM or kNN is saved beside the extractor with
joblib, as features mode does. `auto.json` holds every candidate's CV mean ± std and fit
time, why the winner won, whether fine-tuning the backbone looked worth its cost and on
what evidence, and the winner's learning curve ("what would more data buy").

The selection functions are pure (numpy and scikit-learn on embedding arrays), so tests
check them on synthetic embeddings where the right answer is known.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from core.data import DatasetError
from core.runs import RunDir

if TYPE_CHECKING:
    from core.stages import RunContext  # imports TensorFlow

AUTO_FILE = "auto.json"
MAX_FOLDS = 5
LARGE_SPLIT_FOLDS = (1000, 3)  # from this many training images, 3 folds: stable enough, and cheaper
EARLIER_LAYERS = 2  # earlier candidate layers besides the top: the ends of the stages before the last
LOGREG_CS = (0.01, 0.1, 1.0, 10.0)
SVM_CS = (0.01, 0.1, 1.0)
KNN_NEIGHBORS = (1, 5, 15)
HEAD_STEPS = 300  # optimisation steps for the Keras head, however few images there are
TIE = 0.002  # CV means closer than this are a tie: the simpler, foldable candidate wins
PERFECT = 1.0 - 1e-9
# Classifiers in order of preference on a tie: the ones that fold into one Keras model first.
CLASSIFIERS = ("logreg", "head", "svm", "knn")
CLASSIFIER_LABELS = {
    "logreg": "logistic regression",
    "head": "Keras head",
    "svm": "linear SVM",
    "knn": "k nearest neighbours",
}
LEARNING_CURVE_FRACTIONS = (0.25, 0.5, 0.75, 1.0)
STILL_RISING = 0.005  # macro-F1 gained from 75% to 100% of the images that counts as "still rising"
FINE_TUNE_MIN_PER_CLASS = 300  # images in the rarest class that make fine-tuning worth trying
FINE_TUNE_ROOM = 0.99  # at or above this CV macro-F1 there is little left for fine-tuning to win


def layer_label(layer: str | None) -> str:
    return layer or "top"


# --------------------------------------------------------------------------- layers


def stage_ends(layer_shapes: Sequence[tuple[str, tuple]]) -> list[str]:
    """Names of the last layer at each spatial resolution before the resolution drops.

    `layer_shapes` is (name, output shape) of a backbone's layers in order, without its
    input. Layers whose output is not a 4-D feature map are ignored, and so are layers that
    grow the map (zero padding before a strided convolution). These block ends are where
    each stage's features are complete: for MobileNetV2 at 224 px, block_1/3/6/13_expand_relu
    (112, 56, 28 and 14 px); for ResNet50 the conv2/3/4 stages' last block outputs.
    """
    ends, current, last = [], None, None
    for name, shape in layer_shapes:
        if len(shape) != 4 or shape[1] is None:
            continue
        size = shape[1]
        if current is not None and size > current:
            continue  # padding: the next layer brings the size down
        if current is not None and size < current and last is not None:
            ends.append(last)
        current, last = size, name
    return ends


def candidate_layers(base, earlier: int = EARLIER_LAYERS) -> list[str | None]:
    """The earlier layers to try (the last `earlier` stage ends), then None for the top."""
    shapes = [(layer.name, tuple(layer.output.shape)) for layer in base.layers[1:]]
    return [*stage_ends(shapes)[-earlier:], None] if earlier else [None]


def layer_extractor(config, base, layers: list[str | None]):
    """Raw pixels -> one globally average-pooled embedding per layer in `layers`, in one pass."""
    from core.backbones import BACKBONES
    from core.model import ImagePreprocess
    from core.tf_setup import keras

    features = keras.Model(
        base.input, [base.output if layer is None else base.get_layer(layer).output for layer in layers]
    )
    inputs = keras.Input((config.image_size, config.image_size, 3), name="image")
    x = ImagePreprocess(BACKBONES[config.backbone].preprocess, name="preprocess")(inputs)
    maps = features(x, training=False)
    pooled = [keras.layers.GlobalAveragePooling2D(name=f"pool_{i}")(m) for i, m in enumerate(maps)]
    return keras.Model(inputs, pooled, name="layer_extractor")


# --------------------------------------------------------------------------- cross-validation


class CrossValidationError(DatasetError):
    """The training split is too small to cross-validate; the message says why."""


def cv_folds(labels: np.ndarray, seed: int = 0, max_folds: int = MAX_FOLDS) -> list[tuple]:
    """Stratified (train indices, test indices) folds; the rarest class bounds their number
    (and a training split of 1000+ images gets 3).

    Raises:
        CrossValidationError: some class has fewer than 2 training images.
    """
    from sklearn.model_selection import StratifiedKFold

    counts = np.bincount(np.asarray(labels, int))
    present = counts[counts > 0]
    rarest = int(present.min()) if len(present) else 0
    if len(present) < 2 or rarest < 2:
        raise CrossValidationError(
            "auto mode cross-validates on the training split: every class needs at least 2 "
            f"training images (the rarest has {rarest})"
        )
    if len(labels) >= LARGE_SPLIT_FOLDS[0]:
        max_folds = min(max_folds, LARGE_SPLIT_FOLDS[1])
    folds = StratifiedKFold(min(max_folds, rarest), shuffle=True, random_state=seed)
    return list(folds.split(np.zeros(len(labels)), labels))


@dataclass
class Candidate:
    """One classifier at one layer, scored by cross-validation (its best hyperparameter)."""

    classifier: str
    layer: str | None
    params: dict
    cv_mean: float
    cv_std: float
    fold_scores: list[float]
    fit_s: float  # seconds to fit and score every fold of every hyperparameter tried
    tried: dict = field(default_factory=dict)  # hyperparameter value -> CV mean

    @property
    def name(self) -> str:
        shown = ", ".join(f"{k}={v:g}" for k, v in self.params.items())
        params = f" ({shown})" if shown else ""
        return f"{CLASSIFIER_LABELS[self.classifier]}{params} @ {layer_label(self.layer)}"

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "name": self.name, "layer": layer_label(self.layer)}


class KerasHead:
    """The Keras head (an optional hidden Dense, dropout, the output layer) on standardised
    embeddings, trained for a fixed number of optimisation steps, so it converges however few
    images there are (10 epochs of 30 images at batch 16 are 20 steps: never enough).

    One instance is refitted fold after fold: it is built (and its training step traced)
    once, and each fit starts again from the same initial weights and a fresh optimizer.
    A scikit-learn-like estimator: `fit`, `predict`, `predict_proba`, `classes_`.
    """

    def __init__(
        self,
        num_classes: int,
        dense_units: int = 0,
        dropout: float = 0.2,
        learning_rate: float = 1e-3,
        batch_size: int = 32,
        seed: int = 0,
        steps: int = HEAD_STEPS,
    ):
        self.num_classes, self.dense_units, self.dropout = num_classes, dense_units, dropout
        self.learning_rate, self.batch_size, self.seed, self.steps = learning_rate, batch_size, seed, steps
        self.classes_ = np.arange(num_classes)
        self.model, self.initial = None, None

    def _build(self, dim: int):
        from core.model import compile_model
        from core.tf_setup import keras

        inputs = keras.Input((dim,), name="embedding")
        x = inputs
        if self.dense_units:
            x = keras.layers.Dense(self.dense_units, activation="relu", name="hidden")(x)
        if self.dropout:
            x = keras.layers.Dropout(self.dropout, seed=self.seed)(x)
        units, activation = (1, "sigmoid") if self.num_classes == 2 else (self.num_classes, "softmax")
        outputs = keras.layers.Dense(units, activation=activation, dtype="float32", name="output")(x)
        self.model = keras.Model(inputs, outputs)
        compile_model(self.model, "adam", self.learning_rate, self.num_classes)
        self.initial = self.model.get_weights()

    def fit(self, x: np.ndarray, y: np.ndarray) -> KerasHead:
        from core.pipeline import embedding_dataset

        self.mean_, self.scale_ = x.mean(0), x.std(0)
        self.scale_[self.scale_ == 0] = 1.0  # as StandardScaler: a constant feature stays as it is
        if self.model is None or self.model.input_shape[-1] != x.shape[1]:
            self._build(x.shape[1])
        else:  # a fresh start: initial weights, optimizer moments and step count at zero
            self.model.set_weights(self.initial)
            for variable in self.model.optimizer.variables:  # the learning rate is one: keep it
                if "learning_rate" not in variable.name:
                    variable.assign(np.zeros(variable.shape, variable.dtype))
        targets = y.astype(np.float32).reshape(-1, 1) if self.num_classes == 2 else y.astype(np.int32)
        batch = min(self.batch_size, len(x))
        data = embedding_dataset(self._standardise(x), targets, batch, training=True, seed=self.seed)
        self.model.fit(data.repeat(), epochs=1, steps_per_epoch=self.steps, verbose=0)
        return self

    def _standardise(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean_) / self.scale_).astype(np.float32)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        raw = np.asarray(self.model(self._standardise(x), training=False))
        return np.concatenate([1.0 - raw, raw], axis=1) if raw.shape[1] == 1 else raw

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.predict_proba(x).argmax(1)

    def dense_weights(self) -> list[list[np.ndarray]]:
        """[kernel, bias] of each Dense layer, with the standardisation folded into the first:
        ((x - mean) / scale) @ W + b = x @ (W / scale) + (b - (mean / scale) @ W)."""
        from core.tf_setup import keras

        dense = [layer for layer in self.model.layers if isinstance(layer, keras.layers.Dense)]
        weights = [layer.get_weights() for layer in dense]
        kernel, bias = weights[0]
        weights[0] = [kernel / self.scale_[:, None], bias - (self.mean_ / self.scale_) @ kernel]
        return [[w.astype(np.float32) for w in pair] for pair in weights]


def make_estimator(classifier: str, params: dict, num_classes: int, config=None):
    """An unfitted estimator for one candidate, on standardised embeddings (the CV loop
    standardises each fold once for all candidates)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.svm import SVC

    balanced = "balanced" if config is not None and config.class_weights else None
    if classifier == "logreg":  # scoring needs predictions, not the last digit of convergence
        return LogisticRegression(C=params["C"], max_iter=300, tol=1e-3, class_weight=balanced)
    if classifier == "svm":
        return SVC(C=params["C"], kernel="linear", class_weight=balanced)
    if classifier == "knn":
        return KNeighborsClassifier(n_neighbors=params["k"])
    if classifier == "head":
        return KerasHead(
            num_classes,
            dense_units=getattr(config, "dense_units", 0),
            dropout=getattr(config, "dropout", 0.2),
            learning_rate=getattr(config, "learning_rate", 1e-3),
            batch_size=getattr(config, "batch_size", 32),
            seed=getattr(config, "seed", 0),
        )
    raise ValueError(f"unknown candidate classifier {classifier!r}")


def param_grid(classifier: str, smallest_train_fold: int) -> list[dict]:
    """The hyperparameters tried for `classifier`; kNN's k stays below the smallest fold."""
    if classifier == "logreg":
        return [{"C": c} for c in LOGREG_CS]
    if classifier == "svm":
        return [{"C": c} for c in SVM_CS]
    if classifier == "knn":
        return [{"k": k} for k in KNN_NEIGHBORS if k <= smallest_train_fold] or [{"k": 1}]
    return [{}]


def _standardised_folds(x: np.ndarray, folds: list[tuple]) -> list[tuple]:
    out = []
    for train, test in folds:
        mean, scale = x[train].mean(0), x[train].std(0)
        scale[scale == 0] = 1.0
        out.append(((x[train] - mean) / scale, (x[test] - mean) / scale))
    return out


def cross_validate(
    classifier: str,
    layer: str | None,
    x: np.ndarray,
    y: np.ndarray,
    folds: list[tuple],
    num_classes: int,
    config=None,
    standardised: list[tuple] | None = None,
) -> Candidate:
    """Score `classifier` on embeddings `x` by macro-F1 over `folds` for each hyperparameter
    in its grid; the candidate keeps the best one. Equal macro-F1 (common with few images,
    where every fold is perfect) is decided by the lower cross-validated log loss, the
    better-calibrated probabilities, where the classifier has them; else the first, the most
    regularised, wins."""
    from sklearn.metrics import f1_score, log_loss

    standardised = standardised or _standardised_folds(x, folds)
    started, results = time.time(), []
    smallest = min(len(train) for train, _ in folds)
    labels = np.arange(num_classes)
    for params in param_grid(classifier, smallest):
        estimator = make_estimator(classifier, params, num_classes, config)
        scores, losses = [], []
        for (train, test), (z_train, z_test) in zip(folds, standardised):
            with warnings.catch_warnings():  # scoring stops early on purpose (see make_estimator)
                warnings.simplefilter("ignore", ConvergenceWarning)
                estimator.fit(z_train, y[train])
            predicted = estimator.predict(z_test)
            scores.append(float(f1_score(y[test], predicted, average="macro", labels=np.unique(y))))
            if hasattr(estimator, "predict_proba"):
                probs = np.zeros((len(test), num_classes))
                probs[:, estimator.classes_] = estimator.predict_proba(z_test)
                probs = np.clip(probs, 1e-7, 1)
                losses.append(float(log_loss(y[test], probs / probs.sum(1, keepdims=True), labels=labels)))
        results.append((params, scores, float(np.mean(losses)) if losses else 0.0))
    best_mean = max(np.mean(s) for _, s, _ in results)
    tied = [r for r in results if np.mean(r[1]) >= best_mean - 1e-9]
    params, scores, _ = min(tied, key=lambda r: r[2])  # min() keeps the first of equal losses
    tried = {";".join(f"{k}={v:g}" for k, v in p.items()) or "-": float(np.mean(s)) for p, s, _ in results}
    return Candidate(
        classifier,
        layer,
        params,
        float(np.mean(scores)),
        float(np.std(scores)),
        scores,
        round(time.time() - started, 3),
        tried,
    )


def select(
    embeddings: dict[str | None, np.ndarray],
    y: np.ndarray,
    num_classes: int,
    folds: list[tuple],
    config=None,
    classifiers: Sequence[str] = CLASSIFIERS,
    on_candidate: Callable[[str, list[Candidate]], None] | None = None,
) -> tuple[list[Candidate], str]:
    """Cross-validate the candidates; return them best first and the reason for the winner.

    Logistic regression and kNN (cheap) run at every layer; the Keras head and the SVM
    (costlier) at the layer where logistic regression did best. A candidate within one
    standard error of a perfect score cannot measurably be beaten, so the search stops there.
    `on_candidate(name, done)` is called before each candidate is tried, with those scored so far.
    """
    standardised = {layer: _standardised_folds(x, folds) for layer, x in embeddings.items()}
    done: list[Candidate] = []

    def run(classifier: str, layer: str | None) -> None:
        if on_candidate:
            on_candidate(f"{CLASSIFIER_LABELS[classifier]} @ {layer_label(layer)}", list(done))
        done.append(
            cross_validate(
                classifier, layer, embeddings[layer], y, folds, num_classes, config, standardised[layer]
            )
        )

    stopped = None
    cheap = [c for c in ("logreg", "knn") if c in classifiers]
    for classifier in cheap:
        for layer in reversed(list(embeddings)):  # the top first: the usual winner
            run(classifier, layer)
            if unbeatable(done[-1]):
                stopped = done[-1]
                break
        if stopped:
            break
    if not stopped:
        ranked_layers = sorted((c for c in done if c.classifier == "logreg"), key=lambda c: -c.cv_mean)
        best_layer = ranked_layers[0].layer if ranked_layers else list(embeddings)[-1]
        for classifier in (c for c in ("head", "svm") if c in classifiers):
            run(classifier, best_layer)
    ranked = rank(done)
    return ranked, reason(ranked, stopped)


def unbeatable(candidate: Candidate) -> bool:
    """True when the candidate is within one standard error of a perfect score: no other can
    beat it by more than the measurement can tell (a perfect score in every fold included)."""
    folds = max(len(candidate.fold_scores), 1)
    return 1.0 - candidate.cv_mean <= candidate.cv_std / folds**0.5 + 1e-9


def rank(candidates: list[Candidate]) -> list[Candidate]:
    """Best first: by CV mean, where means within TIE count as equal and the simpler candidate
    wins (classifiers in CLASSIFIERS order, then the top layer before earlier ones)."""
    if not candidates:
        return []
    best = max(c.cv_mean for c in candidates)
    order = lambda c: (CLASSIFIERS.index(c.classifier), c.layer is not None)  # noqa: E731
    tied = sorted((c for c in candidates if c.cv_mean >= best - TIE), key=order)
    rest = sorted((c for c in candidates if c.cv_mean < best - TIE), key=lambda c: -c.cv_mean)
    return tied + rest


def reason(ranked: list[Candidate], stopped: Candidate | None = None) -> str:
    """One sentence: why the first candidate won."""
    winner = ranked[0]
    folds = len(winner.fold_scores)
    text = f"{winner.name} has the best {folds}-fold cross-validated macro-F1 on the training split, " + (
        f"{winner.cv_mean:.3f} ± {winner.cv_std:.3f}"
    )
    runner = next((c for c in ranked[1:]), None)
    if runner is not None and runner.cv_mean >= winner.cv_mean - TIE:
        text += f"; {runner.name} ties with it within {TIE}, and the simpler one is kept"
    elif runner is not None:
        text += f", ahead of {runner.name} ({runner.cv_mean:.3f} ± {runner.cv_std:.3f})"
    if stopped is not None and stopped.cv_mean >= PERFECT:
        text += "; it is perfect in every fold, so no other candidate was tried"
    elif stopped is not None:
        text += (
            "; it is within one standard error of a perfect score, so no other candidate could "
            "measurably beat it and none other was tried"
        )
    return text + "."


# --------------------------------------------------------------------------- evidence


def fine_tune_decision(ranked: list[Candidate], images_per_class_min: int) -> dict:
    """Whether fine-tuning the backbone (stage 2) looks worth its cost, from the measurements.

    It is worth trying when there is room to gain (the best CV macro-F1 is below
    FINE_TUNE_ROOM) and either an earlier layer beats the top (the top features are too
    specific to ImageNet: adapting them should help) or there are many images per class.
    Returns {"try": bool, "reason": str, "evidence": {...the numbers it saw}}.
    """
    top = max((c.cv_mean for c in ranked if c.layer is None), default=None)
    earlier = max((c for c in ranked if c.layer is not None), key=lambda c: c.cv_mean, default=None)
    best = ranked[0].cv_mean if ranked else 0.0
    gain = None if top is None or earlier is None else earlier.cv_mean - top
    evidence = {
        "best_cv_macro_f1": round(best, 4),
        "top_layer_cv_macro_f1": None if top is None else round(top, 4),
        "best_earlier_layer": earlier and layer_label(earlier.layer),
        "earlier_minus_top": None if gain is None else round(gain, 4),
        "images_per_class_min": images_per_class_min,
    }
    if best >= FINE_TUNE_ROOM:
        return {
            "try": False,
            "evidence": evidence,
            "reason": (
                f"the embeddings already reach {best:.3f} cross-validated macro-F1 (at or above "
                f"{FINE_TUNE_ROOM}): too little left for fine-tuning to gain for its cost"
            ),
        }
    if gain is not None and gain > max(TIE, earlier.cv_std / 2):
        return {
            "try": True,
            "evidence": evidence,
            "reason": (
                f"an earlier layer ({layer_label(earlier.layer)}) beats the top by {gain:.3f}: the top "
                "features are too specific to ImageNet, so adapting them should help"
            ),
        }
    if images_per_class_min >= FINE_TUNE_MIN_PER_CLASS:
        return {
            "try": True,
            "evidence": evidence,
            "reason": (
                f"{images_per_class_min} images in the rarest class (at least {FINE_TUNE_MIN_PER_CLASS}) "
                "are enough to adapt the top layers without overfitting"
            ),
        }
    return {
        "try": False,
        "evidence": evidence,
        "reason": (
            f"the top layer is as good as earlier ones and the rarest class has only "
            f"{images_per_class_min} images (fewer than {FINE_TUNE_MIN_PER_CLASS}): fine-tuning would "
            "more likely overfit than help"
        ),
    }


def learning_curve(
    candidate: Candidate,
    x: np.ndarray,
    y: np.ndarray,
    folds: list[tuple],
    num_classes: int,
    config=None,
    fractions: Sequence[float] = LEARNING_CURVE_FRACTIONS,
    seed: int = 0,
) -> dict:
    """The candidate's CV macro-F1 when trained on a stratified fraction of each fold's
    training part (the test parts stay whole): what more data would buy.

    Returns {"fractions", "images" (mean training images per fold), "mean", "std", "reading"}.
    """
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(seed)
    standardised = _standardised_folds(x, folds)
    estimator = make_estimator(candidate.classifier, candidate.params, num_classes, config)
    means, stds, images = [], [], []
    for fraction in fractions:
        if fraction == 1.0 and candidate.fold_scores and len(candidate.fold_scores) == len(folds):
            means.append(candidate.cv_mean)  # the whole training part: the selection measured it
            stds.append(candidate.cv_std)
            images.append(float(np.mean([len(train) for train, _ in folds])))
            continue
        scores, sizes = [], []
        for (train, test), (z_train, z_test) in zip(folds, standardised):
            keep = _stratified_subset(y[train], fraction, rng)
            labels = y[train][keep]
            if len(np.unique(labels)) < 2:
                continue
            if candidate.classifier == "knn":
                estimator.set_params(n_neighbors=min(candidate.params["k"], len(keep)))
            estimator.fit(z_train[keep], labels)
            scores.append(f1_score(y[test], estimator.predict(z_test), average="macro", labels=np.unique(y)))
            sizes.append(len(keep))
        means.append(float(np.mean(scores)) if scores else None)
        stds.append(float(np.std(scores)) if scores else None)
        images.append(float(np.mean(sizes)) if sizes else 0.0)
    return {
        "fractions": list(fractions),
        "images": images,
        "mean": means,
        "std": stds,
        "reading": curve_reading(means, images),
    }


def _stratified_subset(labels: np.ndarray, fraction: float, rng) -> np.ndarray:
    """Indices of about `fraction` of each class (at least one image of each)."""
    keep = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        count = max(1, int(round(fraction * len(members))))
        keep += list(rng.choice(members, count, replace=False))
    return np.sort(np.asarray(keep))


def curve_reading(means: list[float | None], images: list[float]) -> str:
    """One sentence reading the learning curve's last step (75% -> 100% of the images)."""
    points = [(m, n) for m, n in zip(means, images) if m is not None]
    if len(points) < 2:
        return "Too few images to draw a learning curve."
    (before, n_before), (last, n_last) = points[-2], points[-1]
    gain = last - before
    if last >= PERFECT:
        return "Already perfect on the training folds: more photos of the same kind will not show here."
    if gain >= STILL_RISING:
        return (
            f"Still rising (+{gain:.3f} macro-F1 from {n_before:.0f} to {n_last:.0f} training images "
            "per fold): more photos per class should help."
        )
    return (
        f"Flat at the end ({gain:+.3f} from {n_before:.0f} to {n_last:.0f} training images per fold): "
        "more photos of the same kind will help little; different ones (new conditions, harder cases) might."
    )


# --------------------------------------------------------------------------- the run


def train_auto(ctx: RunContext):
    """Auto mode, end to end: embed (one pass, several layers), select by CV on the training
    split, decide about fine-tuning, fit the winner on the whole training split, save it as an
    ordinary run, report it on the validation split, and write auto.json throughout.

    Returns the kept Keras model, so that the final evaluation need not rebuild it from disk
    (None when a fine-tuning trial's model was kept: evaluation loads that one)."""
    from core.backbones import build_backbone
    from core.demo import demo_mode
    from core.embeddings import CacheStats, EmbeddingCache, embed_paths, extractor_key
    from core.progress_model import EMBEDDING, TRAINING, mark_phase
    from core.runs import write_json_atomic
    from core.stages import SingleFit, _embedding_progress, record_single_fit

    config, run_dir, report, log = ctx.config, ctx.run_dir, ctx.report, ctx.log
    started, stats = time.time(), CacheStats()
    if config.pooling != "avg":
        log("auto mode pools every candidate layer by global average (pooling 'avg')")
        config = dataclasses.replace(config, pooling="avg")
        ctx = ctx.replace(config=config)
    num_classes = len(report.class_names)
    train, val = report.splits["train"], report.splits["validation"]
    y_train, y_val = np.asarray(train.labels), np.asarray(val.labels)
    folds = cv_folds(y_train, config.seed)  # before the forward pass: a too-small split fails at once

    base = build_backbone(config.backbone, config.image_size, config.weights)
    layers = candidate_layers(base)
    extractor = layer_extractor(config, base, layers)
    keys = [extractor_key(dataclasses.replace(config, feature_layer=layer)) for layer in layers]
    log(f"auto: one forward pass, embeddings from {', '.join(layer_label(layer) for layer in layers)}")
    mark_phase(run_dir, EMBEDDING, phase="computing embeddings", embedded=0, to_embed=None)
    arrays = embed_paths(
        extractor,
        config,
        train.paths + val.paths,
        EmbeddingCache(),
        stats=stats,
        progress=_embedding_progress(run_dir, "1/1", stats, 0),
        keys=keys,
    )
    embed_s = time.time() - started
    log(f"embeddings: {stats.hits} from cache, {stats.misses} computed ({embed_s:.1f} s)")
    mark_phase(
        run_dir, TRAINING, phase=None, cache_hits=stats.hits, cache_misses=stats.misses, engine=stats.engine
    )
    x_train = {layer: a[: len(train.paths)] for layer, a in zip(layers, arrays)}
    x_val = {layer: a[len(train.paths) :] for layer, a in zip(layers, arrays)}

    record = {
        "layers": [layer_label(layer) for layer in layers],
        "folds": len(folds),
        "train_images": len(y_train),
        "candidates": [],
        "state": "selecting",
    }

    def on_candidate(name: str, done: list[Candidate]) -> None:
        record.update(candidates=[c.to_dict() for c in rank(done)], trying=name)
        write_json_atomic(run_dir / AUTO_FILE, record)
        RunDir(run_dir).write_status(phase=f"auto: trying {name}", candidate=name)
        log(f"auto: trying {name}")

    select_started = time.time()
    ranked, why = select(x_train, y_train, num_classes, folds, config, on_candidate=on_candidate)
    winner = ranked[0]
    log(f"auto: {why}")
    per_class_min = int(np.bincount(y_train, minlength=num_classes).min())
    decision = fine_tune_decision(ranked, per_class_min)
    log(f"auto: fine-tuning {'looks worth trying' if decision['try'] else 'skipped'}: {decision['reason']}")
    RunDir(run_dir).write_status(phase="auto: learning curve", candidate=None)
    x_winner = x_train[winner.layer]
    curve = learning_curve(winner, x_winner, y_train, folds, num_classes, config, seed=config.seed)
    select_s = time.time() - select_started

    RunDir(run_dir).write_status(phase=f"auto: fitting {winner.name}")
    fit_config = dataclasses.replace(config, feature_layer=winner.layer)
    p_train, p_val, model = save_winner(
        fit_config, base, run_dir, winner, x_train[winner.layer], y_train, x_val[winner.layer], num_classes
    )
    trial = None
    if decision["try"] and demo_mode():  # a hosted demo's limits on training time hold here too
        decision["not_run"] = "the demo does not fine-tune"
    elif decision["try"] and not ctx.stop:
        record.update(candidates=[c.to_dict() for c in ranked], trying="fine-tuning the backbone")
        write_json_atomic(run_dir / AUTO_FILE, record)
        RunDir(run_dir).write_status(phase="auto: trying fine-tuning the backbone", candidate="fine-tuning")
        trial = fine_tune_trial(ctx, base, layers, ranked, x_train, y_train)
        decision["trial"] = trial
        if trial["kept"]:
            why, model = trial["reason"], None
            p_train, p_val = _image_probabilities(run_dir, report, config)
    record.update(
        state="done",
        trying=None,
        candidates=[c.to_dict() for c in ranked],
        winner=winner.to_dict() if not (trial and trial["kept"]) else trial["winner"],
        reason=why,
        fine_tune=decision,
        learning_curve=curve,
        seconds={
            "embeddings": round(embed_s, 2),
            "selection": round(select_s, 2),
            "total": round(time.time() - started, 2),
        },
    )
    write_json_atomic(run_dir / AUTO_FILE, record)
    RunDir(run_dir).write_status(phase=None, winner=record["winner"]["name"])
    fit = SingleFit(p_train, y_train, p_val, y_val, time.time() - started, record["winner"]["name"])
    record_single_fit(ctx.replace(config=fit_config), fit, stats)
    return model


FINE_TUNE_HOLDOUT = 0.2  # the fraction of the training split the fine-tuning trial is judged on
# Stage 2 trains on live images; without augmentation set by the user, a mild one that suits most
# photos (no flips: they would confuse classes that differ by handedness, text, digits).
TRIAL_AUGMENT = dict(rotation=10.0, width_shift=0.1, height_shift=0.1, zoom=0.1)
TRIAL_DIR = "finetune_trial"
REFIT_DIR = "finetune_all"  # the trial's winning recipe, again on the whole training split


def fine_tune_trial(
    ctx: RunContext,
    base,
    layers: list[str | None],
    ranked: list[Candidate],
    x_train: dict,
    y_train: np.ndarray,
) -> dict:
    """Fine-tune the backbone's top (stage 2) on 80% of the training split and keep it only if it
    beats the embedding winner (ranked[0]), fitted on the same 80%, on the other 20% (macro-F1).

    The layers unfrozen are those after the best earlier candidate layer when one beat the top
    (the part whose features were too ImageNet-specific), else the last stage. The head starts
    from logistic regression on the top-layer embeddings, so stage 2 starts from a good head.
    The fine-tuned model is also scored averaged with the best logistic regression on the layer
    below the unfrozen part (one model, one forward pass: `core.model.with_linear_probe`); the
    two make different mistakes, and the better of the two on the held-out images is the one
    kept (a tie keeps the average: it varies less). If fine-tuning wins, it is done again on
    the whole training split for the trial's best number of epochs, as the embedding winner is
    refitted on all of it, and that model replaces the run's checkpoint. Returns what the trial
    measured.
    """
    from sklearn.metrics import f1_score
    from sklearn.model_selection import train_test_split

    from core.callbacks import AtomicCheckpoint, link_or_copy
    from core.classical import CLASSIFIER_FILE
    from core.config import AugmentConfig
    from core.data import Split
    from core.model import BACKBONE_LAYER
    from core.stages import fine_tune

    config, run_dir, report, log = ctx.config, ctx.run_dir, ctx.report, ctx.log
    started, num_classes, winner = time.time(), len(report.class_names), ranked[0]
    fit, hold = train_test_split(
        np.arange(len(y_train)), test_size=FINE_TUNE_HOLDOUT, stratify=y_train, random_state=config.seed
    )
    x = x_train[winner.layer]
    ((z_fit, z_hold),) = _standardised_folds(x, [(fit, hold)])
    embedding = make_estimator(winner.classifier, winner.params, num_classes, config).fit(z_fit, y_train[fit])
    embedding_score = float(f1_score(y_train[hold], embedding.predict(z_hold), average="macro"))

    earlier = [c for c in layers if c is not None]
    start_layer = winner.layer if winner.layer is not None else (earlier[-1] if earlier else None)
    names = [layer.name for layer in base.layers]
    unfreeze = len(names) - 1 - names.index(start_layer) if start_layer else max(1, len(names) // 5)
    augment = config.augment if not config.augment.is_identity else AugmentConfig(**TRIAL_AUGMENT)
    trial_config = dataclasses.replace(
        config,
        mode="finetune",
        feature_layer=None,
        dense_units=0,
        fine_tune_layers=unfreeze,
        monitor="val_macro_f1",
        augment=augment,
        epochs=0,  # no stage 1: the head starts from logistic regression (and logs say "epoch 1/5")
    )
    model = _model_with_logistic_head(trial_config, num_classes, x_train[None][fit], y_train[fit])
    train_paths = np.asarray(report.splits["train"].paths)
    trial_report = dataclasses.replace(
        report,
        splits={
            "train": Split(list(train_paths[fit]), [int(v) for v in y_train[fit]]),
            "validation": Split(list(train_paths[hold]), [int(v) for v in y_train[hold]]),
        },
    )
    trial_dir = run_dir / TRIAL_DIR
    (trial_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    checkpoint = AtomicCheckpoint(trial_dir, model, "val_macro_f1")
    log(
        f"auto: fine-tuning trial: the top {unfreeze} backbone layers, judged on {len(hold)} held-out "
        "training images"
    )
    fine_tune(
        ctx.replace(config=trial_config, run_dir=trial_dir, report=trial_report),
        model,
        checkpoint,
        0,
        anneal=True,
    )
    kept_model, refit_epochs = trial_dir / "checkpoints" / "best.keras", None
    probe = _probe_below(ranked, start_layer)
    scores = _trial_scores(kept_model, trial_report, config, x_train, y_train, (fit, hold), probe)
    score = max(scores.values(), default=0.0)
    averaged = "averaged" in scores and scores["averaged"] >= scores["fine_tuned"]
    kept = score > embedding_score + TIE
    log(
        f"auto: fine-tuning trial {scores.get('fine_tuned', 0.0):.3f}"
        + (f", averaged with {probe.name} {scores['averaged']:.3f}" if "averaged" in scores else "")
        + f" vs {embedding_score:.3f} for {winner.name}: {'kept' if kept else 'not kept'}"
    )
    best_epoch = RunDir(trial_dir).best_record().get("epoch")
    if kept and isinstance(best_epoch, int) and best_epoch > 0 and not ctx.stop:
        log(f"auto: fine-tuning again on all {len(y_train)} training images, {best_epoch} epoch(s)")
        refit_config = dataclasses.replace(trial_config, fine_tune_epochs=best_epoch, patience=0)
        refit = _fine_tune_on_all(ctx.replace(config=refit_config), x_train[None], y_train, trial_report)
        if not ctx.stop:  # stopped midway: the trial's whole model stands
            kept_model, refit_epochs = refit, best_epoch
    trial = {
        "layers_unfrozen": unfreeze,
        "from_layer": layer_label(start_layer) if start_layer else None,
        "epochs": config.fine_tune_epochs,
        "augment": dataclasses.asdict(augment),
        "holdout_images": int(len(hold)),
        "holdout_macro_f1": {
            "fine_tuned": round(scores.get("fine_tuned", 0.0), 4),
            winner.name: round(embedding_score, 4),
        },
        "averaged_with": None
        if "averaged" not in scores
        else {"name": probe.name, "holdout_macro_f1": round(scores["averaged"], 4)},
        "seconds": round(time.time() - started, 2),
        "kept": bool(kept),
        "kept_averaged": bool(kept and averaged),
        "refit_epochs": refit_epochs,
    }
    if kept:
        folder = run_dir / "checkpoints"
        if averaged:
            _save_averaged(kept_model, probe, config, x_train, y_train, num_classes, folder / "best.keras")
        else:
            link_or_copy(kept_model, folder / "best.keras")
        link_or_copy(folder / "best.keras", folder / "last.keras")
        (folder / CLASSIFIER_FILE).unlink(missing_ok=True)
        name = f"fine-tuned top {unfreeze} layers of {BACKBONE_LAYER}"
        what = f"{name}, averaged with {probe.name}," if averaged else name
        trial["winner"] = {
            "name": f"{name} + {probe.name}" if averaged else name,
            "classifier": "finetune",
            "layer": "top",
            "params": {},
        }
        trial["reason"] = (
            f"the {what} reached {round(score, 4):.3f} macro-F1 on {len(hold)} held-out training images "
            f"against {round(embedding_score, 4):.3f} for {winner.name} on the same split, "
            + (
                f"so it is kept, fine-tuned again on the whole training split ({refit_epochs} epoch(s))."
                if refit_epochs
                else "so the fine-tuned model (trained on the other 80%) is kept."
            )
        )
    return trial


def _probe_below(ranked: list[Candidate], layer: str | None) -> Candidate | None:
    """The best logistic regression on `layer`, the layer below the fine-tuned part: its features
    survive fine-tuning, so it can be averaged with the fine-tuned model in one forward pass.
    When selection stopped before measuring one there (a perfect score), scikit-learn's default C."""
    if layer is None:
        return None
    measured = (c for c in ranked if c.classifier == "logreg" and c.layer == layer)
    return next(measured, Candidate("logreg", layer, {"C": 1.0}, float("nan"), float("nan"), [], 0.0))


def _trial_scores(
    model_path: Path, trial_report, config, x_train: dict, y_train: np.ndarray, split: tuple, probe
) -> dict:
    """Held-out macro-F1 of the trial's fine-tuned model ("fine_tuned") and of it averaged with
    `probe` fitted on the same 80% ("averaged"); {} when the trial saved no model."""
    from sklearn.metrics import f1_score

    from core.predict import load_keras_file

    if not model_path.is_file():
        return {}
    fit, hold = split
    num_classes = len(trial_report.class_names)
    model = load_keras_file(model_path)
    fine_tuned = _split_probabilities(model, trial_report.splits["validation"], config, num_classes)
    scores = {"fine_tuned": float(f1_score(y_train[hold], fine_tuned.argmax(1), average="macro"))}
    if probe is not None:
        ((z_fit, z_hold),) = _standardised_folds(x_train[probe.layer], [(fit, hold)])
        linear = make_estimator("logreg", probe.params, num_classes, config).fit(z_fit, y_train[fit])
        both = averaged_probabilities(fine_tuned, linear.predict_proba(z_hold))
        scores["averaged"] = float(f1_score(y_train[hold], both.argmax(1), average="macro"))
    return scores


def averaged_probabilities(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """What `core.model.with_linear_probe` computes from two classifiers' probabilities: the
    softmax of their mean logits (the normalised geometric mean)."""
    logits = (np.log(np.clip(a, 1e-7, 1.0)) + np.log(np.clip(b, 1e-7, 1.0))) / 2
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _save_averaged(
    model_path: Path, probe: Candidate, config, x_train: dict, y_train, num_classes: int, to: Path
) -> None:
    """The fine-tuned model at `model_path` averaged with `probe` fitted on every training image."""
    from core.callbacks import save_atomic
    from core.classical import linear_weights, make_classifier
    from core.model import with_linear_probe
    from core.predict import load_keras_file

    linear_config = dataclasses.replace(config, classifier="logreg", classifier_c=probe.params["C"])
    linear = make_classifier(linear_config).fit(x_train[probe.layer], y_train)
    model = with_linear_probe(load_keras_file(model_path), probe.layer, *linear_weights(linear, num_classes))
    save_atomic(model, to)


def _fine_tune_on_all(ctx: RunContext, x_top: np.ndarray, y_train: np.ndarray, trial_report) -> Path:
    """Fine-tune as the trial did, from a fresh backbone and a head fitted on every training
    image, on the whole training split for `ctx.config.fine_tune_epochs`; return the saved
    model (the last epoch: no split is left to choose another, and the run's validation split
    is for its report only). Keras reports each epoch on the trial's held-out images, now
    training images too: a sign of life, not a measure."""
    from core.callbacks import AtomicCheckpoint
    from core.stages import fine_tune

    config, num_classes = ctx.config, len(ctx.report.class_names)
    model = _model_with_logistic_head(config, num_classes, x_top, y_train)
    refit_dir = ctx.run_dir / REFIT_DIR
    (refit_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    report = dataclasses.replace(
        trial_report,
        splits={"train": ctx.report.splits["train"], "validation": trial_report.splits["validation"]},
    )
    checkpoint = AtomicCheckpoint(refit_dir, model, "val_macro_f1")  # stage 2 saves every epoch's last
    fine_tune(ctx.replace(run_dir=refit_dir, report=report), model, checkpoint, 0, anneal=True)
    return RunDir(refit_dir).checkpoint("last")


def _model_with_logistic_head(config, num_classes: int, x_top: np.ndarray, y: np.ndarray):
    """A fresh backbone (for stage 2) whose output layer is logistic regression fitted on its
    top-layer embeddings `x_top`: stage 2 starts from a converged head."""
    from core.backbones import build_backbone
    from core.classical import linear_weights, make_classifier
    from core.model import build_model, set_linear_head

    model = build_model(
        config, num_classes, build_backbone(config.backbone, config.image_size, config.weights)
    )
    top = make_classifier(dataclasses.replace(config, classifier="logreg")).fit(x_top, y)
    set_linear_head(model, *linear_weights(top, num_classes))
    return model


def _image_probabilities(run_dir: Path, report, config) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) probabilities of the run's saved checkpoint, from the images."""
    from core.predict import load_keras_file

    path, num_classes = RunDir(run_dir).checkpoint("best"), len(report.class_names)
    model = load_keras_file(path)
    return tuple(
        _split_probabilities(model, report.splits[s], config, num_classes) for s in ("train", "validation")
    )


def _split_probabilities(model, split, config, num_classes: int) -> np.ndarray:
    """(N, classes) probabilities of a Keras model on a split's images."""
    from core.pipeline import make_dataset
    from core.predict import class_columns

    data = make_dataset(split, config.image_size, config.batch_size, num_classes, training=False)
    return class_columns(np.asarray(model.predict(data, verbose=0)))


def save_winner(config, base, run_dir: Path, winner: Candidate, x_train, y_train, x_val, num_classes: int):
    """Fit the winner on the whole training split and save it as the run's checkpoint (on
    `base`, the backbone the embeddings came from); return its (train, validation) probabilities
    and the Keras model the checkpoint holds.

    Logistic regression and the Keras head fold into the Keras model (backbone up to the
    winner's layer, pooling, dense); an SVM or kNN is saved beside the extractor (joblib).
    """
    from core.callbacks import link_or_copy, save_atomic
    from core.classical import make_classifier, probabilities
    from core.model import build_model, feature_extractor
    from core.stages import save_features_model
    from core.tf_setup import keras

    if winner.classifier == "head":
        model = build_model(config, num_classes, base)
        head = make_estimator("head", {}, num_classes, config).fit(x_train, y_train)
        dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
        for layer, weights in zip(dense, head.dense_weights()):
            layer.set_weights(weights)
        folder = run_dir / "checkpoints"
        save_atomic(model, folder / "best.keras")
        link_or_copy(folder / "best.keras", folder / "last.keras")
        return head.predict_proba(x_train), head.predict_proba(x_val), model
    linear = dataclasses.replace(config, dense_units=0, dropout=0.0)
    c, k = winner.params.get("C", 1.0), winner.params.get("k", 5)
    fields = {
        "logreg": {"classifier": "logreg", "classifier_c": c},
        "svm": {"classifier": "svm", "svm_kernel": "linear", "classifier_c": c},
        "knn": {"classifier": "knn", "knn_neighbors": k},
    }
    linear = dataclasses.replace(linear, **fields[winner.classifier])
    smallest = int(np.bincount(y_train, minlength=num_classes).min())
    estimator = make_classifier(linear, smallest).fit(x_train, y_train)
    model = build_model(linear, num_classes, base)
    save_features_model(run_dir, model, feature_extractor(model), estimator, num_classes)
    return probabilities(estimator, x_train, num_classes), probabilities(estimator, x_val, num_classes), model


def kept_embeddings_config(config, run_dir: Path):
    """The config whose cached embeddings an auto run's kept model reads (average-pooled, at the
    winner's layer), or None when it kept a fine-tuned backbone (its features are not the cache's)
    or chose nothing yet."""
    auto = read_auto(run_dir)
    winner = auto.get("winner") if isinstance(auto, dict) else None
    if not isinstance(winner, dict) or winner.get("classifier") == "finetune":
        return None
    layer = winner.get("layer")
    if not isinstance(layer, str):  # a hand-edited record: evaluate through the whole model
        return None
    layer = None if layer == layer_label(None) else layer
    return dataclasses.replace(config, feature_layer=layer, pooling="avg")


def read_auto(run_dir: Path) -> dict | None:
    """The run's auto.json, or None for a run that is not (yet) an auto run."""
    from core.runs import read_json

    return read_json(Path(run_dir) / AUTO_FILE)


def leaderboard_rows(auto: dict) -> list[dict]:
    """One table row per candidate, best first: rank, candidate, CV macro-F1 mean ± std, fit time."""
    winner = (auto.get("winner") or {}).get("name")
    return [
        {
            "rank": i + 1,
            "candidate": c["name"] + ("  ← chosen" if c["name"] == winner else ""),
            "layer": c["layer"],
            "CV macro-F1": f"{c['cv_mean']:.3f} ± {c['cv_std']:.3f}",
            "fit s": round(c["fit_s"], 2),
        }
        for i, c in enumerate(auto.get("candidates") or [])
    ]


def fine_tune_line(auto: dict) -> str | None:
    """ "Fine-tuning the backbone: skipped: <why>." (or what the trial measured) from auto.json,
    or None if not decided yet."""
    decision = auto.get("fine_tune")
    if not decision:
        return None
    if not decision["try"]:
        return f"Fine-tuning the backbone: skipped: {decision['reason']}."
    trial = decision.get("trial")
    if not trial:
        not_run = f" (not run: {decision['not_run']})" if decision.get("not_run") else ""
        return f"Fine-tuning the backbone: worth trying: {decision['reason']}{not_run}."
    ((other, other_score),) = [(k, v) for k, v in trial["holdout_macro_f1"].items() if k != "fine_tuned"]
    averaged = trial.get("averaged_with")  # absent from runs made before averaging was tried
    kept = "kept" if trial["kept"] else "not kept"
    return (
        f"Fine-tuning the backbone: tried, because {decision['reason']}. The top {trial['layers_unfrozen']} "
        f"layers fine-tuned reached {trial['holdout_macro_f1']['fine_tuned']:.3f} macro-F1 on "
        f"{trial['holdout_images']} held-out training images"
        + (f", {averaged['holdout_macro_f1']:.3f} averaged with {averaged['name']}," if averaged else "")
        + f" against {other_score:.3f} for {other}: "
        + (f"{kept}, averaged" if trial.get("kept_averaged") else kept)
        + (
            f", then fine-tuned again on the whole training split ({trial['refit_epochs']} epoch(s))."
            if trial.get("refit_epochs")
            else "."
        )
    )
