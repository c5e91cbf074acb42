"""Baselines every evaluation shows beside the model: a T-learner and a popularity rule.

T-learner: two L2-regularised logistic regressions on the same encoded features (numeric + one-hot
categoricals; no sequence), one fitted on treated rows (context + action features, for P(convert | send)
and P(click | send)), one on untreated rows (context only, for P(convert | no send)); uplift is the
difference. With the fixed penalty of the issue's baseline, or with each penalty cross-validated the way the
model's own linear part is. Fitted with torch L-BFGS, so it needs nothing beyond the runtime dependencies.
Popularity rule: rank rows by one column (product popularity by default) — what a shop does without a model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import torch

from ml.predictor.features import EncodedFrame, FeatureEncoder


def design_matrix(
    data: EncodedFrame, encoder: FeatureEncoder, with_action: bool, with_crosses: bool = False
) -> torch.Tensor:
    """(N, F) float64: standardized numerics, one-hot categoricals (unknown = all zero), with the action
    and `with_crosses` the one-hot (action, context) pairs of `FeatureSpec.crosses` after it, a bias column.
    The T-learners read the main effects only, the standard baseline; the crosses are the model's."""
    spec, t = encoder.spec, data.tensors
    blocks = [t["numeric"].double()]
    for j, col in enumerate(spec.categorical):
        blocks.append(torch.nn.functional.one_hot(t["categorical"][:, j], len(encoder.vocabularies[col]))[:, 1:].double())
    if with_action:
        blocks.append(t["action_numeric"].double())
        for j, col in enumerate(spec.action_categorical):
            codes = t["action_categorical"][:, j]
            blocks.append(torch.nn.functional.one_hot(codes, len(encoder.vocabularies[col]))[:, 1:].double())
        if with_crosses:
            for j, size in enumerate(encoder.cross_cardinalities()):
                blocks.append(torch.nn.functional.one_hot(t["action_cross"][:, j], size)[:, 1:].double())
    blocks.append(torch.ones((len(data), 1), dtype=torch.float64))
    return torch.cat(blocks, dim=1)


def fit_logistic(
    x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, l2: float = 1e-3, max_iter: int = 200,
    offset: torch.Tensor | None = None,
) -> torch.Tensor:
    """Weighted logistic regression by L-BFGS; returns the coefficient vector (F,). The last column is the
    intercept and is not penalised; `offset` (N,) is a fixed term added to every row's logit."""
    beta = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([beta], max_iter=max_iter, line_search_fn="strong_wolfe")
    w = w / w.sum()
    base = torch.zeros(len(x), dtype=torch.float64) if offset is None else offset.double()

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = (torch.nn.functional.binary_cross_entropy_with_logits(base + x @ beta, y, reduction="none") * w).sum()
        loss = loss + l2 * (beta[:-1] ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return beta.detach()


# Half-decade steps: the grid used to jump tenfold from 1e-3 to 1e-2, too coarse a choice for a model fitted
# on a few hundred conversions.
L2_GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1)


def fold_ids(n: int, folds: int, seed: int = 0, units: torch.Tensor | None = None) -> torch.Tensor:
    """(N,) fold of each row: a seeded shuffle of the rows, or of the units (customers) when `units` (N,)
    gives each row's unit code, so all rows of a customer fall in one fold."""
    gen = torch.Generator().manual_seed(seed)
    if units is None:
        return torch.randperm(n, generator=gen) % folds
    distinct, unit_index = torch.unique(units, return_inverse=True)
    return (torch.randperm(len(distinct), generator=gen) % folds)[unit_index]


def fit_logistic_cv(
    x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, offset: torch.Tensor | None = None,
    grid: tuple[float, ...] = L2_GRID, folds: int = 3, seed: int = 0, max_iter: int = 100,
    units: torch.Tensor | None = None,
) -> tuple[torch.Tensor, float]:
    """`fit_logistic` with the L2 strength chosen by k-fold weighted log-loss, refitted on all rows.

    Why: a fixed penalty that suits a month of decisions lets a shop's first day (a few hundred sends, a
    handful of purchases) fit coefficients that send some rows' predicted uplift to 0.9; the planner then
    spends the budget on exactly those rows. Cross-validation picks a strong penalty when the data are few.
    `units` (N,): each row's customer code. A customer's rows on different days share most features, so
    folds of rows let a model be judged on customers it was fitted on and reward a weak penalty; folds of
    customers do not (tests/test_predictor.py: customers whose features are noise)."""
    n = len(x)
    fold = fold_ids(n, folds, seed, units)
    if n < 2 * folds or y.sum() < folds or (1 - y).sum() < folds or fold.unique().numel() < folds:
        l2 = max(grid)  # too few rows, outcomes or customers to compare: the strongest shrinkage
        return fit_logistic(x, y, w, l2, max_iter, offset), l2
    base = torch.zeros(n, dtype=torch.float64) if offset is None else offset.double()
    losses = np.zeros((len(grid), folds))  # (L2 values, folds)
    for i, l2 in enumerate(grid):
        for k in range(folds):
            train, test = fold != k, fold == k
            beta = fit_logistic(x[train], y[train], w[train], l2, max_iter, base[train])
            logit = base[test] + x[test] @ beta
            ll = torch.nn.functional.binary_cross_entropy_with_logits(logit, y[test], reduction="none")
            losses[i, k] = float((ll * w[test]).sum() / w[test].sum())
    # The mean over folds decides. (The one-standard-error rule, glmnet's lambda.1se, shrank more and planned
    # worse against the simulator's truth with five and nine days of decisions.)
    l2 = grid[int(np.argmin(losses.mean(axis=1)))]
    return fit_logistic(x, y, w, l2, max_iter, offset), l2


@dataclass
class WideStart:
    """The wide model's starting point: logistic regressions for P(convert | no send) on the context, the
    send's shift of that logit (delta, on context + action, fitted with the no-send logit as offset) and
    P(click | send); each with its cross-validated L2. Fitting the shift directly shrinks the uplift
    towards a constant when the sends are few, instead of subtracting two noisy regressions."""

    beta_none: torch.Tensor  # (context columns + 1,)
    beta_delta: torch.Tensor  # (context + action columns + 1,)
    beta_click: torch.Tensor  # (context + action columns + 1,)
    l2: dict[str, float]


def fit_wide_start(
    data: EncodedFrame, encoder: FeatureEncoder, seed: int = 0, units: torch.Tensor | None = None
) -> WideStart:
    """`units` (N,): each row's customer code, for the cross-validation folds (`fit_logistic_cv`)."""
    t = data.tensors
    treated = t["treated"] > 0.5
    if treated.all() or not treated.any():
        raise ValueError("the wide start needs both treated and untreated rows")
    x_t = design_matrix(data, encoder, with_action=True, with_crosses=True)
    x_c = design_matrix(data, encoder, with_action=False)
    w, convert, click = t["weight"].double(), t["convert"].double(), t["click"].double()
    u_t, u_c = (None, None) if units is None else (units[treated], units[~treated])
    beta_none, l2_none = fit_logistic_cv(x_c[~treated], convert[~treated], w[~treated], seed=seed, units=u_c)
    offset = x_c[treated] @ beta_none
    beta_delta, l2_delta = fit_logistic_cv(x_t[treated], convert[treated], w[treated], offset=offset, seed=seed, units=u_t)
    beta_click, l2_click = fit_logistic_cv(x_t[treated], click[treated], w[treated], seed=seed, units=u_t)
    return WideStart(beta_none, beta_delta, beta_click, {"none": l2_none, "delta": l2_delta, "click": l2_click})


@dataclass
class TLearner:
    """`l2`: the fixed penalty of the three regressions; None chooses each by `fit_logistic_cv` with folds
    of customers, as the model's wide start does (the baseline then is as tuned as the model's linear part)."""

    encoder: FeatureEncoder
    l2: float | None = 1e-3
    beta_send: torch.Tensor | None = None
    beta_click: torch.Tensor | None = None
    beta_none: torch.Tensor | None = None
    name: str = "t_learner_logistic"

    def fit(self, data: EncodedFrame, units: torch.Tensor | None = None, seed: int = 0) -> TLearner:
        """`units` (N,): each row's customer code for the cross-validation folds (used when l2 is None)."""
        t = data.tensors
        treated = t["treated"] > 0.5
        if treated.all() or not treated.any():
            raise ValueError("T-learner needs both treated and untreated rows")
        x_t = design_matrix(data, self.encoder, with_action=True)[treated]
        x_c = design_matrix(data, self.encoder, with_action=False)[~treated]
        w = t["weight"].double()

        def regression(x: torch.Tensor, y: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
            if self.l2 is not None:
                return fit_logistic(x, y[rows], w[rows], self.l2)
            return fit_logistic_cv(x, y[rows], w[rows], seed=seed, units=None if units is None else units[rows])[0]

        self.beta_send = regression(x_t, t["convert"].double(), treated)
        self.beta_click = regression(x_t, t["click"].double(), treated)
        self.beta_none = regression(x_c, t["convert"].double(), ~treated)
        return self

    @torch.no_grad()
    def predict(self, data: EncodedFrame) -> dict[str, np.ndarray]:
        if self.beta_send is None or self.beta_none is None or self.beta_click is None:
            raise RuntimeError("TLearner.predict before fit")
        x_t = design_matrix(data, self.encoder, with_action=True)
        x_c = design_matrix(data, self.encoder, with_action=False)
        send = torch.sigmoid(x_t @ self.beta_send).numpy()
        none = torch.sigmoid(x_c @ self.beta_none).numpy()
        return {"click": torch.sigmoid(x_t @ self.beta_click).numpy(), "convert_send": send, "convert_none": none, "uplift": send - none}


@dataclass
class RuleBaseline:
    """Scores rows by one column: higher means 'send first'. No probabilities, so only ranking metrics."""

    column: str = "p_popularity_30d"
    name: str = "popularity_rule"

    def uplift_score(self, df: pl.DataFrame) -> np.ndarray:
        if self.column not in df.columns:
            raise ValueError(f"rule baseline: column {self.column!r} is not in the frame")
        return df[self.column].cast(pl.Float64).fill_null(0.0).to_numpy()
