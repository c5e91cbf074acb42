"""The daily decision: candidates -> actions (channel x send hour) -> scores -> a logged plan.

Pure polars/NumPy; the Dagster assets in `orchestration/defs/scoring.py` only read and write tables around
these functions. Every decision row carries its propensity, policy and model version, so any later policy
can be evaluated offline from the log (docs/contracts.md, `delivery.decisions`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl

from ml.delivery.allocation import AllocationConfig, AllocationResult, CandidateSet, allocate
from ml.delivery.policy import exploration_reserve, explore, holdout_mask

CHANNELS = ("push", "sms", "email")
# What one message costs the shop to send, before any discount (money).
CHANNEL_COST = {"push": 0.0, "email": 0.002, "sms": 0.04}
DECISION_HOUR_UTC = 6  # decisions for day D are made at 06:00 (the schedule's tick)


@dataclass(frozen=True)
class PlanConfig:
    """The marketer's knobs for one day."""

    budget: float = 300.0  # expected offer cost (discounts redeemed) per day, money
    max_per_user: int = 1
    channel_quota: dict[str, int] = field(default_factory=lambda: {"sms": 200})
    cap_per_7d: int = 2  # messages per user per 7 days
    holdout_share: float = 0.05
    epsilon: float = 0.1  # exploration share among eligible actions (including "send nothing")
    allowed_hours: tuple[int, int] = (9, 21)  # local send hours allowed, inclusive (quiet hours outside)
    default_hour: int = 12
    # Without a trained champion the policy explores uniformly; this is the chance a user gets any message.
    cold_start_send_rate: float = 0.3
    cold_start_conversion_prior: float = 0.03
    seed: int = 7
    policy_version: str = "greedy-knapsack-eps-v1"
    # Certify each plan: the LP relaxation bound (HiGHS, or the Lagrangian dual on large days) and the gap.
    certify_gap: bool = True
    # Every action's predicted offer cost is multiplied by this before planning and logging: realized over
    # predicted spend of recent sends (`ml.delivery.policy.spend_correction`); 1 = the model's own figure.
    cost_factor: float = 1.0

    def __post_init__(self) -> None:
        if not (self.cost_factor > 0 and np.isfinite(self.cost_factor)):
            raise ValueError(f"cost_factor must be a positive number, got {self.cost_factor}")


def utc_offsets(timezones: pl.Series, day: date) -> pl.DataFrame:
    """Whole-hour UTC offset of each distinct timezone at noon of `day` (DST-aware; unknown zone = UTC)."""
    noon = datetime(day.year, day.month, day.day, 12)
    rows = []
    for tz in timezones.unique().drop_nulls().to_list():
        try:
            delta = ZoneInfo(tz).utcoffset(noon) or timedelta(0)
        except (KeyError, ValueError):
            delta = timedelta(0)
        rows.append((tz, int(delta.total_seconds() // 3600)))
    return pl.DataFrame(rows, schema={"timezone": pl.Utf8, "utc_offset_h": pl.Int32}, orient="row")


def expand_actions(candidates: pl.DataFrame, users: pl.DataFrame, day: date, cfg: PlanConfig) -> pl.DataFrame:
    """candidates (user x product x offer) -> actions (x consented channel x send hour).

    Send hours: the user's most active hour moved to local time and clipped into the allowed window, and the
    default hour; the predictor chooses between them. Channels: only those the user consented to (a hard
    rule here, so no later step can contact a user on a channel without consent).
    """
    lo, hi = cfg.allowed_hours
    ctx = users.select("user_id", "timezone", "consent_push", "consent_sms", "consent_email")
    frame = candidates.join(ctx, on="user_id", how="inner")
    frame = frame.join(utc_offsets(frame["timezone"], day), on="timezone", how="left").with_columns(
        pl.col("utc_offset_h").fill_null(0)
    )
    active_local = ((pl.col("u_active_hour").fill_null(cfg.default_hour) + pl.col("utc_offset_h")) % 24).clip(lo, hi)
    frame = frame.with_columns(
        pl.concat_list([active_local.cast(pl.Int32), pl.lit(cfg.default_hour, pl.Int32)])
        .list.unique()
        .alias("send_hour")
    ).explode("send_hour")
    actions = pl.concat(
        [
            frame.filter(pl.col(f"consent_{channel}")).with_columns(pl.lit(channel).alias("channel"))
            for channel in CHANNELS
        ]
    )
    day_start = datetime(day.year, day.month, day.day)
    # A fixed row order: the warehouse returns candidates in any order, and the scores (batched float
    # arithmetic) and so the plan must not depend on it.
    return (
        actions.with_columns(
            (pl.lit(day_start) + pl.duration(hours=pl.col("send_hour") - pl.col("utc_offset_h"))).alias("send_at"),
            pl.col("send_hour").cast(pl.Int32),
        )
        .drop("consent_push", "consent_sms", "consent_email")
        .sort("user_id", "product_id", "offer_id", "channel", "send_hour")
    )


def prior_scores(actions: pl.DataFrame, cfg: PlanConfig) -> pl.DataFrame:
    """Scores without a trained model (cold start): a shop-wide conversion prior, no claimed uplift.

    Used only to size the budget of the uniform exploration that collects the first unbiased data; the
    policy does not rank by these numbers."""
    p = cfg.cold_start_conversion_prior
    return actions.with_columns(
        pl.lit(None, pl.Float64).alias("p_click"),
        pl.lit(p).alias("p_convert_send"),
        pl.lit(None, pl.Float64).alias("p_convert_none"),
        pl.lit(None, pl.Float64).alias("expected_uplift"),
        pl.lit(None, pl.Float64).alias("expected_margin"),
        (p * pl.col("o_depth") * pl.col("p_price")).alias("expected_cost"),
    )


@dataclass(frozen=True)
class PlanSummary:
    """What a day's plan did and how good the allocation provably is (one row of `delivery.plans`).

    The gap is the allocator's: its objective against the LP relaxation bound of the same problem (the
    budget left after the exploration reserve, the quotas, caps and consent), before exploration changes
    a share of the decisions. None without a trained model (uniform exploration allocates nothing)."""

    decision_date: date
    policy_version: str
    model_version: str
    users: int
    actions: int
    holdout_users: int
    capped_users: int
    sends: int
    exploration_sends: int
    budget: float
    allocator_budget: float
    epsilon: float
    expected_spend: float
    cost_factor: float
    expected_margin: float | None
    expected_incremental_conversions: float | None
    allocation_objective: float | None
    lp_bound: float | None
    lp_bound_method: str
    optimality_gap: float | None
    lambda_budget: float | None
    solve_seconds: float
    bound_seconds: float

    def as_frame(self) -> pl.DataFrame:
        """One typed row: a cold-start day's nulls must not make the warehouse table's columns untyped."""
        return pl.DataFrame([self.__dict__], schema=PLAN_SUMMARY_SCHEMA)


PLAN_SUMMARY_SCHEMA = {
    "decision_date": pl.Date, "policy_version": pl.Utf8, "model_version": pl.Utf8, "users": pl.Int64,
    "actions": pl.Int64, "holdout_users": pl.Int64, "capped_users": pl.Int64, "sends": pl.Int64,
    "exploration_sends": pl.Int64, "budget": pl.Float64, "allocator_budget": pl.Float64, "epsilon": pl.Float64,
    "expected_spend": pl.Float64, "cost_factor": pl.Float64, "expected_margin": pl.Float64, "expected_incremental_conversions": pl.Float64,
    "allocation_objective": pl.Float64, "lp_bound": pl.Float64, "lp_bound_method": pl.Utf8,
    "optimality_gap": pl.Float64, "lambda_budget": pl.Float64, "solve_seconds": pl.Float64, "bound_seconds": pl.Float64,
}


@dataclass(frozen=True)
class DayPlan:
    decisions: pl.DataFrame  # DECISION_SCHEMA, one row per user
    summary: PlanSummary


DECISION_SCHEMA = {
    "decision_id": pl.Utf8,
    "decision_date": pl.Date,
    "decided_at": pl.Datetime("us"),
    "user_id": pl.Utf8,
    "action": pl.Utf8,
    "is_holdout": pl.Boolean,
    "is_exploration": pl.Boolean,
    "offer_id": pl.Utf8,
    "product_id": pl.Utf8,
    "channel": pl.Utf8,
    "send_at": pl.Datetime("us"),
    "send_hour": pl.Int32,
    "propensity": pl.Float64,
    "policy_version": pl.Utf8,
    "model_version": pl.Utf8,
    "expected_uplift": pl.Float64,
    "expected_margin": pl.Float64,
    "expected_cost": pl.Float64,
    "candidate_count": pl.Int32,
    "reason": pl.Utf8,
}


# What plan_day needs of a scored action. The daily plan selects only these; the candidate's source and
# reason (most of a row's bytes) are optional and, when absent, joined to the logged actions afterwards
# (`orchestration.defs.scoring.promo_plan`): at 25M actions the full rows took 19 GiB.
PLAN_COLUMNS = (
    "user_id", "product_id", "offer_id", "channel", "send_hour", "send_at",
    "expected_cost", "expected_margin", "expected_uplift",
)
REASON_COLUMNS = ("candidate_source", "candidate_reason")
# The order plan_day numbers actions in (its draws depend on it); a caller passing presorted=True uses it.
ACTION_ORDER = ("user_id", "product_id", "offer_id", "channel", "send_hour")


def quota_acceptance(send_probability: np.ndarray, quota: float, sds: float = 4.0) -> float:
    """The share a of a channel's actions kept so that its sends (independent draws with probabilities
    a * p) stay within `quota` at mean + `sds` standard deviations; 1 when there is room."""

    def upper(a: float) -> float:
        p = a * send_probability
        return float(p.sum() + sds * np.sqrt((p * (1 - p)).sum()))

    if upper(1.0) <= quota:
        return 1.0
    low, high = 0.0, 1.0
    for _ in range(40):  # bisection: upper() increases with a
        mid = (low + high) / 2
        low, high = (mid, high) if upper(mid) <= quota else (low, mid)
    return low


def drop_over_quota(send: np.ndarray, channel: np.ndarray, quota: dict[str, float], rng: np.random.Generator) -> np.ndarray:
    """Unsends a random excess where a draw still overran a channel's quota. `quota_acceptance` makes that
    a 4-sd event (about 1 day in 30,000); on such a day the quota wins over exact propensities."""
    send = send.copy()
    for name, limit in quota.items():
        sent = np.flatnonzero(send & (channel == name))
        if len(sent) > limit:
            send[rng.choice(sent, size=len(sent) - int(limit), replace=False)] = False
    return send


def best_action(user_of_action: np.ndarray, value: np.ndarray, first: np.ndarray) -> np.ndarray:
    """(n_users,) index of each user's highest-valued action (the earliest on ties); rows come grouped by
    user, user u's starting at `first[u]`."""
    order = np.lexsort((-value, user_of_action))  # by user, then value descending; stable on ties
    return order[first]


# Passes of re-sizing the exploration reserve to the plan (each one allocation without the LP bound).
RESERVE_REFINEMENTS = 3


def _allocate_around_exploration(
    candidates: CandidateSet, eligible: np.ndarray, quota: dict[int, float], cfg: PlanConfig, epsilon: float,
    reserve: float,
) -> AllocationResult:
    """The allocation under what the budget leaves after exploration.

    `reserve` bounds exploration's cost before the plan is known (each explored user costed as if the plan
    sent them nothing), which held back up to twice what exploration spent. Once a plan is known its
    exploration cost has an exact distribution (`exploration_reserve(greedy=...)`), so the allocator is
    given the budget less that reserve and re-run; a plan is kept only while its own exact reserve still
    fits in what it leaves. Every step depends on the scores alone, not on the exploration's draws, so the
    logged propensities stay exact.
    """
    def solve(budget: float, certify: bool) -> AllocationResult:
        return allocate(
            candidates,
            AllocationConfig(budget=max(budget, 0.0), channel_quota=quota, compute_lp_bound=certify, seed=cfg.seed),
        )

    def reserve_of(plan: AllocationResult) -> float:
        return exploration_reserve(
            candidates.user_index, eligible, candidates.cost, candidates.n_users, epsilon, greedy=plan.chosen[:, 0]
        )

    kept = solve(cfg.budget - reserve, False)
    kept_reserve = reserve_of(kept)
    for _ in range(RESERVE_REFINEMENTS):
        if cfg.budget - kept_reserve <= kept.budget + 1e-9:
            break
        trial = solve(cfg.budget - kept_reserve, False)
        trial_reserve = reserve_of(trial)
        if trial.spend + trial_reserve > cfg.budget + 1e-9:
            break  # this plan would leave exploration less than its own reserve: keep the last that did
        kept, kept_reserve = trial, trial_reserve
    # Re-solving the kept budget (deterministic: the same plan) is what certifies it against the LP bound.
    return solve(kept.budget, cfg.certify_gap) if cfg.certify_gap else kept


def plan_day(
    scored: pl.DataFrame,
    day: date,
    cfg: PlanConfig,
    model_version: str | None,
    sends_last_6_days: pl.DataFrame | None = None,
    presorted: bool = False,
) -> DayPlan:
    """One decision per user with candidates: send which action, or nothing, with its propensity, and the
    plan's summary (spend, expected value, the allocator's certified optimality gap).

    `scored`: actions (user x product x offer x channel x send hour) with expected_margin / expected_cost
    (null expected_margin means no trained model: uniform exploration). `sends_last_6_days`: user_id, n_sends
    (frequency cap: with today's message at most `cap_per_7d` in 7 days). `presorted`: the rows already come
    in that order (a copy of the whole day saved). Without REASON_COLUMNS a decision whose reason is its
    candidate's gets a null reason, for the caller to fill.
    """
    rng = np.random.default_rng([cfg.seed, day.toordinal()])
    frame = (scored if presorted else scored.sort(ACTION_ORDER)).with_row_index("action_idx")
    if cfg.cost_factor != 1.0:  # the budget, the reserve, exploration and the log all see the corrected cost
        frame = frame.with_columns(pl.col("expected_cost") * cfg.cost_factor)
    users = frame.group_by("user_id", maintain_order=True).agg(
        pl.col("action_idx").first().alias("first"), pl.len().alias("n_actions")
    )
    n_users = users.height
    holdout = holdout_mask(users["user_id"].to_list(), cfg.holdout_share)
    capped = np.zeros(n_users, dtype=bool)
    if sends_last_6_days is not None and sends_last_6_days.height:
        sent = users.join(sends_last_6_days, on="user_id", how="left")["n_sends"].fill_null(0).to_numpy()
        capped = sent >= cfg.cap_per_7d
    eligible_user = ~holdout & ~capped
    first = users["first"].to_numpy()
    n_actions = users["n_actions"].to_numpy()
    user_of_action = np.repeat(np.arange(n_users), n_actions)
    cost = frame["expected_cost"].fill_null(0.0).to_numpy()
    cold_start = frame["expected_margin"].null_count() == frame.height
    greedy = np.full(n_users, -1, dtype=np.int64)  # action index per user, -1 = send nothing
    allocation = None
    epsilon = 0.0
    if cold_start:
        # Uniform exploration: each user gets a message with probability q, any eligible action alike.
        mean_cost = np.bincount(user_of_action, weights=cost, minlength=n_users) / np.maximum(n_actions, 1)
        planned = mean_cost[eligible_user].sum()
        q = min(cfg.cold_start_send_rate, 0.8 * cfg.budget / planned) if planned > 0 else cfg.cold_start_send_rate
        # A channel under a quota keeps each of its actions with probability accept[c], sized so its
        # expected sends + 4 sd fit the quota; every logged propensity stays exact.
        channel = frame["channel"].to_numpy()
        accept = np.ones(frame.height)
        for name, quota in cfg.channel_quota.items():
            on = channel == name
            share = np.bincount(user_of_action[on], minlength=n_users) / np.maximum(n_actions, 1)
            accept[on] = quota_acceptance(q * share[eligible_user], quota)
        kept = np.bincount(user_of_action, weights=accept, minlength=n_users) / np.maximum(n_actions, 1)
        send = eligible_user & (rng.random(n_users) < q)
        pick = first + (rng.random(n_users) * n_actions).astype(np.int64)
        # Unsent users log their drawn action too: both arms then hold the same actions, so the untreated
        # outcomes measure the baseline of what was sent (the first candidate in sort order, logged before,
        # was the user's first product by id, with the first offer, channel and hour, for every one of them).
        would_send = pick
        if (accept < 1).any():  # only then a third draw: with room everywhere, plans are as before
            send &= rng.random(n_users) < accept[pick]
        send = drop_over_quota(send, channel[pick], cfg.channel_quota, rng)
        chosen = np.where(send, pick, -1)
        propensity = np.where(send, q * accept[np.maximum(chosen, 0)] / np.maximum(n_actions, 1), 1.0 - q * kept)
        explored = eligible_user.copy()
        policy = f"uniform-exploration-q{q:.3f}"
    else:
        value = frame["expected_margin"].fill_null(-np.inf).to_numpy()
        channel_code = frame["channel"].replace_strict({c: i for i, c in enumerate(CHANNELS)}, return_dtype=pl.Int64).to_numpy()
        eligible = eligible_user[user_of_action]
        quota = {i: float(cfg.channel_quota[c]) for i, c in enumerate(CHANNELS) if c in cfg.channel_quota}
        # Hold back what exploration is expected to spend (mean + 4 sd) from the allocator's budget.
        epsilon = cfg.epsilon
        reserve = exploration_reserve(user_of_action, eligible, cost, n_users, epsilon)
        if reserve > 0.5 * cfg.budget:
            # Exploring at full rate would eat most of the budget: explore less today, propensities stay exact.
            epsilon = cfg.epsilon * 0.5 * cfg.budget / reserve
            reserve = exploration_reserve(user_of_action, eligible, cost, n_users, epsilon)
        candidates = CandidateSet(user_of_action, value, cost, channel_code, n_users, len(CHANNELS), eligible=eligible)
        allocation = _allocate_around_exploration(candidates, eligible, quota, cfg, epsilon, reserve)
        greedy = allocation.chosen[:, 0]
        would_send = np.where(greedy >= 0, greedy, best_action(user_of_action, value, first))
        headroom = {i: q - allocation.channel_counts[i] for i, q in quota.items()}
        # Exploration may spend what the plan left of the day's budget, not only the reserve it was sized by.
        explored_plan = explore(
            user_of_action, eligible, cost, channel_code, greedy, n_users, day, epsilon, cfg.seed,
            budget_reserve=cfg.budget - allocation.spend, channel_headroom=headroom,
        )
        chosen = np.where(eligible_user, explored_plan.action, -1)
        propensity = np.where(eligible_user, explored_plan.propensity, 1.0)
        explored = explored_plan.is_exploration & eligible_user
        policy = f"{cfg.policy_version}-e{epsilon:.3g}"
    # The logged action: what was sent, or for "nothing" the candidate the policy would have sent (the
    # exploration's draw, the plan's action, else the user's best-valued one), so its untreated outcome counts.
    logged = np.where(chosen >= 0, chosen, would_send)
    rows = frame[logged]
    decided_at = datetime(day.year, day.month, day.day, DECISION_HOUR_UTC)
    reason = np.where(
        holdout,
        "global holdout: never contacted, measured for incrementality",
        np.where(
            capped,
            f"frequency cap: {cfg.cap_per_7d} messages in 7 days reached",
            np.where(
                chosen < 0,
                "not worth a message today" if not cold_start else "not drawn for exploration today",
                "",
            ),
        ),
    )
    decisions = pl.DataFrame(
        {
            "decision_id": [f"d{day:%Y%m%d}-{u}" for u in users["user_id"].to_list()],
            "decision_date": [day] * n_users,
            "decided_at": [decided_at] * n_users,
            "user_id": users["user_id"],
            "action": np.where(chosen >= 0, "send", "none"),
            "is_holdout": holdout,
            "is_exploration": explored,
            "offer_id": rows["offer_id"],
            "product_id": rows["product_id"],
            "channel": rows["channel"],
            "send_at": rows["send_at"],
            "send_hour": rows["send_hour"],
            "propensity": propensity,
            "policy_version": [policy] * n_users,
            "model_version": [model_version or "none"] * n_users,
            "expected_uplift": rows["expected_uplift"],
            "expected_margin": rows["expected_margin"],
            "expected_cost": rows["expected_cost"],
            "candidate_count": n_actions.astype(np.int32),
            "reason": [
                r or f"{src}: {why}"
                for r, src, why in zip(reason, rows["candidate_source"].to_list(), rows["candidate_reason"].to_list(), strict=True)
            ] if set(REASON_COLUMNS) <= set(frame.columns) else [r or None for r in reason],
        },
        schema_overrides=DECISION_SCHEMA,
    ).select(list(DECISION_SCHEMA))
    return DayPlan(decisions, _summarize(decisions, day, cfg, frame.height, capped, allocation, epsilon))


def _summarize(
    decisions: pl.DataFrame,
    day: date,
    cfg: PlanConfig,
    n_actions: int,
    capped: np.ndarray,
    allocation: AllocationResult | None,
    epsilon: float,
) -> PlanSummary:
    sends = decisions.filter(pl.col("action") == "send")
    trained = allocation is not None

    def total(column: str) -> float | None:
        return float(sends[column].sum() or 0.0) if trained else None

    bounded = trained and allocation.lp_bound_method != "none"
    return PlanSummary(
        decision_date=day,
        policy_version=decisions["policy_version"][0] if decisions.height else cfg.policy_version,
        model_version=decisions["model_version"][0] if decisions.height else "none",
        users=decisions.height,
        actions=n_actions,
        holdout_users=int(decisions["is_holdout"].sum()),
        capped_users=int(capped.sum()),
        sends=sends.height,
        exploration_sends=int(sends["is_exploration"].sum()),
        budget=float(cfg.budget),
        allocator_budget=float(allocation.budget) if trained else 0.0,
        epsilon=float(epsilon),
        expected_spend=float(sends["expected_cost"].sum() or 0.0),
        cost_factor=float(cfg.cost_factor),
        expected_margin=total("expected_margin"),
        expected_incremental_conversions=total("expected_uplift"),
        allocation_objective=allocation.objective if trained else None,
        lp_bound=allocation.lp_bound if bounded else None,
        lp_bound_method=allocation.lp_bound_method if trained else "none (uniform exploration)",
        optimality_gap=allocation.gap if bounded else None,
        lambda_budget=allocation.lambda_budget if trained else None,
        solve_seconds=allocation.solve_seconds if trained else 0.0,
        bound_seconds=allocation.bound_seconds if trained else 0.0,
    )


def empty_plan(day: date, cfg: PlanConfig) -> DayPlan:
    """The plan of a day without candidates: no decisions, an all-zero summary."""
    decisions = pl.DataFrame(schema=DECISION_SCHEMA)
    return DayPlan(decisions, _summarize(decisions, day, cfg, 0, np.zeros(0, dtype=bool), None, 0.0))
