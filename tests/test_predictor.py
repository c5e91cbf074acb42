"""Effect predictor: features, model, training (determinism, exact resume, DDP), metrics, evaluation."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from ml.predictor import metrics as M
from ml.predictor.evaluate import evaluate_predictor
from ml.predictor.features import EncodedFrame, FeatureEncoder, FeatureError, FeatureSpec, contract_spec
from ml.predictor.loader import PackedFrame
from ml.predictor.model import EffectPredictor, ModelConfig, effect_loss, expected_incremental_margin
from ml.predictor.predict import load_predictor, predictor_from_registry, publish_predictor
from ml.predictor.synthetic import synthetic_examples
from ml.predictor.train import (
    TrainConfig,
    base_rates,
    split_examples,
    train_predictor,
    validation_loss,
    validation_row_losses,
)
from ml.registry import Registry, SchemaMismatchError

TINY = ModelConfig(d_model=16, n_heads=2, n_layers=1, cat_dim=4, hidden=32, head_hidden=16)


def tiny_config(**overrides) -> TrainConfig:
    base = {"model": TINY, "epochs": 2, "batch_size": 128, "lr": 5e-3, "warmup_steps": 2, "patience": 5, "device": "cpu", "progress": False}
    return TrainConfig(**{**base, **overrides})


@pytest.fixture(scope="module")
def frame() -> pl.DataFrame:
    return synthetic_examples(n_rows=800, n_users=120, n_products=40, n_days=6, seed=3)


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(1)  # the test machine's cores are shared; one thread is also deterministic


# ---------------------------------------------------------------------------------------------- features
def test_encoding_shapes_and_padding(frame):
    spec = contract_spec()
    data = FeatureEncoder.fit(frame, spec).transform(frame)
    t = data.tensors
    n, T = frame.height, spec.sequence.max_len
    assert t["numeric"].shape == (n, len(spec.numeric))
    assert t["categorical"].shape == (n, len(spec.categorical))
    assert t["seq_product"].shape == t["seq_mask"].shape == (n, T)
    lengths = frame["seq_product_ids"].list.len().to_numpy()
    assert np.array_equal(t["seq_mask"].sum(1).numpy(), np.minimum(lengths, T))
    assert (t["seq_product"][~t["seq_mask"]] == 0).all()  # padding is index 0
    assert (t["seq_age"][t["seq_mask"]] >= 1).all()


def _same_batch(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    assert set(got) == set(want)
    for key, value in want.items():
        assert got[key].dtype == value.dtype and got[key].shape == value.shape, key
        assert torch.equal(got[key].cpu(), value.cpu()), key


@pytest.mark.parametrize("resident", [True, False])
def test_packed_batches_equal_key_by_key_gathers(frame, resident):
    data = FeatureEncoder.fit(frame, contract_spec()).transform(frame)
    packed = PackedFrame(data, "cpu", resident=resident)
    assert len(packed) == len(data) and packed.resident == resident
    index = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))[:100]
    _same_batch(packed.batch(index), data.take(index))
    _same_batch(packed.rows(10, 60), data.take(torch.arange(10, 60)))


def test_packed_frame_rejects_an_unsupported_dtype():
    with pytest.raises(TypeError, match="'extra'.*float64"):
        PackedFrame(EncodedFrame({"extra": torch.zeros(3, dtype=torch.float64)}), "cpu")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("resident", [True, False])
def test_packed_batches_on_cuda_match_the_host(frame, resident):
    data = FeatureEncoder.fit(frame, contract_spec()).transform(frame)
    packed = PackedFrame(data, "cuda", resident=resident)
    index = torch.randperm(len(data))[:256]
    batch = packed.batch(index.to(packed.index_device))
    assert all(v.device.type == "cuda" for v in batch.values())
    _same_batch(batch, data.take(index))


def test_missing_column_is_named(frame):
    enc = FeatureEncoder.fit(frame, contract_spec())
    with pytest.raises(FeatureError, match="o_depth"):
        enc.transform(frame.drop("o_depth"))
    with pytest.raises(FeatureError, match="should be a list"):
        enc.transform(frame.with_columns(pl.lit("x").alias("seq_categories")))


def test_send_hour_gap_is_the_signed_distance_in_one_clock():
    from datetime import datetime

    from ml.predictor.features import SEND_HOUR_GAP, with_derived_columns

    spec = contract_spec()
    rows = pl.DataFrame({
        "send_at": [datetime(2026, 11, 2, 1, 30), datetime(2026, 11, 2, 22), datetime(2026, 11, 1, 16), datetime(2026, 11, 2, 4)],
        "u_active_hour": pl.Series([23, 2, 4, None], dtype=pl.Int32),
    })
    # 01:30 is 2 h after 23:00 across midnight; 22:00 is 4 h before 02:00; 12 h apart reads -12; no active hour, no gap.
    assert with_derived_columns(rows, spec)[SEND_HOUR_GAP].to_list() == [2, -4, -12, None]
    assert SEND_HOUR_GAP in spec.action_categorical and SEND_HOUR_GAP not in spec.feature_columns()
    assert {"send_at", "u_active_hour"} <= set(spec.feature_columns())


def test_send_hour_gap_sources_are_checked(frame):
    enc = FeatureEncoder.fit(frame, contract_spec())
    with pytest.raises(FeatureError, match=r"missing column\(s\) \['send_at'\]"):
        enc.transform(frame.drop("send_at"))
    with pytest.raises(FeatureError, match="send_at should be a timestamp"):
        enc.transform(frame.with_columns(pl.col("send_at").cast(pl.Utf8)))
    with pytest.raises(FeatureError, match="u_active_hour should be an integer hour"):
        enc.transform(frame.with_columns(pl.col("u_active_hour").cast(pl.Float64)))


def test_cross_codes_pair_an_action_with_a_customer_attribute(frame):
    import dataclasses

    from ml.predictor.features import CUSTOMER_CROSSES

    spec = contract_spec(crosses=CUSTOMER_CROSSES)
    enc = FeatureEncoder.fit(frame, spec)
    t = enc.transform(frame).tensors
    assert t["action_cross"].shape == (frame.height, len(spec.crosses))
    j = spec.crosses.index(("channel", "u_locale"))
    channel = t["action_categorical"][:, spec.action_categorical.index("channel")]
    locale = t["categorical"][:, spec.categorical.index("u_locale")]
    assert torch.equal(t["action_cross"][:, j], channel * len(enc.vocabularies["u_locale"]) + locale)
    assert len(set(t["action_cross"][:, j].tolist())) == 3 * 2  # every (channel, locale) pair its own code
    # An unseen channel is unknown in every cross that has it: those rows keep the main effects only.
    unseen = enc.transform(frame.with_columns(pl.lit("fax").alias("channel"))).tensors["action_cross"]
    channel_crosses = [k for k, (action, _) in enumerate(spec.crosses) if action == "channel"]
    assert (unseen[:, channel_crosses] == 0).all()
    k = spec.crosses.index(("o_type", "u_locale"))
    assert torch.equal(unseen[:, k], t["action_cross"][:, k])  # the offer's crosses are untouched
    assert FeatureSpec.from_dict(spec.to_dict()) == spec
    saved_before_crosses = {k: v for k, v in spec.to_dict().items() if k != "crosses"}
    assert FeatureSpec.from_dict(saved_before_crosses).crosses == ()
    with pytest.raises(FeatureError, match=r"\('u_locale', 'channel'\)"):
        dataclasses.replace(spec, crosses=(("u_locale", "channel"),))


def test_crosses_let_the_wide_start_see_who_each_channel_moves():
    """Emails move English readers and SMS Chinese ones (12 points), nothing else moves anyone much (1 point).
    A channel weight plus a locale weight cannot rank those four cells; with the (channel, locale) pairs the
    wide start ranks both moved cells above all four others."""
    from ml.predictor.baselines import design_matrix, fit_wide_start
    from ml.predictor.features import CUSTOMER_CROSSES

    frame = synthetic_examples(n_rows=12_000, n_users=3_000, seed=11)
    rng = np.random.default_rng(11)
    moved = ((frame["channel"] == "email") & (frame["u_locale"] == "en-US")) | (
        (frame["channel"] == "sms") & (frame["u_locale"] == "zh-CN")
    )
    p = 0.03 + frame["is_treated"].to_numpy() * np.where(moved.to_numpy(), 0.12, 0.01)
    frame = frame.with_columns(pl.Series("label_convert", rng.random(frame.height) < p))
    cells = frame.select(pl.concat_str("channel", pl.lit("/"), "u_locale").alias("cell"), moved.alias("moved"))

    def uplift_by_cell(spec: FeatureSpec) -> pl.DataFrame:
        enc = FeatureEncoder.fit(frame, spec)
        data = enc.transform(frame)
        start = fit_wide_start(data, enc)
        none = design_matrix(data, enc, with_action=False) @ start.beta_none
        send = none + design_matrix(data, enc, with_action=True, with_crosses=True) @ start.beta_delta
        uplift = (torch.sigmoid(send) - torch.sigmoid(none)).numpy()
        return cells.with_columns(uplift=uplift).group_by("cell", "moved").agg(pl.col("uplift").mean())

    def separates(by_cell: pl.DataFrame) -> bool:
        return by_cell.filter("moved")["uplift"].min() > by_cell.filter(~pl.col("moved"))["uplift"].max()

    assert separates(uplift_by_cell(contract_spec(crosses=CUSTOMER_CROSSES)))
    assert not separates(uplift_by_cell(contract_spec()))


def test_the_send_hour_gap_carries_the_effect_of_timing():
    """The synthetic effect is about 2.4x larger for a send within an hour of the user's active hour than for
    one 6-12 h away. A T-learner on the contract's features sees it through the gap: the same rows, re-timed
    (send_hour unchanged), get a larger uplift near the active hour."""
    from ml.predictor.baselines import TLearner

    rows = synthetic_examples(n_rows=20_000, n_users=2_000, n_products=200, seed=5)
    enc = FeatureEncoder.fit(rows, contract_spec())
    model = TLearner(enc).fit(enc.transform(rows))
    day_start = pl.col("as_of_date").cast(pl.Datetime("us"))

    def uplift_when(offset_h: int) -> float:
        sent = day_start + pl.duration(hours=(pl.col("u_active_hour") + offset_h) % 24)
        retimed = rows.with_columns(sent.alias("send_at"))
        return float(model.predict(enc.transform(retimed))["uplift"].mean())

    near = np.mean([uplift_when(h) for h in (-1, 0, 1)])
    far = np.mean([uplift_when(h) for h in range(6, 19)])
    assert near > 1.4 * far


# ---------------------------------------------------------------------------------------------- model
def test_forward_shapes_and_margin(frame):
    enc = FeatureEncoder.fit(frame, contract_spec())
    model = EffectPredictor(TINY, enc)
    batch = enc.transform(frame.head(7)).tensors
    out = model(batch)
    for key in ("click", "convert_send", "convert_none", "delta"):
        assert out[key].shape == (7,)
    assert torch.allclose(out["convert_send"], out["convert_none"] + out["delta"])
    assert torch.isfinite(effect_loss(out, batch))
    # p = 100, depth 0.2, margin rate 0.3 (cost 70): 0.5·(80 − 70) − 0.2·(100 − 70) = −1
    m = expected_incremental_margin(*(torch.tensor([v]) for v in (0.5, 0.2, 100.0, 0.2, 0.3)))
    assert m.item() == pytest.approx(-1.0)


@pytest.mark.parametrize("with_crosses", [False, True], ids=["main-effects", "crosses"])
def test_wide_model_starts_at_the_logistic_regressions(frame, with_crosses):
    """Also with the opt-in crosses: their fitted weights land in `wide_cross` and the forward pass adds them."""
    from ml.predictor.baselines import design_matrix, fit_wide_start
    from ml.predictor.features import CUSTOMER_CROSSES

    enc = FeatureEncoder.fit(frame, contract_spec(crosses=CUSTOMER_CROSSES if with_crosses else ()))
    data = enc.transform(frame)
    torch.manual_seed(0)
    model = EffectPredictor(TINY, enc)
    l2 = model.init_wide(data, enc)
    with torch.no_grad():
        out = model.eval()(data.tensors)
    start = fit_wide_start(data, enc)
    assert l2 == start.l2
    x_t, x_c = design_matrix(data, enc, with_action=True, with_crosses=True), design_matrix(data, enc, with_action=False)
    none_logit = x_c @ start.beta_none
    expected = {
        "convert_none": torch.sigmoid(none_logit),
        "convert_send": torch.sigmoid(none_logit + x_t @ start.beta_delta),
        "click": torch.sigmoid(x_t @ start.beta_click),
    }
    for key, value in expected.items():
        assert np.allclose(torch.sigmoid(out[key]).numpy(), value.numpy(), atol=1e-5), key
    with pytest.raises(ValueError, match="wide=True"):
        EffectPredictor(ModelConfig(**{**TINY.to_dict(), "wide": False}), enc).init_wide(data, enc)


def test_cross_validation_shrinks_an_effect_fitted_on_a_handful_of_purchases():
    """A shop's first day: 300 sends, 8 purchases, 40 features of noise. The fixed weak penalty lets some rows'
    fitted shift of the logit grow large; the cross-validated one shrinks it towards the constant."""
    from ml.predictor.baselines import L2_GRID, fit_logistic, fit_logistic_cv

    gen = torch.Generator().manual_seed(3)
    x = torch.cat([torch.randn(300, 40, generator=gen, dtype=torch.float64), torch.ones(300, 1, dtype=torch.float64)], 1)
    y = torch.zeros(300, dtype=torch.float64)
    y[torch.randperm(300, generator=gen)[:8]] = 1.0
    w = torch.ones(300, dtype=torch.float64)
    weak = fit_logistic(x, y, w, l2=1e-3)
    tuned, l2 = fit_logistic_cv(x, y, w)
    assert l2 in L2_GRID and l2 > 1e-3
    assert (x @ tuned).std() < 0.5 * (x @ weak).std()


def test_folds_keep_each_customer_in_one_fold():
    from ml.predictor.baselines import fold_ids

    units = torch.arange(90).repeat_interleave(4)[torch.randperm(360, generator=torch.Generator().manual_seed(1))]
    fold = fold_ids(len(units), 3, seed=0, units=units)
    for u in range(90):
        assert fold[units == u].unique().numel() == 1
    assert sorted(torch.bincount(fold).tolist()) == [120, 120, 120]  # 30 customers x 4 rows in each fold
    assert torch.equal(fold, fold_ids(len(units), 3, seed=0, units=units))


def test_customer_folds_do_not_reward_memorising_repeated_customers():
    """A customer's rows on several days share their features. Here the features are noise and each customer
    has their own purchase rate: folds of rows score a model on customers it was fitted on, so a weak penalty
    that memorises them looks best; folds of customers see through it and shrink."""
    from ml.predictor.baselines import fit_logistic_cv

    n_customers, days = 120, 8
    units = torch.arange(n_customers).repeat_interleave(days)
    w = torch.ones(len(units), dtype=torch.float64)
    for seed in range(6):
        gen = torch.Generator().manual_seed(seed)
        x_customer = torch.randn(n_customers, 40, generator=gen, dtype=torch.float64)
        rate = 0.6 * torch.rand(n_customers, generator=gen, dtype=torch.float64) ** 2
        x = torch.cat([x_customer[units], torch.ones(len(units), 1, dtype=torch.float64)], 1)
        y = torch.bernoulli(rate[units], generator=gen)
        _, l2_rows = fit_logistic_cv(x, y, w)
        _, l2_customers = fit_logistic_cv(x, y, w, units=units)
        assert l2_customers > l2_rows, seed


def test_unit_codes_name_a_missing_column(frame):
    from ml.predictor.features import unit_codes

    codes = unit_codes(frame, contract_spec())
    assert codes is not None and codes.shape == (frame.height,)
    same = (frame["user_id"] == frame["user_id"][0]).to_numpy()
    assert (codes.numpy()[same] == codes[0].item()).all() and (codes.numpy()[~same] != codes[0].item()).all()
    with pytest.raises(FeatureError, match="unit column 'user_id'"):
        unit_codes(frame.drop("user_id"), contract_spec())
    assert unit_codes(frame.drop("user_id"), FeatureSpec(**{**contract_spec().to_dict(), "sequence": None, "unit": None})) is None


def test_cold_start_users_and_products_score(tmp_path, frame):
    result = train_predictor(frame, tiny_config(epochs=1), tmp_path)
    predictor = load_predictor(tmp_path, "cpu")
    cold = frame.head(3).with_columns(
        pl.lit("never-seen-user").alias("user_id"),
        pl.lit("never-seen-product").alias("product_id"),
        pl.lit("new-category").alias("p_category"),
        pl.lit("new-brand").alias("p_brand"),
        pl.lit([], dtype=pl.List(pl.Utf8)).alias("seq_product_ids"),
        pl.lit([], dtype=pl.List(pl.Utf8)).alias("seq_categories"),
        pl.lit([], dtype=pl.List(pl.Utf8)).alias("seq_event_types"),
        pl.lit([], dtype=pl.List(pl.Float64)).alias("seq_age_hours"),
    ).drop("label_convert", "label_click", "is_treated")
    scored = predictor.score(cold)
    for col in ("p_click", "p_convert_send", "p_convert_none", "uplift", "expected_incremental_margin"):
        values = scored[col].to_numpy()
        assert np.isfinite(values).all(), col
    assert ((scored["p_convert_send"] > 0) & (scored["p_convert_send"] < 1)).all()
    assert result.data_window["rows"] > 0


# ---------------------------------------------------------------------------------------------- training
def test_split_has_no_leakage(frame):
    train, valid = split_examples(frame, "time", 0.2)
    assert train["as_of_date"].max() < valid["as_of_date"].min()
    train, valid = split_examples(frame, "user", 0.2)
    assert not set(train["user_id"]) & set(valid["user_id"])
    assert train.height + valid.height == frame.height


def test_validation_judges_epochs_by_the_conversion_heads_only(frame):
    """The click head trains but does not choose the kept epoch: moving its output leaves the validation
    loss unchanged, moving the no-send baseline's changes it."""
    enc = FeatureEncoder.fit(frame, contract_spec())
    data = enc.transform(frame)
    torch.manual_seed(0)
    model = EffectPredictor(TINY, enc)
    cpu = torch.device("cpu")
    before = validation_loss(model, data, 4096, cpu)
    rows = validation_row_losses(model, data, 64, cpu)  # in small batches: the same rows, the same total
    assert rows.shape == (len(data),) and float(rows.sum()) == pytest.approx(before, rel=1e-6)
    with torch.no_grad():
        out = model.eval()(data.tensors)
    full, conversion = effect_loss(out, data.tensors), effect_loss(out, data.tensors, with_click=False)
    assert before == pytest.approx(float(conversion), rel=1e-5) and float(full) > float(conversion)
    with torch.no_grad():
        model.effect_head[-1].bias[1] += 3.0  # the click logit
    assert validation_loss(model, data, 4096, cpu) == pytest.approx(before, rel=1e-6)
    with torch.no_grad():
        model.baseline_head[-1].bias += 3.0  # P(convert | no send)
    assert validation_loss(model, data, 4096, cpu) > before + 0.1


def test_an_epoch_is_kept_only_when_it_beats_the_noise():
    from ml.predictor.train import improves_on

    gen = torch.Generator().manual_seed(0)
    best = torch.rand(5000, generator=gen, dtype=torch.float64) / 5000
    noise = torch.randn(5000, generator=gen, dtype=torch.float64) / 5000
    noise = noise - noise.mean()  # the totals then differ by the shift alone
    # Lower in total by 0.3 standard errors of the paired difference (sqrt(N) x its spread).
    slightly = best + noise - 0.3 * noise.std() / 5000**0.5
    clearly = best + noise - 0.2 * best  # lower by 20 %, far beyond the noise
    assert float(slightly.sum()) < float(best.sum())
    assert improves_on(slightly, best, 0.0) and not improves_on(slightly, best, 1.0)
    assert improves_on(clearly, best, 1.0) and improves_on(clearly, best, 3.0)
    assert not improves_on(best, best, 0.0)  # the same model is no improvement


def test_training_reduces_loss(tmp_path, frame):
    cfg = tiny_config(epochs=4)
    train, valid = split_examples(frame, "time", 0.2)
    enc = FeatureEncoder.fit(train, contract_spec())
    torch.manual_seed(cfg.seed)
    before = validation_loss(EffectPredictor(TINY, enc), enc.transform(valid), 512, torch.device("cpu"))
    result = train_predictor(frame, cfg, tmp_path)
    assert result.best_valid_loss < before - 0.05
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_same_seed_same_weights(tmp_path, frame):
    a = train_predictor(frame, tiny_config(epochs=1), tmp_path / "a").model.state_dict()
    b = train_predictor(frame, tiny_config(epochs=1), tmp_path / "b").model.state_dict()
    c = train_predictor(frame, tiny_config(epochs=1, seed=1), tmp_path / "c").model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


class Crash(RuntimeError):
    pass


def test_resume_after_crash_gives_identical_weights(tmp_path, frame):
    cfg = tiny_config(epochs=3, checkpoint_every=4, patience=1)  # early stopping state must survive too
    reference = train_predictor(frame, cfg, tmp_path / "uninterrupted")

    def crash_at(step: int) -> None:
        if step == 10:  # between checkpoints (step 8 mid-epoch) — the work after step 8 is lost
            raise Crash()

    with pytest.raises(Crash):
        train_predictor(frame, cfg, tmp_path / "crashed", step_hook=crash_at)
    resumed = train_predictor(frame, cfg, tmp_path / "crashed")
    assert resumed.steps == reference.steps
    assert resumed.best_epoch == reference.best_epoch
    ref, got = reference.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(ref[k], got[k]) for k in ref)

    # Another run's checkpoint in the directory (other data or config) is refused by name, never loaded.
    with pytest.raises(Crash):
        train_predictor(frame, cfg, tmp_path / "other", step_hook=crash_at)
    with pytest.raises(ValueError, match=r"checkpoint of another training run \(training rows: .* there"):
        train_predictor(frame.head(frame.height - 50), cfg, tmp_path / "other")
    with pytest.raises(ValueError, match="config lr: "):
        train_predictor(frame, tiny_config(epochs=3, checkpoint_every=4, patience=1, lr=0.5), tmp_path / "other")


def test_a_crash_in_the_refit_resumes_exactly(tmp_path, frame):
    cfg = tiny_config(epochs=2, checkpoint_every=3, refit=True)
    reference = train_predictor(frame, cfg, tmp_path / "uninterrupted")
    assert reference.refit_epochs is not None and reference.refit_epochs >= 1  # the refit trains
    calls = 0

    def crash_in_the_refit(step: int) -> None:
        nonlocal calls
        calls += 1
        if calls == reference.steps + 5:  # the refit's fifth step: after its checkpoint at step 3
            raise Crash()

    with pytest.raises(Crash):
        train_predictor(frame, cfg, tmp_path / "crashed", step_hook=crash_in_the_refit)
    resumed = train_predictor(frame, cfg, tmp_path / "crashed")
    ref, got = reference.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(ref[k], got[k]) for k in ref)
    assert not (tmp_path / "crashed" / "selection" / "checkpoint.pt").exists()


def test_the_refit_learns_from_the_validation_rows_too(tmp_path, frame):
    """With no epoch to keep, the refit is the start fitted on training + validation rows; without the
    refit, the model never sees the validation days."""
    from ml.predictor.features import unit_codes
    from ml.reproducibility import seed_everything

    train, valid = split_examples(frame, "time", 0.2)
    both = pl.concat([train, valid])
    cfg = tiny_config(epochs=0, refit=True)
    refitted = train_predictor(train, cfg, tmp_path / "refit", valid_df=valid)
    assert refitted.best_epoch == -1 and refitted.refit_epochs == 0
    assert refitted.data_window["rows"] == frame.height and refitted.data_window["last"] == str(frame["as_of_date"].max())
    enc = FeatureEncoder.fit(both, contract_spec())
    assert {k: v.values for k, v in refitted.encoder.vocabularies.items()} == {k: v.values for k, v in enc.vocabularies.items()}
    seed_everything(cfg.seed)
    expected = EffectPredictor(TINY, enc)
    expected.init_output_bias(*base_rates(both, enc.spec))
    expected.init_wide(enc.transform(both), enc, cfg.seed, unit_codes(both, enc.spec))
    want, got = expected.state_dict(), refitted.model.state_dict()
    assert all(torch.equal(want[k], got[k]) for k in want)

    kept = train_predictor(train, tiny_config(epochs=0), tmp_path / "kept", valid_df=valid)  # the default
    assert kept.refit_epochs is None and kept.data_window["rows"] == train.height
    assert "refit_epochs" not in kept.metrics() and refitted.metrics()["refit_epochs"] == 0


def _ddp_worker(rank: int, world: int, port: int, frame_path: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    result = train_predictor(pl.read_parquet(frame_path), tiny_config(epochs=1), Path(out) / "model")
    torch.save(result.model.state_dict(), Path(out) / f"rank{rank}.pt")


def test_ddp_two_cpu_processes_agree(tmp_path, frame):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    frame.write_parquet(tmp_path / "frame.parquet")
    # spawn, not fork: a forked child inherits the parent's OpenMP thread pool and can deadlock.
    torch.multiprocessing.spawn(_ddp_worker, args=(2, port, str(tmp_path / "frame.parquet"), str(tmp_path)), nprocs=2, join=True)
    a, b = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "model" / "model.pt").exists()


# ---------------------------------------------------------------------------------------------- metrics
def test_uplift_metrics_known_answers():
    # Sorted by score: top half has treated rates 1.0 and control 0.5 -> uplift@50% = 0.5.
    score = np.array([8, 7, 6, 5, 4, 3, 2, 1], dtype=float)
    t = np.array([1, 1, 0, 0, 1, 0, 1, 0], dtype=float)
    y = np.array([1, 1, 0, 1, 0, 1, 0, 0], dtype=float)
    assert M.uplift_at_k(y, t, score, 0.5) == pytest.approx(0.5)
    # Qini curve at n=4: Y_t=2, Y_c=1, N_t=2, N_c=2 -> 2 − 1·1 = 1.
    x, q = M.qini_curve(y, t, score)
    assert x[4] == 4 and q[4] == pytest.approx(1.0)
    perfect = y * t - y * (1 - t)
    assert M.qini_coefficient(y, t, perfect) == pytest.approx(1.0)
    assert M.qini_coefficient(y, t, np.zeros(8)) == pytest.approx(0.0)  # one tie group: the random line
    assert M.qini_coefficient(y, t, -perfect) < 0
    rng = np.random.default_rng(0)
    n = 20_000
    t = rng.random(n) < 0.5
    tau = rng.uniform(0, 0.3, n)
    y = rng.random(n) < 0.1 + tau * t
    good, bad = M.auuc(y, t, tau), M.auuc(y, t, -tau)
    assert good > 0.05 and bad < -0.05  # normalized by the outcome-level perfect ranking: small
    value, oracle = M.top_k_policy_value(tau, tau, 0.3)
    assert value == pytest.approx(oracle)
    ci = M.bootstrap(lambda a, b, c: M.uplift_at_k(a, b, c, 0.3), (y.astype(float), t.astype(float), tau), n_boot=50)
    assert ci.low < ci.value < ci.high
    assert ci.low > 0.15  # the true uplift of the top 30 % is about 0.255


def test_auc_and_calibration():
    assert M.auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.3, 0.4])) == 1.0
    assert M.auc(np.array([0, 1, 0, 1]), np.array([0.5, 0.5, 0.5, 0.5])) == 0.5
    # Exactly calibrated: in each bin, the observed rate equals the predicted probability.
    p = np.repeat([0.05, 0.25, 0.55, 0.85], 20)
    y = np.concatenate([np.r_[np.ones(k), np.zeros(20 - k)] for k in (1, 5, 11, 17)])
    assert M.expected_calibration_error(y, p) == pytest.approx(0.0, abs=1e-12)
    rng = np.random.default_rng(1)
    p = rng.uniform(0, 1, 100_000)
    assert M.expected_calibration_error(rng.random(p.size) < p, p) < 0.01
    assert M.expected_calibration_error(rng.random(p.size) < p, np.clip(p + 0.2, 0, 1)) > 0.1


# ---------------------------------------------------------------------------------------------- evaluation, registry
def test_evaluation_beside_baselines(tmp_path, frame):
    train, valid = split_examples(frame, "time", 0.25)
    result = train_predictor(train, tiny_config(epochs=2), tmp_path / "model", valid_df=valid)
    predictor = load_predictor(result.out_dir, "cpu")
    report = evaluate_predictor(predictor, valid, tmp_path / "eval", train_df=train, n_boot=20)
    assert set(report.models) == {"model", "t_learner", "t_learner_cv", "popularity_rule"}
    model = report.models["model"]
    for key in ("convert_send_auc", "convert_none_ece", "click_auc", "true_uplift_pearson", "policy_value_ratio_at_30"):
        assert np.isfinite(model[key]), key
    assert model["qini"]["ci_low"] <= model["qini"]["value"] <= model["qini"]["ci_high"]
    assert model["convert_send_auc_ci"]["value"] == model["convert_send_auc"]
    assert model["convert_send_auc_ci"]["ci_low"] <= model["convert_send_auc"] <= model["convert_send_auc_ci"]["ci_high"]
    for baseline in ("t_learner", "t_learner_cv"):
        diff = model[f"convert_send_auc_minus_{baseline}"]
        assert diff["value"] == pytest.approx(model["convert_send_auc"] - report.models[baseline]["convert_send_auc"])
    assert all(p.exists() and p.suffix == ".png" for p in report.plots)
    assert "| qini |" in report.markdown()


def test_predictor_through_registry(tmp_path, frame):
    result = train_predictor(frame, tiny_config(epochs=1), tmp_path / "model")
    registry = Registry(tmp_path / "artifacts")
    mv = publish_predictor(registry, result.out_dir, metrics=result.metrics(), data_window=result.data_window)
    assert "checkpoint.pt" not in mv.manifest["files"]
    registry.promote("effect_predictor", mv.version, reason="first model")
    predictor, loaded = predictor_from_registry(registry, device="cpu")
    assert loaded.version == mv.version
    assert predictor.score(frame.head(5)).height == 5
    other = FeatureSpec(**{**contract_spec().to_dict(), "sequence": None, "numeric": ("u_tenure_days",)})
    with pytest.raises(SchemaMismatchError, match="u_recency_days"):
        predictor_from_registry(registry, spec=other)


def test_tabular_variant_trains(tmp_path, frame):
    spec = FeatureSpec(
        numeric=("u_recency_days", "u_revenue_90d", "u_discount_responsiveness"),
        categorical=("u_member_level",),
        action_numeric=("o_depth",),
        action_categorical=("channel",),
        click_label="label_click",
        price=None, depth=None, margin_rate=None,
    )
    result = train_predictor(frame, tiny_config(epochs=2), tmp_path, spec=spec)
    assert result.model.sequence is None
    scored = load_predictor(tmp_path, "cpu").score(frame.head(4))
    assert "expected_incremental_margin" not in scored.columns and scored["uplift"].is_finite().all()


def test_expected_auc_against_true_probabilities():
    rng = np.random.default_rng(3)
    score = rng.normal(size=400)
    hard = (rng.random(400) < 0.3).astype(np.float64)
    assert M.expected_auc(hard, score) == pytest.approx(M.auc(hard, score))  # 0/1 probabilities: the plain AUC
    assert M.expected_auc(hard, np.zeros(400)) == pytest.approx(0.5)  # all tied
    # Soft labels: the mean AUC over outcomes drawn from p converges to it.
    p = 1.0 / (1.0 + np.exp(-2.0 * score + 1.0))
    noisy = score + rng.normal(scale=1.0, size=400)
    draws = [M.auc(rng.random(400) < p, noisy) for _ in range(2000)]
    assert M.expected_auc(p, noisy) == pytest.approx(np.mean(draws), abs=0.005)
    assert M.expected_auc(p, score) > M.expected_auc(p, noisy) > 0.5  # the true ranking is the best one
