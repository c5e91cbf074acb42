"""Baselines every evaluation shows beside the model: a T-learner and a popularity rule.

T-learner: two L2-regularised logistic regressions on the same encoded features (numeric + one-hot
categoricals; no sequence), one fitted on treated rows (context + action features, for P(convert | send)
and P(click | send)), one on untreated rows (context only, for P(convert | no send)); uplift is the
difference. Fitted with torch L-BFGS, so it needs nothing beyond the runtime dependencies.
Popularity rule: rank rows by one column (product popularity by default) — what a shop does without a model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import torch

from ml.predictor.features import EncodedFrame, FeatureEncoder


def design_matrix(data: EncodedFrame, encoder: FeatureEncoder, with_action: bool) -> torch.Tensor:
    """(N, F) float64: standardized numerics, one-hot categoricals (unknown = all zero), a bias column."""
    spec, t = encoder.spec, data.tensors
    blocks = [t["numeric"].double()]
    for j, col in enumerate(spec.categorical):
        blocks.append(torch.nn.functional.one_hot(t["categorical"][:, j], len(encoder.vocabularies[col]))[:, 1:].double())
    if with_action:
        blocks.append(t["action_numeric"].double())
        for j, col in enumerate(spec.action_categorical):
            codes = t["action_categorical"][:, j]
            blocks.append(torch.nn.functional.one_hot(codes, len(encoder.vocabularies[col]))[:, 1:].double())
    blocks.append(torch.ones((len(data), 1), dtype=torch.float64))
    return torch.cat(blocks, dim=1)


def fit_logistic(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, l2: float = 1e-3, max_iter: int = 200) -> torch.Tensor:
    """Weighted logistic regression by L-BFGS; returns the coefficient vector (F,)."""
    beta = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([beta], max_iter=max_iter, line_search_fn="strong_wolfe")
    w = w / w.sum()

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = (torch.nn.functional.binary_cross_entropy_with_logits(x @ beta, y, reduction="none") * w).sum()
        loss = loss + l2 * (beta[:-1] ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return beta.detach()


@dataclass
class TLearner:
    encoder: FeatureEncoder
    beta_send: torch.Tensor | None = None
    beta_click: torch.Tensor | None = None
    beta_none: torch.Tensor | None = None
    name: str = "t_learner_logistic"

    def fit(self, data: EncodedFrame) -> TLearner:
        t = data.tensors
        treated = t["treated"] > 0.5
        if treated.all() or not treated.any():
            raise ValueError("T-learner needs both treated and untreated rows")
        x_t = design_matrix(data, self.encoder, with_action=True)[treated]
        x_c = design_matrix(data, self.encoder, with_action=False)[~treated]
        w = t["weight"].double()
        self.beta_send = fit_logistic(x_t, t["convert"].double()[treated], w[treated])
        self.beta_click = fit_logistic(x_t, t["click"].double()[treated], w[treated])
        self.beta_none = fit_logistic(x_c, t["convert"].double()[~treated], w[~treated])
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
