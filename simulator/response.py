"""The hidden causal response to a promotion message: the ground truth the platform never sees.

For a message (user, product, offer, channel, send time) on a day:

- p_none: the chance the user buys the product in the 48 h after send_at anyway, from the organic process
  itself (`Behaviour.window_rate`), so it is exactly what the events show for untreated users.
- tau_plus: the chance a delivered message makes someone who would not have bought buy. It multiplies the
  user's base responsiveness (persuadables high, sure things and lost causes tiny, sleeping dogs zero), how
  far the offer's depth moves them (saturating, per-user scale: the price-sensitive need less), their taste
  for the offer type and channel, how close the send hour is to their active hour (local time), their
  interest in the product (category preference, and a strong boost when they viewed it recently), and
  fatigue (each message in the last 7 days multiplies it by 0.7).
- tau_minus: the chance a delivered message makes a sleeping dog drop a purchase they would have made; the
  more intrusive the channel and the more recent messages, the higher.
- bounce: a message that is not delivered (bounce rate by channel; always, on a channel the user
  unsubscribed from) changes nothing.
- message appeal (`message_appeal`): the words change who opens and clicks, never who buys. Each reader has a
  hidden taste for short messages and for urgent ones (keyed draws per user, so the drawn world and the
  no-message world are untouched): Chinese readers lean to short, urgent copy, English readers to longer,
  calmer copy, each with a personal spread. Open and click rates are multiplied by exp(MESSAGE_EFFECT x
  appeal); a delivery without a message text keeps the rates it always had, so results without messages are
  the same as before.

P(buy | send) = bounce * p_none + (1 - bounce) * (p_none * (1 - tau_minus) + (1 - p_none) * tau_plus).
A realized draw uses one uniform per (user, product, day) for both worlds (common random numbers), so the
same message can be compared across policies and a negative effect removes a purchase that the organic
stream really contains.
"""

from __future__ import annotations

from datetime import date, datetime

import numpy as np

from simulator.behaviour import Behaviour, utc_offsets
from simulator.config import CHANNEL_COST, CHANNELS, ShopConfig
from simulator.world import World

BOUNCE_RATE = np.array([0.02, 0.01, 0.03])  # push, sms, email
INTRUSION = np.array([1.0, 1.3, 0.7])  # how much a message on each channel annoys a sleeping dog
FATIGUE = 0.7  # response multiplier per message received in the last FATIGUE_DAYS
FATIGUE_DAYS = 7
MAX_SENDS_REMEMBERED = 6
HOUR_WIDTH = 3.0  # hours: response falls off as the send hour moves away from the active hour
CHANNEL_COST_BY_INDEX = np.array([CHANNEL_COST[c] for c in CHANNELS])

# Salts of the keyed uniforms (one stream per kind of draw).
SALT_RESPONSE, SALT_BOUNCE, SALT_OPEN, SALT_CLICK, SALT_UNSUB, SALT_COMPLAIN = range(1, 7)
SALT_DELAY_OPEN, SALT_DELAY_CLICK, SALT_DELAY_BUY = range(7, 10)
SALT_TASTE_SHORT, SALT_TASTE_URGENT = range(10, 12)

MESSAGE_EFFECT = 0.3  # log open/click multiplier per unit of appeal (appeal lies in about [-2.4, 2.4])
# A message reads as long at this many characters (push, sms, email), by the script it is written in.
LENGTH_NORM = {"zh": np.array([60.0, 70.0, 30.0]), "en": np.array([120.0, 160.0, 60.0])}
URGENCY_CUES = ("!", "！", "限时", "抓紧", "手慢无", "速抢", "倒计时", "截止", "结束", "不等人", "hurry", "ends", "ending",
                "don't miss", "today only", "before it's gone", "won't last", "fast", "soon")
# Mean taste of (Chinese, English) readers for short and for urgent copy; each reader adds +-TASTE_SPREAD.
TASTE_SHORT = (0.7, -0.3)
TASTE_URGENT = (0.6, -0.6)
TASTE_SPREAD = 0.5


def keyed_uniform(seed: int, salt: int, *keys: np.ndarray) -> np.ndarray:
    """A uniform in [0, 1) per row that depends only on (seed, salt, keys): the same message gets the same
    draw whatever else is in the plan and in whatever order (splitmix64 over the keys)."""
    n = len(keys[0])
    h = np.full(n, (seed * 0x9E3779B97F4A7C15 + salt * 0xD1B54A32D192ED03) % 2**64, dtype=np.uint64)
    for key in keys:
        h = _splitmix(h ^ np.asarray(key).astype(np.int64).astype(np.uint64))
    return (h >> np.uint64(11)).astype(np.float64) / float(2**53)


def _splitmix(z: np.ndarray) -> np.ndarray:
    z = z + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def message_traits(messages: list[str | None], channels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(brevity in [-1, 1]: +1 for a very short text, -1 at the channel's long mark; urgency: +1 when the text
    carries an urgency cue, else -1; has_text) for each message, read as a customer would: from the words."""
    n = len(messages)
    brevity, urgency, has_text = np.zeros(n), np.zeros(n), np.zeros(n, dtype=bool)
    for i, text in enumerate(messages):
        if not text:
            continue
        cjk = sum("\u4e00" <= c <= "\u9fff" for c in text)
        norm = LENGTH_NORM["zh" if cjk >= 0.3 * len(text) else "en"][channels[i]]
        brevity[i] = 1.0 - 2.0 * min(len(text) / norm, 1.0)
        lower = text.lower()
        urgency[i] = 1.0 if any(cue in lower for cue in URGENCY_CUES) else -1.0
        has_text[i] = True
    return brevity, urgency, has_text


def message_appeal(seed: int, users: np.ndarray, chinese_reader: np.ndarray, channels: np.ndarray,
                   messages: list[str | None]) -> np.ndarray:
    """The hidden open/click multiplier of each message for its reader (1.0 where there is no text)."""
    brevity, urgency, has_text = message_traits(messages, channels)
    zh = np.asarray(chinese_reader, dtype=bool)
    short = np.where(zh, TASTE_SHORT[0], TASTE_SHORT[1]) + TASTE_SPREAD * (2 * keyed_uniform(seed, SALT_TASTE_SHORT, users) - 1)
    urgent = np.where(zh, TASTE_URGENT[0], TASTE_URGENT[1]) + TASTE_SPREAD * (2 * keyed_uniform(seed, SALT_TASTE_URGENT, users) - 1)
    return np.where(has_text, np.exp(MESSAGE_EFFECT * (short * brevity + urgent * urgency)), 1.0)


def empty_promo_state(n_users: int) -> dict[str, np.ndarray]:
    return {
        "sends": np.zeros((n_users, MAX_SENDS_REMEMBERED), dtype=np.int32),  # ordinal days of recent messages
        "unsubscribed": np.zeros((n_users, len(CHANNELS)), dtype=bool),
    }


def record_sends(state: dict[str, np.ndarray], users: np.ndarray, day: date) -> dict[str, np.ndarray]:
    """Remember one message per user who received at least one today (several the same day count once)."""
    sends = state["sends"].copy()
    uniq = np.unique(users)
    sends[uniq, 1:] = sends[uniq, :-1]
    sends[uniq, 0] = day.toordinal()
    return {**state, "sends": sends}


def recent_sends(state: dict[str, np.ndarray], users: np.ndarray, day: date) -> np.ndarray:
    """Messages each user received in the FATIGUE_DAYS before `day`."""
    last = state["sends"][users]
    return ((last > 0) & (day.toordinal() - last <= FATIGUE_DAYS) & (last < day.toordinal())).sum(axis=1)


def offer_depth(world: World, offers: np.ndarray, products: np.ndarray, day: date) -> np.ndarray:
    """Fraction of the price given away (docs/contracts.md); 0 when the offer does not cover the product or
    is not valid on `day` (the message then carries no usable discount)."""
    o = world.offers
    price = world.products["price"][products]
    kind = o["type_idx"].to_numpy()[offers]
    value = o["value"].to_numpy()[offers]
    min_spend = o["min_spend"].fill_null(0.0).to_numpy()[offers]
    depth = np.select(
        [kind == 0, kind == 1, kind == 2],
        [value / 100.0, np.minimum(value, price) / price, value / np.maximum(price, min_spend)],
        default=np.minimum(value, price) / price,
    )
    scope_cat = o["scope_category_idx"].to_numpy()[offers]
    scope_product = o["scope_product_idx"].to_numpy()[offers]
    in_scope = ((scope_cat < 0) | (scope_cat == world.products["category_idx"][products])) & (
        (scope_product < 0) | (scope_product == products)
    )
    noon = np.datetime64(datetime(day.year, day.month, day.day, 12), "us")
    valid = (o["valid_from"].to_numpy()[offers] <= noon) & (o["valid_to"].to_numpy()[offers] > noon)
    return np.where(in_scope & valid, depth, 0.0)


class Truth:
    """The ground truth of promotions over one world."""

    def __init__(self, world: World, behaviour: Behaviour, config: ShopConfig):
        self.world, self.behaviour, self.config = world, behaviour, config

    def effects(
        self,
        users: np.ndarray,
        products: np.ndarray,
        offers: np.ndarray,
        channels: np.ndarray,
        day: date,
        send_day: np.ndarray,
        send_hour_utc: np.ndarray,
        recent_rows: np.ndarray,
        promo_state: dict[str, np.ndarray],
    ) -> dict[str, np.ndarray]:
        """True response of each message. `send_day` is 0 or 1: the send's UTC day relative to `day`, with
        `send_hour_utc` (float) within it; `recent_rows` are the users' recent lists at the start of that
        day; `promo_state` is the fatigue state at the start of `day`."""
        u, p = self.world.users, self.world.products
        price, cost = p["price"][products], p["cost"][products]
        depth = offer_depth(self.world, offers, products, day)
        kind = self.world.offers["type_idx"].to_numpy()[offers]
        local_hour = send_hour_utc + self._offsets(users, day, send_day)
        hour_gap = np.abs((local_hour - u["active_hour"][users] + 12) % 24 - 12)
        hour_factor = 0.5 + 0.5 * np.exp(-0.5 * (hour_gap / HOUR_WIDTH) ** 2)
        pref = self.behaviour.pref
        viewed = (recent_rows == products[:, None]).any(axis=1)
        interest = 0.1 + 0.9 * pref[users, p["category_idx"][products]] / pref[users].max(axis=1) + 1.0 * viewed
        n_sends = recent_sends(promo_state, users, day)
        tau_plus = (
            u["base_response"][users]
            * (1.0 - np.exp(-depth / u["depth_scale"][users]))
            * u["type_pref"][users, kind]
            * u["channel_aff"][users, channels]
            * hour_factor
            * interest
            * FATIGUE**n_sends
            * p["active"][products]
        ).clip(0.0, 0.9)
        tau_minus = (u["dog_effect"][users] * INTRUSION[channels] * (1.0 + 0.25 * n_sends)).clip(0.0, 0.95)
        bounce = np.where(promo_state["unsubscribed"][users, channels], 1.0, BOUNCE_RATE[channels])
        rate = np.zeros(len(users))
        for offset in (0, 1):
            rows = send_day == offset
            if rows.any():
                rate[rows] = self.behaviour.window_rate(
                    users[rows], products[rows], recent_rows[rows], _plus(day, offset), send_hour_utc[rows]
                )
        p_none = 1.0 - np.exp(-rate)
        p_delivered = p_none * (1.0 - tau_minus) + (1.0 - p_none) * tau_plus
        p_send = bounce * p_none + (1.0 - bounce) * p_delivered
        margin_send, margin_none = price * (1.0 - depth) - cost, price - cost
        channel_cost = CHANNEL_COST_BY_INDEX[channels]
        # Bought after a bounced message: no coupon, full margin. Bought after a delivered one: discounted.
        expected_send_margin = bounce * p_none * margin_none + (1.0 - bounce) * p_delivered * margin_send
        return {
            "p_convert_send": p_send,
            "p_convert_none": p_none,
            "uplift": p_send - p_none,
            "expected_incremental_margin": expected_send_margin - p_none * margin_none - channel_cost,
            "offer_cost": (1.0 - bounce) * p_delivered * depth * price,
            "depth": depth,
            "tau_plus": tau_plus,
            "tau_minus": tau_minus,
            "bounce": bounce,
            "interest": interest,
            "hour_factor": hour_factor,
            "n_sends": n_sends,
            "price": price,
            "cost": cost,
            "margin_send": margin_send,
            "margin_none": margin_none,
            "channel_cost": channel_cost,
        }

    def _offsets(self, users: np.ndarray, day: date, send_day: np.ndarray) -> np.ndarray:
        tz = self.world.users["tz_idx"][users]
        return np.where(send_day == 0, utc_offsets(day)[tz], utc_offsets(_plus(day, 1))[tz])


def _plus(day: date, days: int) -> date:
    return date.fromordinal(day.toordinal() + days)
