"""The feedback loop's decisions: when the retrain sensor asks for a run, whether the off-policy gate promotes
a challenger, and that a failed retraining leaves the champion serving."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import dagster as dg
import numpy as np
import polars as pl
import pytest

from ml.delivery.planner import PlanConfig, plan_day
from ml.delivery.policy_eval import evaluate_challenger, match_probability
from orchestration.defs.sensors import (
    FEEDBACK_KEY,
    TRAINING_EXAMPLES_KEY,
    RetrainPolicy,
    RetrainState,
    decide_retrain,
    retrain_sensor,
)

DAY_S = 86_400.0


# ------------------------------------------------------------------------------------------ retrain sensor
def test_no_new_feedback_skips() -> None:
    state, skip = decide_retrain(RetrainState(), [], features_storage_id=5, now=1e9, policy=RetrainPolicy())
    assert skip and "no new feedback" in skip
    assert state.pending_rows == 0


def test_waits_for_the_features_to_include_the_feedback() -> None:
    state, skip = decide_retrain(RetrainState(), [(10, 5000)], features_storage_id=7, now=1e9, policy=RetrainPolicy())
    assert skip and "not rebuilt" in skip
    assert (state.feedback_storage_id, state.pending_rows) == (10, 5000)  # counted, not lost
    state, skip = decide_retrain(state, [], features_storage_id=12, now=1e9, policy=RetrainPolicy())
    assert skip is None and state.pending_rows == 0 and state.last_request_at == 1e9


def test_threshold_accumulates_across_loads_and_cadence_forces_a_run() -> None:
    policy = RetrainPolicy(min_new_rows=1000, every_days=7)
    state = RetrainState(feedback_storage_id=1, last_request_at=1e9)
    state, skip = decide_retrain(state, [(2, 400)], 3, 1e9 + DAY_S, policy)
    assert skip and "400 new feedback rows" in skip
    state, skip = decide_retrain(state, [(4, 700)], 5, 1e9 + 2 * DAY_S, policy)
    assert skip is None  # 1,100 rows
    state, skip = decide_retrain(state, [(6, 10)], 7, 1e9 + 3 * DAY_S, policy)
    assert skip and "10 new feedback rows" in skip
    state, skip = decide_retrain(state, [], 7, 1e9 + 10 * DAY_S, policy)
    assert skip is None  # a week later, any new feedback is enough


def test_before_a_first_champion_any_new_feedback_asks_for_a_run() -> None:
    state = RetrainState(feedback_storage_id=1, last_request_at=1e9)
    _, skip = decide_retrain(state, [(2, 50)], 3, 1e9 + 60, RetrainPolicy(min_new_rows=1000), has_champion=False)
    assert skip is None
    _, skip = decide_retrain(state, [(2, 50)], 3, 1e9 + 60, RetrainPolicy(min_new_rows=1000), has_champion=True)
    assert skip and "50 new feedback rows" in skip


def test_sensor_reads_the_event_log_and_requests_one_run(monkeypatch) -> None:
    monkeypatch.setenv("PROMO_RETRAIN_MIN_ROWS", "1000")
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance)
        assert retrain_sensor.evaluate_tick(context).skip_message.startswith("no new feedback")

        for rows in (600, 700):
            instance.report_runless_asset_event(dg.AssetMaterialization(FEEDBACK_KEY, metadata={"rows_loaded": rows}))
        first = retrain_sensor.evaluate_tick(dg.build_sensor_context(instance=instance))
        assert not first.run_requests and "not rebuilt" in first.skip_message

        instance.report_runless_asset_event(dg.AssetMaterialization(TRAINING_EXAMPLES_KEY))
        second = retrain_sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=first.cursor))
        assert len(second.run_requests) == 1
        assert second.run_requests[0].tags["promoloop/trigger"] == "1300 new feedback rows"

        third = retrain_sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=second.cursor))
        assert not third.run_requests and third.skip_message.startswith("no new feedback")


# ------------------------------------------------------------------------------------------ the gate
DAY = date(2026, 3, 2)
PRICES = np.array([40.0, 80.0, 120.0, 200.0])
MARGIN_RATE, DEPTH, P_NONE = 0.3, 0.1, 0.05


def _true_uplift(user: np.ndarray, product: np.ndarray) -> np.ndarray:
    """Half the (user, product) pairs respond strongly to a message, the rest are put off by it."""
    good = ((user * 7 + product * 3) % 4) < 2
    return np.where(good, 0.30, -0.04)


class Scorer:
    """Scores actions with the true uplift, or its opposite (a model that learned the wrong thing)."""

    def __init__(self, sign: float):
        self.sign = sign

    def score(self, df: pl.DataFrame) -> pl.DataFrame:
        user = df["user_id"].str.slice(1).cast(pl.Int64).to_numpy()
        product = df["product_id"].str.slice(1).cast(pl.Int64).to_numpy()
        uplift = self.sign * _true_uplift(user, product)
        p_send = np.clip(P_NONE + uplift, 0.0, 1.0)
        price = df["p_price"].to_numpy()
        cost = price * (1 - MARGIN_RATE)
        margin = p_send * (price * (1 - DEPTH) - cost) - P_NONE * (price - cost)
        return df.with_columns(
            pl.Series("p_click", p_send), pl.Series("p_convert_send", p_send), pl.Series("p_convert_none", np.full(len(df), P_NONE)),
            pl.Series("uplift", p_send - P_NONE), pl.Series("expected_incremental_margin", margin),
        )


def _actions(n_users: int, day: date) -> pl.DataFrame:
    users = np.repeat(np.arange(n_users), len(PRICES))
    products = np.tile(np.arange(len(PRICES)), n_users)
    start = datetime(day.year, day.month, day.day, 12)
    return pl.DataFrame({
        "user_id": [f"u{u:05d}" for u in users],
        "product_id": [f"p{p}" for p in products],
        "offer_id": "o10",
        "channel": "push",
        "send_hour": pl.Series([12] * len(users), dtype=pl.Int32),
        "send_at": [start] * len(users),
        "candidate_source": "popular",
        "candidate_reason": "popular in the user's category",
        "o_depth": DEPTH,
        "p_price": PRICES[products],
        "p_margin_rate": MARGIN_RATE,
    })


def _logged_days(n_users: int, days: list[date], epsilon: float, seed: int, cold_start: bool = False):
    """Decisions of an ε-greedy logging policy (a noisy scorer), or of the cold-start uniform exploration,
    with outcomes drawn from the truth."""
    from ml.delivery.planner import prior_scores
    from ml.delivery.policy_eval import score_actions

    rng = np.random.default_rng(seed)
    cfg = PlanConfig(budget=1500.0, epsilon=epsilon, channel_quota={})
    noisy = Scorer(sign=0.3)
    logged, actions = [], {}
    for day in days:
        acts = _actions(n_users, day)
        actions[day] = acts
        scored = prior_scores(acts, cfg) if cold_start else score_actions(noisy, acts)
        decisions = plan_day(scored, day, cfg, "logger").decisions
        rows = decisions.join(acts.select("user_id", "product_id", "p_price", "p_margin_rate", "o_depth"),
                              on=["user_id", "product_id"], how="left")
        user = rows["user_id"].str.slice(1).cast(pl.Int64).to_numpy()
        product = rows["product_id"].str.slice(1).cast(pl.Int64).to_numpy()
        sent = (rows["action"] == "send").to_numpy()
        p = np.where(sent, np.clip(P_NONE + _true_uplift(user, product), 0, 1), P_NONE)
        logged.append(rows.with_columns(pl.Series("label_convert", rng.random(len(p)) < p)))
    return pl.concat(logged), actions


@pytest.fixture(scope="module")
def logs():
    days = [DAY, DAY + timedelta(days=1)]
    return _logged_days(1500, days, epsilon=0.3, seed=3)


def test_match_probability_is_one_only_where_the_plan_agrees() -> None:
    logged = pl.DataFrame({
        "user_id": ["a", "b", "c", "d"], "decision_date": [DAY] * 4, "action": ["send", "send", "none", "none"],
        "product_id": ["p1", "p1", "p1", "p1"], "offer_id": "o", "channel": "push", "send_hour": [12, 12, 12, 12],
    })
    plan = pl.DataFrame({
        "user_id": ["a", "b", "c"], "decision_date": [DAY] * 3, "action": ["send", "send", "send"],
        "product_id": ["p1", "p2", "p1"], "offer_id": "o", "channel": "push", "send_hour": [12, 12, 12],
    })
    assert match_probability(logged, plan).tolist() == [1.0, 0.0, 0.0, 0.0]  # d: not planned at all


def test_worse_challenger_is_not_promoted(logs) -> None:
    logged, actions = logs
    decision = evaluate_challenger(logged, actions, {}, Scorer(-1.0), Scorer(1.0), PlanConfig(budget=1500.0, channel_quota={}))
    assert not decision.promote, decision.reason
    assert decision.comparisons["dr"].ci_high < 0  # worse, and clearly so
    assert "champion kept" in decision.reason


def test_better_challenger_is_promoted(logs) -> None:
    logged, actions = logs
    decision = evaluate_challenger(logged, actions, {}, Scorer(1.0), Scorer(-1.0), PlanConfig(budget=1500.0, channel_quota={}))
    assert decision.promote, decision.reason
    assert set(decision.plans["policy"].unique()) == {"challenger", "champion"}


def test_first_model_is_judged_against_the_exploration_that_logged_the_data() -> None:
    logged, actions = _logged_days(1500, [DAY, DAY + timedelta(days=1)], epsilon=0.0, seed=4, cold_start=True)
    assert logged["policy_version"][0].startswith("uniform-exploration")
    good = evaluate_challenger(logged, actions, {}, Scorer(1.0), None, PlanConfig(budget=1500.0, channel_quota={}))
    assert good.promote and "first model" in good.reason
    bad = evaluate_challenger(logged, actions, {}, Scorer(-1.0), None, PlanConfig(budget=1500.0, channel_quota={}))
    assert not bad.promote, bad.reason


# ------------------------------------------------------------------------------------------ failure
def test_failed_retraining_leaves_the_champion_serving(tmp_path, monkeypatch) -> None:
    import ml.predictor.train as train_module
    from ml.predictor.predict import MODEL_NAME, predictor_from_registry, publish_predictor
    from ml.predictor.synthetic import synthetic_examples
    from ml.predictor.train import TrainConfig, train_predictor
    from ml.registry import Registry
    from orchestration.defs.training import retrained_predictor, training_set_path
    from orchestration.resources import PromoHome

    promo = PromoHome(home=str(tmp_path))
    frame = synthetic_examples(n_rows=1500, n_days=4, seed=1)
    path = training_set_path(promo)
    path.parent.mkdir(parents=True)
    frame.write_parquet(path)
    registry = Registry(promo.paths.artifacts)
    trained = train_predictor(frame, TrainConfig(epochs=1, progress=False), tmp_path / "champion")
    version = publish_predictor(registry, trained.out_dir, metrics={}, data_window=trained.data_window)
    registry.promote(MODEL_NAME, version.version, reason="test champion")

    def out_of_memory(*args, **kwargs):
        raise RuntimeError("CUDA out of memory (simulated)")

    monkeypatch.setattr(train_module, "train_predictor", out_of_memory)
    result = dg.materialize(
        [retrained_predictor], resources={"promo": promo}, raise_on_error=False,
        run_config={"ops": {"retrained_predictor": {"config": {"min_rows": 100, "min_send_conversions": 0}}}},
    )
    assert not result.success
    assert registry.champion_version(MODEL_NAME) == version.version
    assert [d["action"] for d in registry.decisions(MODEL_NAME)] == ["promote"]
    assert len(registry.list_versions(MODEL_NAME)) == 1  # nothing half-published
    predictor, served = predictor_from_registry(registry)
    assert served.version == version.version
    assert predictor.score(frame.head(5)).height == 5


def test_no_model_is_trained_on_a_handful_of_purchases_after_sends(tmp_path) -> None:
    """Enough logged decisions but too few purchases after a send: exploration goes on, nothing is published."""
    from ml.predictor.predict import MODEL_NAME
    from ml.predictor.synthetic import synthetic_examples
    from ml.registry import Registry
    from orchestration.defs.training import effect_predictor, training_set_path
    from orchestration.resources import PromoHome

    promo = PromoHome(home=str(tmp_path))
    frame = synthetic_examples(n_rows=1500, n_days=4, seed=1)
    history = frame.filter(pl.col("as_of_date") < sorted(frame["as_of_date"].unique())[-2])
    send_conversions = history.filter(pl.col("is_treated") & pl.col("label_convert")).height
    assert send_conversions > 0
    path = training_set_path(promo)
    path.parent.mkdir(parents=True)
    frame.write_parquet(path)
    result = dg.materialize(
        [effect_predictor], resources={"promo": promo},
        run_config={"ops": {"effect_predictor": {"config": {"min_rows": 100, "min_send_conversions": send_conversions + 1}}}},
    )
    assert result.success
    assert not result.get_asset_materialization_events()
    assert Registry(promo.paths.artifacts).list_versions(MODEL_NAME) == []
