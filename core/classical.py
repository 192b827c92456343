"""Feature extraction's classical classifiers (scikit-learn) on backbone embeddings.

Logistic regression, the default, is affine: it is folded into the Keras model's output
layer, so a features-mode run saves one ordinary `.keras` model. SVM, kNN and decision
trees are not, and are saved beside the feature extractor with joblib.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.config import ConfigError, TrainConfig

CLASSIFIER_FILE = "classifier.joblib"


def make_classifier(config: TrainConfig, smallest_class: int = 5):
    """An unfitted scikit-learn estimator for `config.classifier` and its hyperparameters.

    `smallest_class` (training images in the rarest class) bounds the folds an SVM's
    probability calibration can use.
    """
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC
    from sklearn.tree import DecisionTreeClassifier

    balanced = "balanced" if config.class_weights else None  # kNN has no class weights
    if config.classifier == "logreg":
        model = LogisticRegression(C=config.classifier_c, max_iter=5000, class_weight=balanced)
    elif config.classifier == "svm":
        if smallest_class < 2:
            raise ConfigError(
                "classifier: an SVM needs at least 2 training images in every class to calibrate "
                "its probabilities; add images or choose logreg, knn or tree"
            )
        svm = SVC(C=config.classifier_c, kernel=config.svm_kernel, class_weight=balanced)
        # Platt scaling fitted on cross-validated scores, as SVC(probability=True) did (deprecated).
        model = CalibratedClassifierCV(svm, cv=min(5, smallest_class), ensemble=False)
    elif config.classifier == "knn":
        model = KNeighborsClassifier(n_neighbors=config.knn_neighbors)
    else:
        return DecisionTreeClassifier(
            max_depth=config.tree_max_depth or None, random_state=config.seed, class_weight=balanced
        )
    return make_pipeline(StandardScaler(), model)


def probabilities(estimator, embeddings: np.ndarray, num_classes: int) -> np.ndarray:
    """(N, num_classes) probabilities, also when a class was absent from the training data."""
    probs = np.zeros((len(embeddings), num_classes), np.float32)
    probs[:, estimator.classes_] = estimator.predict_proba(embeddings)
    return probs


def linear_weights(estimator, num_classes: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(kernel, bias) of an equivalent Dense output layer, or None if not affine.

    With standardisation z = (x - mean) / scale, logits = z @ coef.T + b equals
    x @ (coef / scale).T + (b - (mean / scale) @ coef.T). A binary model has one
    sigmoid unit (the probability of class 1), as our Keras models do.
    """
    steps = getattr(estimator, "named_steps", {})
    logreg, scaler = steps.get("logisticregression"), steps.get("standardscaler")
    if logreg is None or len(logreg.classes_) != num_classes:
        return None
    coef = logreg.coef_ / scaler.scale_
    bias = logreg.intercept_ - (scaler.mean_ / scaler.scale_) @ logreg.coef_.T
    return coef.T.astype(np.float32), bias.astype(np.float32)


def save_classifier(estimator, path: Path) -> None:
    import joblib

    joblib.dump(estimator, path)


def load_classifier_file(path: Path):
    """Load a joblib classifier. Pickles run code: only load files from our own runs folder."""
    import joblib

    return joblib.load(path)
