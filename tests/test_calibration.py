"""Platt recalibration of the predictor's heads: the fit, and training -> saving -> registry -> serving."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch
from scipy.special import expit, logit

from ml.predictor.calibration import Calibration, HeadCalibration, fit_calibration, fit_head
from ml.predictor.model import ModelConfig
from ml.predictor.predict import CALIBRATION_FILE, load_predictor, predictor_from_registry, publish_predictor
from ml.predictor.synthetic import synthetic_examples
from ml.predictor.train import TrainConfig, split_examples, train_predictor
from ml.registry import Registry

TINY = ModelConfig(d_model=16, n_heads=2, n_layers=1, cat_dim=4, hidden=32, head_hidden=16)


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(1)


def test_the_fit_recovers_a_known_distortion():
    """Outcomes drawn from expit(-0.7 + 0.8 logit p): the fitted intercept and slope are those numbers."""
    rng = np.random.default_rng(0)
    p = expit(rng.normal(-3.0, 1.0, 200_000))
    y = rng.random(p.size) < expit(-0.7 + 0.8 * logit(p))
    head = fit_head(p, y)
    assert head.intercept == pytest.approx(-0.7, abs=0.05)
    assert head.slope == pytest.approx(0.8, abs=0.02)
    assert head.rows == p.size and head.events == int(y.sum())
    calibrated = head.apply(p)
    assert calibrated.mean() == pytest.approx(y.mean(), rel=0.02)  # the level now matches the outcomes


def test_a_head_with_too_few_events_stays_the_identity():
    p = np.full(1000, 0.05)
    y = np.zeros(1000, dtype=bool)
    y[:3] = True
    head = fit_head(p, y, min_events=5)
    assert head == HeadCalibration(rows=0, events=3)
    assert np.array_equal(head.apply(p), p)


def test_each_head_is_fitted_on_the_rows_whose_outcome_it_predicts():
    """Sent rows convert at half the predicted rate, untreated rows at the predicted rate: only the send
    head moves, and uplift is recomputed from the calibrated heads."""
    rng = np.random.default_rng(1)
    n = 60_000
    treated = rng.random(n) < 0.5
    p_send, p_none = np.full(n, 0.08), np.full(n, 0.03)
    convert = np.where(treated, rng.random(n) < 0.04, rng.random(n) < 0.03)
    click = treated & (rng.random(n) < 0.2)
    probs = {"click": np.full(n, 0.2), "convert_send": p_send, "convert_none": p_none, "uplift": p_send - p_none}
    calibration = fit_calibration(probs, click, convert, treated)
    out = calibration.apply(probs)
    assert out["convert_send"].mean() == pytest.approx(0.04, rel=0.06)
    assert out["convert_none"].mean() == pytest.approx(0.03, rel=0.06)
    assert out["click"].mean() == pytest.approx(0.2, rel=0.03)
    assert np.allclose(out["uplift"], out["convert_send"] - out["convert_none"])
    assert Calibration.from_json(calibration.to_json()) == calibration


def _drifted(frame: pl.DataFrame, seed: int) -> pl.DataFrame:
    """Half of the purchases after a send removed: the validation days convert at about half the rate."""
    rng = np.random.default_rng(seed)
    drop = frame["is_treated"].to_numpy() & (rng.random(frame.height) < 0.5)
    return frame.with_columns(pl.col("label_convert") & pl.Series(~drop))


def test_training_calibrates_on_the_validation_rows_and_serving_applies_it(tmp_path):
    frame = synthetic_examples(n_rows=6000, n_users=600, n_products=60, n_days=8, seed=5)
    train, later = split_examples(frame, "time", 0.4)
    later = _drifted(later, seed=2)
    in_valid = later["user_id"].hash(7) % 2 == 0
    valid, check = later.filter(in_valid), later.filter(~in_valid)  # fit on one half, judge on the other
    cfg = TrainConfig(model=TINY, epochs=2, batch_size=256, lr=5e-3, warmup_steps=2, device="cpu", progress=False)
    result = train_predictor(train, cfg, tmp_path / "model", valid_df=valid)
    assert result.calibration is not None and result.data_window["calibrated"]
    assert result.calibration.heads["convert_send"].intercept < 0  # the level moved down
    assert "calibration_convert_send_intercept" in result.metrics()
    assert (tmp_path / "model" / CALIBRATION_FILE).exists()

    predictor = load_predictor(tmp_path / "model", device="cpu")
    data = predictor.encoder.transform(check, with_labels=False)
    raw, served = predictor.predict_encoded(data, raw=True), predictor.predict_encoded(data)
    sent = check["is_treated"].to_numpy()
    realized = check["label_convert"].to_numpy()[sent].mean()
    assert abs(served["convert_send"][sent].mean() - realized) < 0.5 * abs(raw["convert_send"][sent].mean() - realized)

    registry = Registry(tmp_path / "artifacts")
    version = publish_predictor(registry, result.out_dir, metrics=result.metrics(), data_window=result.data_window)
    assert CALIBRATION_FILE in version.manifest["files"]
    registry.promote("effect_predictor", version.version, reason="test")
    champion, _ = predictor_from_registry(registry, device="cpu")
    assert np.array_equal(champion.predict_encoded(data)["convert_send"], served["convert_send"])

    refitted = train_predictor(train, TrainConfig(**{**cfg.__dict__, "refit": True}), tmp_path / "refit", valid_df=valid)
    assert refitted.calibration is None and not refitted.data_window["calibrated"]
    assert not (tmp_path / "refit" / CALIBRATION_FILE).exists()  # nothing held out to fit it on
