"""`promoloop report`: what the daily plans did — per day sends by channel and offer type, expected spend
against the budget and the allocator's share of it, expected incremental conversions and margin, the
allocator's optimality gap, holdout and exploration — the serving model's calibration on the days it
served, and a spend-pacing plot."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
from scipy.stats import chi2

from orchestration.settings import PromoPaths
from orchestration.warehouse import SERVED_JOIN, columns_of, served_tables_exist, table_exists

DAILY_SQL = """
select d.decision_date as day,
       count(*) as users_considered,
       count(*) filter (where d.action = 'send') as sends,
       count(*) filter (where d.is_holdout) as holdout,
       count(*) filter (where d.is_exploration) as explored,
       count(*) filter (where d.action = 'send' and d.channel = 'push') as push,
       count(*) filter (where d.action = 'send' and d.channel = 'sms') as sms,
       count(*) filter (where d.action = 'send' and d.channel = 'email') as email,
       round(coalesce(sum(d.expected_cost) filter (where d.action = 'send'), 0), 2) as expected_spend,
       round(coalesce(sum(d.expected_margin) filter (where d.action = 'send'), 0), 2) as expected_margin,
       any_value(d.policy_version) as policy,
       any_value(d.model_version) as model
from delivery.decisions d
{where}
group by 1 order by 1
"""

# One row per planned day (promo_plan writes it): the day's budget, what the allocator got of it after the
# exploration reserve and what a unit more would have been worth to it (0: the budget did not bind), and how
# good the allocation provably is, and the factor its predicted costs were corrected by (realized spend).
PLANS_SQL = """
select decision_date as day, round(budget, 2) as budget, round(allocator_budget, 2) as allocator_budget,
       round({cost_factor}, 3) as cost_factor, round(lambda_budget, 3) as budget_multiplier,
       round(expected_incremental_conversions, 2) as expected_incr_conversions,
       round(100 * optimality_gap, 5) as gap_percent, lp_bound_method as bound
from delivery.plans {where}
"""

OFFER_SQL = """
select d.decision_date as day, o.offer_type, count(*) as sends
from delivery.decisions d join raw.offers o using (offer_id)
where d.action = 'send' {and_where}
group by 1, 2 order by 1, 2
"""


# The serving model's calibration where the outcome is known: predicted against realized conversions of
# the logged action, by arm. Explored sends are uniform draws, so their ratio is the model's calibration on
# the served days (drift); planned sends and "nothing" rows (logged with the action the plan valued most)
# are chosen by the model's own scores, so their ratio adds the winner's curse of picking its maxima.
# By offer type (sends only): a bias of one kind of offer, which one overall ratio averages away, and which
# a spend correction of the whole budget cannot undo (the planner keeps favouring the over-predicted kind).
CALIBRATION_SQL = f"""
with served as (
    select case when d.action = 'send' and d.is_exploration then 'explored send'
                when d.action = 'send' then 'planned send' else 'nothing' end as arm,
           {{offer_type}}
           case when d.action = 'send' then s.p_convert_send else s.p_convert_none end as predicted,
           o.label_convert
    {SERVED_JOIN}
    {{offers_join}}
    where d.model_version <> 'none' and not d.is_holdout and o.window_closed {{and_where}}
)

select {{group}},
       count(*) as decisions,
       sum(predicted) as predicted_conversions,
       count(*) filter (where label_convert) as conversions
from served
group by all order by all
"""


def ratio_interval(conversions: np.ndarray, predicted: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Exact (Garwood) Poisson interval of realized / predicted: the count's interval over the predicted sum.

    A served arm's conversions are a sum of independent Bernoulli draws, less variable than a Poisson count
    of the same mean, so the interval is a little wide, never too narrow; with the handful of conversions a
    segment has, a normal approximation would be."""
    alpha = 1.0 - level
    c = np.asarray(conversions, dtype=np.float64)
    expected = np.where(np.asarray(predicted, dtype=np.float64) > 0, predicted, np.nan)  # nothing predicted: no ratio
    low = np.where(c > 0, chi2.ppf(alpha / 2, 2 * c) / 2, 0.0)
    high = chi2.ppf(1 - alpha / 2, 2 * c + 2) / 2
    return low / expected, high / expected


def serving_calibration(
    con: duckdb.DuckDBPyConnection, day: date | None = None, by_offer_type: bool = False,
    model_version: str | None = None, since: date | None = None,
) -> pl.DataFrame:
    """Predicted vs realized conversions of the champion's decisions whose outcome window has closed, by arm
    (with `by_offer_type`: its sends by offer type and arm), with the ratio's 95 % interval (empty before a
    model served a day to its window's end); `day` or the days from `since`, of every model or one."""
    if not served_tables_exist(con) or (by_offer_type and not table_exists(con, "raw", "offers")):
        return pl.DataFrame()
    and_where = f"and d.decision_date = DATE '{day}'" if day else ""
    if since:
        and_where += f" and d.decision_date >= DATE '{since}'"
    if model_version:
        and_where += " and d.model_version = '{}'".format(model_version.replace("'", "''"))
    parts = {"group": "arm", "offer_type": "", "offers_join": ""}
    if by_offer_type:
        and_where += " and d.action = 'send'"
        parts = {"group": "offer_type, arm", "offer_type": "offers.offer_type,",
                 "offers_join": "left join raw.offers offers on offers.offer_id = d.offer_id"}
    frame = con.sql(CALIBRATION_SQL.format(and_where=and_where, **parts)).pl()
    if frame.is_empty():
        return frame
    predicted, conversions = frame["predicted_conversions"].to_numpy(), frame["conversions"].to_numpy()
    low, high = ratio_interval(conversions, predicted)
    ratio = conversions / np.where(predicted > 0, predicted, np.nan)
    return frame.with_columns(
        pl.col("predicted_conversions").round(2),
        *(pl.Series(name, np.round(v, 3)).fill_nan(None) for name, v in
          (("realized_over_predicted", ratio), ("ratio_low", low), ("ratio_high", high))),
    )


def explored_calibration(
    con: duckdb.DuckDBPyConnection, model_version: str, since: date, error_rate: float = 0.05
) -> pl.DataFrame:
    """The serving model's explored sends since `since`, overall (offer_type "all") and by offer type, each
    with `miscalibrated`: its realized/predicted interval excludes 1, at a level that holds the chance of any
    false alarm among the segments to `error_rate` (Bonferroni). Explored sends are uniform draws, so a
    segment off here is drift of the model itself, not the winner's curse of the planned sends."""
    overall = serving_calibration(con, model_version=model_version, since=since)
    by_offer = serving_calibration(con, by_offer_type=True, model_version=model_version, since=since)
    frames = [f.filter(pl.col("arm") == "explored send") for f in (overall, by_offer) if not f.is_empty()]
    columns = ["offer_type", "decisions", "predicted_conversions", "conversions"]
    segments = pl.concat(
        [frames[0].with_columns(pl.lit("all").alias("offer_type")).select(columns), *(f.select(columns) for f in frames[1:])]
    ) if frames else pl.DataFrame()
    if segments.is_empty():
        return segments
    low, high = ratio_interval(segments["conversions"].to_numpy(), segments["predicted_conversions"].to_numpy(),
                               level=1.0 - error_rate / segments.height)
    return segments.with_columns(
        pl.Series("ratio_low", np.round(low, 3)).fill_nan(None), pl.Series("ratio_high", np.round(high, 3)).fill_nan(None)
    ).with_columns(((pl.col("ratio_high") < 1) | (pl.col("ratio_low") > 1)).fill_null(False).alias("miscalibrated"))


def daily_report(
    paths: PromoPaths, day: date | None = None
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    where = f"where d.decision_date = DATE '{day}'" if day else ""
    con = duckdb.connect(str(paths.warehouse), read_only=True)
    try:
        daily = con.sql(DAILY_SQL.format(where=where)).pl()
        if table_exists(con, "delivery", "plans"):  # warehouses planned before delivery.plans existed have only the decisions
            columns = columns_of(con, "delivery.plans")
            # Days planned before the spend correction existed (no column, or null where a later day added
            # it) were planned on the model's own costs: factor 1.
            factor = "coalesce(cost_factor, 1.0)" if "cost_factor" in columns else "1.0"
            plans = con.sql(
                PLANS_SQL.format(where=where.replace("d.decision_date", "decision_date"), cost_factor=factor)
            ).pl()
            daily = daily.join(plans, on="day", how="left")
        offers = con.sql(OFFER_SQL.format(and_where=f"and d.decision_date = DATE '{day}'" if day else "")).pl()
        calibration = serving_calibration(con, day)
        calibration_by_offer = serving_calibration(con, day, by_offer_type=True)
    finally:
        con.close()
    return daily, offers, calibration, calibration_by_offer


def pacing_plot(daily: pl.DataFrame, budget: float | None, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.2))
    days = [str(d) for d in daily["day"]]
    ax.bar(days, daily["expected_spend"], label="expected spend")
    if "budget" in daily.columns and daily["budget"].null_count() < daily.height:
        ax.step(days, daily["budget"], where="mid", color="black", linestyle="--", linewidth=1, label="day's budget")
    elif budget:
        ax.axhline(budget, color="black", linestyle="--", linewidth=1, label="daily budget")
    ax.set_ylabel("money")
    ax.set_title("Spend pacing")
    ax.tick_params(axis="x", rotation=45)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def print_daily_report(paths: PromoPaths, day: date | None = None, budget: float | None = 300.0) -> int:
    if not paths.warehouse.exists():
        print(f"no warehouse at {paths.warehouse}: run `promoloop demo` or the Dagster jobs first")
        return 1
    daily, offers, calibration, calibration_by_offer = daily_report(paths, day)
    if daily.is_empty():
        print("no plans yet: the daily scoring job has not run")
        return 1
    with pl.Config(tbl_rows=60, tbl_cols=20, tbl_width_chars=200):
        print(daily)
        print(offers.pivot(on="offer_type", index="day", values="sends").fill_null(0))
        if not calibration.is_empty():
            print("serving model's calibration (decisions whose outcome window has closed):")
            print(calibration)
            print("its sends by offer type (95 % interval of the ratio):")
            print(calibration_by_offer)
    plot = pacing_plot(daily, budget, paths.reports / "spend_pacing.png")
    print(f"spend pacing plot: {plot}")
    return 0
