"""The daily scoring chain, partitioned by day:
promo_candidates (dbt) -> promo_scores -> promo_plan -> promo_messages -> delivery_export.

Each asset replaces its day in the warehouse (re-running a day gives the same rows, seeded), and the
decision logic lives in `ml.delivery.planner`; this module reads and writes tables around it."""

import logging
import os
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import numpy as np
import polars as pl
from dagster_dbt import DbtCliResource, dbt_assets

from ml.delivery.planner import (
    ACTION_ORDER,
    CHANNEL_COST,
    PLAN_COLUMNS,
    PlanConfig,
    empty_plan,
    expand_actions,
    plan_day,
    prior_scores,
)
from ml.delivery.policy import observed_share, pace_budget, spend_correction
from orchestration.dbt import dbt_build, manifest_path, translator
from orchestration.defs.features import CANDIDATES_MODEL
from orchestration.partitions import daily_partitions
from orchestration.resources import PromoHome
from orchestration.warehouse import SERVED_JOIN, columns_of, served_tables_exist, table_exists

DECISIONS_KEY = dg.AssetKey(["delivery", "decision_log"])
GENERATOR_NAME = "copy_generator"
RANKER_NAME = "copy_ranker"


class PlanSettings(dg.Config):
    """The marketer's knobs for a day's plan (defaults suit the demo shop).

    `budget` is the daily budget. A campaign (`campaign_budget` with `campaign_start` and `campaign_end`,
    ISO dates) replaces it: each day gets its share of what is left of the campaign over the days left
    (`ml.delivery.policy.pace_budget`, optional Monday-first `weekday_weights`), so under-spend carries
    forward; outside the campaign's dates the budget is 0.

    `spend_correction_days`: predicted offer costs are corrected by realized over predicted spend of the
    serving model's sends of that many earlier days whose outcome window has closed (0 = off; see
    `ml.delivery.policy.spend_correction`: one day's budget as the prior's weight, the ratio's upper bound
    at `spend_correction_sds` standard deviations)."""

    budget: float = 300.0
    epsilon: float = 0.1
    holdout_share: float = 0.05
    cap_per_7d: int = 2
    sms_quota: int = 200
    seed: int = 7
    campaign_budget: float | None = None
    campaign_start: str | None = None
    campaign_end: str | None = None
    weekday_weights: list[float] | None = None
    spend_correction_days: int = 7
    spend_correction_sds: float = 1.0

    def campaign(self) -> tuple[float, date, date] | None:
        if self.campaign_budget is None:
            return None
        if not (self.campaign_start and self.campaign_end):
            raise ValueError("a campaign_budget needs campaign_start and campaign_end (ISO dates, e.g. 2026-11-01)")
        return self.campaign_budget, date.fromisoformat(self.campaign_start), date.fromisoformat(self.campaign_end)

    def plan_config(self, budget: float | None = None, cost_factor: float = 1.0) -> PlanConfig:
        return PlanConfig(
            budget=self.budget if budget is None else budget,
            cost_factor=cost_factor,
            epsilon=self.epsilon,
            holdout_share=self.holdout_share,
            cap_per_7d=self.cap_per_7d,
            channel_quota={"sms": self.sms_quota},
            seed=self.seed,
        )


def plan_run_config(job: dg.JobDefinition, settings: PlanSettings) -> dict[str, Any]:
    """Run config giving `settings` to every op of `job` that takes PlanSettings: the plan and the checks that
    judge it against the same knobs (a cap of 7 for the plan but the default 2 for the export's check would
    fail a correct export)."""
    fields = set(PlanSettings.model_fields)
    names = [
        name
        for name, node in job.graph.node_dict.items()
        if (schema := node.definition.config_schema) is not None
        and set(getattr(schema.config_type, "fields", {}) or {}) == fields
    ]
    if not names:
        raise ValueError(f"job {job.name!r} has no op configured by PlanSettings")
    return {"ops": {name: {"config": settings.model_dump()} for name in names}}


def day_budget(con: duckdb.DuckDBPyConnection, settings: PlanSettings, day: date) -> float:
    """The day's budget: the fixed daily one, or the campaign's paced share given what earlier days of the
    campaign planned to spend (expected cost of their sends)."""
    campaign = settings.campaign()
    if campaign is None:
        return settings.budget
    total, start, end = campaign
    if not start <= day <= end:
        return 0.0
    spent = 0.0
    if table_exists(con, "delivery", "decisions"):
        spent = con.execute(
            """select coalesce(sum(expected_cost), 0) from delivery.decisions
               where action = 'send' and decision_date >= ? and decision_date < ?""",
            [start, day],
        ).fetchall()[0][0]
    return pace_budget(total, start, end, day, float(spent), settings.weekday_weights)


# One model's sends of a span of days, with what their offer would cost if redeemed, the model's own
# P(convert | send) (delivery.scores; not the logged cost, which an earlier correction already scaled), whether
# the coupon was redeemed (an attributed conversion) so far, and how much of the window has been observed.
RECENT_SENDS_SQL = f"""
select s.o_depth * s.p_price as offer_cost, s.p_convert_send as p_convert,
       o.label_attributed_convert as redeemed, o.window_closed, {{observed_hours}} as observed_hours
{SERVED_JOIN}
where d.action = 'send' and d.model_version = ? and d.decision_date >= ? and d.decision_date < ?
"""

# How late coupons are redeemed: hours from send to redemption of the closed windows' sends of any model
# (a property of the shop's customers, not of the model) in the span.
REDEMPTION_DELAYS_SQL = """
select date_diff('second', d.send_at, o.attributed_convert_at) / 3600.0 as delay_hours
from delivery.decisions d
join marts.fct_delivery_outcomes o on o.decision_id = d.decision_id
where d.action = 'send' and o.window_closed and o.attributed_convert_at is not null
  and d.decision_date >= ? and d.decision_date < ?
"""
DELAY_DAYS = 28  # days of closed windows the redemption delays are read from


@dataclass(frozen=True)
class RecentSpend:
    """Offer cost of one model's recent sends: predicted (scaled by the share of each send's outcome seen so
    far), realized so far, the realized sum's variance under the model, and the sends counted."""

    predicted: float = 0.0
    realized: float = 0.0
    variance: float = 0.0
    sends: int = 0
    open_sends: int = 0  # of them, sends whose window is still open (counted by their observed share)


def recent_spend(con: duckdb.DuckDBPyConnection, day: date, days: int, model_version: str) -> RecentSpend:
    """`model_version`'s sends of the `days` days before `day`. Only the serving model's own: the bias being
    corrected is its own (a retrained model with less variance picks less over-predicted sends). A send whose
    window is open counts by the share of its redemptions expected by now (`observed_share`); nothing for
    the cold-start policy ("none"), which budgets on a prior."""
    if days < 1 or model_version == "none" or not served_tables_exist(con):
        return RecentSpend()
    # An outcomes mart built by an earlier version (before its next features run) has no delays: closed only.
    timed = {"observed_hours", "attributed_convert_at"} <= columns_of(con, "marts.fct_delivery_outcomes")
    sql = RECENT_SENDS_SQL.format(observed_hours="o.observed_hours" if timed else "0.0")
    sends = con.sql(sql, params=[model_version, day - timedelta(days=days), day]).pl()
    if sends.is_empty():
        return RecentSpend()
    delays = (con.sql(REDEMPTION_DELAYS_SQL, params=[day - timedelta(days=DELAY_DAYS), day]).pl()["delay_hours"].to_numpy()
              if timed else np.zeros(0))
    share = observed_share(delays, sends["observed_hours"].to_numpy(), sends["window_closed"].to_numpy())
    cost, p = sends["offer_cost"].to_numpy(), sends["p_convert"].to_numpy() * share  # P(redeemed by now)
    counted = share > 0
    return RecentSpend(
        predicted=float((p * cost).sum()),
        realized=float((cost * sends["redeemed"].to_numpy())[counted].sum()),
        variance=float((cost**2 * p * (1 - p)).sum()),
        sends=int(counted.sum()),
        open_sends=int((counted & ~sends["window_closed"].to_numpy()).sum()),
    )


def day_plan_config(
    con: duckdb.DuckDBPyConnection, settings: PlanSettings, day: date, model_version: str
) -> tuple[PlanConfig, RecentSpend]:
    """The day's PlanConfig (its budget, its cost correction for `model_version`'s scores) and the evidence
    the correction came from."""
    if settings.spend_correction_days < 0:
        raise ValueError(f"spend_correction_days must be >= 0, got {settings.spend_correction_days}")
    budget = day_budget(con, settings, day)
    spend = recent_spend(con, day, settings.spend_correction_days, model_version)
    factor = spend_correction(spend.predicted, spend.realized, spend.variance, budget, settings.spend_correction_sds)
    return settings.plan_config(budget, factor), spend


@dataclass
class PlanInputs:
    """What `plan_day` is given for a day: its config, the scored actions (PLAN_COLUMNS, in ACTION_ORDER),
    each user's sends of the 6 days before (the frequency cap's week) and the spend correction's evidence."""

    config: PlanConfig
    spend: RecentSpend
    model_version: str
    scored: pl.DataFrame
    recent_sends: pl.DataFrame


def serving_model(con: duckdb.DuckDBPyConnection, day: date) -> str:
    """The model version that scored `day` ("none": the cold-start prior, or no scores yet)."""
    versions = con.execute("select distinct model_version from delivery.scores where decision_date = ?", [day]).fetchall()
    return versions[0][0] if versions else "none"


def plan_inputs(con: duckdb.DuckDBPyConnection, settings: PlanSettings, day: date) -> PlanInputs:
    """The day's plan inputs from the warehouse (`promo_plan`; bench/closed_loop_pacing.py re-plans a served
    day from them)."""
    model_version = serving_model(con, day)
    cfg, spend = day_plan_config(con, settings, day, model_version)
    scored = con.sql(
        f"select {', '.join(PLAN_COLUMNS)} from delivery.scores where decision_date = DATE '{day}' "
        f"order by {', '.join(ACTION_ORDER)}"
    ).pl()
    recent = con.sql(
        f"""select user_id, count(*)::int as n_sends from delivery.decisions
            where action = 'send' and decision_date between DATE '{day - timedelta(days=6)}' and DATE '{day - timedelta(days=1)}'
            group by user_id"""
    ).pl()
    return PlanInputs(cfg, spend, model_version, scored, recent)


@dbt_assets(
    manifest=manifest_path(),
    select=CANDIDATES_MODEL,
    dagster_dbt_translator=translator(),
    partitions_def=daily_partitions(),
    pool="duckdb",
    name="promo_candidates",
)
def promo_candidates(context: dg.AssetExecutionContext, dbt: DbtCliResource, promo: PromoHome):
    promo.export_env()
    # The day goes by environment, not --vars: changed vars make dbt re-parse the whole project every day.
    os.environ["PROMO_SCORING_DATE"] = context.partition_key
    try:
        yield from dbt_build(dbt, ["build"], context, promo.paths.dbt_runs)
    finally:
        os.environ.pop("PROMO_SCORING_DATE", None)


def _replace_day(con: duckdb.DuckDBPyConnection, table: str, day: date, frame: pl.DataFrame, date_column: str) -> None:
    """Idempotent write of one day: delete it, insert the new rows, in one transaction."""
    con.execute("begin transaction")
    try:
        con.register("_frame", frame)
        con.execute(f"create table if not exists {table} as select * from _frame where false")
        existing = columns_of(con, table)
        for column, dtype, *_ in con.execute("describe _frame").fetchall():
            if column not in existing:  # a column added by a newer version: earlier days keep nulls
                con.execute(f'alter table {table} add column "{column}" {dtype}')
        con.execute(f"delete from {table} where {date_column} = ?", [day])
        con.execute(f"insert into {table} by name select * from _frame")
        con.unregister("_frame")
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise


def score_with_champion(promo: PromoHome, actions: pl.DataFrame, cfg: PlanConfig) -> tuple[pl.DataFrame, str]:
    """The champion effect predictor's uplift and expected incremental margin (net of the channel's cost)
    for every action; before any model is trained, the cold-start prior (the plan then explores)."""
    from ml.predictor.predict import MODEL_NAME, predictor_from_registry
    from ml.registry import Registry

    registry = Registry(promo.paths.artifacts)
    if actions.is_empty() or registry.champion_version(MODEL_NAME) is None:
        return prior_scores(actions, cfg), "none"
    predictor, version = predictor_from_registry(registry)
    scored = predictor.score(actions)
    channel_cost = pl.col("channel").replace_strict(CHANNEL_COST, return_dtype=pl.Float64)
    return (
        scored.with_columns(
            pl.col("uplift").alias("expected_uplift"),
            (pl.col("expected_incremental_margin") - channel_cost).alias("expected_margin"),
            (pl.col("p_convert_send") * pl.col("o_depth") * pl.col("p_price")).alias("expected_cost"),
        ),
        f"{MODEL_NAME}:{version.version}",
    )


SCORE_COLUMNS = (
    "user_id", "product_id", "offer_id", "channel", "send_hour", "send_at", "candidate_source",
    "candidate_reason", "o_depth", "p_price", "p_click", "p_convert_send", "p_convert_none",
    "expected_uplift", "expected_margin", "expected_cost",
)


SCORES_STAGING = "delivery._scores_staging"


def _swap_in_day(con: duckdb.DuckDBPyConnection, day: date) -> None:
    """Replace the day in delivery.scores with the staged rows, atomically."""
    con.execute("begin transaction")
    try:
        con.execute(f"create table if not exists delivery.scores as select * from {SCORES_STAGING} where false")
        existing = columns_of(con, "delivery.scores")
        for column, dtype, *_ in con.execute(f"describe {SCORES_STAGING}").fetchall():
            if column not in existing:  # a column added by a newer version: earlier days keep nulls
                con.execute(f'alter table delivery.scores add column "{column}" {dtype}')
        con.execute("delete from delivery.scores where decision_date = ?", [day])
        con.execute(f"insert into delivery.scores by name select * from {SCORES_STAGING}")
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise


class ScoringSettings(dg.Config):
    """How much of the day is in memory at once: candidates are expanded and scored this many users at a
    time (a million users' actions, with every feature, would not fit; each user's rows stay together).
    20,000 users is about 500k actions: at a million users, 50,000-user batches on top of DuckDB's buffers
    peaked at 12.5 GiB (bench.scale)."""

    batch_users: int = 20_000


@dg.asset(
    deps=[dg.AssetKey("promo_candidates"), dg.AssetKey("effect_predictor")],
    partitions_def=daily_partitions(),
    group_name="scoring",
    pool="duckdb",
    kinds={"duckdb", "polars"},
    description="Every candidate expanded by consented channel and send hour, scored by the champion "
    "effect predictor (or a conversion prior before the first model: uniform exploration), in batches of "
    "users so memory does not grow with the shop.",
)
def promo_scores(
    context: dg.AssetExecutionContext, promo: PromoHome, config: ScoringSettings
) -> dg.MaterializeResult:
    if config.batch_users < 1:
        raise ValueError(f"promo_scores: batch_users must be at least 1, got {config.batch_users}")
    day = date.fromisoformat(context.partition_key)
    cfg = PlanConfig()
    n_candidates = n_actions = n_users = 0
    model_version = "none"
    with promo.connect() as con:
        users = con.sql("select user_id, timezone, consent_push, consent_sms, consent_email from marts.dim_users").pl()
        ids = con.sql(
            f"select distinct user_id from marts.fct_promo_candidates where as_of_date = DATE '{day}' order by 1"
        ).pl()["user_id"]
        # Batches go to a staging table, each committed on its own (one transaction over the whole day held
        # every uncommitted batch in memory: 17 GiB at a million users); the day then replaces the old one in
        # one short transaction inside DuckDB, so a failure anywhere leaves the previous rows.
        con.execute(f"drop table if exists {SCORES_STAGING}")
        try:
            for start in range(0, max(ids.len(), 1), config.batch_users):
                batch = ids.slice(start, config.batch_users)
                bounds = [day, batch[0], batch[-1]] if batch.len() else [day, "", ""]
                candidates = con.sql(
                    "select * from marts.fct_promo_candidates where as_of_date = ? and user_id between ? and ?",
                    params=bounds,
                ).pl()
                actions = expand_actions(candidates, users.filter(pl.col("user_id").is_in(batch.implode())), day, cfg)
                scored, model_version = score_with_champion(promo, actions, cfg)
                out = scored.select(SCORE_COLUMNS).with_columns(
                    pl.lit(day).alias("decision_date"), pl.lit(model_version).alias("model_version")
                )
                con.register("_frame", out)
                con.execute(f"create table if not exists {SCORES_STAGING} as select * from _frame where false")
                con.execute(f"insert into {SCORES_STAGING} by name select * from _frame")
                con.unregister("_frame")
                n_candidates, n_actions = n_candidates + candidates.height, n_actions + out.height
                n_users += out["user_id"].n_unique()
                context.log.info(f"{day}: scored {n_actions:,} actions of {min(start + batch.len(), ids.len()):,} users")
            _swap_in_day(con, day)
        finally:
            con.execute(f"drop table if exists {SCORES_STAGING}")
    return dg.MaterializeResult(
        metadata={
            "candidates": n_candidates,
            "actions_scored": n_actions,
            "users": n_users,
            "model_version": model_version,
            "batch_users": config.batch_users,
        }
    )


def with_candidate_reasons(con: duckdb.DuckDBPyConnection, decisions: pl.DataFrame, day: date) -> pl.DataFrame:
    """Fill the reasons plan_day left null (the logged action's candidate: "source: why") from the day's
    scores, for the logged rows only."""
    if decisions.is_empty() or decisions["reason"].null_count() == 0:
        return decisions
    con.register("_decisions", decisions)
    try:
        filled = con.sql(
            f"""select d.* replace (coalesce(d.reason, s.candidate_source || ': ' || s.candidate_reason) as reason)
                from _decisions d
                left join (select * from delivery.scores where decision_date = DATE '{day}') s
                  using (user_id, product_id, offer_id, channel, send_hour)
                order by d.decision_id"""
        ).pl()
    finally:
        con.unregister("_decisions")
    if filled.height != decisions.height or filled["reason"].null_count():
        raise RuntimeError(f"{day}: {filled['reason'].null_count()} decisions found no scored candidate for their reason")
    return filled.select(decisions.columns).cast(decisions.schema)


@dg.asset(
    deps=[promo_scores],
    partitions_def=daily_partitions(),
    group_name="scoring",
    pool="duckdb",
    kinds={"duckdb"},
    description="The day's plan: one logged decision per user (send which offer, on which channel, at "
    "what hour, or nothing) under budget, quotas, caps, consent and quiet hours, with holdout, "
    "exploration and the propensity of every decision. Appended to delivery.decisions.",
)
def promo_plan(context: dg.AssetExecutionContext, promo: PromoHome, config: PlanSettings) -> dg.MaterializeResult:
    day = date.fromisoformat(context.partition_key)
    with promo.connect() as con:
        inputs = plan_inputs(con, config, day)
        cfg, spend, model_version = inputs.config, inputs.spend, inputs.model_version
        plan = (plan_day(inputs.scored, day, cfg, model_version, inputs.recent_sends, presorted=True)
                if inputs.scored.height else empty_plan(day, cfg))
        del inputs
        decisions = with_candidate_reasons(con, plan.decisions, day)
        _replace_day(con, "delivery.decisions", day, decisions, "decision_date")
        _replace_day(con, "delivery.plans", day, plan.summary.as_frame(), "decision_date")
    summary = plan.summary
    sends = plan.decisions.filter(pl.col("action") == "send")
    by_channel = sends.group_by("channel").len().sort("channel").rows()
    gap = "n/a" if summary.optimality_gap is None else f"{100 * summary.optimality_gap:.4f} %"
    context.log.info(
        f"{day}: {summary.sends} sends of {summary.users} decisions, expected cost {summary.expected_spend:.2f} "
        f"of {cfg.budget:.2f} (predicted costs x {cfg.cost_factor:.3f}: realized {spend.realized:.2f} of "
        f"{spend.predicted:.2f} predicted by now on {spend.sends} sends, {spend.open_sends} of them still open), "
        f"optimality gap {gap} ({summary.lp_bound_method})"
    )
    return dg.MaterializeResult(
        metadata={
            "decisions": summary.users,
            "sends": summary.sends,
            "holdout": summary.holdout_users,
            "capped": summary.capped_users,
            "exploration": int(plan.decisions["is_exploration"].sum()),
            "expected_spend": round(summary.expected_spend, 2),
            "budget": round(cfg.budget, 2),
            "cost_factor": round(cfg.cost_factor, 4),
            "spend_correction_evidence": dg.MetadataValue.json(
                {"predicted": round(spend.predicted, 2), "realized": round(spend.realized, 2),
                 "sd": round(spend.variance**0.5, 2), "sends": spend.sends,
                 "open_sends": spend.open_sends}
            ),
            "expected_incremental_margin": _rounded(summary.expected_margin),
            "expected_incremental_conversions": _rounded(summary.expected_incremental_conversions),
            "optimality_gap_percent": _rounded(None if summary.optimality_gap is None else 100 * summary.optimality_gap, 6),
            "lp_bound": _rounded(summary.lp_bound),
            "lp_bound_method": summary.lp_bound_method,
            "sends_by_channel": dg.MetadataValue.json(dict(by_channel)),
            "policy_version": summary.policy_version,
        }
    )


def _rounded(value: float | None, digits: int = 3) -> float | dg.MetadataValue:
    """Metadata needs a value: None (no trained model yet) shows as null."""
    return dg.MetadataValue.null() if value is None else round(value, digits)


@dg.asset(
    deps=[promo_plan, dg.AssetKey("copy_generator"), dg.AssetKey("copy_ranker")],
    partitions_def=daily_partitions(),
    group_name="scoring",
    pool="duckdb",
    kinds={"duckdb"},
    description="The words of every planned send, by the champion copy generator (K candidates over the "
    "tones, fact verifier, compliance rules; the best passing one by the champion click ranker, else by "
    "likelihood, with logged exploration over variants; or a safe template) or, before one is trained, safe "
    "templates: slots filled from the offer and product records, in the user's language, within the "
    "channel's length and with its opt-out line.",
)
def promo_messages(context: dg.AssetExecutionContext, promo: PromoHome) -> dg.MaterializeResult:
    from ml.generator.messages import write_messages

    day = date.fromisoformat(context.partition_key)
    generator, version = champion_generator(promo)
    ranker, ranker_version = champion_ranker(promo, context.log)
    with promo.connect() as con:
        sends = con.sql(
            f"""select d.decision_id, d.decision_date, d.channel, d.send_at, d.product_id, u.locale,
                       p.title, p.brand, p.category, p.subcategory, p.price, o.offer_id, o.offer_type, o.offer_value, o.min_spend,
                       o.valid_to, split_part(d.reason, ':', 1) as candidate_source,
                       date_diff('day', cast(u.signup_at as date), d.decision_date) as tenure_days,
                       f.recency_days, f.monetary_90d as revenue_90d
                from delivery.decisions d
                join marts.dim_users u using (user_id)
                join marts.dim_products p using (product_id)
                join staging.stg_offers o using (offer_id)
                left join marts.fct_user_features f using (user_id)
                where d.decision_date = DATE '{day}' and d.action = 'send'
                order by d.decision_id"""
        ).pl()
    written = write_messages(sends, generator, version, seed=day.toordinal(), ranker=ranker, ranker_version=ranker_version)
    messages = sends.select("decision_id", "decision_date", "channel", "locale").join(
        written, on="decision_id", how="left", maintain_order="left"
    )
    with promo.connect() as con:
        _replace_day(con, "delivery.messages", day, messages, "decision_date")
    by_source = messages.group_by("message_source").len().rows() if messages.height else []
    return dg.MaterializeResult(metadata={
        "messages": messages.height,
        "generator": version or "none (safe templates)",
        "ranker": f"{RANKER_NAME}:{ranker_version}" if ranker is not None else "likelihood",
        "by_source": dg.MetadataValue.json(dict(by_source)),
        "fallback_share": round(float(messages["used_fallback"].mean() or 0.0), 4) if messages.height else 0.0,
        "compliance_pass_rate": round(float(messages["compliance_passed"].mean() or 0.0), 4) if messages.height else 1.0,
        "preview": dg.MetadataValue.md("\n".join(
            f"- [{r['channel']}/{r['locale']}] {r['message']}"
            for r in messages.group_by("channel", "locale").head(2).iter_rows(named=True)
        )),
    })


def champion_generator(promo: PromoHome):
    """The champion copy generator and its version, or (None, "") before one is trained."""
    from ml.generator.generate import CopyGenerator

    return _champion(promo, GENERATOR_NAME, CopyGenerator.load)


def champion_ranker(promo: PromoHome, log: logging.Logger | dg.DagsterLogManager | None = None):
    """The champion click ranker of message variants and its version, or (None, "") before one is promoted.

    A champion fitted on an older feature layout cannot score this code's features; the ranker is optional,
    so the day's variants are ranked by likelihood (logged) until `copy_ranker` refits one."""
    from ml.generator.ranker import ClickRanker, RankerFeaturesChanged

    try:
        return _champion(promo, RANKER_NAME, ClickRanker.load)
    except RankerFeaturesChanged as err:
        (log or logging.getLogger(__name__)).warning(f"champion copy ranker not used ({err}): ranking by likelihood")
        return None, ""


def _champion(promo: PromoHome, name: str, load):
    """`load(path)` of the registry's champion of `name`, with its version; (None, "") when there is none."""
    from ml.registry import Registry

    registry = Registry(promo.paths.artifacts)
    version = registry.champion_version(name)
    if version is None:
        return None, ""
    return load(registry.get(name, version).path), version


@dg.asset(
    deps=[promo_messages],
    partitions_def=daily_partitions(),
    group_name="scoring",
    pool="duckdb",
    kinds={"duckdb", "parquet", "csv"},
    description="What the channel systems send: exports/date=D/delivery.{parquet,csv} (the only place a "
    "contact handle is resolved, for the consented channel) and delivery.exports (without contacts).",
)
def delivery_export(context: dg.AssetExecutionContext, promo: PromoHome) -> dg.MaterializeResult:
    day = date.fromisoformat(context.partition_key)
    with promo.connect() as con:
        rows = con.sql(
            f"""select d.decision_id as delivery_id, d.decision_date as export_date, d.user_id, d.channel,
                       d.send_at, d.offer_id, d.product_id, m.message, d.propensity, d.policy_version,
                       d.model_version, d.expected_cost,
                       case d.channel when 'email' then c.email when 'sms' then c.phone else 'push:' || d.user_id end
                           as contact
                from delivery.decisions d
                join delivery.messages m using (decision_id)
                left join private.user_contacts c using (user_id)
                where d.decision_date = DATE '{day}' and d.action = 'send' and not d.is_holdout
                order by d.decision_id"""
        ).pl()
        _replace_day(con, "delivery.exports", day, rows.drop("contact"), "export_date")
    folder = promo.paths.exports / f"date={day}"
    folder.mkdir(parents=True, exist_ok=True)
    for suffix, write in (("parquet", rows.write_parquet), ("csv", rows.write_csv)):
        tmp = folder / f"delivery.{suffix}.tmp"
        write(tmp)
        tmp.replace(folder / f"delivery.{suffix}")  # channel systems never read a half-written file
    return dg.MaterializeResult(
        metadata={"rows": rows.height, "path": dg.MetadataValue.path(str(folder / "delivery.parquet"))}
    )


@dg.asset_check(asset=promo_plan, blocking=True, description="Budget, consent, caps, holdout, propensities.")
def plan_respects_the_rules(context: dg.AssetCheckExecutionContext, promo: PromoHome, config: PlanSettings):
    day = context.run.tags.get("dagster/partition")
    with promo.connect() as con:
        cfg = config.plan_config(day_budget(con, config, date.fromisoformat(day)))
        d = con.sql(f"select * from delivery.decisions where decision_date = DATE '{day}'").pl()
        users = con.sql("select user_id, consent_push, consent_sms, consent_email from marts.dim_users").pl()
        week = con.sql(
            f"""select user_id, count(*) as n from delivery.decisions where action = 'send'
                and decision_date between DATE '{day}' - 6 and DATE '{day}' group by 1"""
        ).pl()
    sends = d.filter(pl.col("action") == "send").join(users, on="user_id", how="left")
    no_consent = sends.filter(
        ((pl.col("channel") == "push") & ~pl.col("consent_push"))
        | ((pl.col("channel") == "sms") & ~pl.col("consent_sms"))
        | ((pl.col("channel") == "email") & ~pl.col("consent_email"))
    ).height
    violations = {
        "spend_over_budget": max(0.0, float(sends["expected_cost"].sum() or 0) - cfg.budget),
        "sends_without_consent": no_consent,
        "holdout_users_sent": d.filter(pl.col("is_holdout") & (pl.col("action") == "send")).height,
        "users_over_cap": week.filter(pl.col("n") > cfg.cap_per_7d).height,
        "sms_over_quota": max(0, sends.filter(pl.col("channel") == "sms").height - cfg.channel_quota["sms"]),
        "bad_propensities": d.filter(~pl.col("propensity").is_between(0, 1, closed="right")).height,
        "missing_model_version": d.filter(pl.col("model_version").is_null()).height,
    }
    return dg.AssetCheckResult(passed=not any(violations.values()), metadata=violations)


@dg.asset_check(
    asset=delivery_export,
    blocking=True,
    description="What leaves the platform: exactly the day's non-holdout sends, consented channel, caps against "
    "the previous days' exports, a compliant message, propensity in (0, 1] and a model version on every row, "
    "and export files that match the table.",
)
def export_respects_the_rules(context: dg.AssetCheckExecutionContext, promo: PromoHome, config: PlanSettings):
    day = date.fromisoformat(context.run.tags["dagster/partition"])
    with promo.connect() as con:
        violations = export_violations(con, promo.paths.exports / f"date={day}", day, config.cap_per_7d)
        rows = con.execute("select count(*) from delivery.exports where export_date = ?", [day]).fetchall()[0][0]
    return dg.AssetCheckResult(passed=not any(violations.values()), metadata={**violations, "rows": rows})


def export_violations(con: duckdb.DuckDBPyConnection, folder: Path, day: date, cap_per_7d: int) -> dict[str, int]:
    """Count, per rule, the exported rows of `day` that break it (all zero: the export may leave)."""
    cursor = con.execute(
        """with e as (select * from delivery.exports where export_date = $day)
        select
          count(*) filter (where d.is_holdout) as holdout_users_exported,
          count(*) filter (where d.decision_id is null or d.action <> 'send') as exported_without_a_send,
          count(*) filter (where u.user_id is null or (e.channel = 'push' and not u.consent_push)
                           or (e.channel = 'sms' and not u.consent_sms) or (e.channel = 'email' and not u.consent_email))
              as sends_without_consent,
          count(*) filter (where m.decision_id is null or not m.compliance_passed or coalesce(e.message, '') = '')
              as messages_not_compliant,
          count(*) filter (where e.propensity is null or e.propensity <= 0 or e.propensity > 1) as bad_propensities,
          count(*) filter (where e.model_version is null or e.policy_version is null) as missing_versions,
          (select count(*) from delivery.decisions s
           where s.decision_date = $day and s.action = 'send' and not s.is_holdout
             and s.decision_id not in (select delivery_id from e)) as sends_not_exported,
          (select count(*) from (select user_id from delivery.exports
           where export_date between $day - 6 and $day group by 1 having count(*) > $cap)) as users_over_cap_in_exports,
          (select count(*) from e) as table_rows
        from e
        left join delivery.decisions d on d.decision_id = e.delivery_id
        left join marts.dim_users u on u.user_id = e.user_id
        left join delivery.messages m on m.decision_id = e.delivery_id""",
        {"day": day, "cap": cap_per_7d},
    )
    counts = dict(zip([c[0] for c in cursor.description], cursor.fetchall()[0], strict=True))
    table_rows = counts.pop("table_rows")
    readers = {"parquet": pl.scan_parquet, "csv": pl.scan_csv}
    file_rows = [
        readers[suffix](path).select(pl.len()).collect().item()
        for suffix in readers
        if (path := folder / f"delivery.{suffix}").exists()
    ]
    counts["export_files_missing"] = len(readers) - len(file_rows)
    counts["export_files_not_matching_table"] = sum(n != table_rows for n in file_rows)
    return {k: int(v) for k, v in counts.items()}


CALIBRATION_CHECK_DAYS = 14  # days of the serving model's explored sends the drift check reads


@dg.asset_check(
    asset=promo_plan, blocking=False,
    description="The serving model's conversions on its explored (uniform) sends of the last 14 days, overall "
    "and by offer type, within their intervals of what it predicted: a warning of drift.",
)
def serving_model_is_calibrated(context: dg.AssetCheckExecutionContext, promo: PromoHome) -> dg.AssetCheckResult:
    from orchestration.report import explored_calibration

    day = date.fromisoformat(context.run.tags["dagster/partition"])
    with promo.connect() as con:
        model = serving_model(con, day)
        segments = (explored_calibration(con, model, day - timedelta(days=CALIBRATION_CHECK_DAYS))
                    if model != "none" else pl.DataFrame())
    if segments.is_empty():
        return dg.AssetCheckResult(passed=True, metadata={"model": model, "note": "no explored send of a trained model "
                                                          "with a closed outcome window yet"})
    header = "| offer type | sends | predicted | conversions | interval of realized / predicted |\n|---|---:|---:|---:|---|\n"
    rows = "".join(f"| {r['offer_type']} | {r['decisions']} | {r['predicted_conversions']} | {r['conversions']} | "
                   f"[{r['ratio_low']}, {r['ratio_high']}]{' **off**' if r['miscalibrated'] else ''} |\n"
                   for r in segments.iter_rows(named=True))
    off = segments.filter(pl.col("miscalibrated"))["offer_type"].to_list()
    return dg.AssetCheckResult(
        passed=not off, severity=dg.AssetCheckSeverity.WARN,
        metadata={"model": model, "miscalibrated": ", ".join(off) or "none",
                  "segments": dg.MetadataValue.md(header + rows)},
    )


scoring_assets = [promo_candidates, promo_scores, promo_plan, promo_messages, delivery_export]
output_checks = [plan_respects_the_rules, export_respects_the_rules, serving_model_is_calibrated]
