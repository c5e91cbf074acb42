"""The simulated shop: writes landing files day by day and answers what a message truly does.

What the platform sees is written under `<home>/landing/` in the landing contract. What it never sees lives
under `<home>/simulator/`: the hidden traits, the organic world without any message (generated a few days
ahead so a message can be checked against what the user was going to do anyway), state snapshots, pending
responses, and the per-delivery truth (`outcomes/`).

Days are streamed: one day of events is in memory at a time, so 1M users x 90 days fits in a few GiB.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from simulator.behaviour import PURCHASE, REVIEW, Behaviour, empty_recent, to_landing, utc_offsets
from simulator.config import CHANNELS, PLATFORMS, RESPONSE_HOURS, SEGMENTS, ShopConfig
from simulator.response import (
    SALT_BOUNCE,
    SALT_CLICK,
    SALT_COMPLAIN,
    SALT_DELAY_BUY,
    SALT_DELAY_CLICK,
    SALT_DELAY_OPEN,
    SALT_OPEN,
    SALT_RESPONSE,
    SALT_UNSUB,
    Truth,
    empty_promo_state,
    keyed_uniform,
    message_appeal,
    record_sends,
)
from simulator.world import World, draw_world, midnight, user_id

LOOKAHEAD_DAYS = 3  # a send as late as 12:00 the next day still responds 48 h later: day + 3
LATEST_SEND_H = 36  # deliveries for a day may be sent until 12:00 UTC the next day (US evenings)
KEEP_DAYS = 7  # snapshots kept behind the last simulated day: a day can be redone or scored this far back
DAY_S = 86_400
OPEN_BASE = np.array([0.2, 0.35, 0.18])  # push, sms, email
DELIVERY_COLUMNS = ("delivery_id", "user_id", "offer_id", "product_id", "channel", "send_at")
ACTION_COLUMNS = ("user_id", "product_id", "offer_id", "channel", "send_hour", "day")
TRUTH_COLUMNS = ("p_convert_send", "p_convert_none", "uplift", "expected_incremental_margin", "offer_cost", "depth")
EVENT_SCHEMA = {
    "event_id": pl.Utf8,
    "user_id": pl.Utf8,
    "event_type": pl.Utf8,
    "event_at": pl.Datetime("us"),
    "product_id": pl.Utf8,
    "session_id": pl.Utf8,
    "quantity": pl.Int64,
    "price": pl.Float64,
    "platform": pl.Utf8,
}
FEEDBACK_SCHEMA = {
    "delivery_id": pl.Utf8,
    "event": pl.Utf8,
    "event_at": pl.Datetime("us"),
    "order_id": pl.Utf8,
    "revenue": pl.Float64,
}
EDIT_SCHEMA = {"day": pl.Date, "event_no": pl.Int64, "drop": pl.Boolean, "price": pl.Float64}


@dataclass(frozen=True)
class DayResult:
    """What a day's deliveries did. `true_*` come from the coupled draws (the same user with and without
    the message); `expected_*` from the probabilities; `realized_*` are what the shop saw. Conversions are
    counted for the deliveries of this day even when they happen on a later day."""

    day: date
    deliveries: int
    delivered: int
    true_incremental_conversions: int
    true_incremental_margin: float
    expected_incremental_conversions: float
    expected_incremental_margin: float
    realized_conversions: int
    realized_revenue: float
    realized_offer_cost: float
    organic_purchases: int  # purchase events written for this day without a message's help
    promo_purchases: int  # purchases caused by messages written for this day

    def __str__(self) -> str:
        return (
            f"{self.day}: {self.deliveries} deliveries ({self.delivered} delivered), "
            f"true incremental conversions {self.true_incremental_conversions} "
            f"(expected {self.expected_incremental_conversions:.1f}), incremental margin "
            f"{self.true_incremental_margin:,.1f} (expected {self.expected_incremental_margin:,.1f}), "
            f"conversions {self.realized_conversions}, purchases organic {self.organic_purchases} "
            f"+ promo {self.promo_purchases}"
        )


@dataclass
class _Response:
    """Everything today's deliveries produce, on whatever day it happens."""

    events: pl.DataFrame  # EVENT_SCHEMA
    feedback: pl.DataFrame  # FEEDBACK_SCHEMA
    edits: pl.DataFrame  # EDIT_SCHEMA: organic purchases dropped (sleeping dogs) or bought with the coupon
    outcomes: pl.DataFrame
    state: dict[str, np.ndarray]
    totals: dict[str, float]


class Shop:
    """The simulated shop. `create` draws it; `write_history` and `advance_day` write days of behaviour;
    `true_effect` is the oracle."""

    def __init__(self, config: ShopConfig, home: Path, world: World):
        self.config = config
        self.home = Path(home)
        self.world = world
        self.behaviour = Behaviour(world, config)
        self.truth = Truth(world, self.behaviour, config)
        self._offer_index = {o: i for i, o in enumerate(world.offers["offer_id"].to_list())}

    @property
    def u(self) -> dict[str, np.ndarray]:
        """Hidden per-user arrays (index = user number - 1); `u["segment"]` indexes SEGMENTS."""
        return self.world.users

    # ------------------------------------------------------------------ paths
    @property
    def landing(self) -> Path:
        return self.home / "landing"

    @property
    def truth_dir(self) -> Path:
        return self.home / "simulator"

    def _organic_path(self, day: date) -> Path:
        return self.truth_dir / "organic" / f"{day}.parquet"

    def _recent_path(self, day: date) -> Path:
        return self.truth_dir / "organic_state" / f"{day}.npy"

    def _promo_state_path(self, day: date) -> Path:
        return self.truth_dir / "promo_state" / f"{day}.npz"

    def _pending_dir(self, day: date) -> Path:
        return self.truth_dir / "pending" / str(day)

    def outcomes_path(self, day: date) -> Path:
        """Per-delivery truth of `day`'s deliveries (segment, probabilities, both coupled outcomes)."""
        return self.truth_dir / "outcomes" / f"date={day}" / "outcomes.parquet"

    # ------------------------------------------------------------------ creation
    @classmethod
    def create(cls, config: ShopConfig, home: Path) -> Shop:
        """Draw the shop and write landing users, products and offers. A previous simulation in `home` is
        replaced, its event and feedback partitions included."""
        home = Path(home)
        truth = home / "simulator"
        if truth.exists():
            shutil.rmtree(truth)
            for table in ("events", "feedback"):
                shutil.rmtree(home / "landing" / table, ignore_errors=True)
        world, frames = draw_world(config)
        shop = cls(config, home, world)
        for sub in ("organic", "organic_state", "promo_state", "pending", "outcomes"):
            (truth / sub).mkdir(parents=True, exist_ok=True)
        (truth / "config.json").write_text(config.to_json())
        world.save(truth)
        for name, frame in frames.items():
            shop._write_landing(frame, shop.landing / name, name)
        np.save(shop._recent_path(config.start), empty_recent(config.n_users))
        np.savez(shop._promo_state_path(config.start), **empty_promo_state(config.n_users))
        return shop

    @classmethod
    def load(cls, home: Path) -> Shop:
        truth = Path(home) / "simulator"
        if not (truth / "config.json").exists():
            raise FileNotFoundError(f"no simulated shop under {home}: create one with Shop.create first")
        config = ShopConfig.from_json((truth / "config.json").read_text())
        return cls(config, Path(home), World.load(truth))

    def segments(self) -> pl.DataFrame:
        """The hidden segment of every user (for benchmarks and tests; never written to landing)."""
        return pl.DataFrame(
            {"user_idx": np.arange(self.config.n_users), "segment": np.array(SEGMENTS)[self.u["segment"]]}
        ).select(user_id(pl.col("user_idx")).alias("user_id"), "segment")

    def next_day(self) -> date:
        """The first day not simulated yet."""
        days = [date.fromisoformat(p.stem) for p in (self.truth_dir / "promo_state").glob("*.npz")]
        return max(days)

    # ------------------------------------------------------------------ running days
    def write_history(self, progress: Callable[[int, int], None] | None = None) -> None:
        """Organic behaviour for the history days (no messages), one partition per day."""
        for i in range(self.config.history_days):
            self.advance_day(self.config.start + timedelta(days=i), None)
            if progress:
                progress(i + 1, self.config.history_days)

    def advance_day(self, day: date, deliveries: pl.DataFrame | None) -> DayResult:
        """Simulate `day`: organic behaviour plus the responses to `deliveries` (and to earlier days'
        deliveries whose responses land today). Days go in order; the last KEEP_DAYS can be redone, and
        redoing a day with the same deliveries rewrites identical files (redo the days after it too)."""
        state_path = self._promo_state_path(day)
        if not state_path.exists():
            raise ValueError(
                f"cannot simulate {day}: the next day to simulate is {self.next_day()} (days go in order, and "
                f"only the last {KEEP_DAYS} days can be redone)"
            )
        self._ensure_organic(day + timedelta(days=LOOKAHEAD_DAYS))
        promo_state = dict(np.load(state_path))
        if deliveries is not None and deliveries.height:
            response = self._respond(day, self._validate_deliveries(deliveries, day), promo_state)
        else:
            response = _Response(
                events=pl.DataFrame(schema=EVENT_SCHEMA),
                feedback=pl.DataFrame(schema=FEEDBACK_SCHEMA),
                edits=pl.DataFrame(schema=EDIT_SCHEMA),
                outcomes=pl.DataFrame(),
                state=promo_state,
                totals={},
            )
        events, feedback, edits = self._route(day, response)
        organic = _apply_edits(pl.read_parquet(self._organic_path(day)), edits.filter(pl.col("day") == day))
        self._write_landing(to_landing(organic, day, self.world), self.landing / "events" / f"date={day}", "events")
        self._write_or_remove(events.sort("event_at", "event_id"), self.landing / "events" / f"date={day}",
                              "promo_responses")
        self._write_or_remove(feedback.sort("event_at", "delivery_id", "event"),
                              self.landing / "feedback" / f"date={day}", "feedback")
        outcomes_path = self.outcomes_path(day)
        if response.outcomes.height:
            outcomes_path.parent.mkdir(parents=True, exist_ok=True)
            response.outcomes.write_parquet(outcomes_path)
        elif outcomes_path.exists():
            outcomes_path.unlink()
        np.savez(self._promo_state_path(day + timedelta(days=1)), **response.state)
        self._prune(day)
        totals = response.totals
        return DayResult(
            day=day,
            deliveries=int(totals.get("deliveries", 0)),
            delivered=int(totals.get("delivered", 0)),
            true_incremental_conversions=int(totals.get("inc_conversions", 0)),
            true_incremental_margin=float(totals.get("inc_margin", 0.0)),
            expected_incremental_conversions=float(totals.get("exp_conversions", 0.0)),
            expected_incremental_margin=float(totals.get("exp_margin", 0.0)),
            realized_conversions=int(totals.get("conversions", 0)),
            realized_revenue=float(totals.get("revenue", 0.0)),
            realized_offer_cost=float(totals.get("offer_cost", 0.0)),
            organic_purchases=int((organic["etype"] == PURCHASE).sum()),
            promo_purchases=int((events["event_type"] == "purchase").sum()),
        )

    def _ensure_organic(self, until: date) -> None:
        """Generate the no-message world up to `until` (deterministic: it depends only on seed and day)."""
        done = [date.fromisoformat(p.stem) for p in (self.truth_dir / "organic").glob("*.parquet")]
        day = max(done) + timedelta(days=1) if done else self.config.start
        while day <= until:
            frame, recent = self.behaviour.organic_day(day, np.load(self._recent_path(day)))
            frame.write_parquet(self._organic_path(day))
            np.save(self._recent_path(day + timedelta(days=1)), recent)
            day += timedelta(days=1)

    def _route(self, day: date, response: _Response) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
        """Keep today's rows, park later ones in pending/<day>/ and collect what earlier days parked for
        today. Each source day has its own pending file, so redoing a day replaces (never adds to) them."""
        kinds = {"events": response.events, "feedback": response.feedback, "edits": response.edits}
        today: dict[str, list[pl.DataFrame]] = {k: [] for k in kinds}
        end = midnight(day) + timedelta(days=1)
        for kind, frame in kinds.items():
            offset = (
                pl.col("day").cast(pl.Int32) - pl.lit(day).cast(pl.Int32)
                if kind == "edits"
                else (pl.col("event_at") - pl.lit(midnight(day))).dt.total_seconds() // DAY_S
            )
            frame = frame.with_columns(offset.cast(pl.Int64).alias("_offset"))
            today[kind].append(frame.filter(pl.col("_offset") == 0).drop("_offset"))
            for k in range(1, LOOKAHEAD_DAYS + 1):
                path = self._pending_dir(day + timedelta(days=k)) / f"from-{day}-{kind}.parquet"
                later = frame.filter(pl.col("_offset") == k).drop("_offset")
                if later.height:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    later.write_parquet(path)
                elif path.exists():
                    path.unlink()
            for path in sorted(self._pending_dir(day).glob(f"from-*-{kind}.parquet")):
                if path.name < f"from-{day}":  # only earlier source days
                    today[kind].append(pl.read_parquet(path))
        schemas = {"events": EVENT_SCHEMA, "feedback": FEEDBACK_SCHEMA, "edits": EDIT_SCHEMA}
        out = [pl.concat([f.cast(schemas[k]) for f in today[k]]) for k in ("events", "feedback", "edits")]
        assert out[0].filter(pl.col("event_at") >= end).height == 0
        return out[0], out[1], out[2]

    def _prune(self, day: date) -> None:
        old = day - timedelta(days=KEEP_DAYS)
        for folder, suffix in (("organic", ".parquet"), ("organic_state", ".npy"), ("promo_state", ".npz")):
            for path in (self.truth_dir / folder).glob(f"*{suffix}"):
                if date.fromisoformat(path.stem) < old:
                    path.unlink()
        for path in (self.truth_dir / "pending").glob("*"):
            if date.fromisoformat(path.name) < old:
                shutil.rmtree(path)

    # ------------------------------------------------------------------ promotions
    def _validate_deliveries(self, deliveries: pl.DataFrame, day: date) -> pl.DataFrame:
        missing = [c for c in DELIVERY_COLUMNS if c not in deliveries.columns]
        if missing:
            raise ValueError(f"deliveries for {day} lack column(s) {missing}; expected {list(DELIVERY_COLUMNS)}")
        d = deliveries.select(*DELIVERY_COLUMNS, *(["message"] if "message" in deliveries.columns else []))
        if isinstance(d.schema["send_at"], pl.Datetime) and d.schema["send_at"].time_zone is not None:
            d = d.with_columns(pl.col("send_at").dt.convert_time_zone("UTC").dt.replace_time_zone(None))
        d = d.with_columns(pl.col("send_at").cast(pl.Datetime("us")))
        for column in DELIVERY_COLUMNS:  # message is optional (and may be null): without it the words do nothing
            if d[column].null_count():
                raise ValueError(f"deliveries for {day}: column {column} has {d[column].null_count()} null(s)")
        duplicated = d.filter(pl.col("delivery_id").is_duplicated())["delivery_id"].unique().to_list()
        if duplicated:
            raise ValueError(f"deliveries for {day}: duplicate delivery_id {duplicated[:5]}")
        self._indices(d, f"deliveries for {day}")
        start = midnight(day)
        late = d.filter((pl.col("send_at") < start) | (pl.col("send_at") >= start + timedelta(hours=LATEST_SEND_H)))
        if late.height:
            raise ValueError(
                f"deliveries for {day}: send_at must be in [{start}, {start + timedelta(hours=LATEST_SEND_H)}) UTC; "
                f"{late.height} are not, e.g. {late['delivery_id'][0]} at {late['send_at'][0]}"
            )
        return d.sort("delivery_id")

    def _indices(self, frame: pl.DataFrame, where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Row indices of users, products, offers and channels; a clear error for anything unknown."""
        out = []
        for column, prefix, digits, count in (
            ("user_id", "u", 7, self.config.n_users),
            ("product_id", "p", 6, self.config.n_products),
        ):
            ids = frame[column].cast(pl.Utf8)
            well_formed = ids.str.contains(rf"^{prefix}\d{{{digits}}}$")
            idx = ids.str.slice(1).cast(pl.Int64, strict=False).fill_null(0) - 1
            bad = ~well_formed | (idx < 0) | (idx >= count)
            if bad.any():
                raise ValueError(f"{where}: unknown {column} {ids.filter(bad).unique().to_list()[:5]}")
            out.append(idx.to_numpy())
        offers = frame["offer_id"].cast(pl.Utf8)
        unknown = offers.filter(~offers.is_in(list(self._offer_index))).unique().to_list()
        if unknown:
            raise ValueError(f"{where}: unknown offer_id {unknown[:5]}")
        out.append(offers.replace_strict(self._offer_index, return_dtype=pl.Int64).to_numpy())
        channels = frame["channel"].cast(pl.Utf8)
        unknown = channels.filter(~channels.is_in(list(CHANNELS))).unique().to_list()
        if unknown:
            raise ValueError(f"{where}: unknown channel {unknown[:5]} (allowed: {list(CHANNELS)})")
        out.append(channels.replace_strict({c: i for i, c in enumerate(CHANNELS)}, return_dtype=pl.Int64).to_numpy())
        return out[0], out[1], out[2], out[3]

    def _effects_at(self, ui, pi, oi, ci, day: date, send_s: np.ndarray, promo_state) -> dict[str, np.ndarray]:
        """Ground truth for sends `send_s` seconds after midnight of `day` (UTC, < 48 h)."""
        send_day = (send_s >= DAY_S).astype(np.int64)
        recent = {k: np.load(self._recent_path(day + timedelta(days=k))) for k in np.unique(send_day).tolist()}
        recent_rows = np.empty((len(ui), recent[int(send_day[0])].shape[1]), dtype=np.int32)
        for k, rows in recent.items():
            mask = send_day == k
            recent_rows[mask] = rows[ui[mask]]
        hour = (send_s - send_day * DAY_S) / 3600.0
        return self.truth.effects(ui, pi, oi, ci, day, send_day, hour, recent_rows, promo_state)

    def true_effect(self, actions: pl.DataFrame) -> pl.DataFrame:
        """The oracle: true conversion probabilities and incremental margin of each action.

        `actions`: user_id, product_id, offer_id, channel, send_hour (local hour, int), day (date). The send
        is at that local hour of `day` (converted to UTC as the planner does; an hour before the UTC day
        starts counts from 00:00 UTC). Uses the fatigue and recent-view state at the start of `day`, so
        `day` must be at most the next day to simulate and at most KEEP_DAYS back.
        Returns the rows with p_convert_send, p_convert_none, uplift, expected_incremental_margin, offer_cost
        (expected discount paid) and depth."""
        missing = [c for c in ACTION_COLUMNS if c not in actions.columns]
        if missing:
            raise ValueError(f"true_effect: actions lack column(s) {missing}; expected {list(ACTION_COLUMNS)}")
        frame = actions.with_row_index("_row").with_columns(pl.col("day").cast(pl.Date))
        hours = frame["send_hour"]
        if hours.null_count() or not hours.is_between(0, 23).all():
            raise ValueError("true_effect: send_hour must be an hour 0-23 (local time) in every row")
        parts = []
        for (day,), group in frame.group_by(["day"], maintain_order=True):
            state_path = self._promo_state_path(day)
            if not state_path.exists() or not self._recent_path(day + timedelta(days=1)).exists():
                raise ValueError(
                    f"true_effect: no state for {day}; it must be between {KEEP_DAYS} days back and the next "
                    f"day to simulate ({self.next_day()})"
                )
            ui, pi, oi, ci = self._indices(group, "true_effect")
            offset = utc_offsets(day)[self.u["tz_idx"][ui]]
            send_s = np.clip((group["send_hour"].to_numpy() - offset) * 3600.0, 0, 2 * DAY_S - 1)
            effects = self._effects_at(ui, pi, oi, ci, day, send_s, dict(np.load(state_path)))
            parts.append(group.with_columns(*[pl.Series(c, effects[c]) for c in TRUTH_COLUMNS]))
        if not parts:
            return actions.with_columns(*[pl.lit(None, pl.Float64).alias(c) for c in TRUTH_COLUMNS])
        return pl.concat(parts).sort("_row").drop("_row")

    def _respond(self, day: date, d: pl.DataFrame, promo_state: dict[str, np.ndarray]) -> _Response:
        """Coupled draws for today's deliveries: what happens with the message, against the organic world."""
        seed, n = self.config.seed, d.height
        ui, pi, oi, ci = self._indices(d, f"deliveries for {day}")
        start = midnight(day)
        send_s = ((d["send_at"] - start).dt.total_microseconds() / 1e6).to_numpy()
        eff = self._effects_at(ui, pi, oi, ci, day, send_s, promo_state)
        window = self._organic_purchases_in_window(day, ui, pi, send_s)
        organic_bought = np.zeros(n, dtype=bool)
        organic_bought[window["row"].unique().to_numpy()] = True
        ordinal = np.full(n, day.toordinal())
        u_response = keyed_uniform(seed, SALT_RESPONSE, ordinal, ui, pi)
        delivered = keyed_uniform(seed, SALT_BOUNCE, ordinal, ui, pi, ci) >= eff["bounce"]
        lost = delivered & organic_bought & (u_response < eff["tau_minus"])
        caused = delivered & ~organic_bought & (u_response < eff["tau_plus"])
        redeemed = delivered & organic_bought & ~lost
        bought_send = (organic_bought & ~lost) | caused
        converted = caused | redeemed
        margin_send, margin_none = eff["margin_send"], eff["margin_none"]
        send_world = np.where(converted, margin_send, 0.0) + np.where(~delivered & organic_bought, margin_none, 0.0)
        incremental_margin = send_world - np.where(organic_bought, margin_none, 0.0) - eff["channel_cost"]
        # Funnel feedback; a message that caused a purchase was opened and clicked first. The words (when the
        # delivery file carries them) move opens and clicks, not purchases (response.message_appeal).
        engagement = self.u["engagement"][ui]
        texts = d["message"].to_list() if "message" in d.columns else [None] * n
        appeal = message_appeal(seed, ui, self.u["tz_idx"][ui] == 0, ci, texts)  # tz 0: the Chinese readers
        p_open = (OPEN_BASE[ci] * (0.5 + engagement) * eff["hour_factor"] * appeal).clip(0.0, 0.95)
        opened = delivered & (caused | (keyed_uniform(seed, SALT_OPEN, ordinal, ui, pi, ci) < p_open))
        p_click = ((0.05 + 2.0 * eff["tau_plus"] + 0.05 * (eff["interest"] > 1.0)) * appeal).clip(0.0, 0.9)
        clicked = opened & (caused | (keyed_uniform(seed, SALT_CLICK, ordinal, ui, pi, ci) < p_click))
        dog = self.u["segment"][ui] == SEGMENTS.index("sleeping_dog")
        consented = self.u["consent"][ui, ci]
        p_unsub = (0.002 * (1 + eff["n_sends"]) + 0.03 * dog * (1.0 + ci)) * np.where(consented, 1.0, 5.0)
        unsubscribed = delivered & (keyed_uniform(seed, SALT_UNSUB, ordinal, ui, pi, ci) < p_unsub)
        p_complain = 0.0005 + 0.004 * dog + 0.05 * ~consented
        complained = delivered & (keyed_uniform(seed, SALT_COMPLAIN, ordinal, ui, pi, ci) < p_complain)
        open_h = np.minimum(-1.5 * np.log1p(-keyed_uniform(seed, SALT_DELAY_OPEN, ordinal, ui, pi)), 40.0)
        click_h = open_h + np.minimum(-0.25 * np.log1p(-keyed_uniform(seed, SALT_DELAY_CLICK, ordinal, ui, pi)), 2.0)
        buy_h = np.minimum(
            click_h + -3.0 * np.log1p(-keyed_uniform(seed, SALT_DELAY_BUY, ordinal, ui, pi)), RESPONSE_HOURS - 0.5
        )
        first = window.sort("row", "abs_t", "event_no").unique("row", keep="first", maintain_order=True)
        redeemed_rows = first.filter(pl.Series(redeemed)[first["row"]])
        buy_s = send_s + buy_h * 3600
        buy_s[redeemed_rows["row"].to_numpy()] = redeemed_rows["abs_t"].to_numpy()
        unit_price = np.round(eff["price"] * (1.0 - eff["depth"]), 2)
        quantity = np.ones(n, dtype=np.int64)
        quantity[redeemed_rows["row"].to_numpy()] = redeemed_rows["quantity"].to_numpy()
        ids = d["delivery_id"].to_numpy().astype(str)
        order_id = np.char.add("o-", ids).astype(object)
        if redeemed_rows.height:  # a coupon used on a purchase the user was making anyway
            organic_order = redeemed_rows.select(
                pl.format(
                    "o-e{}-{}",
                    (pl.lit(day) + pl.duration(days=pl.col("k"))).dt.strftime("%Y%m%d"),
                    pl.col("event_no").cast(pl.Utf8).str.zfill(8),
                )
            ).to_series()
            order_id[redeemed_rows["row"].to_numpy()] = organic_order.to_numpy()

        def at(seconds: np.ndarray) -> np.ndarray:
            return np.datetime64(start, "us") + (np.asarray(seconds) * 1e6).astype("timedelta64[us]")

        def feedback_rows(mask: np.ndarray, event: str, seconds: np.ndarray) -> pl.DataFrame:
            return pl.DataFrame(
                {
                    "delivery_id": ids[mask],
                    "event": [event] * int(mask.sum()),
                    "event_at": at(np.floor(seconds[mask])),
                    "order_id": order_id[mask] if event == "converted" else [None] * int(mask.sum()),
                    "revenue": (unit_price * quantity)[mask] if event == "converted" else [None] * int(mask.sum()),
                },
                schema=FEEDBACK_SCHEMA,
            )

        at_send = send_s + 5
        feedback = pl.concat(
            [
                feedback_rows(delivered, "delivered", at_send),
                feedback_rows(~delivered, "bounced", at_send),
                feedback_rows(opened, "opened", send_s + open_h * 3600),
                feedback_rows(clicked, "clicked", send_s + click_h * 3600),
                feedback_rows(converted, "converted", np.maximum(buy_s, at_send + 1)),
                feedback_rows(unsubscribed, "unsubscribed", send_s + open_h * 3600 + 60),
                feedback_rows(complained, "complained", send_s + open_h * 3600 + 120),
            ]
        )
        # Events a message makes: the click opens the product page; a caused purchase goes cart -> purchase.
        platform = np.array(PLATFORMS)[self.u["platform"][ui]]
        user_ids, product_ids = d["user_id"].to_numpy().astype(str), d["product_id"].to_numpy().astype(str)
        tag = day.strftime("%Y%m%d")

        def event_rows(mask: np.ndarray, kind: str, seconds: np.ndarray, price: np.ndarray) -> pl.DataFrame:
            return pl.DataFrame(
                {
                    "event_id": np.char.add(np.char.add(f"ep{tag}-", ids[mask]), f"-{kind}"),
                    "user_id": user_ids[mask],
                    "event_type": [kind] * int(mask.sum()),
                    "event_at": at(np.floor(seconds[mask])),
                    "product_id": product_ids[mask],
                    "session_id": np.char.add("sp-", ids[mask]),
                    "quantity": np.ones(int(mask.sum()), dtype=np.int64),
                    "price": price[mask],
                    "platform": platform[mask],
                },
                schema=EVENT_SCHEMA,
            )

        list_price = np.round(eff["price"], 2)
        events = pl.concat(
            [
                event_rows(clicked, "view", send_s + click_h * 3600 + 1, list_price),
                event_rows(caused, "cart", np.maximum(buy_s - 60, send_s + click_h * 3600 + 2), list_price),
                event_rows(caused, "purchase", buy_s, unit_price),
            ]
        )
        lost_rows = window.filter(pl.Series(lost)[window["row"]])
        edits = pl.concat(
            [
                self._drop_edits(day, lost_rows),
                pl.DataFrame(
                    {
                        "day": [day + timedelta(days=int(k)) for k in redeemed_rows["k"].to_list()],
                        "event_no": redeemed_rows["event_no"],
                        "drop": [False] * redeemed_rows.height,
                        "price": unit_price[redeemed_rows["row"].to_numpy()],
                    },
                    schema=EDIT_SCHEMA,
                ),
            ]
        )
        segment = np.array(SEGMENTS)[self.u["segment"][ui]]
        outcomes = d.drop("message", strict=False).with_columns(
            pl.Series("segment", segment),
            pl.Series("message_appeal", appeal),
            *[pl.Series(c, eff[c]) for c in ("depth", "p_convert_send", "p_convert_none", "uplift", "tau_plus",
                                              "tau_minus", "expected_incremental_margin", "offer_cost")],
            pl.Series("delivered", delivered),
            pl.Series("bought_none", organic_bought),
            pl.Series("bought_send", bought_send),
            pl.Series("incremental_margin", incremental_margin),
        )
        state = record_sends(promo_state, ui[delivered], day)
        unsub = state["unsubscribed"].copy()
        unsub[ui[unsubscribed], ci[unsubscribed]] = True
        state["unsubscribed"] = unsub
        totals = {
            "deliveries": n,
            "delivered": int(delivered.sum()),
            "inc_conversions": int(bought_send.sum()) - int(organic_bought.sum()),
            "inc_margin": float(incremental_margin.sum()),
            "exp_conversions": float(eff["uplift"].sum()),
            "exp_margin": float(eff["expected_incremental_margin"].sum()),
            "conversions": int(converted.sum()),
            "revenue": float((unit_price * quantity)[converted].sum()),
            "offer_cost": float((eff["depth"] * eff["price"] * quantity)[converted].sum()),
        }
        return _Response(events, feedback, edits, outcomes, state, totals)

    def _organic_purchases_in_window(self, day: date, ui, pi, send_s: np.ndarray) -> pl.DataFrame:
        """Organic purchases of each delivery's (user, product) in [send_at, send_at + 48 h): the no-message
        outcome. Columns: row (delivery), k (day offset), event_no, abs_t (seconds from `day`), sess_no, ..."""
        wanted = pl.DataFrame({"row": np.arange(len(ui)), "user_idx": ui.astype(np.int32),
                               "product_idx": pi.astype(np.int32), "send_s": send_s})
        users = pl.Series(np.unique(ui).astype(np.int32))
        frames = [
            pl.scan_parquet(self._organic_path(day + timedelta(days=k)))
            .filter((pl.col("etype") == PURCHASE) & pl.col("user_idx").is_in(users.implode()))
            .with_columns(pl.lit(k, pl.Int64).alias("k"), (pl.col("t").cast(pl.Int64) + k * DAY_S).alias("abs_t"))
            for k in range(LOOKAHEAD_DAYS + 1)
        ]
        return (
            pl.concat(frames)
            .collect()
            .join(wanted, on=["user_idx", "product_idx"], how="inner")
            .filter((pl.col("abs_t") >= pl.col("send_s")) & (pl.col("abs_t") < pl.col("send_s") + RESPONSE_HOURS * 3600))
        )

    def _drop_edits(self, day: date, lost: pl.DataFrame) -> pl.DataFrame:
        """Drop the lost purchases and the reviews that followed them in the same session."""
        if not lost.height:
            return pl.DataFrame(schema=EDIT_SCHEMA)
        rows = [lost.select("k", "event_no")]
        for k in lost["k"].unique().sort().to_list():
            in_day = lost.filter(pl.col("k") == k)
            reviews = (
                pl.scan_parquet(self._organic_path(day + timedelta(days=k)))
                .filter(pl.col("etype") == REVIEW)
                .join(in_day.lazy().select("sess_no", "product_idx"), on=["sess_no", "product_idx"], how="semi")
                .select(pl.lit(k, pl.Int64).alias("k"), "event_no")
                .collect()
            )
            rows.append(reviews)
        dropped = pl.concat(rows).unique(maintain_order=True)
        return pl.DataFrame(
            {
                "day": [day + timedelta(days=int(k)) for k in dropped["k"].to_list()],
                "event_no": dropped["event_no"],
                "drop": [True] * dropped.height,
                "price": [None] * dropped.height,
            },
            schema=EDIT_SCHEMA,
        )

    # ------------------------------------------------------------------ writing
    def _write_landing(self, frame: pl.DataFrame, folder: Path, name: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.{self.config.fmt}"
        tmp = path.with_suffix(path.suffix + ".tmp")
        if self.config.fmt == "csv":
            frame.with_columns(
                pl.col(c).dt.strftime("%Y-%m-%dT%H:%M:%S") for c, t in frame.schema.items() if isinstance(t, pl.Datetime)
            ).write_csv(tmp)
        else:
            frame.write_parquet(tmp)
        tmp.replace(path)  # readers never see a half-written file

    def _write_or_remove(self, frame: pl.DataFrame, folder: Path, name: str) -> None:
        if frame.height:
            self._write_landing(frame, folder, name)
            return
        stale = folder / f"{name}.{self.config.fmt}"
        if stale.exists():
            stale.unlink()
        if folder.exists() and not any(folder.iterdir()):
            folder.rmdir()


def _apply_edits(organic: pl.DataFrame, edits: pl.DataFrame) -> pl.DataFrame:
    """Remove dropped events and set the coupon price on redeemed ones (a drop wins over a reprice)."""
    if not edits.height:
        return organic
    merged = edits.group_by("event_no").agg(pl.col("drop").any(), pl.col("price").min())
    return (
        organic.join(merged, on="event_no", how="left")
        .filter(~pl.col("drop").fill_null(False))
        .drop("drop")
    )
