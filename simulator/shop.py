"""A seeded, vectorized simulated shop with a hidden causal response to promotions.

What the platform sees (written under `<home>/landing/`, in the landing contract): users, products, offers,
daily behaviour events and channel feedback. What it never sees (under `<home>/simulator/`): each user's
hidden preferences and their causal response to a message — by offer type, depth, channel, send hour,
their interest in the product, and fatigue from recent messages. Four kinds of user, as in the uplift
literature: persuadables (a good offer makes them buy), sure things (they buy anyway: a discount is a cost),
lost causes, and sleeping dogs (a message makes them *less* likely to buy).

Everything is a NumPy array over users or events; a day is generated at a time and streamed to Parquet, so
1M users x 90 days never sits in memory. Each day draws from its own RNG stream (seed, day), so a day can be
regenerated identically.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from simulator import catalog

SEGMENTS = ("persuadable", "sure_thing", "lost_cause", "sleeping_dog")
OFFER_TYPES = ("percent_off", "amount_off", "spend_threshold", "free_shipping")
CHANNELS = ("push", "sms", "email")
CHANNEL_COST = {"push": 0.0, "email": 0.002, "sms": 0.04}
RECENT = 10  # recently viewed products remembered per user
RESPONSE_HOURS = 48.0  # promotion responses happen within this window after send_at
WEEKDAY_FACTOR = np.array([0.9, 0.9, 0.95, 1.0, 1.1, 1.25, 1.2])  # Mon..Sun


@dataclass(frozen=True)
class ShopConfig:
    n_users: int = 5000
    n_products: int = 500
    n_offers: int = 16
    history_days: int = 30
    start: date = date(2026, 10, 1)
    seed: int = 7
    fmt: str = "parquet"  # or "csv"
    sessions_per_day: float = 0.22  # mean sessions per user per day

    def to_json(self) -> str:
        d = asdict(self)
        d["start"] = self.start.isoformat()
        return json.dumps(d, indent=2)

    @classmethod
    def from_json(cls, text: str) -> ShopConfig:
        d = json.loads(text)
        d["start"] = date.fromisoformat(d["start"])
        return cls(**d)


@dataclass(frozen=True)
class DayResult:
    day: date
    deliveries: int
    true_incremental_conversions: float  # counterfactual, from the coupled draws
    true_incremental_margin: float
    expected_incremental_margin: float  # the same in expectation, from the ground truth
    promo_purchases: int
    organic_purchases: int

    def __str__(self) -> str:
        return (
            f"{self.day}: {self.deliveries} deliveries, incremental conversions {self.true_incremental_conversions:.0f}, "
            f"incremental margin {self.true_incremental_margin:,.0f} (expected {self.expected_incremental_margin:,.0f}), "
            f"purchases organic {self.organic_purchases} + promo {self.promo_purchases}"
        )


class Shop:
    """The simulated shop. `create` draws it; `write_history` and `advance_day` write days of behaviour."""

    def __init__(self, config: ShopConfig, home: Path, users: dict[str, np.ndarray], products: dict[str, np.ndarray], offers: pl.DataFrame):
        self.config = config
        self.home = Path(home)
        self.u = users  # hidden per-user arrays
        self.p = products  # per-product arrays
        self.offers = offers
        n_cat = len(catalog.CATEGORIES)
        # Per-category popularity CDFs over product indices, for vectorized sampling.
        self._cat_products = [np.flatnonzero(self.p["category_idx"] == c) for c in range(n_cat)]
        self._cat_cdf = []
        for idx in self._cat_products:
            w = self.p["popularity"][idx]
            self._cat_cdf.append(np.cumsum(w) / w.sum() if len(idx) else np.array([1.0]))
        self._pref_cdf = np.cumsum(self.u["pref"], axis=1)

    # ------------------------------------------------------------------ paths
    @property
    def landing(self) -> Path:
        return self.home / "landing"

    @property
    def truth_dir(self) -> Path:
        return self.home / "simulator"

    def _state_path(self, day: date) -> Path:
        return self.truth_dir / "state" / f"{day}.npz"

    def _pending_path(self, day: date) -> Path:
        return self.truth_dir / "pending" / f"{day}.parquet"

    # ------------------------------------------------------------------ creation
    @classmethod
    def create(cls, config: ShopConfig, home: Path) -> Shop:
        home = Path(home)
        rng = np.random.default_rng([config.seed, 0])
        users, user_frame = _draw_users(config, rng)
        products, product_frame = _draw_products(config, rng)
        offers = _draw_offers(config, rng)
        shop = cls(config, home, users, products, offers)
        truth = shop.truth_dir
        if truth.exists():
            shutil.rmtree(truth)
        (truth / "state").mkdir(parents=True)
        (truth / "pending").mkdir(parents=True)
        (truth / "config.json").write_text(config.to_json())
        np.savez(truth / "users.npz", **users)
        np.savez(truth / "products.npz", **products)
        offers.write_parquet(truth / "offers.parquet")
        for name, frame in (("users", user_frame), ("products", product_frame), ("offers", offers.drop("type_idx"))):
            shop._write_landing(name, frame, folder=shop.landing / name)
        shop._save_state(config.start, _empty_state(config.n_users))
        return shop

    @classmethod
    def load(cls, home: Path) -> Shop:
        truth = Path(home) / "simulator"
        config = ShopConfig.from_json((truth / "config.json").read_text())
        users = dict(np.load(truth / "users.npz"))
        products = dict(np.load(truth / "products.npz"))
        offers = pl.read_parquet(truth / "offers.parquet")
        return cls(config, Path(home), users, products, offers)

    # ------------------------------------------------------------------ running days
    def write_history(self, progress: Callable[[int, int], None] | None = None) -> None:
        for i in range(self.config.history_days):
            self.advance_day(self.config.start + timedelta(days=i), None)
            if progress:
                progress(i + 1, self.config.history_days)

    def advance_day(self, day: date, deliveries: pl.DataFrame | None) -> DayResult:
        """Simulate `day`: organic behaviour plus the responses to `deliveries` sent that day.

        Idempotent: the state at the start of each day is kept, so re-running a day with the same
        deliveries rewrites identical files.
        """
        state_path = self._state_path(day)
        if not state_path.exists():
            raise ValueError(f"{day} cannot be simulated yet: simulate the days before it first")
        state = dict(np.load(state_path))
        rng = np.random.default_rng([self.config.seed, day.toordinal(), 1])
        organic, state = self._organic_day(day, state, rng)
        promo_events, feedback, result, state = self._respond(day, deliveries, state)
        self._write_day(day, organic, promo_events, feedback)
        self._save_state(day + timedelta(days=1), state)
        old = self._state_path(day - timedelta(days=3))
        if old.exists() and day - timedelta(days=3) >= self.config.start:
            old.unlink()  # keep a few days of snapshots: enough to redo recent days
        return DayResult(
            day=day,
            deliveries=result["deliveries"],
            true_incremental_conversions=result["inc_conv"],
            true_incremental_margin=result["inc_margin"],
            expected_incremental_margin=result["exp_margin"],
            promo_purchases=int((promo_events["event_type"] == "purchase").sum()) if promo_events.height else 0,
            organic_purchases=int((organic["event_type"] == "purchase").sum()),
        )

    # ------------------------------------------------------------------ organic behaviour
    def _organic_day(self, day: date, state: dict[str, np.ndarray], rng: np.random.Generator):
        u, p = self.u, self.p
        n_users = self.config.n_users
        lam = u["activity"] * WEEKDAY_FACTOR[day.weekday()] * self.config.sessions_per_day
        n_sess = rng.poisson(lam)
        sess_user = np.repeat(np.arange(n_users, dtype=np.int64), n_sess)  # (S,)
        s = len(sess_user)
        # Main product of each session: back to something recently viewed, or a fresh pick by preference.
        n_recent = (state["recent"][sess_user] >= 0).sum(axis=1)
        revisit = (rng.random(s) < 0.3) & (n_recent > 0)
        pick = np.minimum((rng.random(s) * np.maximum(n_recent, 1)).astype(np.int64), RECENT - 1)
        main = np.where(revisit, state["recent"][sess_user, pick], -1)
        fresh = ~revisit
        cats = self._sample_categories(sess_user[fresh], rng)
        main[fresh] = self._sample_products(cats, rng)
        # Extra browsing in the same category.
        n_extra = rng.poisson(1.2, s)
        extra_sess = np.repeat(np.arange(s), n_extra)
        extra_prod = self._sample_products(p["category_idx"][main[extra_sess]], rng)
        # Funnel on the main product.
        price_factor = np.exp(-u["price_sens"][sess_user] * (p["price_rel"][main] - 1.0)).clip(0.2, 2.0)
        fav = rng.random(s) < 0.08
        cart = rng.random(s) < 0.18 * price_factor.clip(0.3, 1.5)
        buy = cart & (rng.random(s) < u["buy_prob"][sess_user] * price_factor)
        # Sleeping dogs who got a message recently skip purchases they would have made.
        suppressed = (state["suppress_until"][sess_user] >= day.toordinal()) & (
            rng.random(s) < state["suppress_prob"][sess_user]
        )
        buy &= ~suppressed
        review = buy & (rng.random(s) < 0.1)
        # Session start time (UTC seconds in the day), around the user's active hour.
        hour_utc = (u["active_hour"][sess_user] - u["utc_offset"][sess_user] + rng.normal(0, 2.5, s)) % 24
        start_s = (hour_utc * 3600).astype(np.int64).clip(0, 86_000)
        platform = u["platform"][sess_user]

        def block(mask_or_idx, sess_idx, products, etype, offset_s):
            n = len(sess_idx)
            return {
                "sess": sess_idx,
                "user": sess_user[sess_idx],
                "product": products,
                "etype": np.full(n, etype, dtype=np.int8),
                "t": np.minimum(start_s[sess_idx] + offset_s, 86_399),
            }

        idx_all = np.arange(s)
        parts = [
            block(None, idx_all, main, 0, 0),
            block(None, extra_sess, extra_prod, 0, 40 + 60 * (np.arange(len(extra_sess)) % 5)),
            block(None, idx_all[fav], main[fav], 1, 90),
            block(None, idx_all[cart], main[cart], 2, 150),
            block(None, idx_all[buy], main[buy], 3, 400),
            block(None, idx_all[review], main[review], 4, 600),
        ]
        cols = {k: np.concatenate([b[k] for b in parts]) for k in parts[0]}
        order = np.lexsort((cols["etype"], cols["t"], cols["user"]))
        cols = {k: v[order] for k, v in cols.items()}
        n_events = len(order)
        # Update memory: viewed/bought products go to the front of the user's recent list.
        state = dict(state)
        seen_users, seen_prods = sess_user[idx_all], main
        state["recent"] = _push_recent(state["recent"], seen_users, seen_prods)
        day_start = datetime(day.year, day.month, day.day)
        etypes = np.array(["view", "favorite", "cart", "purchase", "review"])
        events = pl.DataFrame(
            {
                "event_no": np.arange(n_events, dtype=np.int64),
                "user_idx": cols["user"],
                "product_idx": cols["product"],
                "event_type": etypes[cols["etype"]],
                "t": cols["t"],
                "sess_no": cols["sess"],
                "quantity": np.where(cols["etype"] == 3, 1 + (rng.random(n_events) < 0.15), 1).astype(np.int64),
                "price": p["price"][cols["product"]],
                "platform": np.array(catalog.PLATFORMS)[platform[cols["sess"]]],
            }
        )
        day_tag = day.strftime("%Y%m%d")
        events = events.select(
            pl.format("e{}-{}", pl.lit(day_tag), pl.col("event_no").cast(pl.Utf8).str.zfill(8)).alias("event_id"),
            _user_id(pl.col("user_idx")).alias("user_id"),
            pl.col("event_type"),
            (pl.lit(day_start) + pl.duration(seconds=pl.col("t"))).alias("event_at"),
            _product_id(pl.col("product_idx")).alias("product_id"),
            pl.format("s{}-{}", pl.lit(day_tag), pl.col("sess_no")).alias("session_id"),
            pl.col("quantity"),
            pl.col("price").round(2),
            pl.col("platform"),
        )
        return events, state

    def _sample_categories(self, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        r = rng.random(len(users))
        return (self._pref_cdf[users] < r[:, None]).sum(axis=1).clip(0, len(catalog.CATEGORIES) - 1)

    def _sample_products(self, cats: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = np.empty(len(cats), dtype=np.int64)
        r = rng.random(len(cats))
        for c, (idx, cdf) in enumerate(zip(self._cat_products, self._cat_cdf, strict=True)):
            mask = cats == c
            if mask.any():
                out[mask] = idx[np.searchsorted(cdf, r[mask]).clip(0, len(idx) - 1)]
        return out

    # ------------------------------------------------------------------ promotions: the ground truth
    def _effects(self, user_idx, product_idx, offer_idx, channel_idx, send_hour_local, state) -> dict[str, np.ndarray]:
        """Hidden causal response of each (user, product, offer, channel, local hour) to one message."""
        u, p = self.u, self.p
        price = p["price"][product_idx]
        cost = p["cost"][product_idx]
        depth = _offer_depth(self.offers, offer_idx, price)
        otype = self.offers["type_idx"].to_numpy()[offer_idx]
        depth_effect = 1.0 - np.exp(-depth / u["depth_scale"][user_idx])
        hour_gap = np.abs(((send_hour_local - u["active_hour"][user_idx]) + 12) % 24 - 12)
        hour_factor = 0.55 + 0.45 * np.exp(-(hour_gap**2) / 18.0)
        pref = u["pref"][user_idx, p["category_idx"][product_idx]]
        interest = 0.15 + 0.85 * pref / u["pref"][user_idx].max(axis=1)
        recent = (state["recent"][user_idx] == product_idx[:, None]).any(axis=1)
        interest = interest + 1.2 * recent
        fatigue = 0.6 ** _sends_last_7d(state, user_idx)
        tau_plus = (
            u["base_response"][user_idx]
            * depth_effect
            * u["type_pref"][user_idx, otype]
            * u["channel_aff"][user_idx, channel_idx]
            * hour_factor
            * interest
            * fatigue
        ).clip(0.0, 0.9)
        # Organic chance to buy this product within the response window (the no-send world).
        n_recent = np.maximum((state["recent"][user_idx] >= 0).sum(axis=1), 1)
        visit_rate = u["activity"][user_idx] * self.config.sessions_per_day * (
            0.3 * recent / n_recent + 0.7 * pref * p["pop_share"][product_idx]
        )
        price_factor = np.exp(-u["price_sens"][user_idx] * (p["price_rel"][product_idx] - 1.0)).clip(0.2, 2.0)
        buy_rate = visit_rate * 0.18 * price_factor.clip(0.3, 1.5) * u["buy_prob"][user_idx] * price_factor
        p_none = 1.0 - np.exp(-buy_rate * RESPONSE_HOURS / 24.0)
        tau_minus = u["dog_effect"][user_idx] * (fatigue > 0)  # share of organic purchases lost
        p_send = (p_none * (1.0 - tau_minus) + (1.0 - p_none) * tau_plus).clip(0.0, 1.0)
        margin_send = price * (1.0 - depth) - cost
        margin_none = price - cost
        channel_cost = np.array([CHANNEL_COST[c] for c in CHANNELS])[channel_idx]
        return {
            "p_convert_send": p_send,
            "p_convert_none": p_none,
            "uplift": p_send - p_none,
            "expected_incremental_margin": p_send * margin_send - p_none * margin_none - channel_cost,
            "offer_cost": p_send * depth * price,
            "tau_plus": tau_plus,
            "tau_minus": tau_minus,
            "depth": depth,
            "price": price,
            "cost": cost,
        }

    def true_effect(self, actions: pl.DataFrame) -> pl.DataFrame:
        """The oracle: true conversion probabilities and incremental margin of each action.

        `actions`: user_id, product_id, offer_id, channel, send_hour (local), day. Uses the fatigue and
        interest state at the start of each action's day.
        """
        out = []
        for (day,), group in actions.group_by(["day"], maintain_order=True):
            state = dict(np.load(self._state_path(day)))
            ui, pi, oi, ci = self._indices(group)
            eff = self._effects(ui, pi, oi, ci, group["send_hour"].to_numpy(), state)
            out.append(
                group.with_columns(
                    *[
                        pl.Series(k, eff[k])
                        for k in ("p_convert_send", "p_convert_none", "uplift", "expected_incremental_margin", "offer_cost")
                    ]
                )
            )
        return pl.concat(out) if out else actions

    def _indices(self, frame: pl.DataFrame):
        ui = frame["user_id"].str.slice(1).cast(pl.Int64).to_numpy() - 1
        pi = frame["product_id"].str.slice(1).cast(pl.Int64).to_numpy() - 1
        offer_pos = {o: i for i, o in enumerate(self.offers["offer_id"].to_list())}
        oi = np.array([offer_pos[o] for o in frame["offer_id"].to_list()], dtype=np.int64)
        ci = frame["channel"].replace_strict({c: i for i, c in enumerate(CHANNELS)}, return_dtype=pl.Int64).to_numpy()
        return ui, pi, oi, ci

    def _respond(self, day: date, deliveries: pl.DataFrame | None, state: dict[str, np.ndarray]):
        """Feedback and caused purchases for today's deliveries, plus those pending from yesterday."""
        pending_path = self._pending_path(day)
        carried = pl.read_parquet(pending_path) if pending_path.exists() else None
        result = {"deliveries": 0, "inc_conv": 0.0, "inc_margin": 0.0, "exp_margin": 0.0}
        new_rows: list[pl.DataFrame] = []
        if deliveries is not None and deliveries.height:
            d = deliveries.sort("delivery_id")
            rng = np.random.default_rng([self.config.seed, day.toordinal(), 2])
            ui, pi, oi, ci = self._indices(d)
            send_at = d["send_at"].cast(pl.Datetime("us")).to_numpy()
            hour_utc = (send_at.astype("datetime64[h]").astype(np.int64) % 24).astype(np.int64)
            hour_local = (hour_utc + self.u["utc_offset"][ui]) % 24
            eff = self._effects(ui, pi, oi, ci, hour_local, state)
            n = d.height
            # Coupled draws: the same uniform decides the purchase with and without the message.
            coupling = rng.random(n)
            bought_none = coupling < eff["p_convert_none"]
            bought_send = coupling < eff["p_convert_send"]
            caused = bought_send & ~bought_none
            lost = bought_none & ~bought_send
            margin_send = eff["price"] * (1 - eff["depth"]) - eff["cost"]
            margin_none = eff["price"] - eff["cost"]
            channel_cost = np.array([CHANNEL_COST[c] for c in CHANNELS])[ci]
            realized = np.where(bought_send, margin_send, 0.0) - np.where(bought_none, margin_none, 0.0) - channel_cost
            result.update(
                deliveries=n,
                inc_conv=float(caused.sum() - lost.sum()),
                inc_margin=float(realized.sum()),
                exp_margin=float(eff["expected_incremental_margin"].sum()),
            )
            bounced = rng.random(n) < 0.02
            p_open = np.array([0.25, 0.45, 0.2])[ci] * (0.6 + 0.8 * self.u["engagement"][ui])
            opened = ~bounced & (rng.random(n) < p_open.clip(0, 0.95))
            converted = ~bounced & caused  # a caused purchase goes through the message
            clicked = converted | (opened & (rng.random(n) < 0.15 + 2.0 * eff["tau_plus"]))
            opened |= clicked
            unsub = ~bounced & (rng.random(n) < np.where(self.u["segment"][ui] == 3, 0.03, 0.003))
            delay_open = rng.exponential(1.5, n).clip(0.02, 40)
            delay_click = delay_open + rng.exponential(0.3, n).clip(0.01, 3)
            delay_buy = delay_click + rng.exponential(4.0, n).clip(0.05, RESPONSE_HOURS - 5)
            send_s = send_at.astype("datetime64[s]")

            def at(hours):
                return (send_s + (hours * 3600).astype("timedelta64[s]")).astype("datetime64[us]")

            ids = d["delivery_id"].to_numpy()
            fb = [
                (ids[~bounced], "delivered", at(np.full(n, 0.01))[~bounced]),
                (ids[bounced], "bounced", at(np.full(n, 0.01))[bounced]),
                (ids[opened], "opened", at(delay_open)[opened]),
                (ids[clicked], "clicked", at(delay_click)[clicked]),
                (ids[converted], "converted", at(delay_buy)[converted]),
                (ids[unsub], "unsubscribed", at(delay_open + 0.05)[unsub]),
            ]
            revenue = np.round(eff["price"] * (1 - eff["depth"]), 2)
            feedback = pl.concat(
                [
                    pl.DataFrame({"delivery_id": i, "event": [e] * len(i), "event_at": t}, schema={"delivery_id": pl.Utf8, "event": pl.Utf8, "event_at": pl.Datetime("us")})
                    for i, e, t in fb
                ]
            ).join(
                pl.DataFrame({"delivery_id": ids, "_rev": revenue, "_conv": converted}), on="delivery_id", how="left"
            ).with_columns(
                pl.when(pl.col("event") == "converted").then(pl.format("o-{}", pl.col("delivery_id"))).alias("order_id"),
                pl.when(pl.col("event") == "converted").then(pl.col("_rev")).alias("revenue"),
            ).drop("_rev", "_conv")
            buys = pl.DataFrame(
                {
                    "event_id": [f"e-{x}-buy" for x in ids[converted]],
                    "user_id": d["user_id"].to_numpy()[converted],
                    "event_type": ["purchase"] * int(converted.sum()),
                    "event_at": at(delay_buy)[converted],
                    "product_id": d["product_id"].to_numpy()[converted],
                    "session_id": [f"s-{x}" for x in ids[converted]],
                    "quantity": np.ones(int(converted.sum()), dtype=np.int64),
                    "price": revenue[converted],
                    "platform": np.array(catalog.PLATFORMS)[self.u["platform"][ui[converted]]],
                },
                schema_overrides={"event_at": pl.Datetime("us")},
            )
            new_rows.append(buys.with_columns(pl.lit("event").alias("_kind")))
            new_rows.append(feedback.with_columns(pl.lit("feedback").alias("_kind")))
            # Memory of the message: fatigue, and the sleeping dogs' annoyance for the response window.
            state = dict(state)
            state["sends"] = _push_send(state["sends"], ui, day.toordinal())
            dogs = self.u["dog_effect"][ui] > 0
            state["suppress_until"][ui[dogs]] = day.toordinal() + 1
            state["suppress_prob"][ui[dogs]] = self.u["dog_effect"][ui[dogs]]
        promo_events, feedback_today = self._split_by_day(day, new_rows, carried)
        return promo_events, feedback_today, result, state

    def _split_by_day(self, day: date, new_rows: list[pl.DataFrame], carried: pl.DataFrame | None):
        """Rows dated today are written today; later ones wait in pending/ for their day."""
        events = [r.drop("_kind") for r in new_rows if r["_kind"][0:1].to_list() == ["event"]]
        feedback = [r.drop("_kind") for r in new_rows if r["_kind"][0:1].to_list() == ["feedback"]]
        if carried is not None:
            events.append(carried.filter(pl.col("_kind") == "event").drop("_kind").select(EVENT_COLUMNS))
            feedback.append(carried.filter(pl.col("_kind") == "feedback").drop("_kind").select(FEEDBACK_COLUMNS))
        ev = pl.concat([e.select(EVENT_COLUMNS).cast(EVENT_SCHEMA) for e in events if e.height]) if any(e.height for e in events) else pl.DataFrame(schema=EVENT_SCHEMA)
        fb = pl.concat([f.select(FEEDBACK_COLUMNS).cast(FEEDBACK_SCHEMA) for f in feedback if f.height]) if any(f.height for f in feedback) else pl.DataFrame(schema=FEEDBACK_SCHEMA)
        end = datetime(day.year, day.month, day.day) + timedelta(days=1)
        later_ev, later_fb = ev.filter(pl.col("event_at") >= end), fb.filter(pl.col("event_at") >= end)
        if later_ev.height or later_fb.height:
            for offset in (1, 2, 3):
                lo, hi = end + timedelta(days=offset - 1), end + timedelta(days=offset)
                e = later_ev.filter((pl.col("event_at") >= lo) & (pl.col("event_at") < hi))
                f = later_fb.filter((pl.col("event_at") >= lo) & (pl.col("event_at") < hi))
                if not (e.height or f.height):
                    continue
                path = self._pending_path(day + timedelta(days=offset))
                rows = pl.concat(
                    [e.with_columns(pl.lit("event").alias("_kind")), _as_event_shape(f)], how="diagonal_relaxed"
                )
                if path.exists():
                    rows = pl.concat([pl.read_parquet(path), rows], how="diagonal_relaxed").unique(maintain_order=True)
                rows.write_parquet(path)
        return ev.filter(pl.col("event_at") < end), fb.filter(pl.col("event_at") < end)

    # ------------------------------------------------------------------ writing
    def _write_day(self, day: date, organic: pl.DataFrame, promo: pl.DataFrame, feedback: pl.DataFrame) -> None:
        folder = self.landing / "events" / f"date={day}"
        self._write_landing("events", organic, folder=folder)
        promo_path = folder / f"promo_responses.{self.config.fmt}"
        if promo.height:
            self._write_landing("promo_responses", promo.sort("event_at", "event_id"), folder=folder)
        elif promo_path.exists():
            promo_path.unlink()
        fb_folder = self.landing / "feedback" / f"date={day}"
        if feedback.height:
            self._write_landing("feedback", feedback.sort("event_at", "delivery_id", "event"), folder=fb_folder)

    def _write_landing(self, name: str, frame: pl.DataFrame, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.{self.config.fmt}"
        tmp = path.with_suffix(path.suffix + ".tmp")
        if self.config.fmt == "csv":
            frame.with_columns(
                [pl.col(c).dt.strftime("%Y-%m-%dT%H:%M:%S") for c, t in frame.schema.items() if t == pl.Datetime("us") or isinstance(t, pl.Datetime)]
            ).write_csv(tmp)
        else:
            frame.write_parquet(tmp)
        tmp.replace(path)  # readers never see a half-written file

    def _save_state(self, day: date, state: dict[str, np.ndarray]) -> None:
        path = self._state_path(day)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **state)


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
EVENT_COLUMNS = list(EVENT_SCHEMA)
FEEDBACK_SCHEMA = {
    "delivery_id": pl.Utf8,
    "event": pl.Utf8,
    "event_at": pl.Datetime("us"),
    "order_id": pl.Utf8,
    "revenue": pl.Float64,
}
FEEDBACK_COLUMNS = list(FEEDBACK_SCHEMA)


def _as_event_shape(feedback: pl.DataFrame) -> pl.DataFrame:
    return feedback.with_columns(pl.lit("feedback").alias("_kind"))


def _user_id(idx: pl.Expr) -> pl.Expr:
    return pl.format("u{}", (idx + 1).cast(pl.Utf8).str.zfill(7))


def _product_id(idx: pl.Expr) -> pl.Expr:
    return pl.format("p{}", (idx + 1).cast(pl.Utf8).str.zfill(6))


def _empty_state(n_users: int) -> dict[str, np.ndarray]:
    return {
        "recent": np.full((n_users, RECENT), -1, dtype=np.int64),
        "sends": np.zeros((n_users, 3), dtype=np.int64),  # ordinal days of the last 3 messages
        "suppress_until": np.zeros(n_users, dtype=np.int64),
        "suppress_prob": np.zeros(n_users, dtype=np.float64),
    }


def _push_recent(recent: np.ndarray, users: np.ndarray, products: np.ndarray) -> np.ndarray:
    """Put each (user, product) at the front of the user's recent list (in event order, vectorized per
    round: a user with k sessions today is shifted k times)."""
    recent = recent.copy()
    order = np.argsort(users, kind="stable")
    users, products = users[order], products[order]
    rank = np.arange(len(users)) - np.searchsorted(users, users)  # 0,1,2 within each user
    for r in range(int(rank.max()) + 1 if len(rank) else 0):
        sel = rank == r
        uu, pp = users[sel], products[sel]
        present = recent[uu] == pp[:, None]
        keep = np.where(present, -1, recent[uu])
        # Drop the duplicate, shift right, put the product first.
        recent[uu] = np.concatenate([pp[:, None], _left_pack(keep)[:, : RECENT - 1]], axis=1)
    return recent


def _left_pack(rows: np.ndarray) -> np.ndarray:
    """Move non-negative entries of each row to the left, keeping their order."""
    valid = rows >= 0
    order = np.argsort(~valid, axis=1, kind="stable")
    return np.take_along_axis(rows, order, axis=1)


def _push_send(sends: np.ndarray, users: np.ndarray, day_ordinal: int) -> np.ndarray:
    sends = sends.copy()
    uniq = np.unique(users)
    sends[uniq, 1:] = sends[uniq, :-1]
    sends[uniq, 0] = day_ordinal
    return sends


def _sends_last_7d(state: dict[str, np.ndarray], users: np.ndarray) -> np.ndarray:
    last = state["sends"][users]
    latest = last.max(axis=1, keepdims=True)
    # Fatigue counts sends within 7 days before the most recent one; a user never messaged has 0.
    return ((last > 0) & (latest - last < 7)).sum(axis=1)


def _offer_depth(offers: pl.DataFrame, offer_idx: np.ndarray, price: np.ndarray) -> np.ndarray:
    """Fraction of the price given away (docs/contracts.md)."""
    t = offers["type_idx"].to_numpy()[offer_idx]
    v = offers["value"].to_numpy()[offer_idx]
    m = offers["min_spend"].fill_null(0.0).to_numpy()[offer_idx]
    return np.select(
        [t == 0, t == 1, t == 2, t == 3],
        [v / 100.0, np.minimum(v, price) / price, v / np.maximum(price, m), np.minimum(v, price) / price],
    ).clip(0.0, 0.95)


# ---------------------------------------------------------------------- drawing the shop
def _draw_users(config: ShopConfig, rng: np.random.Generator) -> tuple[dict[str, np.ndarray], pl.DataFrame]:
    n = config.n_users
    n_cat = len(catalog.CATEGORIES)
    segment = rng.choice(4, size=n, p=[0.35, 0.15, 0.4, 0.1])
    # Observable behaviour correlates with the hidden segment, so a model can learn who is who.
    activity = rng.lognormal(0.0, 0.6, n) * np.array([1.0, 2.2, 0.45, 2.0])[segment]
    buy_prob = (rng.beta(2, 5, n) * np.array([1.0, 1.8, 0.6, 1.6])[segment]).clip(0.02, 0.9)
    price_sens = rng.gamma(2.0, 0.5, n) * np.array([1.6, 0.5, 1.0, 0.6])[segment]
    pref = rng.dirichlet(np.full(n_cat, 0.35), n)
    base = np.select(
        [segment == 0, segment == 1, segment == 2, segment == 3],
        [rng.uniform(0.05, 0.16, n), rng.uniform(0.0, 0.01, n), rng.uniform(0.0, 0.004, n), np.zeros(n)],
    )
    dog_effect = np.where(segment == 3, rng.uniform(0.3, 0.7, n), 0.0)
    locale_zh = rng.random(n) < 0.7
    city_zh = rng.integers(0, len(catalog.CITIES_ZH), n)
    city_en = rng.integers(0, len(catalog.CITIES_EN), n)
    cities = np.where(locale_zh, np.array([c[0] for c in catalog.CITIES_ZH])[city_zh], np.array([c[0] for c in catalog.CITIES_EN])[city_en])
    tiers = np.where(locale_zh, np.array([c[1] for c in catalog.CITIES_ZH])[city_zh], np.array([c[1] for c in catalog.CITIES_EN])[city_en])
    tzs = np.where(locale_zh, np.array([c[2] for c in catalog.CITIES_ZH])[city_zh], np.array([c[2] for c in catalog.CITIES_EN])[city_en])
    offsets = {"Asia/Shanghai": 8, "America/New_York": -5, "America/Chicago": -6, "America/Denver": -7, "America/Los_Angeles": -8}
    hidden = {
        "segment": segment.astype(np.int64),
        "activity": activity,
        "buy_prob": buy_prob,
        "price_sens": price_sens,
        "pref": pref,
        "active_hour": rng.choice([8, 12, 13, 19, 20, 21, 22], size=n).astype(np.int64),  # local
        "utc_offset": np.array([offsets[t] for t in tzs], dtype=np.int64),
        "platform": rng.choice(3, size=n, p=[0.6, 0.25, 0.15]).astype(np.int64),
        "engagement": rng.beta(2, 3, n),
        "base_response": base,
        "depth_scale": rng.uniform(0.05, 0.3, n) / np.where(price_sens > 1.0, 1.5, 1.0),
        "type_pref": rng.uniform(0.4, 1.6, (n, 4)),
        "channel_aff": rng.uniform(0.3, 1.5, (n, 3)),
        "dog_effect": dog_effect,
    }
    start = datetime(config.start.year, config.start.month, config.start.day)
    signup = np.datetime64(start, "s") - (rng.uniform(1, 900, n) * 86400).astype("timedelta64[s]")
    member = np.where(segment == 1, rng.choice(4, n, p=[0.1, 0.3, 0.35, 0.25]), rng.choice(4, n, p=[0.5, 0.3, 0.15, 0.05]))
    idx = np.arange(n)
    frame = pl.DataFrame(
        {
            "user_idx": idx,
            "signup_at": signup.astype("datetime64[us]"),
            "gender": rng.choice(np.array(["F", "M", "U"]), n, p=[0.55, 0.4, 0.05]),
            "birth_year": rng.integers(1960, 2007, n),
            "city": cities,
            "city_tier": tiers.astype(np.int64),
            "member_level": np.array(catalog.MEMBER_LEVELS)[member],
            "locale": np.where(locale_zh, "zh-CN", "en-US"),
            "timezone": tzs,
            "consent_push": rng.random(n) < 0.7,
            "consent_sms": rng.random(n) < 0.4,
            "consent_email": rng.random(n) < 0.55,
        }
    ).select(
        _user_id(pl.col("user_idx")).alias("user_id"),
        "signup_at", "gender", "birth_year", "city", "city_tier", "member_level", "locale", "timezone",
        pl.format("user{}@example.com", pl.col("user_idx") + 1).alias("email"),
        pl.format("+86-139{}", (pl.col("user_idx") + 10_000_000).cast(pl.Utf8)).alias("phone"),
        "consent_push", "consent_sms", "consent_email",
    )
    return hidden, frame


def _draw_products(config: ShopConfig, rng: np.random.Generator) -> tuple[dict[str, np.ndarray], pl.DataFrame]:
    n = config.n_products
    names = list(catalog.CATEGORIES)
    cat = rng.integers(0, len(names), n)
    cat[: len(names)] = np.arange(len(names))[: min(n, len(names))]  # every category has a product
    base_price = np.array([catalog.CATEGORIES[c][2] for c in names])[cat]
    price = np.round(base_price * rng.lognormal(0.0, 0.5, n), 2).clip(1.0, None)
    cost = np.round(price * rng.uniform(0.4, 0.8, n), 2)
    popularity = rng.pareto(1.2, n) + 0.05
    cat_pop = np.bincount(cat, weights=popularity, minlength=len(names))
    median_by_cat = {c: np.median(price[cat == c]) for c in range(len(names)) if (cat == c).any()}
    price_rel = price / np.array([median_by_cat[c] for c in cat])
    brand = rng.integers(0, len(catalog.BRANDS), n)
    zh = rng.random(n) < 0.6
    titles = []
    subcats = []
    adj = rng.integers(0, len(catalog.ADJECTIVES_EN), n)
    noun_pick = rng.integers(0, 100, n)
    sub_pick = rng.integers(0, 100, n)
    for i in range(n):
        c = names[cat[i]]
        b = catalog.BRANDS[brand[i]]
        if zh[i]:
            nouns = catalog.NOUNS_ZH[c]
            titles.append(f"{b} {catalog.ADJECTIVES_ZH[adj[i]]}{nouns[noun_pick[i] % len(nouns)]}")
        else:
            nouns = catalog.NOUNS_EN[c]
            titles.append(f"{b} {catalog.ADJECTIVES_EN[adj[i]]} {nouns[noun_pick[i] % len(nouns)]}")
        subs = catalog.CATEGORIES[c][1]
        subcats.append(subs[sub_pick[i] % len(subs)])
    hidden = {
        "category_idx": cat.astype(np.int64),
        "price": price,
        "cost": cost,
        "popularity": popularity,
        "pop_share": popularity / cat_pop[cat],
        "price_rel": price_rel,
    }
    frame = pl.DataFrame(
        {
            "product_id": [f"p{i + 1:06d}" for i in range(n)],
            "title": titles,
            "brand": [catalog.BRANDS[b] for b in brand],
            "category": [names[c] for c in cat],
            "subcategory": subcats,
            "price": price,
            "cost": cost,
            "is_active": rng.random(n) < 0.97,
        }
    )
    return hidden, frame


def _draw_offers(config: ShopConfig, rng: np.random.Generator) -> pl.DataFrame:
    start = datetime(config.start.year, config.start.month, config.start.day)
    rows = []
    for i in range(config.n_offers):
        t = i % 4
        if t == 0:
            value, min_spend = float(rng.choice([5, 10, 15, 20, 25, 30])), 0.0
        elif t == 1:
            value, min_spend = float(rng.choice([5, 10, 20, 30, 50])), 0.0
        elif t == 2:
            min_spend = float(rng.choice([99, 199, 299, 499]))
            value = float(round(min_spend * rng.choice([0.1, 0.15, 0.2])))
        else:
            value, min_spend = float(rng.choice([6, 8, 10, 12])), 0.0
        rows.append(
            {
                "offer_id": f"o{i + 1:03d}",
                "offer_type": OFFER_TYPES[t],
                "value": value,
                "min_spend": min_spend,
                "scope": "all",
                "scope_value": None,
                "valid_from": start - timedelta(days=30),
                "valid_to": start + timedelta(days=400),
                "type_idx": t,
            }
        )
    return pl.DataFrame(rows, schema_overrides={"scope_value": pl.Utf8, "valid_from": pl.Datetime("us"), "valid_to": pl.Datetime("us")})
