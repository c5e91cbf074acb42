"""Metrics for the effect predictor: discrimination, calibration, and uplift quality with bootstrap CIs.

Uplift curves follow scikit-uplift's definitions (sklift.metrics), so figures compare with published ones:
rows are sorted by predicted uplift, curve points sit at the end of each group of tied scores, and
- Qini curve  Q(n) = Y_t(n) − Y_c(n)·N_t(n)/N_c(n)   (Y: responders, N: rows among the top n)
- uplift curve U(n) = (Y_t(n)/N_t(n) − Y_c(n)/N_c(n))·n
- Qini coefficient / AUUC: (area under the model's curve − area under the random line) divided by the
  same for the perfect ranking (1 = perfect, 0 = random, < 0 = worse than random).
- uplift@k ("overall"): among the top k share of all rows, treated response rate − control response rate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import rankdata


def auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC via the rank-sum statistic (ties get half credit); NaN when only one class is present."""
    y = np.asarray(y, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def expected_auc(p_true: np.ndarray, score: np.ndarray) -> float:
    """AUC of `score` against the true probabilities `p_true`: every row is a positive with weight p and a
    negative with weight 1 − p (never paired with itself; ties get half credit), i.e. the expected number of
    correctly ordered (positive, negative) pairs over the expected number of such pairs — within ~0.005 of
    the mean AUC over outcomes drawn from `p_true` (tests/test_predictor.py). Equals `auc` when `p_true` is
    0/1. Known only on the simulator, it judges a ranking by every row's outcome on average instead of by
    the few dozen that happened."""
    p = np.asarray(p_true, dtype=np.float64)
    _, group = np.unique(np.asarray(score, dtype=np.float64), return_inverse=True)  # tie groups, by score
    pos, neg = np.bincount(group, weights=p), np.bincount(group, weights=1.0 - p)
    self_pairs = np.bincount(group, weights=p * (1.0 - p))
    below = np.cumsum(neg) - neg  # negative weight of the strictly lower scores
    numerator = float(np.sum(pos * below) + 0.5 * np.sum(pos * neg - self_pairs))
    denominator = float(p.sum() * (1.0 - p).sum() - np.sum(p * (1.0 - p)))
    return numerator / denominator if denominator > 0 else float("nan")


def log_loss(y: np.ndarray, p: np.ndarray, eps: float = 1e-7) -> float:
    p = np.clip(np.asarray(p, dtype=np.float64), eps, 1 - eps)
    y = np.asarray(y, dtype=np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def calibration_bins(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per equal-width probability bin: mean predicted, observed rate, row count (empty bins: NaN, 0)."""
    p = np.asarray(p, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    bins = np.minimum((p * n_bins).astype(np.int64), n_bins - 1)
    count = np.bincount(bins, minlength=n_bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.bincount(bins, weights=p, minlength=n_bins) / count
        rate = np.bincount(bins, weights=y, minlength=n_bins) / count
    return mean_p, rate, count


def expected_calibration_error(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> float:
    """Σ_b (n_b / N)·|mean predicted_b − observed rate_b| over equal-width bins."""
    mean_p, rate, count = calibration_bins(y, p, n_bins)
    used = count > 0
    return float(np.sum(count[used] / count.sum() * np.abs(mean_p[used] - rate[used])))


def reliability_plot(y: np.ndarray, p: np.ndarray, path: Path, title: str, n_bins: int = 10) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mean_p, rate, count = calibration_bins(y, p, n_bins)
    used = count > 0
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    top = max(float(np.nanmax(mean_p[used])) if used.any() else 1.0, float(np.nanmax(rate[used])) if used.any() else 1.0)
    ax.plot([0, top], [0, top], color="grey", linestyle="--", label="perfect")
    ax.plot(mean_p[used], rate[used], marker="o", label=f"model (ECE {expected_calibration_error(y, p, n_bins):.4f})")
    ax.set_xlabel("predicted probability")
    ax.set_ylabel("observed rate")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------------- uplift
def _sorted_cumulative(y: np.ndarray, t: np.ndarray, score: np.ndarray):
    order = np.argsort(score, kind="mergesort")[::-1]
    y, t, score = np.asarray(y, np.float64)[order], np.asarray(t, np.float64)[order], np.asarray(score)[order]
    ends = np.r_[np.where(np.diff(score))[0], score.size - 1]  # last row of each group of tied scores
    n_t = np.cumsum(t)[ends]
    y_t = np.cumsum(y * t)[ends]
    y_c = np.cumsum(y * (1 - t))[ends]
    n_all = ends + 1.0
    return n_all, n_t, n_all - n_t, y_t, y_c


def _prepend_origin(x: np.ndarray, curve: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.r_[0.0, x], np.r_[0.0, curve]


def qini_curve(y: np.ndarray, t: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n_all, n_t, n_c, y_t, y_c = _sorted_cumulative(y, t, score)
    ratio = np.divide(n_t, n_c, out=np.zeros_like(n_t), where=n_c != 0)
    return _prepend_origin(n_all, y_t - y_c * ratio)


def uplift_curve(y: np.ndarray, t: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n_all, n_t, n_c, y_t, y_c = _sorted_cumulative(y, t, score)
    rate_t = np.divide(y_t, n_t, out=np.zeros_like(y_t), where=n_t != 0)
    rate_c = np.divide(y_c, n_c, out=np.zeros_like(y_c), where=n_c != 0)
    return _prepend_origin(n_all, (rate_t - rate_c) * n_all)


def _normalized_area(curve, perfect_score, y, t, score) -> float:
    x, c = curve(y, t, score)
    xp, cp = curve(y, t, perfect_score)
    baseline = 0.5 * xp[-1] * cp[-1]
    perfect = np.trapezoid(cp, xp) - baseline
    return float((np.trapezoid(c, x) - baseline) / perfect) if perfect != 0 else float("nan")


def qini_coefficient(y: np.ndarray, t: np.ndarray, score: np.ndarray) -> float:
    """Normalized area between the Qini curve and the random line (sklift qini_auc_score)."""
    y, t = np.asarray(y, np.float64), np.asarray(t, np.float64)
    return _normalized_area(qini_curve, y * t - y * (1 - t), y, t, score)


def auuc(y: np.ndarray, t: np.ndarray, score: np.ndarray) -> float:
    """Normalized area between the uplift curve and the random line (sklift uplift_auc_score)."""
    y, t = np.asarray(y, np.float64), np.asarray(t, np.float64)
    summand = y if np.sum((y == 1) & (t == 0)) > np.sum((y == 1) & (t == 1)) else t
    return _normalized_area(uplift_curve, 2 * (y == t) + summand, y, t, score)


def uplift_at_k(y: np.ndarray, t: np.ndarray, score: np.ndarray, k: float) -> float:
    """Treated response rate − control response rate among the top k share of rows by predicted uplift."""
    if not 0.0 < k <= 1.0:
        raise ValueError(f"k must be in (0, 1], got {k}")
    top = np.argsort(score, kind="mergesort")[::-1][: max(1, int(len(score) * k))]
    y_top, t_top = np.asarray(y, np.float64)[top], np.asarray(t, bool)[top]
    if t_top.all() or not t_top.any():
        return float("nan")
    return float(y_top[t_top].mean() - y_top[~t_top].mean())


def top_k_policy_value(score: np.ndarray, true_uplift: np.ndarray, k: float) -> tuple[float, float]:
    """(value, oracle value): total true uplift of treating the top k share by `score`, and by the truth."""
    n = max(1, int(len(score) * k))
    value = float(np.asarray(true_uplift)[np.argsort(score, kind="mergesort")[::-1][:n]].sum())
    oracle = float(np.sort(np.asarray(true_uplift))[::-1][:n].sum())
    return value, oracle


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float

    def to_dict(self) -> dict[str, float]:
        return {"value": self.value, "ci_low": self.low, "ci_high": self.high}

    def __str__(self) -> str:
        return f"{self.value:.4f} [{self.low:.4f}, {self.high:.4f}]"


def bootstrap(
    metric: Callable[..., float], arrays: tuple[np.ndarray, ...], n_boot: int = 200, seed: int = 0, level: float = 0.95
) -> Interval:
    """Point estimate and percentile bootstrap interval (rows resampled with replacement)."""
    value = metric(*arrays)
    rng = np.random.default_rng(seed)
    n = len(arrays[0])
    draws = np.array([metric(*(a[idx] for a in arrays)) for idx in (rng.integers(0, n, n) for _ in range(n_boot))])
    draws = draws[np.isfinite(draws)]
    if draws.size == 0:
        return Interval(value, float("nan"), float("nan"))
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail])
    return Interval(float(value), float(low), float(high))
