"""The daily decision: candidates -> actions (channel x send hour) -> scores -> a logged plan.

Pure polars/NumPy; the Dagster assets in `orchestration/defs/scoring.py` only read and write tables around
these functions. Every decision row carries its propensity, policy and model version, so any later policy
can be evaluated offline from the log (docs/contracts.md, `delivery.decisions`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl

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


def stable_uniform(keys: pl.Series, salt: str) -> np.ndarray:
    """A uniform number per key that depends only on (key, salt): stable across runs and orderings."""
    hashed = keys.cast(pl.Utf8).map_elements(
        lambda k: int.from_bytes(hashlib.blake2b(f"{salt}|{k}".encode(), digest_size=7).digest(), "little"),
        return_dtype=pl.Int64,
    )
    return hashed.to_numpy().astype(np.float64) / float(2**56)


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
    return actions.with_columns(
        (pl.lit(day_start) + pl.duration(hours=pl.col("send_hour") - pl.col("utc_offset_h"))).alias("send_at"),
        pl.col("send_hour").cast(pl.Int32),
    ).drop("consent_push", "consent_sms", "consent_email")
