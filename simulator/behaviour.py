"""Organic behaviour: one day of sessions for every user at once, and its exact purchase rate.

A user opens Poisson(activity x weekday) sessions a day, each around their active hour (local time). A
session looks at one main product (back to a recently viewed one, or a fresh pick: category by the user's
hidden preference, product by popularity), browses a few more in that category, and may favourite, cart,
buy and review the main product. Because sessions are Poisson and each picks and buys independently given
the state at the start of the day, the purchases of one (user, product) are a thinned Poisson process with
a rate we can write down: `window_rate` is that rate over a 48 h window, which is how the ground truth knows
P(buy | no message) for the very process that writes the events.

No per-event Python loops: everything is array arithmetic over sessions and events.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
from scipy.special import ndtr

from simulator import catalog
from simulator.config import EVENT_TYPES, PLATFORMS, ShopConfig
from simulator.world import N_CATEGORIES, World, midnight, product_id, user_id

WEEKDAY_FACTOR = np.array([0.9, 0.9, 0.95, 1.0, 1.1, 1.25, 1.2])  # Mon..Sun
RECENT = 10  # recently viewed products a user remembers
REVISIT_CART_BOOST = 2.5  # going back to a product shows intent: carts are this much more likely
HOUR_SD = 2.5  # spread of session start around the active hour, hours
EXTRA_VIEWS = 1.2  # mean extra products browsed per session
FAVORITE_RATE = 0.08
REVIEW_RATE = 0.1
SESSION_LAST_S = 86_000  # latest session start in the day, seconds
PURCHASE_OFFSET_S = 400  # a purchase happens this long after its session starts
CART_OFFSET_S, FAVORITE_OFFSET_S, REVIEW_OFFSET_S = 150, 90, 600

# Columns of one organic day (integers; strings are made only when writing the landing file).
ORGANIC_SCHEMA = {
    "event_no": pl.Int64,
    "user_idx": pl.Int32,
    "product_idx": pl.Int32,
    "etype": pl.Int8,
    "t": pl.Int32,  # seconds after midnight UTC
    "sess_no": pl.Int32,
    "quantity": pl.Int8,
    "platform": pl.Int8,
}
PURCHASE = EVENT_TYPES.index("purchase")
REVIEW = EVENT_TYPES.index("review")


def utc_offsets(day: date) -> np.ndarray:
    """Hours to add to UTC to get local time, per `catalog.TIMEZONES` index, on `day` (DST included)."""
    noon = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
    return np.array(
        [noon.astimezone(ZoneInfo(tz)).utcoffset().total_seconds() / 3600 for tz in catalog.TIMEZONES]
    )


def empty_recent(n_users: int) -> np.ndarray:
    return np.full((n_users, RECENT), -1, dtype=np.int32)


class Behaviour:
    """Organic behaviour of one world: generates days and gives the purchase rates behind them."""

    def __init__(self, world: World, config: ShopConfig):
        self.u, self.p, self.config = world.users, world.products, config
        cat = self.p["category_idx"]
        self.cat_products = [np.flatnonzero((cat == c) & self.p["active"]) for c in range(N_CATEGORIES)]
        self.cat_cdf = [np.cumsum(self.p["pop_share"][idx]) for idx in self.cat_products]
        has_products = np.array([len(idx) > 0 for idx in self.cat_products])
        pref = self.u["pref"] * has_products  # nobody browses an empty category
        self.pref = pref / pref.sum(axis=1, keepdims=True)
        self.pref_cdf = np.cumsum(self.pref, axis=1)
        self.price_factor_cap = (0.2, 2.0)

    # ------------------------------------------------------------------ rates (the ground truth uses these)
    def _price_factor(self, users: np.ndarray, products: np.ndarray) -> np.ndarray:
        return np.exp(-self.u["price_sens"][users] * (self.p["price_rel"][products] - 1.0)).clip(*self.price_factor_cap)

    def _cart_and_buy(self, users: np.ndarray, products: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        price_factor = self._price_factor(users, products)
        cart = self.u["cart_rate"][users] * price_factor.clip(0.3, 1.5)
        buy = (self.u["buy_prob"][users] * price_factor).clip(0.0, 0.95)
        return cart, buy

    def purchase_rate(self, users: np.ndarray, products: np.ndarray, recent_rows: np.ndarray) -> np.ndarray:
        """Expected purchases of `products[i]` by `users[i]` per day at weekday factor 1, given each user's
        recent list at the start of the day."""
        n_recent = (recent_rows >= 0).sum(axis=1)
        revisit = self.u["revisit"][users] * (n_recent > 0)
        at = recent_rows == products[:, None]  # (N, RECENT): where the product sits in the list
        position = np.where(at.any(axis=1), at.argmax(axis=1), -1)
        pick_revisit = revisit * np.where(position >= 0, _position_weight(position, n_recent), 0.0)
        pick_fresh = (1.0 - revisit) * self.pref[users, self.p["category_idx"][products]] * self.p["pop_share"][products]
        cart, buy = self._cart_and_buy(users, products)
        cart_revisit = (cart * REVISIT_CART_BOOST).clip(0.0, 0.9)
        sessions = self.u["activity"][users] * self.config.sessions_per_day
        return sessions * (pick_revisit * cart_revisit + pick_fresh * cart) * buy

    def session_hour_cdf(self, users: np.ndarray, day: date, hour_utc: np.ndarray) -> np.ndarray:
        """P(a session of the user starts before `hour_utc` of the UTC day): a normal wrapped onto 24 h."""
        mu = (self.u["active_hour"][users] - utc_offsets(day)[self.u["tz_idx"][users]]) % 24
        h = np.asarray(hour_utc, dtype=np.float64)
        total = np.zeros_like(mu, dtype=np.float64)
        for k in (-2, -1, 0, 1, 2):
            total += ndtr((24 * k + h - mu) / HOUR_SD) - ndtr((24 * k - mu) / HOUR_SD)
        return total

    def window_rate(
        self, users: np.ndarray, products: np.ndarray, recent_rows: np.ndarray, day: date, send_hour_utc: np.ndarray
    ) -> np.ndarray:
        """Expected organic purchases in the 48 h after a send at `send_hour_utc` (float hours) on `day`:
        the rest of `day`, all of the next day and the first part of the one after."""
        daily = self.purchase_rate(users, products, recent_rows)
        # A purchase lands PURCHASE_OFFSET_S after its session starts: shift the cut to session starts.
        cut = np.clip(np.asarray(send_hour_utc, dtype=np.float64) - PURCHASE_OFFSET_S / 3600, 0.0, 24.0)
        before = self.session_hour_cdf(users, day, cut)
        w0, w1, w2 = (WEEKDAY_FACTOR[(day + timedelta(days=k)).weekday()] for k in range(3))
        return daily * (w0 * (1.0 - before) + w1 + w2 * before)

    # ------------------------------------------------------------------ one day of events
    def organic_day(self, day: date, recent: np.ndarray) -> tuple[pl.DataFrame, np.ndarray]:
        """The day's organic events (ORGANIC_SCHEMA) and the recent lists at the start of the next day."""
        rng = np.random.default_rng([self.config.seed, day.toordinal(), 1])
        u = self.u
        n_users = len(u["activity"])
        sessions = rng.poisson(u["activity"] * self.config.sessions_per_day * WEEKDAY_FACTOR[day.weekday()])
        sess_user = np.repeat(np.arange(n_users, dtype=np.int64), sessions)  # (S,)
        s = len(sess_user)
        recent_rows = recent[sess_user]  # (S, RECENT)
        n_recent = (recent_rows >= 0).sum(axis=1)
        revisit = (rng.random(s) < u["revisit"][sess_user]) & (n_recent > 0)
        # The most recently viewed products are the likeliest to be revisited (see _position_weight).
        pick = np.minimum((rng.random(s) ** 2 * np.maximum(n_recent, 1)).astype(np.int64), RECENT - 1)
        main = recent_rows[np.arange(s), pick].astype(np.int64)
        fresh = ~revisit
        main[fresh] = self._sample_products(self._sample_categories(sess_user[fresh], rng), rng)
        n_extra = rng.poisson(EXTRA_VIEWS, s)
        extra_sess = np.repeat(np.arange(s), n_extra)
        extra_product = self._sample_products(self.p["category_idx"][main[extra_sess]], rng)
        cart_p, buy_p = self._cart_and_buy(sess_user, main)
        cart_p = np.where(revisit, (cart_p * REVISIT_CART_BOOST).clip(0.0, 0.9), cart_p)
        favorite = rng.random(s) < FAVORITE_RATE
        cart = rng.random(s) < cart_p
        buy = cart & (rng.random(s) < buy_p)
        review = buy & (rng.random(s) < REVIEW_RATE)
        mu = (u["active_hour"][sess_user] - utc_offsets(day)[u["tz_idx"][sess_user]]) % 24
        hour = (mu + rng.normal(0.0, HOUR_SD, s)) % 24
        start_s = (hour * 3600).astype(np.int64).clip(0, SESSION_LAST_S)
        platform = np.where(rng.random(s) < 0.85, u["platform"][sess_user], rng.integers(0, 3, s))
        sess_idx = np.arange(s)
        blocks = [
            (sess_idx, main, 0, np.zeros(s, dtype=np.int64)),
            (extra_sess, extra_product, 0, 40 + 60 * (np.arange(len(extra_sess)) % 5)),
            (sess_idx[favorite], main[favorite], 1, FAVORITE_OFFSET_S),
            (sess_idx[cart], main[cart], 2, CART_OFFSET_S),
            (sess_idx[buy], main[buy], PURCHASE, PURCHASE_OFFSET_S),
            (sess_idx[review], main[review], REVIEW, REVIEW_OFFSET_S),
        ]
        ev_sess = np.concatenate([b[0] for b in blocks])
        ev_product = np.concatenate([b[1] for b in blocks])
        ev_type = np.concatenate([np.full(len(b[0]), b[2], dtype=np.int8) for b in blocks])
        ev_t = np.minimum(start_s[ev_sess] + np.concatenate([np.broadcast_to(b[3], len(b[0])) for b in blocks]), 86_399)
        ev_user = sess_user[ev_sess]
        order = np.lexsort((ev_type, ev_t, ev_user))
        n_events = len(order)
        quantity = np.where(ev_type[order] == PURCHASE, 1 + (rng.random(n_events) < 0.15), 1)
        frame = pl.DataFrame(
            {
                "event_no": np.arange(n_events, dtype=np.int64),
                "user_idx": ev_user[order],
                "product_idx": ev_product[order],
                "etype": ev_type[order],
                "t": ev_t[order],
                "sess_no": ev_sess[order],
                "quantity": quantity,
                "platform": platform[ev_sess[order]],
            },
            schema=ORGANIC_SCHEMA,
        )
        by_time = np.lexsort((start_s, sess_user))  # push today's main products in the order they were seen
        return frame, push_recent(recent, sess_user[by_time], main[by_time])

    def _sample_categories(self, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        r = rng.random(len(users))
        return (self.pref_cdf[users] < r[:, None]).sum(axis=1).clip(0, N_CATEGORIES - 1)

    def _sample_products(self, cats: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = np.empty(len(cats), dtype=np.int64)
        r = rng.random(len(cats))
        for c, (idx, cdf) in enumerate(zip(self.cat_products, self.cat_cdf, strict=True)):
            mask = cats == c
            if mask.any():
                out[mask] = idx[np.searchsorted(cdf, r[mask] * cdf[-1]).clip(0, len(idx) - 1)]
        return out


def _position_weight(position: np.ndarray, n_recent: np.ndarray) -> np.ndarray:
    """P(a revisit picks list position j of n) when the position is floor(n * r**2), r uniform."""
    n = np.maximum(n_recent, 1)
    position = np.maximum(position, 0)
    return np.sqrt((position + 1) / n) - np.sqrt(position / n)


def to_landing(frame: pl.DataFrame, day: date, world: World) -> pl.DataFrame:
    """Integer events (ORGANIC_SCHEMA plus an optional `price` override) as landing rows with string ids."""
    day_tag = day.strftime("%Y%m%d")
    list_price = pl.Series(world.products["price"])
    price = list_price.gather(frame["product_idx"].cast(pl.Int64))
    if "price" in frame.columns:
        price = frame["price"].fill_null(price)
    return frame.with_columns(price=price).select(
        pl.format("e{}-{}", pl.lit(day_tag), pl.col("event_no").cast(pl.Utf8).str.zfill(8)).alias(
            "event_id"
        ),
        user_id(pl.col("user_idx").cast(pl.Int64)).alias("user_id"),
        pl.col("etype").cast(pl.Int64).replace_strict(dict(enumerate(EVENT_TYPES)), return_dtype=pl.Utf8).alias(
            "event_type"
        ),
        (pl.lit(midnight(day)) + pl.duration(seconds=pl.col("t"))).dt.cast_time_unit("us").alias("event_at"),
        product_id(pl.col("product_idx").cast(pl.Int64)).alias("product_id"),
        pl.format("s{}-{}", pl.lit(day_tag), pl.col("sess_no")).alias("session_id"),
        pl.col("quantity").cast(pl.Int64),
        pl.col("price").round(2),
        pl.col("platform").cast(pl.Int64).replace_strict(dict(enumerate(PLATFORMS)), return_dtype=pl.Utf8).alias(
            "platform"
        ),
    )


def push_recent(recent: np.ndarray, users: np.ndarray, products: np.ndarray) -> np.ndarray:
    """Put each (user, product) at the front of the user's recent list, in the given order (vectorized per
    round: a user with k sessions today is shifted k times)."""
    recent = recent.copy()
    order = np.argsort(users, kind="stable")
    users, products = users[order], products[order]
    rank = np.arange(len(users)) - np.searchsorted(users, users)  # 0, 1, 2, ... within each user
    for r in range(int(rank.max()) + 1 if len(rank) else 0):
        sel = rank == r
        uu, pp = users[sel], products[sel].astype(recent.dtype)
        rows = recent[uu]
        kept = np.where(rows == pp[:, None], -1, rows)  # drop the product if already there
        packed = np.take_along_axis(kept, np.argsort(kept < 0, axis=1, kind="stable"), axis=1)
        recent[uu] = np.concatenate([pp[:, None], packed[:, : RECENT - 1]], axis=1)
    return recent
