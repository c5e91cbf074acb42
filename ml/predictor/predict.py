"""A trained predictor as files (weights, encoder, config) and as a scorer of feature frames.

The folder written by `save_predictor` is what the registry publishes; `Predictor.score` is what the daily
scoring asset calls on `marts.fct_promo_candidates` expanded with `channel` and `send_hour`.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import torch

from ml.device import autocast_dtype, pick_device
from ml.predictor.calibration import Calibration
from ml.predictor.features import EncodedFrame, FeatureEncoder, FeatureError, FeatureSpec, contract_spec
from ml.predictor.loader import PackedFrame
from ml.predictor.model import EffectPredictor, ModelConfig, expected_incremental_margin
from ml.registry import ModelVersion, Registry

MODEL_NAME = "effect_predictor"
WEIGHTS_FILE = "model.pt"
ENCODER_FILE = "encoder.json"
MODEL_CONFIG_FILE = "model_config.json"
CALIBRATION_FILE = "calibration.json"  # optional: models saved without it score uncalibrated

CONTEXT_INPUTS = ("numeric", "categorical", "target_product", "target_category")  # plus every seq_* tensor
SCORE_COLUMNS = ("p_click", "p_convert_send", "p_convert_none", "uplift", "expected_incremental_margin")


@dataclass
class Predictor:
    """A model with its fitted encoder: frame in, probabilities, uplift and incremental margin out.

    `calibration` (fitted on the validation rows by `train_predictor`) maps each head's probability before
    uplift and margin are computed; `raw=True` in `predict_encoded` skips it (to fit one)."""

    model: EffectPredictor
    encoder: FeatureEncoder
    device: torch.device
    calibration: Calibration | None = None

    @property
    def spec(self) -> FeatureSpec:
        return self.encoder.spec

    @torch.no_grad()
    def predict_encoded(
        self, data: EncodedFrame, batch_size: int = 16384, context_of: torch.Tensor | None = None, raw: bool = False
    ) -> dict[str, np.ndarray]:
        """Probabilities for every row: click, convert_send, convert_none, uplift (send − none).

        `context_of` (N,): for each row, the first row with the same user x product context. The context
        (sequence Transformer and feature MLP, most of the cost) is then computed once per distinct context
        and shared by the actions on it (channels x send hours x offers)."""
        self.model.eval()
        dtype = autocast_dtype(self.device)
        n = len(data)
        if context_of is None:
            context_of = torch.arange(n)
        owners, inverse = torch.unique(context_of, return_inverse=True)  # (U,), (N,)
        # Context inputs are gathered per distinct context, action inputs read in row order; labels not at all.
        context_frame = PackedFrame(EncodedFrame({k: v for k, v in data.tensors.items() if k in CONTEXT_INPUTS or k.startswith("seq_")}), self.device)
        action_frame = PackedFrame(EncodedFrame({k: v for k, v in data.tensors.items() if k.startswith("action_")}), self.device)
        owners = owners.to(context_frame.index_device)
        inverse = inverse.to(self.device)
        contexts = []
        for start in range(0, len(owners), batch_size):
            batch = context_frame.batch(owners[start : start + batch_size])
            with torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None):
                contexts.append(self.model.context(batch))
        h_all = torch.cat(contexts) if contexts else torch.zeros(0, self.model.context_dim, device=self.device)
        chunks: dict[str, list[torch.Tensor]] = {"click": [], "convert_send": [], "convert_none": []}
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            with torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None):
                out = self.model.heads(h_all[inverse[start:stop]], action_frame.rows(start, stop))
            for key in chunks:
                chunks[key].append(torch.sigmoid(out[key].float()))
        probs = {k: (torch.cat(v).cpu().numpy() if v else np.zeros(0, np.float32)) for k, v in chunks.items()}
        probs["uplift"] = probs["convert_send"] - probs["convert_none"]
        return probs if raw or self.calibration is None else self.calibration.apply(probs)

    def score(self, df: pl.DataFrame, batch_size: int = 16384) -> pl.DataFrame:
        """`df` plus p_click, p_convert_send, p_convert_none, uplift and (when price, depth and margin
        rate columns exist) expected_incremental_margin."""
        data = self.encoder.transform(df, with_labels=False)
        probs = self.predict_encoded(data, batch_size, context_rows(df))
        out = df.with_columns(
            pl.Series("p_click", probs["click"]),
            pl.Series("p_convert_send", probs["convert_send"]),
            pl.Series("p_convert_none", probs["convert_none"]),
            pl.Series("uplift", probs["uplift"]),
        )
        spec = self.spec
        if spec.price and spec.depth and spec.margin_rate:
            margin = expected_incremental_margin(
                *(torch.from_numpy(out[c].cast(pl.Float64).to_numpy(writable=True)) for c in ("p_convert_send", "p_convert_none")),
                *(
                    torch.from_numpy(df[c].cast(pl.Float64).fill_null(0.0).to_numpy(writable=True))
                    for c in (spec.price, spec.depth, spec.margin_rate)
                ),
            )
            out = out.with_columns(pl.Series("expected_incremental_margin", margin.numpy()))
        return out


CONTEXT_KEY = ("user_id", "product_id", "as_of_date")


def context_rows(df: pl.DataFrame) -> torch.Tensor | None:
    """For each row, the first row with the same (user, product, as-of date): the point-in-time features
    and sequence are a function of that key, and only the action (offer, channel, hour) varies within it.
    None when the frame lacks the key (every row is then its own context)."""
    if not all(c in df.columns for c in CONTEXT_KEY):
        return None
    first = (
        df.select(CONTEXT_KEY).with_row_index("_row").group_by(CONTEXT_KEY).agg(pl.col("_row").min().alias("_first"))
    )
    owner = df.select(CONTEXT_KEY).join(first, on=list(CONTEXT_KEY), how="left", nulls_equal=True, maintain_order="left")
    return torch.from_numpy(owner["_first"].to_numpy().astype(np.int64))


def save_predictor(
    folder: Path, model: EffectPredictor, encoder: FeatureEncoder, calibration: Calibration | None = None
) -> Path:
    """Write weights, encoder (vocabularies, statistics, feature spec), model config and calibration to `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, folder / WEIGHTS_FILE)
    (folder / ENCODER_FILE).write_text(encoder.to_json())
    (folder / MODEL_CONFIG_FILE).write_text(json.dumps(model.cfg.to_dict(), indent=2))
    if calibration is not None:
        (folder / CALIBRATION_FILE).write_text(calibration.to_json())
    else:
        (folder / CALIBRATION_FILE).unlink(missing_ok=True)  # a refit over an earlier run's folder
    return folder


def load_predictor(folder: Path, device: str | torch.device | None = None, expected_spec: FeatureSpec | None = None) -> Predictor:
    """Load a folder written by `save_predictor`; with `expected_spec`, refuse a model built for other columns."""
    folder = Path(folder)
    for name in (WEIGHTS_FILE, ENCODER_FILE, MODEL_CONFIG_FILE):
        if not (folder / name).exists():
            raise FileNotFoundError(f"{folder}: not a saved predictor, {name} is missing")
    encoder = FeatureEncoder.from_json((folder / ENCODER_FILE).read_text())
    if expected_spec is not None and encoder.spec.schema() != expected_spec.schema():
        saved, wanted = set(encoder.spec.feature_columns()), set(expected_spec.feature_columns())
        raise FeatureError(
            f"{folder}: the model's feature schema differs from the expected one "
            f"(only in model: {sorted(saved - wanted)}, only expected: {sorted(wanted - saved)}, "
            "or the columns' roles differ); retrain the model on the current feature list"
        )
    dev = device if isinstance(device, torch.device) else pick_device(device)
    # Models saved before the wide paths existed have no "wide" key and no wide weights.
    cfg = ModelConfig(**{"wide": False, **json.loads((folder / MODEL_CONFIG_FILE).read_text())})
    model = EffectPredictor(cfg, encoder)
    model.load_state_dict(torch.load(folder / WEIGHTS_FILE, map_location="cpu", weights_only=True))
    calibration_file = folder / CALIBRATION_FILE
    calibration = Calibration.from_json(calibration_file.read_text()) if calibration_file.exists() else None
    return Predictor(model.to(dev).eval(), encoder, dev, calibration)


def publish_predictor(
    registry: Registry,
    folder: Path,
    *,
    metrics: dict,
    data_window: dict,
    config: dict | None = None,
    model_name: str = MODEL_NAME,
) -> ModelVersion:
    """Publish a folder written by `save_predictor` (e.g. TrainResult.out_dir) with its feature schema.

    The training checkpoint, if present, is left out: the registry stores what serving needs.
    """
    folder = Path(folder)
    encoder = FeatureEncoder.from_json((folder / ENCODER_FILE).read_text())
    with tempfile.TemporaryDirectory() as tmp:
        optional = [CALIBRATION_FILE] if (folder / CALIBRATION_FILE).exists() else []
        for name in (WEIGHTS_FILE, ENCODER_FILE, MODEL_CONFIG_FILE, *optional):
            shutil.copy2(folder / name, Path(tmp) / name)
        return registry.publish(
            model_name, tmp, config=config, feature_schema=encoder.spec.schema(), metrics=metrics, data_window=data_window
        )


def predictor_from_registry(
    registry: Registry,
    model_name: str = MODEL_NAME,
    version: str | None = None,
    spec: FeatureSpec | None = None,
    device: str | torch.device | None = None,
) -> tuple[Predictor, ModelVersion]:
    """The champion (or `version`), refusing one trained on another feature list than `spec` (default:
    the contract's)."""
    spec = spec or contract_spec()
    mv = registry.load(model_name, version, expected_schema=spec.schema())
    return load_predictor(mv.path, device, expected_spec=spec), mv
