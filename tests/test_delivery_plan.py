"""The daily plan around the allocator: hard rules hold against planted temptations, the plan is
reproducible, and logged propensities match how often each action is really chosen."""

from dataclasses import replace
from datetime import date, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from ml.delivery.planner import PLAN_COLUMNS, REASON_COLUMNS, PlanConfig, plan_day
from ml.delivery.policy import exploration_reserve, holdout_mask

DAY = date(2026, 11, 2)


def _scored(users: list[str], value: dict[tuple[str, str], float]) -> pl.DataFrame:
    rows = []
    for u in users:
        for channel in ("push", "sms"):
            rows.append(
                {
                    "user_id": u, "product_id": "p1", "offer_id": "o1", "channel": channel, "send_hour": 12,
                    "send_at": datetime(2026, 11, 2, 12), "candidate_source": "viewed_not_bought",
                    "candidate_reason": "viewed 2× in 7 days, not bought", "expected_uplift": 0.01,
                    "expected_margin": value.get((u, channel), 1.0), "expected_cost": 1.0,
                }
            )
    frame = pl.DataFrame(rows)
    # What promo_plan reads from delivery.scores, plus the optional reasons: the tests plan from these alone.
    assert set(frame.columns) == set(PLAN_COLUMNS) | set(REASON_COLUMNS)
    return frame


def test_plan_respects_caps_holdout_budget_and_logs_exact_propensities() -> None:
    users = [f"u{i:04d}" for i in range(400)]
    cfg = PlanConfig(budget=100.0, epsilon=0.2, holdout_share=0.05, channel_quota={"sms": 30}, seed=3)
    # The best score of all is a capped user's: they must not be contacted anyway.
    scored = _scored(users, {("u0007", "push"): 50.0})
    recent = pl.DataFrame({"user_id": ["u0007"], "n_sends": [2]})
    plan = plan_day(scored, DAY, cfg, "m1", recent).decisions
    assert plan.height == len(users) and plan["decision_id"].is_unique().all()
    assert plan.filter(pl.col("user_id") == "u0007")["action"].item() == "none"
    sends = plan.filter(pl.col("action") == "send")
    assert sends["expected_cost"].sum() <= cfg.budget
    assert sends.filter(pl.col("channel") == "sms").height <= 30
    hold = plan.filter(pl.col("is_holdout"))
    assert hold.height > 0 and (hold["action"] == "none").all() and (hold["propensity"] == 1.0).all()
    assert plan["propensity"].is_between(0, 1, closed="right").all()
    assert (plan["product_id"].is_not_null()).all()  # "nothing" rows log the counterfactual action
    # Same day, same seed: the same plan.
    assert plan.equals(plan_day(scored, DAY, cfg, "m1", recent).decisions)


def test_exploration_propensities_match_frequencies() -> None:
    users = [f"u{i:05d}" for i in range(3000)]
    cfg = PlanConfig(budget=1e9, epsilon=0.3, holdout_share=0.0, channel_quota={"sms": 10**6}, seed=5)
    scored = _scored(users, {(u, "sms"): 2.0 for u in users})  # greedy: sms for everyone
    plan = plan_day(scored, DAY, cfg, "m1").decisions
    # Greedy is sms for everyone; exploration draws among {push, sms, nothing}: P(sms) = 0.7 + 0.3/3 = 0.8.
    freq = plan.group_by("action", "channel").len()
    sms = freq.filter((pl.col("action") == "send") & (pl.col("channel") == "sms"))["len"].item() / len(users)
    assert sms == pytest.approx(0.8, abs=0.03)
    logged = plan.filter((pl.col("action") == "send") & (pl.col("channel") == "sms"))["propensity"].unique().to_list()
    assert logged == [pytest.approx(0.8)]
    push = plan.filter(pl.col("channel") == "push")
    assert push.height / len(users) == pytest.approx(0.1, abs=0.03)
    assert push["propensity"].unique().to_list() == [pytest.approx(0.1)]


def test_plan_summary_certifies_the_allocation_against_the_lp_bound() -> None:
    users = [f"u{i:04d}" for i in range(500)]
    values = {(u, "push"): 0.5 + (i % 17) / 10 for i, u in enumerate(users)}
    cfg = PlanConfig(budget=120.0, epsilon=0.1, holdout_share=0.05, channel_quota={"sms": 40}, seed=2)
    plan = plan_day(_scored(users, values), DAY, cfg, "m1")
    s = plan.summary
    assert s.lp_bound_method == "highs_lp" and s.optimality_gap is not None
    assert s.allocation_objective <= s.lp_bound + 1e-9 and 0.0 <= s.optimality_gap < 0.01
    assert s.allocator_budget < cfg.budget  # the exploration reserve is held back
    sends = plan.decisions.filter(pl.col("action") == "send")
    assert s.sends == sends.height and s.expected_spend == pytest.approx(sends["expected_cost"].sum())
    assert s.expected_spend <= cfg.budget and s.users == len(users)
    assert s.expected_incremental_conversions == pytest.approx(sends["expected_uplift"].sum())

    cold = plan_day(_scored(users, {}).with_columns(pl.lit(None, pl.Float64).alias("expected_margin")), DAY, cfg, None)
    assert cold.summary.optimality_gap is None and cold.summary.lp_bound_method.startswith("none")
    assert cold.summary.expected_margin is None and cold.summary.sends > 0


def test_the_exploration_reserve_is_resized_to_the_plan_and_exploration_stays_within_the_budget() -> None:
    users = [f"u{i:04d}" for i in range(600)]
    values = {(u, ch): 0.5 + (i * 7 % 23) / 10 + (ch == "sms") for i, u in enumerate(users) for ch in ("push", "sms")}
    cfg = PlanConfig(budget=150.0, epsilon=0.1, holdout_share=0.05, channel_quota={"sms": 400}, seed=4)
    scored = _scored(users, values)
    n_actions = 2 * len(users)
    user_of_action = np.repeat(np.arange(len(users)), 2)
    eligible = ~holdout_mask(users, cfg.holdout_share)[user_of_action]
    bound = exploration_reserve(user_of_action, eligible, np.ones(n_actions), len(users), cfg.epsilon)
    for offset in range(6):
        s = plan_day(scored, DAY + timedelta(days=offset), cfg, "m1").summary
        # Costing explored users by what the plan would have sent them leaves the allocator more than the bound.
        assert s.allocator_budget > cfg.budget - bound + 5.0
        assert s.expected_spend <= cfg.budget + 1e-9 and s.exploration_sends > 0


def test_campaign_budget_is_paced_over_its_days_and_under_spend_carries_forward() -> None:
    import duckdb

    from orchestration.defs.scoring import PlanSettings, day_budget

    con = duckdb.connect()
    settings = PlanSettings(campaign_budget=1000.0, campaign_start="2026-11-01", campaign_end="2026-11-10")
    assert day_budget(con, settings, date(2026, 11, 1)) == pytest.approx(100.0)  # no decisions table yet
    con.execute("create schema delivery")
    con.execute(
        """create table delivery.decisions as select * from (values
           (DATE '2026-11-01', 'send', 40.0), (DATE '2026-11-01', 'none', 99.0), (DATE '2026-11-02', 'send', 60.0),
           (DATE '2026-10-31', 'send', 500.0)) t(decision_date, action, expected_cost)"""
    )
    # Days 1-2 spent 100 of their 200: day 3 gets (1000 - 100) / 8 days left.
    assert day_budget(con, settings, date(2026, 11, 3)) == pytest.approx(900 / 8)
    assert day_budget(con, settings, date(2026, 11, 11)) == 0.0  # outside the campaign nothing is spent
    assert day_budget(con, PlanSettings(budget=250.0), date(2026, 11, 3)) == 250.0
    with pytest.raises(ValueError, match="campaign_start and campaign_end"):
        day_budget(con, PlanSettings(campaign_budget=10.0), date(2026, 11, 3))


def test_gx_suite_of_the_plan_passes_a_real_plan_and_catches_planted_faults() -> None:
    import duckdb

    from expectations.runner import validate_table

    users = [f"u{i:04d}" for i in range(200)]
    plan = plan_day(_scored(users, {}), DAY, PlanConfig(budget=50.0, channel_quota={"sms": 10}), "m1").decisions
    con = duckdb.connect()
    con.execute("create schema delivery")
    con.register("plan", plan)
    con.execute("create table delivery.decisions as select * from plan")
    ok = validate_table(con, "delivery_decisions", "delivery.decisions", params={"previous_rows_low": None, "previous_rows_high": None})
    assert ok.success, ok.to_metadata()
    con.execute("update delivery.decisions set propensity = 0 where user_id = 'u0003'")
    con.execute("insert into delivery.decisions select * replace ('dup' as decision_id) from delivery.decisions where user_id = 'u0004'")
    bad = validate_table(con, "delivery_decisions", "delivery.decisions", params={"previous_rows_low": None, "previous_rows_high": None})
    failed = {(f.expectation, f.column) for f in bad.failed if f.severity == "error"}
    assert ("expect_column_values_to_be_between", "propensity") in failed
    assert ("expect_compound_columns_to_be_unique", None) in failed


def test_plan_settings_reach_the_plan_and_every_check_that_judges_it() -> None:
    """A cap set for the plan but not for the export's check made a correct export fail (cap 7 vs 2)."""
    from orchestration.definitions import build_definitions
    from orchestration.defs.scoring import PlanSettings, plan_run_config

    job = build_definitions().resolve_job_def("daily_scoring_job")
    config = plan_run_config(job, PlanSettings(cap_per_7d=7))
    assert set(config["ops"]) == {
        "promo_plan", "promo_plan_plan_respects_the_rules", "delivery_export_export_respects_the_rules"
    }
    assert all(op["config"]["cap_per_7d"] == 7 for op in config["ops"].values())
    import dagster as dg

    dg.validate_run_config(job, config)  # the job's schema accepts it as it is


def test_cold_start_exploration_keeps_the_sms_quota_with_exact_propensities() -> None:
    """Before any model, the uniform draw ignored the SMS quota and the plan's blocking check failed the day."""
    users = [f"u{i:05d}" for i in range(4000)]
    cfg = PlanConfig(budget=1e9, epsilon=0.1, holdout_share=0.0, channel_quota={"sms": 150}, seed=11)
    cold = _scored(users, {}).with_columns(pl.lit(None, pl.Float64).alias("expected_margin"))
    # Uncapped, half of 0.3 x 4,000 sends (600) would be SMS.
    sms_sends, push_sends = [], []
    for seed in range(6):
        plan = plan_day(cold, DAY, replace(cfg, seed=seed), None).decisions
        sends = plan.filter(pl.col("action") == "send")
        sms = sends.filter(pl.col("channel") == "sms")
        assert 0 < sms.height <= 150
        # Exact propensities: an SMS action's is q * a / 2, a push action's q / 2, nothing's 1 - q (1 + a) / 2.
        (p_sms,) = sms["propensity"].unique().to_list()
        (p_push,) = sends.filter(pl.col("channel") == "push")["propensity"].unique().to_list()
        assert p_push == pytest.approx(0.15)
        a = p_sms / 0.15
        (p_none,) = plan.filter(pl.col("action") == "none")["propensity"].unique().to_list()
        assert p_none == pytest.approx(1 - 0.3 * (1 + a) / 2)
        sms_sends.append(sms.height / len(users))
        push_sends.append(sends.height / len(users) - sms.height / len(users))
    # Frequencies match the logged propensities.
    assert np.mean(push_sends) == pytest.approx(p_push, rel=0.05)
    assert np.mean(sms_sends) == pytest.approx(p_sms, rel=0.1)


def test_a_decision_to_send_nothing_logs_the_action_the_policy_would_have_sent() -> None:
    """The untreated outcome of a "nothing" row is read against its logged action: under the uniform
    exploration that is the user's draw, so both arms hold the same mix of actions (logging every unsent
    user's first candidate made the control arm all one channel); under a model, the plan's choice or
    the best one."""
    users = [f"u{i:05d}" for i in range(4000)]
    cfg = PlanConfig(budget=1e9, epsilon=0.1, holdout_share=0.05, channel_quota={"sms": 10**6}, seed=2)
    cold = _scored(users, {}).with_columns(pl.lit(None, pl.Float64).alias("expected_margin"))
    plan = plan_day(cold, DAY, cfg, None).decisions
    for action in ("send", "none"):
        arm = plan.filter(pl.col("action") == action)
        assert (arm["channel"] == "sms").mean() == pytest.approx(0.5, abs=0.05), action
    # With a model: nobody is worth a message (cost above value) and SMS is everyone's better action.
    scored = _scored(users, {(u, "sms"): -0.5 for u in users}).with_columns(
        pl.when(pl.col("channel") == "push").then(-0.9).otherwise(pl.col("expected_margin")).alias("expected_margin"))
    plan = plan_day(scored, DAY, replace(cfg, epsilon=0.0), "m1").decisions
    assert (plan["action"] == "none").all() and (plan["channel"] == "sms").all()


def test_the_plan_without_candidate_reasons_leaves_them_for_the_caller() -> None:
    """promo_plan reads neither the reasons (most of a scored row's bytes) nor re-sorts (rows come ordered)."""
    users = [f"u{i:04d}" for i in range(300)]
    cfg = PlanConfig(budget=80.0, epsilon=0.2, holdout_share=0.05, channel_quota={"sms": 20}, seed=4)
    scored = _scored(users, {("u0003", "sms"): 9.0}).sort("user_id", "product_id", "offer_id", "channel", "send_hour")
    full = plan_day(scored, DAY, cfg, "m1").decisions
    lean = plan_day(scored.drop(REASON_COLUMNS), DAY, cfg, "m1", presorted=True).decisions
    assert lean.drop("reason").equals(full.drop("reason"))
    from_candidate = full["reason"].str.starts_with("viewed_not_bought: ")
    assert lean.filter(from_candidate)["reason"].null_count() == int(from_candidate.sum()) > 0
    assert lean.filter(~from_candidate)["reason"].equals(full.filter(~from_candidate)["reason"])
