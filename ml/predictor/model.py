"""Behaviour-Sequence-Transformer effect predictor, and its tabular variant (no sequence) for Hillstrom.

Shape of the network:

    recent events (product, category, event type, age bucket, position) + the candidate as target token
        -> small Transformer encoder -> [target token output, masked mean of event outputs]
    ++ user/product numeric + categorical embeddings           -> context MLP -> h
    h                                    -> baseline head      -> logit P(convert | no send)
    [h, offer type/depth, channel, hour] -> effect head        -> delta logit, click logit
    numeric + one-hot features of context and action
        [+ one-hot (channel or offer type, customer attribute) pairs] -> wide linear terms, added to those logits

P(convert | send) = sigmoid(baseline logit + delta). Writing the treated logit as the untreated one plus a
learned shift makes the uplift an explicit output, so it is not the small difference of two noisy,
separately fitted numbers (the T-learner's weakness); the baseline head never sees the action, because what
happens without a message cannot depend on which message we would have sent. The wide terms (Wide & Deep)
make each logit a logistic regression on the same features plus what the deep part adds: with the few
hundred conversions of a shop's first randomized days, the deep part alone ranked conversions worse than
the T-learner's two logistic regressions (bench/predictor_simulator.py). The optional pairs
(`FeatureSpec.crosses`, Wide & Deep's cross-product features; not in the contract's default spec, see
`features.CUSTOMER_CROSSES`) let the linear part say that a channel or an offer moves some customers more
than others, which a sum of a channel weight and a customer weight cannot.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from ml.predictor.features import EncodedFrame, FeatureEncoder, SequenceSpec

WIDE_CONTEXT = 3  # wide terms of the context: baseline, delta and click logits
WIDE_ACTION = 2  # wide terms of the action: delta and click logits


@dataclass(frozen=True)
class ModelConfig:
    """Default sizes are small on purpose: the model must train at >= 1M samples/s on one H100."""

    d_model: int = 32
    n_heads: int = 2
    n_layers: int = 1
    ff_mult: int = 2
    cat_dim: int = 8
    hidden: int = 128
    head_hidden: int = 64
    dropout: float = 0.1
    wide: bool = True  # linear paths on the numeric and one-hot features beside the deep ones

    def to_dict(self) -> dict:
        return asdict(self)


class SequenceEncoder(nn.Module):
    """Embeds the last T events and the target item, runs them through a Transformer encoder, pools."""

    def __init__(self, cfg: ModelConfig, seq: SequenceSpec, n_products: int, n_categories: int, n_event_types: int):
        super().__init__()
        d = cfg.d_model
        self.product = nn.Embedding(n_products, d)
        self.category = nn.Embedding(n_categories, d)
        self.event_type = nn.Embedding(n_event_types, d)
        self.age = nn.Embedding(seq.age_buckets, d)
        self.position = nn.Embedding(seq.max_len + 1, d)  # position 0 = the target token
        self.target_marker = nn.Parameter(torch.zeros(d))
        layer = nn.TransformerEncoderLayer(
            d, cfg.n_heads, d * cfg.ff_mult, cfg.dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, cfg.n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.out_dim = 2 * d

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        events = (
            self.product(batch["seq_product"])
            + self.category(batch["seq_category"])
            + self.event_type(batch["seq_event"])
            + self.age(batch["seq_age"])
        )  # (B, T, d)
        target = (
            self.product(batch["target_product"]) + self.category(batch["target_category"]) + self.target_marker
        ).unsqueeze(1)  # (B, 1, d)
        tokens = torch.cat([target, events], dim=1)  # (B, T+1, d)
        tokens = tokens + self.position.weight[: tokens.shape[1]]
        present = torch.cat([torch.ones_like(batch["seq_mask"][:, :1]), batch["seq_mask"]], dim=1)  # (B, T+1)
        encoded = self.norm(self.encoder(tokens, src_key_padding_mask=~present))  # (B, T+1, d)
        weights = batch["seq_mask"].unsqueeze(-1).to(encoded.dtype)  # (B, T, 1)
        mean_events = (encoded[:, 1:] * weights).sum(1) / weights.sum(1).clamp(min=1.0)  # (B, d)
        return torch.cat([encoded[:, 0], mean_events], dim=-1)  # (B, 2d)


class EffectPredictor(nn.Module):
    """Outputs logits: `click` (P(click | send)), `convert_send`, `convert_none` and `delta` (their gap)."""

    def __init__(self, cfg: ModelConfig, encoder: FeatureEncoder):
        super().__init__()
        spec = encoder.spec
        cards = encoder.cardinalities()
        self.cfg = cfg
        self.context_embeddings = nn.ModuleList(nn.Embedding(cards[c], cfg.cat_dim) for c in spec.categorical)
        self.action_embeddings = nn.ModuleList(nn.Embedding(cards[c], cfg.cat_dim) for c in spec.action_categorical)
        self.sequence = (
            SequenceEncoder(cfg, spec.sequence, cards["product"], cards["category"], cards["event_type"])
            if spec.sequence is not None
            else None
        )
        context_dim = len(spec.numeric) + cfg.cat_dim * len(spec.categorical)
        context_dim += self.sequence.out_dim if self.sequence is not None else 0
        action_dim = len(spec.action_numeric) + cfg.cat_dim * len(spec.action_categorical)
        self.context_mlp = nn.Sequential(
            nn.Linear(context_dim, cfg.hidden), nn.GELU(), nn.Dropout(cfg.dropout),
            nn.Linear(cfg.hidden, cfg.head_hidden), nn.GELU(),
        )
        self.baseline_head = nn.Sequential(nn.Linear(cfg.head_hidden, cfg.head_hidden), nn.GELU(), nn.Linear(cfg.head_hidden, 1))
        self.effect_head = nn.Sequential(
            nn.Linear(cfg.head_hidden + action_dim, cfg.head_hidden), nn.GELU(), nn.Dropout(cfg.dropout),
            nn.Linear(cfg.head_hidden, cfg.head_hidden), nn.GELU(), nn.Linear(cfg.head_hidden, 2),
        )
        if cfg.wide:
            # Linear terms, zero at the start (the heads' biases give the base rates): the context's for the
            # three logits (baseline, delta, click) and the action's for delta and click. An embedding of
            # width k is a one-hot times a weight matrix.
            self.wide_context = nn.Linear(len(spec.numeric), WIDE_CONTEXT, bias=False)
            self.wide_context_cat = nn.ModuleList(nn.Embedding(cards[c], WIDE_CONTEXT) for c in spec.categorical)
            self.wide_action = nn.Linear(len(spec.action_numeric), WIDE_ACTION, bias=False)
            self.wide_action_cat = nn.ModuleList(nn.Embedding(cards[c], WIDE_ACTION) for c in spec.action_categorical)
            self.wide_cross = nn.ModuleList(nn.Embedding(size, WIDE_ACTION) for size in encoder.cross_cardinalities())
            for module in [self.wide_context, self.wide_action, *self.wide_context_cat, *self.wide_action_cat,
                           *self.wide_cross]:
                nn.init.zeros_(module.weight)
        self.context_dim = cfg.head_hidden + (WIDE_CONTEXT if cfg.wide else 0)

    @torch.no_grad()
    def init_output_bias(self, p_convert_none: float, p_convert_send: float, p_click: float) -> None:
        """Start the heads at the training set's base rates. Conversions are rare (~1-3 %): from logit 0 a
        model trained on a few thousand rows would still predict ~50 % after its first epochs, and the
        planner would read that as a huge expected discount cost."""

        def logit(p: float) -> float:
            p = min(max(p, 1e-4), 1 - 1e-4)
            return math.log(p / (1 - p))

        self.baseline_head[-1].bias.fill_(logit(p_convert_none))
        self.effect_head[-1].bias[0] = logit(p_convert_send) - logit(p_convert_none)
        self.effect_head[-1].bias[1] = logit(p_click)

    @torch.no_grad()
    def init_wide(
        self, data: EncodedFrame, encoder: FeatureEncoder, seed: int = 0, units: torch.Tensor | None = None
    ) -> dict[str, float]:
        """Start at the logistic regressions of `baselines.fit_wide_start` (fitted on `data`; `units` (N,)
        are the rows' customer codes for its cross-validation folds): the wide terms take their
        coefficients, the heads' biases their intercepts, and the deep heads' last layers start at zero, so
        training begins where the linear models end and the deep part learns only what they miss.
        Returns the L2 strengths cross-validation chose."""
        from ml.predictor.baselines import fit_wide_start

        if not self.cfg.wide:
            raise ValueError("init_wide needs a model built with ModelConfig(wide=True)")
        start = fit_wide_start(data, encoder, seed, units)
        none, delta, click = (b.float() for b in (start.beta_none, start.beta_delta, start.beta_click))  # (F,) each
        spec = encoder.spec
        n_num, n_act = len(spec.numeric), len(spec.action_numeric)
        ctx_width = n_num + sum(len(encoder.vocabularies[c]) - 1 for c in spec.categorical)
        # Context columns: the baseline's coefficients, the send's shift (delta), the click model's.
        ctx = torch.stack([none[:ctx_width], delta[:ctx_width], click[:ctx_width]])  # (3, ctx)
        self.wide_context.weight.copy_(ctx[:, :n_num])
        offset = n_num
        for col, emb in zip(spec.categorical, self.wide_context_cat, strict=True):
            width = len(encoder.vocabularies[col]) - 1  # one-hot without the unknown value
            emb.weight.zero_()
            emb.weight[1:] = ctx[:, offset : offset + width].T
            offset += width
        act = torch.stack([delta[ctx_width:-1], click[ctx_width:-1]])  # (2, action columns)
        self.wide_action.weight.copy_(act[:, :n_act])
        offset = n_act
        for col, emb in zip(spec.action_categorical, self.wide_action_cat, strict=True):
            width = len(encoder.vocabularies[col]) - 1
            emb.weight.zero_()
            emb.weight[1:] = act[:, offset : offset + width].T
            offset += width
        for size, emb in zip(encoder.cross_cardinalities(), self.wide_cross, strict=True):
            emb.weight.zero_()
            emb.weight[1:] = act[:, offset : offset + size - 1].T
            offset += size - 1
        self.baseline_head[-1].weight.zero_()
        self.effect_head[-1].weight.zero_()
        self.baseline_head[-1].bias.fill_(float(none[-1]))
        self.effect_head[-1].bias[0] = float(delta[-1])
        self.effect_head[-1].bias[1] = float(click[-1])
        return start.l2

    def context(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The user x product context (features and behaviour sequence), shared by all actions on it:
        (B, context_dim), the deep representation followed by the wide terms of the context (when wide)."""
        parts = [batch["numeric"]]  # (B, Fn)
        parts += [emb(batch["categorical"][:, j]) for j, emb in enumerate(self.context_embeddings)]  # (B, cat_dim)
        if self.sequence is not None:
            parts.append(self.sequence(batch))  # (B, 2d)
        h = self.context_mlp(torch.cat([p.to(parts[-1].dtype) for p in parts], dim=-1))  # (B, H)
        if not self.cfg.wide:
            return h
        wide = self.wide_context(batch["numeric"].to(h.dtype))  # (B, 3)
        for j, emb in enumerate(self.wide_context_cat):
            wide = wide + emb(batch["categorical"][:, j]).to(h.dtype)
        return torch.cat([h, wide], dim=-1)  # (B, H + 3)

    def heads(self, h: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Logits for the actions in `batch` (offer, channel, send hour) on contexts `h` (B, context_dim)."""
        deep = h[:, : self.cfg.head_hidden]
        action = [batch["action_numeric"].to(h.dtype)]
        action += [emb(batch["action_categorical"][:, j]).to(h.dtype) for j, emb in enumerate(self.action_embeddings)]
        effect = self.effect_head(torch.cat([deep, *action], dim=-1)).float()  # (B, 2): delta, click
        base = self.baseline_head(deep).float().squeeze(-1)  # (B,)
        if self.cfg.wide:
            wide = h[:, self.cfg.head_hidden :].float()  # (B, 3): baseline, delta, click of the context
            act = self.wide_action(batch["action_numeric"].to(h.dtype))  # (B, 2)
            for j, emb in enumerate(self.wide_action_cat):
                act = act + emb(batch["action_categorical"][:, j]).to(h.dtype)
            for j, emb in enumerate(self.wide_cross):
                act = act + emb(batch["action_cross"][:, j]).to(h.dtype)
            base = base + wide[:, 0]
            effect = effect + wide[:, 1:] + act.float()
        return {
            "convert_none": base,
            "delta": effect[:, 0],
            "convert_send": base + effect[:, 0],
            "click": effect[:, 1],
        }

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.heads(self.context(batch), batch)


def effect_loss(out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], with_click: bool = True) -> torch.Tensor:
    """Weighted BCE: click and P(convert | send) on treated rows, P(convert | no send) on untreated rows.

    Weights are the clipped inverse logged propensities (1 where none were logged); each part is averaged
    over its own rows so a batch with few control rows still teaches the baseline head. `with_click=False`
    leaves the click term out: the conversion heads' loss, which validation judges epochs by.
    """
    treated = batch["treated"]
    w_t = batch["weight"] * treated
    w_c = batch["weight"] * (1.0 - treated)
    bce = nn.functional.binary_cross_entropy_with_logits
    send = (bce(out["convert_send"], batch["convert"], reduction="none") * w_t).sum() / w_t.sum().clamp(min=1.0)
    none = (bce(out["convert_none"], batch["convert"], reduction="none") * w_c).sum() / w_c.sum().clamp(min=1.0)
    if not with_click:
        return send + none
    click = (bce(out["click"], batch["click"], reduction="none") * w_t).sum() / w_t.sum().clamp(min=1.0)
    return click + send + none


def expected_incremental_margin(
    p_send: torch.Tensor, p_none: torch.Tensor, price: torch.Tensor, depth: torch.Tensor, margin_rate: torch.Tensor
) -> torch.Tensor:
    """P_send·(p(1−depth) − cost) − P_none·(p − cost), cost = p·(1 − margin_rate) (docs/contracts.md).

    The message's own channel cost is the planner's to subtract: it does not depend on the model.
    """
    cost = price * (1.0 - margin_rate)
    return p_send * (price * (1.0 - depth) - cost) - p_none * (price - cost)
