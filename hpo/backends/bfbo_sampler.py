"""Batch Bayesian optimisation for `bfbo`: a Gaussian process with local penalisation, for many trials at once.

Why: a sequential Bayesian optimiser asked for several configurations before any of them has a result
proposes the same point again and again (its model has not changed). Local penalisation (González et al.,
"Batch Bayesian Optimization via Local Penalization", AISTATS 2016) keeps the model and divides the space
instead: around every configuration still running, x_j, it lowers the acquisition in a ball the running
trial is expected to settle — the points that cannot beat the best result M if the objective is
L-Lipschitz, of radius |M − μ(x_j)| / L. We use the hard penaliser of Alvi et al. ("Asynchronous Batch
Bayesian Optimisation with Improved Local Penalisation", ICML 2019), which also counts the GP's uncertainty
at x_j and is 0 at x_j itself:

    r_j = (|M − μ(x_j)| + σ(x_j)) / L,      φ_j(x) = (1 + (r_j / ‖x − x_j‖)^5)^(−1/5)

(μ and σ the GP's posterior, L_j the largest gradient norm of the posterior mean near x_j), and proposes
the maximiser of EI(x)·Π_j φ_j(x). The Lipschitz constant is taken locally, over a small neighbourhood of
x_j, not over the whole cube, so one steep region elsewhere (a learning rate far off its optimum) does not
shrink every ball to nothing; González's original soft penaliser is only 1/2 at x_j when the GP expects x_j
to match the best result. Concurrent proposals are therefore distinct and spread out, as far apart as the
model says they must be, and every proposal still uses every result.

The model: scikit-learn's `GaussianProcessRegressor` (Matérn 5/2 with one length scale per coordinate, plus
a white-noise term; targets normalised) on the unit cube of `unit_cube.py`, fitted on full-budget results
only (COMPLETE trials): a pruned trial's partial score never passes for a final one. Until
`n_startup_trials` trials are complete, trials are drawn at random (option weights honoured). The
acquisition is maximised over random candidates and perturbations of the best points, each snapped to the
configuration it stands for (two vectors in one option's bin are one configuration, so the penalty acts on
real trials). A gradient refinement was tried and gave nothing measurable on the benchmark suites for
several times the cost.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
from optuna.trial import FrozenTrial, TrialState
from scipy.stats import norm

from hpo.backends.unit_cube import CubeSampler, Proposal

if TYPE_CHECKING:
    from optuna.study import Study

    from hpo.space import SearchSpace

CANDIDATES = 4096      # random points the acquisition is evaluated on
LOCAL = 64             # perturbations around each of the best observed points
LOCAL_SCALE = 0.05
TOP = 5
NEIGHBOURS = 32        # points around a running trial's point its local Lipschitz constant is taken over
_SIGMA_FLOOR = 1e-9
_HARDNESS = 5.0  # Alvi et al.'s p


class BatchGPSampler(CubeSampler):
    """See the module docstring."""

    def __init__(self, space: SearchSpace, *, seed: int, epoch_budget: int | None, n_startup_trials: int = 4) -> None:
        super().__init__(space, seed=seed, epoch_budget=epoch_budget)
        self._n_startup_trials = max(1, int(n_startup_trials))

    def _fit(self, X: np.ndarray, y: np.ndarray) -> Any:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

        kernel = (ConstantKernel(1.0, (1e-3, 1e3)) * Matern(np.full(X.shape[1], 0.5), (1e-2, 1e2), nu=2.5)
                  + WhiteKernel(1e-4, (1e-8, 1e-1)))
        model = GaussianProcessRegressor(kernel=kernel, normalize_y=True, n_restarts_optimizer=0,
                                         random_state=self.seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X, y)
        return model

    def propose(self, study: Study, trial: FrozenTrial, rng: np.random.Generator) -> Proposal | None:
        done = [(float(t.value), x) for t, x in self.points(study, (TrialState.COMPLETE,))
                if t.value is not None and np.isfinite(t.value)]
        if len(done) < self._n_startup_trials:
            return None
        sign = 1.0 if study.direction.name == "MAXIMIZE" else -1.0  # the GP maximises sign * value
        X = np.array([x for _, x in done])
        y = np.array([sign * value for value, _ in done])
        pending = np.array([x for t, x in self.points(study, (TrialState.RUNNING,)) if t.number != trial.number])
        model = self._fit(X, y)
        return Proposal(self.maximise(model, X, y, pending.reshape(-1, X.shape[1]), rng),
                        {"algorithm": "bfbo", "results": len(done), "pending": len(pending)})

    def maximise(self, model: Any, X: np.ndarray, y: np.ndarray, pending: np.ndarray,
                 rng: np.random.Generator) -> np.ndarray:
        """The candidate maximising EI·Π penalisers (module docstring)."""
        d = X.shape[1]
        best = float(y.max())
        top = X[np.argsort(-y)[:TOP]]
        local = (top[:, None, :] + rng.normal(0.0, LOCAL_SCALE, size=(len(top), LOCAL, d))).reshape(-1, d)
        candidates = self.cube.snap(np.clip(np.vstack([rng.random((CANDIDATES, d)), local]), 0.0, 1.0))
        lipschitz = np.array([self.lipschitz(model, np.clip(x + rng.normal(0.0, LOCAL_SCALE, size=(NEIGHBOURS, d)), 0, 1))
                              for x in pending])
        mu, sigma = model.predict(candidates, return_std=True)
        use_ei = bool(self._expected_improvement(mu, sigma, best).max() > 1e-12)

        def score(points: np.ndarray) -> np.ndarray:
            m, s = model.predict(points, return_std=True)
            if use_ei:
                value = self._expected_improvement(m, s, best)
            else:  # EI vanished everywhere: an upper confidence bound, shifted positive
                value = np.maximum(m + 2.0 * s - (mu + 2.0 * sigma).min(), 0.0) + 1e-9
            return value * self.penalty(model, points, pending, best, lipschitz)

        scores = score(candidates)
        return candidates[int(np.argmax(scores))]

    @staticmethod
    def _expected_improvement(mu: np.ndarray, sigma: np.ndarray, best: float) -> np.ndarray:
        sigma = np.maximum(sigma, _SIGMA_FLOOR)
        z = (mu - best) / sigma
        return (mu - best) * norm.cdf(z) + sigma * norm.pdf(z)

    @staticmethod
    def penalty(model: Any, points: np.ndarray, pending: np.ndarray, best: float,
                lipschitz: np.ndarray) -> np.ndarray:
        """Π_j φ_j over the running trials' points (1 where nothing is running)."""
        if len(pending) == 0:
            return np.ones(len(points))
        mu_j, sigma_j = model.predict(pending, return_std=True)
        radius = (np.abs(best - mu_j) + sigma_j) / lipschitz
        distances = np.maximum(np.linalg.norm(points[:, None, :] - pending[None, :, :], axis=2), 1e-12)
        phi = (1.0 + (radius[None, :] / distances) ** _HARDNESS) ** (-1.0 / _HARDNESS)
        return np.prod(phi, axis=1)

    @staticmethod
    def lipschitz(model: Any, points: np.ndarray, h: float = 1e-4) -> float:
        """The largest norm of the posterior mean's gradient over `points` (central differences)."""
        d = points.shape[1]
        shifted = np.concatenate([points + h * np.eye(d)[i] for i in range(d)]
                                 + [points - h * np.eye(d)[i] for i in range(d)])
        values = model.predict(shifted).reshape(2, d, len(points))
        gradient = (values[0] - values[1]) / (2 * h)
        return float(max(np.linalg.norm(gradient, axis=0).max(), 1e-7))
