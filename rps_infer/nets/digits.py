"""Classical classifiers on scikit-learn's bundled handwritten digits (8x8 images, 10 classes).

No download: ``sklearn.datasets.load_digits`` ships with scikit-learn. The split and
every seed are fixed, so a build is reproducible. Pixels are integers 0..16, given to
every model as float32 ``[N, 64]`` (the models are trained on the same float32 values
the ONNX graphs receive).
"""

from __future__ import annotations

from functools import cache

import numpy as np

ESTIMATORS = ("logreg", "rf", "xgb")
FEATURES = 64
CLASSES = 10
TEST_FRACTION = 0.2
SPLIT_SEED = 0


@cache
def split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_train, x_test, y_train, y_test)``: a fixed stratified 80/20 split (360 test digits)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = data.data.astype(np.float32)
    y = data.target.astype(np.int64)
    parts = train_test_split(x, y, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=y)
    for part in parts:
        part.flags.writeable = False  # cached and shared: nobody may change it
    return tuple(parts)


def digit_rows(batch: int, offset: int = 0) -> np.ndarray:
    """``batch`` rows of the test split starting at ``offset`` (wrapping around), float32."""
    x_test = split()[1]
    rows = (np.arange(batch) + offset) % len(x_test)
    return x_test[rows].copy()


def train(estimator: str, seed: int = 0):
    """A fitted classifier: ``logreg`` (standardised logistic regression), ``rf`` (random
    forest, 100 trees) or ``xgb`` (XGBoost, 100 rounds of depth-4 trees)."""
    x_train, _, y_train, _ = split()
    if estimator == "logreg":
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
    elif estimator == "rf":
        from sklearn.ensemble import RandomForestClassifier

        model = RandomForestClassifier(n_estimators=100, random_state=seed, n_jobs=1)
    elif estimator == "xgb":
        from xgboost import XGBClassifier

        model = XGBClassifier(n_estimators=100, max_depth=4, learning_rate=0.3, random_state=seed, n_jobs=1,
                              tree_method="hist")
    else:
        raise ValueError(f"unknown digits estimator {estimator!r}; choose one of {ESTIMATORS}")
    return model.fit(x_train, y_train)
