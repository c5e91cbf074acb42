"""Platt recalibration of the predictor's three heads on rows the network did not learn from.

Why: the planner spends a budget on *predicted* discount cost (P(convert | send) x depth x price) and keeps a
message only while its predicted incremental margin beats the channel's cost, so a model that predicts
conversions too high both under-spends and sends where the true margin is negative. On the simulator's
closed loop the first model, fitted on two days of exploration, predicted 1.6x the conversions its random
sends realized (`promoloop report`), and its validation day already showed the level too high. A logistic recalibration
per head, logit p' = a + b logit p, fitted on the validation rows (used by training only to choose the
epoch), moves the level (a) and shrinks over-confident spread (b < 1) without touching the network.

Each head is fitted on the rows whose label it predicts: click and convert_send on sent rows, convert_none on
untreated rows (holdout and "nothing"). A weak ridge toward the identity (a = 0, b = 1) keeps a day with a
handful of conversions from producing a wild slope; a head with fewer than `min_events` positives and
negatives stays the identity.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, logit

EPS = 1e-6  # probabilities are clipped to [EPS, 1 - EPS] before the logit


@dataclass(frozen=True)
class HeadCalibration:
    intercept: float = 0.0
    slope: float = 1.0
    rows: int = 0  # rows it was fitted on (0: identity, not fitted)
    events: int = 0  # positive labels among them

    def apply(self, p: np.ndarray) -> np.ndarray:
        if self.rows == 0:
            return p
        z = logit(np.clip(p.astype(np.float64), EPS, 1 - EPS))
        return expit(self.intercept + self.slope * z).astype(p.dtype)


@dataclass(frozen=True)
class Calibration:
    heads: dict[str, HeadCalibration] = field(default_factory=dict)

    def apply(self, probs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Recalibrated copies of the heads' probabilities; uplift is recomputed from the two conversion heads."""
        out = {k: (self.heads[k].apply(v) if k in self.heads else v) for k, v in probs.items() if k != "uplift"}
        out["uplift"] = out["convert_send"] - out["convert_none"]
        return out

    def to_json(self) -> str:
        return json.dumps({name: asdict(head) for name, head in self.heads.items()}, indent=2)

    @classmethod
    def from_json(cls, text: str) -> Calibration:
        return cls({name: HeadCalibration(**values) for name, values in json.loads(text).items()})

    def summary(self) -> dict[str, float]:
        return {f"calibration_{name}_{k}": round(getattr(head, k), 4)
                for name, head in self.heads.items() for k in ("intercept", "slope")}


def fit_head(p: np.ndarray, y: np.ndarray, ridge: float = 1.0, min_events: int = 5) -> HeadCalibration:
    """Minimize the log-loss of expit(a + b logit p) against y plus ridge x ((a)^2 + (b - 1)^2)."""
    p = np.asarray(p, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    events = int(y.sum())
    if len(y) == 0 or min(events, len(y) - events) < min_events:
        return HeadCalibration(rows=0, events=events)
    z = logit(np.clip(p, EPS, 1 - EPS))

    def loss_and_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
        a, b = theta
        s = a + b * z
        # log(1 + e^s) - y s, written stably
        loss = float(np.sum(np.logaddexp(0.0, s) - y * s) + ridge * (a**2 + (b - 1.0) ** 2))
        r = expit(s) - y
        grad = np.array([r.sum() + 2 * ridge * a, (r * z).sum() + 2 * ridge * (b - 1.0)])
        return loss, grad

    result = minimize(loss_and_grad, np.array([0.0, 1.0]), jac=True, method="L-BFGS-B")
    a, b = (float(v) for v in result.x)
    return HeadCalibration(intercept=a, slope=b, rows=len(y), events=events)


def fit_calibration(
    probs: dict[str, np.ndarray],
    label_click: np.ndarray,
    label_convert: np.ndarray,
    treated: np.ndarray,
    ridge: float = 1.0,
    min_events: int = 5,
) -> Calibration:
    """Fit each head on the rows whose outcome it predicts (see the module docstring)."""
    treated = np.asarray(treated, dtype=bool)
    label_click = np.asarray(label_click, dtype=np.float64)
    label_convert = np.asarray(label_convert, dtype=np.float64)
    return Calibration({
        "click": fit_head(probs["click"][treated], label_click[treated], ridge, min_events),
        "convert_send": fit_head(probs["convert_send"][treated], label_convert[treated], ridge, min_events),
        "convert_none": fit_head(probs["convert_none"][~treated], label_convert[~treated], ridge, min_events),
    })
