"""Should a retrained model replace the champion? Off-policy evaluation of the policies two scorers imply.

A scorer (the effect predictor) becomes a policy through the planner: its expected margins go into the same
budgeted allocation that serves every morning. So a challenger is judged by the plan it would have made on
the latest logged days, against the plan the champion would have made, from the decisions actually logged
(with their exact propensities) and what followed them:

- Both target policies are the deterministic plans (`plan_day` without exploration) on each day's full action
  set, so π(logged action) is 1 where the plan does what the log did and 0 elsewhere.
- The reward of a logged decision is the margin it realized on its product within the attribution window
  (net of the discount paid and the channel's cost when a message was sent) minus a reference model's
  no-message margin for that user and product. Without the baseline, "send B" would be credited with B's
  organic sales and "nothing" with those of the logged product: a policy that messages people who buy
  anyway would look good. With it, a policy's value is its incremental margin per decision, which is also
  what the simulator's ground truth measures.
- IPS, self-normalized IPS and doubly robust estimates of challenger − champion on the same rows, with
  paired confidence intervals (`ml.delivery.ope.compare_policies`). The reward model for DR and the baseline
  is the challenger's, which never trained on the evaluation days; exact propensities keep DR unbiased
  whatever that model gets wrong.

Promotion: only when the doubly robust difference's interval lies above `min_improvement`. A first model
is compared with the policy that logged the data (uniform exploration) and promoted unless it is worse beyond
the uncertainty: the exploration it replaces does not try to earn anything.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import date
from typing import Protocol

import numpy as np
import polars as pl

from ml.delivery.ope import PolicyComparison, compare_policies
from ml.delivery.planner import CHANNEL_COST, PlanConfig, plan_day


class Scorer(Protocol):
    """What the gate needs of a model: `ml.predictor.predict.Predictor.score`."""

    def score(self, df: pl.DataFrame) -> pl.DataFrame: ...


ACTION_KEY = ("product_id", "offer_id", "channel", "send_hour")
ESTIMATORS = ("ips", "snips", "dr")


def deterministic_plan(
    scored: pl.DataFrame, day: date, cfg: PlanConfig, sends_last_6_days: pl.DataFrame | None = None
) -> pl.DataFrame:
    """The plan a scorer implies without exploration (same budget, caps, holdout and quotas as serving)."""
    return plan_day(scored, day, replace(cfg, epsilon=0.0, certify_gap=False), None, sends_last_6_days).decisions


def match_probability(logged: pl.DataFrame, plan: pl.DataFrame) -> np.ndarray:
    """π(logged action) under a deterministic plan, per logged row (in `logged`'s order): 1 where the plan
    sends the same (product, offer, channel, hour) or, like the log, nothing; else 0 (also for users the
    plan does not cover)."""
    chosen = plan.select(
        "user_id",
        pl.col("decision_date"),
        (pl.col("action") == "send").alias("_send"),
        *[pl.col(c).alias(f"_{c}") for c in ACTION_KEY],
    )
    joined = logged.select("user_id", "decision_date", "action", *ACTION_KEY).join(
        chosen, on=["user_id", "decision_date"], how="left", maintain_order="left"
    )
    same_action = pl.all_horizontal([pl.col(c) == pl.col(f"_{c}") for c in ACTION_KEY])
    match = (
        pl.when(pl.col("_send").is_null())
        .then(False)
        .when(pl.col("action") == "send")
        .then(pl.col("_send") & same_action)
        .otherwise(~pl.col("_send"))
    )
    return joined.select(match.fill_null(False).alias("m"))["m"].to_numpy().astype(np.float64)


def _unit_cost() -> pl.Expr:
    """What the shop paid for the product: price × (1 − margin rate)."""
    return pl.col("p_price") * (1.0 - pl.col("p_margin_rate"))


def incremental_rewards(logged: pl.DataFrame, p_convert_none_ref: np.ndarray) -> np.ndarray:
    """Realized margin of each logged decision on its product, net of discount and channel cost, minus the
    reference model's no-message margin for the same user and product (see the module docstring).

    `logged` needs action, channel, label_convert, p_price, p_margin_rate, o_depth."""
    treated = pl.col("action") == "send"
    channel_cost = pl.col("channel").replace_strict(CHANNEL_COST, default=0.0, return_dtype=pl.Float64)
    paid = pl.col("p_price") * (1.0 - pl.when(treated).then(pl.col("o_depth").fill_null(0.0)).otherwise(0.0))
    realized = pl.col("label_convert").cast(pl.Float64) * (paid - _unit_cost()) - pl.when(treated).then(
        channel_cost
    ).otherwise(0.0)
    baseline = pl.col("_p_none") * (pl.col("p_price") - _unit_cost())
    frame = logged.with_columns(pl.Series("_p_none", p_convert_none_ref, dtype=pl.Float64))
    return frame.select((realized - baseline).alias("r"))["r"].to_numpy()


def modelled_increment(scored_logged: pl.DataFrame) -> np.ndarray:
    """q̂ at the logged action in the same units as `incremental_rewards`: the model's expected incremental
    margin net of channel cost for a send, 0 for nothing. Needs expected_incremental_margin from
    `Predictor.score`."""
    channel_cost = pl.col("channel").replace_strict(CHANNEL_COST, default=0.0, return_dtype=pl.Float64)
    return scored_logged.select(
        pl.when(pl.col("action") == "send")
        .then(pl.col("expected_incremental_margin") - channel_cost)
        .otherwise(0.0)
        .alias("q")
    )["q"].to_numpy()


def planned_increment(logged: pl.DataFrame, plan: pl.DataFrame, scored_actions: pl.DataFrame) -> np.ndarray:
    """q̂ of the action a deterministic plan takes for each logged user: the reward model's expected
    margin (net of channel cost) of the planned send, 0 for nothing. `scored_actions` holds the reward
    model's `expected_margin` for every action of the day."""
    planned = plan.filter(pl.col("action") == "send").select("user_id", "decision_date", *ACTION_KEY)
    valued = planned.join(
        scored_actions.select("user_id", *ACTION_KEY, pl.col("expected_margin").alias("_q")),
        on=["user_id", *ACTION_KEY],
        how="left",
    ).select("user_id", "decision_date", "_q")
    joined = logged.select("user_id", "decision_date").join(
        valued, on=["user_id", "decision_date"], how="left", maintain_order="left"
    )
    return joined["_q"].fill_null(0.0).to_numpy()


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str
    comparisons: dict[str, PolicyComparison]
    n_rows: int
    days: list[str]
    plans: pl.DataFrame | None = None  # the sends each policy's plan made on the gate days (policy column)

    def metrics(self) -> dict[str, float | int | str]:
        """Flat numbers for the registry and Dagster metadata (per-decision incremental margin)."""
        out: dict[str, float | int | str] = {"ope_rows": self.n_rows, "ope_days": ",".join(self.days)}
        for name, c in self.comparisons.items():
            out[f"{name}_challenger"] = round(c.challenger.value, 5)
            out[f"{name}_champion"] = round(c.champion.value, 5)
            out[f"{name}_difference"] = round(c.difference, 5)
            out[f"{name}_ci_low"] = round(c.ci_low, 5)
            out[f"{name}_ci_high"] = round(c.ci_high, 5)
            out[f"{name}_ess"] = round(c.challenger.effective_sample_size, 1)
        return out

    def markdown(self) -> str:
        lines = [
            "| estimator | challenger | champion | difference | 95 % interval | ESS (challenger) |",
            "|---|---:|---:|---:|---|---:|",
        ]
        for name, c in self.comparisons.items():
            lines.append(
                f"| {name} | {c.challenger.value:.4f} | {c.champion.value:.4f} | {c.difference:+.4f} | "
                f"[{c.ci_low:+.4f}, {c.ci_high:+.4f}] | {c.challenger.effective_sample_size:,.0f} |"
            )
        return "\n".join(lines) + f"\n\nValues: incremental margin per decision on {self.n_rows:,} logged decisions ({', '.join(self.days)}).\n\n**{self.reason}**"

    def to_dict(self) -> dict:
        return {
            "promote": self.promote,
            "reason": self.reason,
            "n_rows": self.n_rows,
            "days": self.days,
            "comparisons": {k: asdict(v) for k, v in self.comparisons.items()},
        }


def gate(
    rewards: np.ndarray,
    propensity: np.ndarray,
    challenger_prob: np.ndarray,
    champion_prob: np.ndarray,
    q_logged: np.ndarray,
    challenger_q: np.ndarray,
    champion_q: np.ndarray,
    *,
    first_model: bool,
    days: list[str],
    min_improvement: float = 0.0,
    confidence: float = 0.95,
) -> GateDecision:
    """Compare challenger and champion (or, for a first model, the logging policy) with IPS, SNIPS and DR;
    decide on the DR difference's interval."""
    if len(rewards) == 0:
        return GateDecision(False, "no logged decisions to evaluate on: keep the champion", {}, 0, days)
    comparisons = {
        name: compare_policies(
            rewards, propensity, challenger_prob, champion_prob, estimator=name,
            q_hat_logged=q_logged if name == "dr" else None,
            challenger_q_hat_target=challenger_q if name == "dr" else None,
            champion_q_hat_target=champion_q if name == "dr" else None,
            confidence=confidence, min_improvement=min_improvement,
        )
        for name in ESTIMATORS
    }
    dr = comparisons["dr"]
    interval = f"DR difference {dr.difference:+.4f} per decision, {confidence:.0%} interval [{dr.ci_low:+.4f}, {dr.ci_high:+.4f}]"
    if first_model:
        promote = dr.ci_high >= 0.0
        reason = (
            f"first model vs the exploration policy that logged the data: {interval}; "
            + ("not worse beyond the uncertainty: promoted" if promote else "worse beyond the uncertainty: not promoted")
        )
    else:
        promote = dr.challenger_is_better
        reason = f"challenger vs champion: {interval}; " + (
            f"better beyond the uncertainty (lower end > {min_improvement:g}): promoted"
            if promote
            else f"not better beyond the uncertainty (lower end <= {min_improvement:g}): champion kept"
        )
    return GateDecision(promote, reason, comparisons, len(rewards), days)


def score_actions(predictor: Scorer, actions: pl.DataFrame) -> pl.DataFrame:
    """A predictor's values for every action, as the planner reads them: expected_margin (incremental margin
    net of the channel's cost) and expected_cost (expected discount paid)."""
    channel_cost = pl.col("channel").replace_strict(CHANNEL_COST, default=0.0, return_dtype=pl.Float64)
    return predictor.score(actions).with_columns(
        pl.col("uplift").alias("expected_uplift"),
        (pl.col("expected_incremental_margin") - channel_cost).alias("expected_margin"),
        (pl.col("p_convert_send") * pl.col("o_depth") * pl.col("p_price")).alias("expected_cost"),
    )


def evaluate_challenger(
    logged: pl.DataFrame,
    actions: dict[date, pl.DataFrame],
    recent_sends: dict[date, pl.DataFrame],
    challenger: Scorer,
    champion: Scorer | None,
    cfg: PlanConfig,
    min_improvement: float = 0.0,
) -> GateDecision:
    """The gate on logged days: `logged` are the labelled decisions of those days (fct_training_examples
    rows: decision keys, action, propensity, labels, features), `actions[day]` the day's full action set
    (candidates expanded by `expand_actions`), `recent_sends[day]` user_id, n_sends in the 6 days before."""
    days = sorted(actions)
    if "decision_date" not in logged.columns:
        logged = logged.with_columns(pl.col("as_of_date").alias("decision_date"))
    logged = logged.filter(pl.col("decision_date").is_in(days)).sort("decision_date", "user_id")
    scored_logged = challenger.score(logged)
    rewards = incremental_rewards(logged, scored_logged["p_convert_none"].to_numpy())
    q_logged = modelled_increment(scored_logged)
    challenger_prob = np.zeros(logged.height)
    champion_prob = logged["propensity"].to_numpy().copy() if champion is None else np.zeros(logged.height)
    challenger_q = np.zeros(logged.height)
    champion_q = q_logged.copy() if champion is None else np.zeros(logged.height)
    plans: list[pl.DataFrame] = []

    def sends(plan: pl.DataFrame, policy: str) -> pl.DataFrame:
        keep = plan.filter(pl.col("action") == "send").select("decision_date", "user_id", *ACTION_KEY)
        return keep.with_columns(pl.lit(policy).alias("policy"))

    for day in days:
        rows = (logged["decision_date"] == day).to_numpy()
        day_logged = logged.filter(pl.Series(rows))
        reward_model = score_actions(challenger, actions[day])  # one reward model for both policies
        plan = deterministic_plan(reward_model, day, cfg, recent_sends.get(day))
        challenger_prob[rows] = match_probability(day_logged, plan)
        challenger_q[rows] = planned_increment(day_logged, plan, reward_model)
        plans.append(sends(plan, "challenger"))
        if champion is not None:
            plan = deterministic_plan(score_actions(champion, actions[day]), day, cfg, recent_sends.get(day))
            champion_prob[rows] = match_probability(day_logged, plan)
            champion_q[rows] = planned_increment(day_logged, plan, reward_model)
            plans.append(sends(plan, "champion"))
    decision = gate(
        rewards, logged["propensity"].to_numpy(), challenger_prob, champion_prob, q_logged, challenger_q, champion_q,
        first_model=champion is None, days=[str(d) for d in days], min_improvement=min_improvement,
    )
    return replace(decision, plans=pl.concat(plans) if plans else None)
