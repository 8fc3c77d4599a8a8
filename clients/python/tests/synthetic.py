"""The seeded synthetic data set shared by the export tests (needs numpy)."""

from __future__ import annotations

import numpy as np

FEATURES = ["x0", "x1", "x2", "x3"]


def dataset(n_train: int = 500, n_sample: int = 100, seed: int = 20240601):
    """(X, y, sample): 4 features with different scales, a noisy linear label.

    Values are float32 numbers held as float64: a decision tree compares float32(x) <= threshold
    in scikit-learn, so float32 inputs make the server's double comparison the same test.
    """
    rng = np.random.default_rng(seed)

    def draw(n: int) -> np.ndarray:
        x = rng.normal(size=(n, 4)) * np.array([1.0, 3.0, 0.5, 10.0]) + np.array([0.0, 1.0, -0.5, 20.0])
        return x.astype(np.float32).astype(np.float64)

    X = draw(n_train)
    logit = 1.2 * X[:, 0] - 0.4 * X[:, 1] + 2.0 * X[:, 2] + 0.1 * (X[:, 3] - 20.0)
    y = (logit + rng.logistic(size=n_train) > 0).astype(int)
    return X, y, draw(n_sample)
