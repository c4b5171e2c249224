r"""FTRL-Proximal with L1: exact zeros for sparse models (chapter 11, deep-dive).

McMahan et al. (2013), "Ad Click Prediction: a View from the Trenches", Algorithm 1
(per-coordinate FTRL-Proximal for logistic regression with L1 and L2). Per coordinate :math:`i`
the algorithm keeps two numbers, :math:`z_i` and :math:`n_i` (both start at 0), and *computes*
the weight from them before each prediction, in closed form:

.. math::
    w_i = \begin{cases} 0 & |z_i| \le \lambda_1 \\
          -\dfrac{z_i - \operatorname{sign}(z_i)\,\lambda_1}{(\beta + \sqrt{n_i})/\alpha
          + \lambda_2} & \text{otherwise} \end{cases}

then, with :math:`p = \sigma(x\cdot w)` and :math:`g_i = (p - y)\,x_i` (the logistic loss's
gradient),

.. math::
    \sigma_i = \frac{\sqrt{n_i + g_i^2} - \sqrt{n_i}}{\alpha}, \qquad
    z_i \leftarrow z_i + g_i - \sigma_i w_i, \qquad n_i \leftarrow n_i + g_i^2 .

:math:`n_i` is AdaGrad's sum of squared gradients: the per-coordinate learning rate is
:math:`\eta_i = \alpha/(\beta + \sqrt{n_i})`. :math:`z_i` is the sum of the gradients minus a
correction that makes the closed form the minimiser of "linearised losses so far + L1 + L2 +
a proximal term keeping :math:`w` near its past values". The L1 term enters as a **threshold**:
as long as the accumulated evidence :math:`|z_i|` stays below :math:`\lambda_1`, the weight is
*exactly* zero — not small, zero.

That is what the proximal step buys. A (sub)gradient step on the same L1 penalty,
:math:`w \leftarrow w - \eta\,(g + \lambda_1 \operatorname{sign}(w))`, jumps over zero instead
of landing on it: the weights of useless features end up oscillating around 0 with a size about
:math:`\eta\lambda_1`, and essentially none is exactly 0 (:func:`sparsity_experiment` counts
them). The paper's ``alpha``, ``beta``, ``lambda1``, ``lambda2`` are called ``alpha``, ``beta``,
``l1``, ``l2`` here.

The data (:func:`make_sparse_problem`): binary features, only a few of which carry signal; the
rest are noise a sparse model should drop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "FTRLResult",
    "ftrl_proximal",
    "ftrl_weights",
    "make_sparse_problem",
    "sparsity_experiment",
    "subgradient_l1",
]


def ftrl_weights(z: np.ndarray, n: np.ndarray, alpha: float, beta: float, l1: float,
                 l2: float) -> np.ndarray:  # fmt: skip
    r"""The closed-form weights of FTRL-Proximal from :math:`z` and :math:`n` (exact zeros where
    :math:`|z| \le \lambda_1`)."""
    z, n = np.asarray(z, dtype=float), np.asarray(n, dtype=float)
    w = -(z - np.sign(z) * l1) / ((beta + np.sqrt(n)) / alpha + l2)
    return np.where(np.abs(z) <= l1, 0.0, w)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


@dataclass
class FTRLResult:
    """Final weights of an online run and the mean logistic loss over the held-out points."""

    weights: np.ndarray
    test_loss: float

    @property
    def exact_zeros(self) -> int:
        return int(np.sum(self.weights == 0.0))


def _log_loss(w: np.ndarray, X: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(_sigmoid(X @ w), 1e-12, 1 - 1e-12)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def ftrl_proximal(X, y, X_test, y_test, *, alpha=0.1, beta=1.0, l1=1.0, l2=0.0,
                  epochs=1) -> FTRLResult:  # fmt: skip
    """One online pass (or ``epochs``) of McMahan et al.'s Algorithm 1 over the rows of ``X``."""
    d = X.shape[1]
    z, n = np.zeros(d), np.zeros(d)
    for _ in range(epochs):
        for x, target in zip(X, y):
            active = np.flatnonzero(x)  # only the features present in this example move
            w = ftrl_weights(z[active], n[active], alpha, beta, l1, l2)
            p = _sigmoid(x[active] @ w)
            g = (p - target) * x[active]
            sigma = (np.sqrt(n[active] + g * g) - np.sqrt(n[active])) / alpha
            z[active] += g - sigma * w
            n[active] += g * g
    w = ftrl_weights(z, n, alpha, beta, l1, l2)
    return FTRLResult(w, _log_loss(w, X_test, y_test))


def subgradient_l1(X, y, X_test, y_test, *, lr=0.1, l1=1e-3, adagrad=False,
                   epochs=1) -> FTRLResult:  # fmt: skip
    r"""Online (sub)gradient descent on logistic loss + :math:`\lambda_1\lVert w\rVert_1`, the same
    examples in the same order: :math:`w \leftarrow w - \eta_i\,(g + \lambda_1\,\mathrm{sign}(w))`
    with :math:`\eta_i = \eta` (SGD) or :math:`\eta/\sqrt{n_i}` (AdaGrad, :math:`n_i` the sum of
    squared gradients), on the features present in the example. No proximal step."""
    d = X.shape[1]
    w, n = np.zeros(d), np.zeros(d)
    for _ in range(epochs):
        for x, target in zip(X, y):
            active = np.flatnonzero(x)
            p = _sigmoid(x[active] @ w[active])
            g = (p - target) * x[active] + l1 * np.sign(w[active])
            if adagrad:
                n[active] += g * g
                w[active] -= lr * g / np.sqrt(n[active])
            else:
                w[active] -= lr * g
    return FTRLResult(w, _log_loss(w, X_test, y_test))


def make_sparse_problem(n: int = 3000, d: int = 200, informative: int = 20, density: float = 0.1,
                        seed: int = 0, test_size: float = 0.25):  # fmt: skip
    """Binary features (each present with probability ``density``) of which only the first
    ``informative`` have a non-zero true weight (± 2); labels from the logistic model.
    Returns ``X, y, X_test, y_test, w_true``."""
    rng = np.random.default_rng(seed)
    X = (rng.random((n, d)) < density).astype(float)
    w_true = np.zeros(d)
    w_true[:informative] = 2.0 * rng.choice([-1.0, 1.0], informative)
    logits = X @ w_true - density * w_true.sum()  # centred: about half the labels are 1
    y = (rng.random(n) < _sigmoid(logits)).astype(float)
    n_test = int(round(n * test_size))
    return X[n_test:], y[n_test:], X[:n_test], y[:n_test], w_true


def sparsity_experiment(l1: float = 2.0, alpha: float = 0.2, beta: float = 1.0,
                        epochs: int = 1, seed: int = 0) -> dict[str, FTRLResult]:  # fmt: skip
    """The same data, the same L1 strength, four online learners: FTRL-Proximal with L1, FTRL
    without (``l1=0``), and SGD and AdaGrad with the L1 *subgradient*.

    The subgradient methods get the per-example penalty :math:`\\lambda_1/N` with :math:`N` the
    number of training examples, which is the same total penalty as FTRL's :math:`\\lambda_1`
    (FTRL's :math:`\\lambda_1` multiplies :math:`\\lVert w\\rVert_1` once, in the objective of all
    examples so far; a per-example subgradient adds it at every example)."""
    X, y, X_test, y_test, _ = make_sparse_problem(seed=seed)
    per_example = l1 / len(X)
    return {
        "FTRL-Proximal, L1": ftrl_proximal(X, y, X_test, y_test, alpha=alpha, beta=beta, l1=l1,
                                           epochs=epochs),
        "FTRL-Proximal, no L1": ftrl_proximal(X, y, X_test, y_test, alpha=alpha, beta=beta,
                                              l1=0.0, epochs=epochs),
        "SGD + L1 subgradient": subgradient_l1(X, y, X_test, y_test, lr=0.05, l1=per_example,
                                               epochs=epochs),
        "AdaGrad + L1 subgradient": subgradient_l1(X, y, X_test, y_test, lr=alpha,
                                                   l1=per_example, adagrad=True, epochs=epochs),
    }  # fmt: skip
