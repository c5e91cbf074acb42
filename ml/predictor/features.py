"""The predictor's feature list (docs/contracts.md, "Features: one column list") and polars -> tensors.

Training (`marts.fct_training_examples`) and serving (`marts.fct_promo_candidates` expanded with `channel`
and `send_hour`) carry the same columns, so one `FeatureSpec` describes both. Vocabularies and numeric
statistics are fitted on the training split only and saved with the model; a value never seen in training
maps to index 0 ("unknown"), so cold-start users and products still get a score. Everything here is
column-wise (polars / Arrow / NumPy): no Python loop over rows.

Features are split into *context* (user, product, behaviour sequence: what the no-send world depends on)
and *action* (offer, channel, send hour: what we choose). The no-send head only sees the context.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import torch

UNKNOWN = 0  # index of unseen values in every vocabulary; also the padding value of sequences (masked)
SEND_HOUR_GAP = "send_hour_gap"  # derived action feature (with_derived_columns)


class FeatureError(ValueError):
    """Input frame does not match the feature contract (missing column, wrong type, bad value)."""


@dataclass(frozen=True)
class SequenceSpec:
    """The user's recent events (most recent first) and the candidate item they are matched against."""

    product_ids: str = "seq_product_ids"
    categories: str = "seq_categories"
    event_types: str = "seq_event_types"
    age_hours: str = "seq_age_hours"
    target_product: str = "product_id"
    target_category: str = "p_category"
    max_len: int = 20
    age_buckets: int = 16  # log2 buckets of hours; 0 is padding


@dataclass(frozen=True)
class FeatureSpec:
    """Which columns the model reads, and what role each plays."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    action_numeric: tuple[str, ...]
    action_categorical: tuple[str, ...]
    log_numeric: tuple[str, ...] = ()  # subset of numeric/action_numeric passed through log1p(max(x, 0)) first
    sequence: SequenceSpec | None = None
    treatment: str = "is_treated"
    click_label: str | None = "label_click"
    convert_label: str = "label_convert"
    propensity: str | None = "propensity"
    # Columns the expected incremental margin is computed from (None: margin not available).
    price: str | None = "p_price"
    depth: str | None = "o_depth"
    margin_rate: str | None = "p_margin_rate"
    # Rows with the same value are one customer: cross-validation keeps each in one fold (None: every row is
    # its own unit, as in Hillstrom's one row per customer).
    unit: str | None = "user_id"
    # (UTC send timestamp, the user's active hour in UTC) that `send_hour_gap` is derived from; None: no gap.
    hour_gap: tuple[str, str] | None = None
    # (action categorical, context categorical) pairs whose combinations get wide weights of their own on the
    # send's effect and the click (Wide & Deep's cross-product features; `FeatureEncoder._cross_block`).
    crosses: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        wrong = [pair for pair in self.crosses if len(pair) != 2 or pair[0] not in self.action_categorical
                 or pair[1] not in self.categorical]
        if wrong:
            raise FeatureError(f"FeatureSpec.crosses: {wrong} should be (action categorical, context categorical) "
                               f"pairs of {list(self.action_categorical)} x {list(self.categorical)}")

    def derived_columns(self) -> list[str]:
        """Columns computed from others by `with_derived_columns`, not read from the input."""
        return [SEND_HOUR_GAP] if self.hour_gap is not None else []

    def feature_columns(self) -> list[str]:
        """Columns needed to score a row (serving)."""
        derived = self.derived_columns()
        cols = [c for c in (*self.numeric, *self.categorical, *self.action_numeric, *self.action_categorical)
                if c not in derived]
        if self.hour_gap is not None:
            cols += list(self.hour_gap)
        if self.sequence is not None:
            s = self.sequence
            cols += [s.product_ids, s.categories, s.event_types, s.age_hours, s.target_product, s.target_category]
        cols += [c for c in (self.price, self.depth, self.margin_rate) if c is not None]
        return list(dict.fromkeys(cols))

    def label_columns(self) -> list[str]:
        cols = [self.treatment, self.convert_label]
        if self.click_label is not None:
            cols.append(self.click_label)
        return cols

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSpec:
        data = dict(data)
        seq = data.pop("sequence", None)
        crosses = tuple(tuple(pair) for pair in data.pop("crosses", ()))  # a spec saved before crosses has none
        tuples = {k: tuple(v) for k, v in data.items() if isinstance(v, list)}
        return cls(**{**data, **tuples}, sequence=SequenceSpec(**seq) if seq else None, crosses=crosses)

    def schema(self) -> dict[str, Any]:
        """What a saved model expects of its input: compared on load (the registry's feature schema)."""
        return json.loads(json.dumps({"columns": self.feature_columns(), "spec": self.to_dict()}))

    def validate(self, df: pl.DataFrame, *, training: bool, where: str = "input frame") -> None:
        """Fail with a message naming every missing column and every column of the wrong kind."""
        needed = self.feature_columns() + (self.label_columns() if training else [])
        missing = [c for c in needed if c not in df.columns]
        if missing:
            raise FeatureError(f"{where}: missing column(s) {missing}; the feature contract is in docs/contracts.md")
        problems = []
        for col in [*self.numeric, *self.action_numeric]:
            if not df.schema[col].is_numeric():
                problems.append(f"{col} should be numeric, is {df.schema[col]}")
        if self.sequence is not None:
            s = self.sequence
            for col in (s.product_ids, s.categories, s.event_types, s.age_hours):
                if not isinstance(df.schema[col], pl.List):
                    problems.append(f"{col} should be a list column, is {df.schema[col]}")
        if self.hour_gap is not None:
            send_at, active_hour = self.hour_gap
            if not isinstance(df.schema[send_at], pl.Datetime):
                problems.append(f"{send_at} should be a timestamp (UTC), is {df.schema[send_at]}")
            if not df.schema[active_hour].is_integer():
                problems.append(f"{active_hour} should be an integer hour (UTC), is {df.schema[active_hour]}")
        if problems:
            raise FeatureError(f"{where}: " + "; ".join(problems))


# Who a message moves depends on the channel and the offer together with who reads it: an email may move
# English readers and an SMS Chinese ones, free shipping matter more away from the big cities. A channel
# weight plus a locale weight cannot say so; a weight per (channel, locale) pair can. Every customer
# attribute with both choices, so nothing guesses which pairs matter: the cross-validated L2 of the wide
# start shrinks those the data do not support. (The active hour is left out: the send-hour gap carries the
# timing.) Not in the contract's default spec: on the simulator's closed loop the first model, fitted on a
# week of exploration, planned worse with them (README, "The effect predictor").
CUSTOMER_CROSSES = tuple(
    (action, attribute)
    for action in ("channel", "o_type")
    for attribute in ("u_city_tier", "u_member_level", "u_locale", "u_gender", "u_preferred_platform")
)


def contract_spec(max_len: int = 20, crosses: tuple[tuple[str, str], ...] = ()) -> FeatureSpec:
    """The feature list of docs/contracts.md: `fct_training_examples` / `fct_promo_candidates`."""
    return FeatureSpec(
        numeric=(
            "u_tenure_days", "u_recency_days", "u_events_7d", "u_events_30d", "u_events_90d",
            "u_purchases_30d", "u_purchases_90d", "u_carts_90d", "u_carts_per_view_90d", "u_purchases_per_cart_90d",
            "u_revenue_90d", "u_avg_price_90d", "u_price_sensitivity", "u_discount_responsiveness", "u_click_rate",
            "u_sends_7d", "u_sends_30d", "u_cat_affinity", "u_product_views_7d", "u_product_carts_30d",
            "u_product_purchases_90d", "p_price", "p_price_pct_in_category", "p_margin_rate", "p_popularity_30d",
            "p_conversion_rate_30d",
        ),
        categorical=(
            "u_active_hour", "u_city_tier", "u_member_level", "u_locale", "u_gender", "u_preferred_platform",
            "p_category", "p_brand",
        ),
        action_numeric=("o_depth", "o_value", "o_min_spend"),
        action_categorical=("o_type", "channel", "send_hour", SEND_HOUR_GAP),
        # Message counts (u_sends_7d, u_sends_30d) stay linear: each recent message wears the response down by
        # about the same factor (fatigue), which is a straight line in the logit, not a logarithm.
        log_numeric=(
            "u_tenure_days", "u_recency_days", "u_events_7d", "u_events_30d", "u_events_90d", "u_purchases_30d",
            "u_purchases_90d", "u_carts_90d", "u_revenue_90d", "u_avg_price_90d",
            "u_product_views_7d", "u_product_carts_30d", "u_product_purchases_90d", "p_price",
            "p_popularity_30d", "o_value", "o_min_spend",
        ),
        sequence=SequenceSpec(max_len=max_len),
        hour_gap=("send_at", "u_active_hour"),
        crosses=crosses,
    )


def with_derived_columns(df: pl.DataFrame, spec: FeatureSpec) -> pl.DataFrame:
    """Add `send_hour_gap`: the signed hours from the user's usual active hour to the send, -12..11.

    A message read when the customer is usually shopping moves them more than one arriving hours away, but
    `send_hour` alone is local time while the active hour comes from event timestamps (UTC): neither column,
    nor a sum of their weights, tells whether a send meets the customer. Both sides in UTC, the difference
    does, whatever the time zone. Signed, because the active hour is the hour of a day's *last* event, so
    the best send sits a little before it.
    """
    if spec.hour_gap is None:
        return df
    send_at, active_hour = spec.hour_gap
    gap = (pl.col(send_at).dt.hour().cast(pl.Int32) - pl.col(active_hour).cast(pl.Int32) + 12) % 24 - 12
    return df.with_columns(gap.alias(SEND_HOUR_GAP))


def unit_codes(df: pl.DataFrame, spec: FeatureSpec) -> torch.Tensor | None:
    """(N,) int64 code of each row's customer (`spec.unit`), equal codes for equal values; None when the
    spec has no unit column (every row its own customer)."""
    if spec.unit is None:
        return None
    if spec.unit not in df.columns:
        raise FeatureError(f"training frame: missing unit column {spec.unit!r} (FeatureSpec.unit: whose rows these are)")
    if df[spec.unit].null_count():
        raise FeatureError(f"training frame: unit column {spec.unit!r} has {df[spec.unit].null_count()} null value(s)")
    return torch.from_numpy(df[spec.unit].rank("dense").cast(pl.Int64).to_numpy().copy())


@dataclass
class Vocabulary:
    """Value -> index; index 0 is reserved for unknown values (and sequence padding)."""

    values: list[str]

    def __len__(self) -> int:
        return len(self.values) + 1

    def encode(self, series: pl.Series) -> np.ndarray:
        codes = series.cast(pl.Utf8).replace_strict(
            self.values, list(range(1, len(self.values) + 1)), default=UNKNOWN, return_dtype=pl.Int64
        )
        return codes.fill_null(UNKNOWN).to_numpy(writable=True)

    @classmethod
    def fit(cls, series: pl.Series, min_count: int, max_size: int | None = None) -> Vocabulary:
        counts = (
            series.cast(pl.Utf8).drop_nulls().value_counts(name="n")
            .filter(pl.col("n") >= min_count)
            .sort(["n", series.name], descending=[True, False])
        )
        values = counts[series.name].to_list()
        return cls(values[:max_size] if max_size else values)


@dataclass
class EncodedFrame:
    """A feature frame as tensors, row-aligned. Keys and shapes:

    numeric (N, Fn) float32 · categorical (N, Fc) int64 · action_numeric (N, Fa) float32 ·
    action_categorical (N, Fac) int64 · [action_cross (N, Fx) int64 when the spec has crosses] · [seq_product, seq_category, seq_event, seq_age (N, T) int64,
    seq_mask (N, T) bool, target_product, target_category (N,) int64] · [treated, click, convert,
    weight (N,) float32 when labels were present]
    """

    tensors: dict[str, torch.Tensor]

    def __len__(self) -> int:
        return int(next(iter(self.tensors.values())).shape[0])

    def take(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        return {k: v.index_select(0, index.to(v.device)) for k, v in self.tensors.items()}

    def to(self, device: torch.device) -> EncodedFrame:
        return EncodedFrame({k: v.to(device, non_blocking=True) for k, v in self.tensors.items()})

    def has_labels(self) -> bool:
        return "convert" in self.tensors


@dataclass
class FeatureEncoder:
    """Fitted vocabularies and numeric statistics: everything needed to turn a frame into tensors."""

    spec: FeatureSpec
    vocabularies: dict[str, Vocabulary] = field(default_factory=dict)
    numeric_mean: dict[str, float] = field(default_factory=dict)
    numeric_std: dict[str, float] = field(default_factory=dict)
    max_weight: float = 20.0  # clip of inverse-propensity weights

    # ------------------------------------------------------------------ fitting
    @classmethod
    def fit(cls, df: pl.DataFrame, spec: FeatureSpec, *, min_count: int = 2, max_weight: float = 20.0) -> FeatureEncoder:
        """Fit on the training split only (validation and serving rows must not shape the vocabulary)."""
        spec.validate(df, training=False, where="training frame")
        df = with_derived_columns(df, spec)
        enc = cls(spec=spec, max_weight=max_weight)
        for col in [*spec.numeric, *spec.action_numeric]:
            values = enc._raw_numeric(df, col)
            enc.numeric_mean[col] = float(np.nanmean(values)) if len(values) else 0.0
            std = float(np.nanstd(values)) if len(values) else 1.0
            enc.numeric_std[col] = std if std > 1e-9 else 1.0
        for col in [*spec.categorical, *spec.action_categorical]:
            enc.vocabularies[col] = Vocabulary.fit(df[col], min_count)
        if spec.sequence is not None:
            s = spec.sequence
            enc.vocabularies["product"] = Vocabulary.fit(
                pl.concat([df[s.target_product].cast(pl.Utf8), _flat(df[s.product_ids])]).rename("product"), min_count
            )
            enc.vocabularies["category"] = Vocabulary.fit(
                pl.concat([df[s.target_category].cast(pl.Utf8), _flat(df[s.categories])]).rename("category"), 1
            )
            enc.vocabularies["event_type"] = Vocabulary.fit(_flat(df[s.event_types]).rename("event_type"), 1)
        return enc

    def _raw_numeric(self, df: pl.DataFrame, col: str) -> np.ndarray:
        values = df[col].cast(pl.Float64).fill_nan(None).to_numpy().astype(np.float64, copy=False)
        if col in self.spec.log_numeric:
            values = np.log1p(np.maximum(values, 0.0))
        return values

    def cardinalities(self) -> dict[str, int]:
        """Embedding table sizes (vocabulary + unknown) per categorical feature and sequence vocabulary."""
        return {name: len(vocab) for name, vocab in self.vocabularies.items()}

    def cross_cardinalities(self) -> list[int]:
        """Table size of each of `spec.crosses` (code 0: either side unknown)."""
        return [len(self.vocabularies[a]) * len(self.vocabularies[c]) for a, c in self.spec.crosses]

    # ------------------------------------------------------------------ transforming
    def transform(self, df: pl.DataFrame, *, with_labels: bool | None = None) -> EncodedFrame:
        """Frame -> tensors. Labels are encoded when present (or required when with_labels=True)."""
        spec = self.spec
        if with_labels is None:
            with_labels = all(c in df.columns for c in spec.label_columns())
        spec.validate(df, training=with_labels)
        df = with_derived_columns(df, spec)
        t: dict[str, torch.Tensor] = {
            "numeric": self._numeric_block(df, spec.numeric),
            "categorical": self._categorical_block(df, spec.categorical),
            "action_numeric": self._numeric_block(df, spec.action_numeric),
            "action_categorical": self._categorical_block(df, spec.action_categorical),
        }
        if spec.crosses:
            t["action_cross"] = self._cross_block(t["action_categorical"], t["categorical"])
        if spec.sequence is not None:
            t.update(self._sequence_block(df, spec.sequence))
        if with_labels:
            t.update(self._label_block(df))
        return EncodedFrame(t)

    def _numeric_block(self, df: pl.DataFrame, cols: tuple[str, ...]) -> torch.Tensor:
        if not cols:
            return torch.zeros((df.height, 0), dtype=torch.float32)
        block = np.empty((df.height, len(cols)), dtype=np.float32)
        for j, col in enumerate(cols):
            values = (self._raw_numeric(df, col) - self.numeric_mean[col]) / self.numeric_std[col]
            block[:, j] = np.nan_to_num(values, nan=0.0, posinf=10.0, neginf=-10.0).clip(-10.0, 10.0)
        return torch.from_numpy(block)  # (N, F)

    def _categorical_block(self, df: pl.DataFrame, cols: tuple[str, ...]) -> torch.Tensor:
        if not cols:
            return torch.zeros((df.height, 0), dtype=torch.int64)
        block = np.stack([self.vocabularies[c].encode(df[c]) for c in cols], axis=1)
        return torch.from_numpy(np.ascontiguousarray(block, dtype=np.int64))  # (N, F)

    def _cross_block(self, action: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """(N, Fx) code of each row's (action value, context value) pair: a * |context vocabulary| + c, or 0
        (unknown) when either value is unknown, so an unseen pair falls back to the two main effects."""
        spec = self.spec
        codes = []
        for a_col, c_col in spec.crosses:
            a = action[:, spec.action_categorical.index(a_col)]
            c = context[:, spec.categorical.index(c_col)]
            codes.append(torch.where((a > UNKNOWN) & (c > UNKNOWN), a * len(self.vocabularies[c_col]) + c, UNKNOWN))
        return torch.stack(codes, dim=1)  # (N, Fx)

    def _sequence_block(self, df: pl.DataFrame, s: SequenceSpec) -> dict[str, torch.Tensor]:
        products, mask = _pad_lists(df[s.product_ids], s.max_len, self.vocabularies["product"].encode)
        categories, _ = _pad_lists(df[s.categories], s.max_len, self.vocabularies["category"].encode)
        events, _ = _pad_lists(df[s.event_types], s.max_len, self.vocabularies["event_type"].encode)
        ages, _ = _pad_lists(df[s.age_hours], s.max_len, lambda x: age_bucket(x.to_numpy(), s.age_buckets))
        return {
            "seq_product": torch.from_numpy(products),  # (N, T)
            "seq_category": torch.from_numpy(categories),  # (N, T)
            "seq_event": torch.from_numpy(events),  # (N, T)
            "seq_age": torch.from_numpy(ages),  # (N, T)
            "seq_mask": torch.from_numpy(mask),  # (N, T) True where an event is present
            "target_product": torch.from_numpy(self.vocabularies["product"].encode(df[s.target_product])),  # (N,)
            "target_category": torch.from_numpy(self.vocabularies["category"].encode(df[s.target_category])),
        }

    def _label_block(self, df: pl.DataFrame) -> dict[str, torch.Tensor]:
        spec = self.spec

        def as_float(col: str) -> np.ndarray:
            series = df[col]
            if series.null_count():
                raise FeatureError(f"label column {col!r} has {series.null_count()} null value(s)")
            return series.cast(pl.Float32).to_numpy().astype(np.float32)

        treated = as_float(spec.treatment)
        convert = as_float(spec.convert_label)
        click = as_float(spec.click_label) if spec.click_label else np.zeros_like(convert)
        weight = np.ones_like(convert)
        if spec.propensity and spec.propensity in df.columns:
            prop = df[spec.propensity].cast(pl.Float64).to_numpy()
            bad = np.isfinite(prop) & ((prop <= 0) | (prop > 1))
            if bad.any():
                raise FeatureError(f"column {spec.propensity!r}: {int(bad.sum())} value(s) outside (0, 1]")
            has = np.isfinite(prop)
            weight[has] = np.minimum(1.0 / prop[has], self.max_weight)
            weight = weight / weight.mean()
        return {
            "treated": torch.from_numpy(treated),
            "click": torch.from_numpy(click),
            "convert": torch.from_numpy(convert),
            "weight": torch.from_numpy(weight.astype(np.float32)),
        }

    # ------------------------------------------------------------------ persistence
    def to_json(self) -> str:
        return json.dumps(
            {
                "spec": self.spec.to_dict(),
                "vocabularies": {k: v.values for k, v in self.vocabularies.items()},
                "numeric_mean": self.numeric_mean,
                "numeric_std": self.numeric_std,
                "max_weight": self.max_weight,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> FeatureEncoder:
        data = json.loads(text)
        return cls(
            spec=FeatureSpec.from_dict(data["spec"]),
            vocabularies={k: Vocabulary(v) for k, v in data["vocabularies"].items()},
            numeric_mean=data["numeric_mean"],
            numeric_std=data["numeric_std"],
            max_weight=data["max_weight"],
        )


def age_bucket(hours: np.ndarray, n_buckets: int) -> np.ndarray:
    """1 + floor(log2(1 + hours)), clipped to [1, n_buckets - 1]; 0 stays free for padding."""
    hours = np.nan_to_num(np.asarray(hours, dtype=np.float64), nan=0.0).clip(min=0.0)
    return (1 + np.floor(np.log2(1.0 + hours))).clip(1, n_buckets - 1).astype(np.int64)


def _flat(series: pl.Series) -> pl.Series:
    """All elements of a list column, empty and null lists contributing nothing."""
    arr = series.to_arrow()
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return pl.Series(series.name, pc.list_flatten(arr)).cast(pl.Utf8)


def _pad_lists(series: pl.Series, max_len: int, encode) -> tuple[np.ndarray, np.ndarray]:
    """List column -> (N, max_len) int64 codes and (N, max_len) bool mask; keeps the first max_len items."""
    arr = series.list.head(max_len).to_arrow()
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    lengths = pc.fill_null(pc.list_value_length(arr), 0).to_numpy().astype(np.int64)  # (N,)
    flat = pl.Series(series.name, pc.list_flatten(arr))
    codes = np.asarray(encode(flat), dtype=np.int64)
    n = len(lengths)
    out = np.zeros((n, max_len), dtype=np.int64)
    mask = np.zeros((n, max_len), dtype=bool)
    if len(codes):
        rows = np.repeat(np.arange(n), lengths)
        starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
        cols = np.arange(len(codes)) - starts
        out[rows, cols] = codes
        mask[rows, cols] = True
    return out, mask
