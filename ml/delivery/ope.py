"""Off-policy evaluation: the value a target policy would have had, estimated from the logging policy's logs.

Each logged row i has a reward r_i, the logging propensity p_i of the action taken, and the target policy's
probability π_i of that same action. Importance weights w_i = π_i / p_i make the logged rewards speak for
the target policy:

- IPS: mean(w r). Unbiased when p_i is exact and positive wherever π is; high variance.
- SNIPS: sum(w r) / sum(w). Slightly biased, much steadier when weights are large.
- DR: mean(q̂_target + w (r − q̂_logged)). Unbiased if either the propensities or the reward model is right,
  and lower variance when the reward model is decent.

Every estimate carries a confidence interval (normal approximation, or percentile bootstrap), because with
rare rewards (a few clicks in thousands) a bare point estimate says little. `compare_policies` evaluates a
challenger against the champion on the same rows (paired), so "promote only if better beyond the
uncertainty" is a single comparison: the lower end of the difference's interval above zero.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

import numpy as np

Estimator = Literal["ips", "snips", "dr"]
IntervalMethod = Literal["normal", "bootstrap"]


@dataclass(frozen=True)
class OPEEstimate:
    """A policy value estimate with its interval."""

    estimator: str
    value: float
    ci_low: float
    ci_high: float
    std_error: float
    n: int
    interval: str  # "normal" or "bootstrap"
    confidence: float
    max_weight: float | None  # clipping threshold used (None: unclipped)
    effective_sample_size: float  # (Σw)² / Σw²: how many rows the estimate really rests on


@dataclass(frozen=True)
class PolicyComparison:
    """Challenger minus champion on the same logs, with a paired interval."""

    estimator: str
    challenger: OPEEstimate
    champion: OPEEstimate
    difference: float
    ci_low: float
    ci_high: float
    confidence: float
    challenger_is_better: bool  # ci_low > min_improvement


def _as_array(name: str, values: np.ndarray, n: int | None) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if n is not None and len(arr) != n:
        raise ValueError(f"{name} has {len(arr)} rows, rewards has {n}")
    bad = np.flatnonzero(~np.isfinite(arr))
    if len(bad):
        raise ValueError(f"{name} is not finite at row {bad[0]}")
    return arr


def _weights(propensity: np.ndarray, target_prob: np.ndarray, max_weight: float | None) -> np.ndarray:
    bad = np.flatnonzero((propensity <= 0) | (propensity > 1))
    if len(bad):
        raise ValueError(f"logged propensity must be in (0, 1], row {bad[0]} has {propensity[bad[0]]}")
    bad = np.flatnonzero((target_prob < 0) | (target_prob > 1))
    if len(bad):
        raise ValueError(f"target policy probability must be in [0, 1], row {bad[0]} has {target_prob[bad[0]]}")
    weights = target_prob / propensity
    if max_weight is not None:
        if max_weight <= 0:
            raise ValueError(f"max_weight must be > 0, got {max_weight}")
        weights = np.minimum(weights, max_weight)
    return weights


def _terms(
    estimator: Estimator,
    rewards: np.ndarray,
    weights: np.ndarray,
    q_logged: np.ndarray | None,
    q_target: np.ndarray | None,
) -> tuple[float, np.ndarray]:
    """The estimate and its per-row influence terms (their mean's standard error is the estimate's)."""
    if estimator == "ips":
        terms = weights * rewards
        return float(terms.mean()), terms
    if estimator == "snips":
        mean_weight = weights.mean()
        if mean_weight <= 0:
            raise ValueError("SNIPS needs at least one row where the target policy could take the logged action")
        value = float((weights * rewards).sum() / weights.sum())
        return value, weights * (rewards - value) / mean_weight + value  # delta-method linearization
    if estimator == "dr":
        if q_logged is None or q_target is None:
            raise ValueError("DR needs q_hat_logged (reward model at the logged action) and q_hat_target")
        terms = q_target + weights * (rewards - q_logged)
        return float(terms.mean()), terms
    raise ValueError(f"unknown estimator {estimator!r}: use 'ips', 'snips' or 'dr'")


def _estimate_from_arrays(
    estimator: Estimator,
    rewards: np.ndarray,
    weights: np.ndarray,
    q_logged: np.ndarray | None,
    q_target: np.ndarray | None,
) -> float:
    return _terms(estimator, rewards, weights, q_logged, q_target)[0]


def _interval(
    value: float,
    terms: np.ndarray,
    confidence: float,
    interval: IntervalMethod,
    resample: Callable[[np.ndarray], float],
    n_bootstrap: int,
    seed: int,
) -> tuple[float, float, float]:
    n = len(terms)
    std_error = float(terms.std(ddof=1) / np.sqrt(n)) if n > 1 else float("inf")
    if interval == "normal":
        z = NormalDist().inv_cdf(0.5 + confidence / 2)
        return value - z * std_error, value + z * std_error, std_error
    if interval == "bootstrap":
        rng = np.random.default_rng(seed)
        stats = np.array([resample(rng.integers(0, n, n)) for _ in range(n_bootstrap)])
        alpha = (1 - confidence) / 2
        low, high = np.quantile(stats, [alpha, 1 - alpha])
        return float(low), float(high), std_error
    raise ValueError(f"unknown interval {interval!r}: use 'normal' or 'bootstrap'")


def estimate_policy_value(
    rewards: np.ndarray,
    propensity: np.ndarray,
    target_prob: np.ndarray,
    estimator: Estimator = "dr",
    q_hat_logged: np.ndarray | None = None,
    q_hat_target: np.ndarray | None = None,
    max_weight: float | None = None,
    confidence: float = 0.95,
    interval: IntervalMethod = "normal",
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> OPEEstimate:
    """Estimate the target policy's mean reward per decision from logs.

    rewards, propensity (logging policy's probability of the logged action), target_prob (target policy's
    probability of the logged action): (n,). For DR also q_hat_logged (reward model at the logged action)
    and q_hat_target (Σ_a π(a|x) q̂(x, a)): (n,). `max_weight` clips importance weights (bias for variance).
    """
    r = _as_array("rewards", rewards, None)
    n = len(r)
    if n == 0:
        raise ValueError("no logged rows to evaluate")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    weights = _weights(_as_array("propensity", propensity, n), _as_array("target_prob", target_prob, n), max_weight)
    q_logged = None if q_hat_logged is None else _as_array("q_hat_logged", q_hat_logged, n)
    q_target = None if q_hat_target is None else _as_array("q_hat_target", q_hat_target, n)
    value, terms = _terms(estimator, r, weights, q_logged, q_target)

    def resample(idx: np.ndarray) -> float:
        return _estimate_from_arrays(
            estimator, r[idx], weights[idx], None if q_logged is None else q_logged[idx],
            None if q_target is None else q_target[idx],
        )

    low, high, std_error = _interval(value, terms, confidence, interval, resample, n_bootstrap, seed)
    ess = float(weights.sum() ** 2 / (weights**2).sum()) if np.any(weights) else 0.0
    return OPEEstimate(estimator, value, low, high, std_error, n, interval, confidence, max_weight, ess)


def compare_policies(
    rewards: np.ndarray,
    propensity: np.ndarray,
    challenger_prob: np.ndarray,
    champion_prob: np.ndarray,
    estimator: Estimator = "dr",
    q_hat_logged: np.ndarray | None = None,
    challenger_q_hat_target: np.ndarray | None = None,
    champion_q_hat_target: np.ndarray | None = None,
    max_weight: float | None = None,
    confidence: float = 0.95,
    interval: IntervalMethod = "normal",
    n_bootstrap: int = 1000,
    seed: int = 0,
    min_improvement: float = 0.0,
) -> PolicyComparison:
    """Challenger − champion value on the same logs with a paired interval (the rows' noise cancels).

    `challenger_is_better` is True only when the interval's lower end exceeds `min_improvement`.
    """
    common = {"estimator": estimator, "q_hat_logged": q_hat_logged, "max_weight": max_weight,
              "confidence": confidence, "interval": interval, "n_bootstrap": n_bootstrap, "seed": seed}
    challenger = estimate_policy_value(rewards, propensity, challenger_prob, q_hat_target=challenger_q_hat_target, **common)
    champion = estimate_policy_value(rewards, propensity, champion_prob, q_hat_target=champion_q_hat_target, **common)
    r = np.asarray(rewards, dtype=np.float64)
    p = np.asarray(propensity, dtype=np.float64)
    w_a = _weights(p, np.asarray(challenger_prob, dtype=np.float64), max_weight)
    w_b = _weights(p, np.asarray(champion_prob, dtype=np.float64), max_weight)
    q_logged = None if q_hat_logged is None else np.asarray(q_hat_logged, dtype=np.float64)
    q_a = None if challenger_q_hat_target is None else np.asarray(challenger_q_hat_target, dtype=np.float64)
    q_b = None if champion_q_hat_target is None else np.asarray(champion_q_hat_target, dtype=np.float64)
    value_a, terms_a = _terms(estimator, r, w_a, q_logged, q_a)
    value_b, terms_b = _terms(estimator, r, w_b, q_logged, q_b)
    difference = value_a - value_b

    def resample(idx: np.ndarray) -> float:
        ql = None if q_logged is None else q_logged[idx]
        return _estimate_from_arrays(estimator, r[idx], w_a[idx], ql, None if q_a is None else q_a[idx]) - (
            _estimate_from_arrays(estimator, r[idx], w_b[idx], ql, None if q_b is None else q_b[idx])
        )

    low, high, _ = _interval(difference, terms_a - terms_b, confidence, interval, resample, n_bootstrap, seed)
    return PolicyComparison(estimator, challenger, champion, difference, low, high, confidence, low > min_improvement)
