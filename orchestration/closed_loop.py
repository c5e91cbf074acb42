"""The closed-loop scorecard of `promoloop demo`: what the platform's daily plans truly caused, beside what
an oracle, a random policy and a marketer's rule would have caused on the same days with the same budget,
and how the retraining gate's off-policy estimates compare with the truth.

Only the demo (a simulated shop) can do this: the truth comes from `simulator.Shop.true_effect`. The report
is written as Markdown with PNG plots under `$PROMO_HOME/reports/`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

import duckdb
import polars as pl

from orchestration.settings import PromoPaths
from simulator.policies import POLICIES, compare_day, with_truth


@dataclass
class GateRecord:
    """One retraining decision, with the gate's estimates and the true values of the two plans."""

    day: date  # the loop day after which it ran
    version: str
    action: str  # promote | keep
    reason: str
    estimates: dict[str, float]  # DR/IPS/SNIPS challenger, champion, difference (per decision)
    true_challenger: float | None = None  # true incremental margin per decision of the challenger's plan
    true_champion: float | None = None


@dataclass
class Scorecard:
    days: list[dict] = field(default_factory=list)  # per day: policy -> value, plus the serving model
    gates: list[GateRecord] = field(default_factory=list)

    def frame(self) -> pl.DataFrame:
        return pl.DataFrame(self.days) if self.days else pl.DataFrame()

    def last_week(self, n: int = 7) -> dict[str, float]:
        """Sum of each policy's true incremental margin over the last `n` days."""
        tail = self.frame().tail(n)
        return {p: float(tail[f"{p}_margin"].sum()) for p in POLICIES} if tail.height else {}


def compare_policies_on_day(paths: PromoPaths, shop, day: date, budget: float, channel_quota: dict[str, int],
                            seed: int) -> dict:
    """Value the day's exported sends and the reference policies with the shop's ground truth."""
    con = duckdb.connect(str(paths.warehouse), read_only=True)
    try:
        actions = con.sql(
            f"""select user_id, product_id, offer_id, channel, send_hour, candidate_source, o_depth, model_version
                from delivery.scores where decision_date = DATE '{day}'
                order by user_id, product_id, offer_id, channel, send_hour"""
        ).pl()
        platform = con.sql(
            f"""select user_id, product_id, offer_id, channel, send_hour from delivery.decisions
                where decision_date = DATE '{day}' and action = 'send'"""
        ).pl()
        activity = con.sql("select user_id, events_30d as activity from marts.fct_user_features").pl()
        eligible = con.sql(
            f"""select user_id from delivery.decisions where decision_date = DATE '{day}'
                and not is_holdout and reason not like 'frequency cap%'"""
        ).pl()["user_id"]
    finally:
        con.close()
    if actions.is_empty():
        return {"day": day}
    truth = shop.true_effect(actions.with_columns(pl.lit(day).alias("day")))
    valued = with_truth(actions, truth)
    values = compare_day(valued, platform, budget=budget, channel_quota=channel_quota, eligible_users=eligible,
                         activity=activity, seed=seed)
    row: dict = {"day": day, "model": actions["model_version"][0]}
    for v in values:
        row[f"{v.policy}_margin"] = round(v.incremental_margin, 2)
        row[f"{v.policy}_conversions"] = round(v.incremental_conversions, 2)
        row[f"{v.policy}_cost"] = round(v.offer_cost, 2)
        row[f"{v.policy}_sends"] = v.sends
    return row


def true_plan_values(shop, plans: pl.DataFrame, n_decisions: int) -> dict[str, float]:
    """True incremental margin per logged decision of the gate's challenger and champion plans (their sends),
    in the units of the gate's estimates."""
    if plans.is_empty() or n_decisions == 0:
        return {}
    truth = shop.true_effect(plans.with_columns(pl.col("decision_date").alias("day")))
    valued = with_truth(plans, truth)
    return {
        policy: float(group["true_value"].sum()) / n_decisions
        for (policy,), group in valued.group_by(["policy"], maintain_order=True)
    }


def write_report(paths: PromoPaths, card: Scorecard, seconds: float) -> Path:
    """Markdown + PNGs under $PROMO_HOME/reports/; returns the Markdown file."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = paths.home / "reports"
    out.mkdir(parents=True, exist_ok=True)
    frame = card.frame()
    (out / "closed_loop.json").write_text(
        json.dumps({"days": card.days, "gates": [asdict(g) for g in card.gates]}, indent=2, default=str)
    )
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4))
    for policy in POLICIES:
        ax1.plot(frame["day"], frame[f"{policy}_margin"], marker="o", label=policy)
        ax2.plot(frame["day"], frame[f"{policy}_margin"].cum_sum(), label=policy)
    ax1.set_title("true incremental margin per day")
    ax2.set_title("cumulative")
    for ax in (ax1, ax2):
        ax.tick_params(axis="x", rotation=45)
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    plot = out / "closed_loop_margin.png"
    fig.savefig(plot, dpi=110)
    plt.close(fig)

    week = card.last_week()
    oracle = week.get("oracle", 0.0)
    share = {p: (week[p] / oracle if oracle > 0 else float("nan")) for p in POLICIES}
    rule = week.get("rule", 0.0)
    lines = [
        "# Closed loop: what the platform's plans truly caused",
        "",
        f"{frame.height} days; values are the simulator's true expected incremental margin (net of channel "
        f"cost) of each policy's sends on the platform's candidate set, for the users the platform could contact "
        f"that day (not holdout, not frequency-capped), with the same budget. Demo time {seconds:.0f} s.",
        "",
        f"Last {min(7, frame.height)} days: platform {week.get('platform', 0):,.1f} = **{share['platform']:.1%} of the oracle** "
        f"({oracle:,.1f}); rule {rule:,.1f} ({share['rule']:.1%}), random {week.get('random', 0):,.1f} ({share['random']:.1%}); "
        f"platform / rule = **{(week.get('platform', 0) / rule) if rule > 0 else float('nan'):.2f}×**.",
        "",
        f"![margin]({plot.name})",
        "",
        "| day | model | " + " | ".join(f"{p} margin (sends)" for p in POLICIES) + " | platform cost | oracle cost |",
        "|---|---|" + "---:|" * (len(POLICIES) + 2),
    ]
    for row in card.days:
        cells = " | ".join(f"{row.get(f'{p}_margin', 0):,.1f} ({row.get(f'{p}_sends', 0)})" for p in POLICIES)
        lines.append(f"| {row['day']} | {row.get('model', '')} | {cells} | {row.get('platform_cost', 0):,.1f} | {row.get('oracle_cost', 0):,.1f} |")
    lines += ["", "## Retraining decisions (off-policy gate, per decision)", ""]
    if card.gates:
        lines += [
            "| after day | version | decision | DR challenger | true challenger | DR champion | true champion | DR difference [95 % CI] |",
            "|---|---|---|---:|---:|---:|---:|---|",
        ]
        for g in card.gates:
            e = g.estimates

            def fmt(x: float | None) -> str:
                return "—" if x is None else f"{x:+.4f}"

            lines.append(
                f"| {g.day} | {g.version} | {g.action} | {fmt(e.get('dr_challenger'))} | {fmt(g.true_challenger)} | "
                f"{fmt(e.get('dr_champion'))} | {fmt(g.true_champion)} | {fmt(e.get('dr_difference'))} "
                f"[{fmt(e.get('dr_ci_low'))}, {fmt(e.get('dr_ci_high'))}] |"
            )
        lines += ["", "Reasons:", ""] + [f"- {g.day} {g.version}: {g.reason}" for g in card.gates]
    else:
        lines.append("No retraining ran.")
    report = out / "closed_loop.md"
    report.write_text("\n".join(lines) + "\n")
    return report
