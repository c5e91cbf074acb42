"""Synthetic training examples with the contract's columns and a known causal effect (`true_uplift`).

For tests and the throughput benchmark: frames of any size in well under a second, with no warehouse.
The hidden response is simple but causal: the no-send purchase chance depends on the user's affinity and
recent views of the product; a message adds an uplift that grows with the offer depth, the user's
discount responsiveness and how close the send hour is to the user's active hour.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa

CATEGORIES = ("apparel", "beauty", "home", "electronics", "grocery", "sports")
EVENT_TYPES = ("view", "favorite", "cart", "purchase")
OFFER_TYPES = ("percent_off", "amount_off", "spend_threshold", "free_shipping")
CHANNELS = ("push", "sms", "email")


def _lists(values: np.ndarray, lengths: np.ndarray, name: str) -> pl.Series:
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    flat = pa.array(values)
    if isinstance(flat, pa.ChunkedArray):  # some pyarrow versions chunk large object arrays
        flat = flat.combine_chunks()
    return pl.Series(name, pa.ListArray.from_arrays(pa.array(offsets), flat))


def synthetic_examples(
    n_rows: int = 2000,
    n_users: int = 300,
    n_products: int = 80,
    n_days: int = 10,
    seq_len: int = 20,
    treated_share: float = 0.7,
    seed: int = 0,
) -> pl.DataFrame:
    """Rows shaped like `marts.fct_training_examples`, plus `true_uplift` (P(buy|send) − P(buy|none))."""
    rng = np.random.default_rng(seed)
    n = n_rows
    user = rng.integers(0, n_users, n)
    product = rng.integers(0, n_products, n)
    product_cat = rng.integers(0, len(CATEGORIES), n_products)
    product_price = np.round(rng.lognormal(3.5, 0.6, n_products), 2)
    user_active_hour = rng.integers(0, 24, n_users)
    user_resp = rng.beta(2, 8, n_users)
    user_fav_cat = rng.integers(0, len(CATEGORIES), n_users)

    lengths = rng.integers(0, seq_len + 1, n)
    total = int(lengths.sum())
    row_of = np.repeat(np.arange(n), lengths)
    # Half of the events fall in the user's favourite category, so the sequence carries real signal.
    seq_products = rng.integers(0, n_products, total)
    raw_ages = rng.exponential(100.0, total)
    seq_ages = raw_ages[np.lexsort((raw_ages, np.repeat(np.arange(n), lengths)))]  # ascending within each row
    cat = product_cat[product]
    affinity = (product_cat[seq_products] == cat[row_of]).astype(np.float64)
    aff_share = np.bincount(row_of, weights=affinity, minlength=n) / np.maximum(lengths, 1)
    views_of_candidate = np.bincount(row_of, weights=(seq_products == product[row_of]), minlength=n)

    as_of = np.datetime64("2024-03-01") + rng.integers(0, n_days, n).astype("timedelta64[D]")
    offer_type = rng.integers(0, len(OFFER_TYPES), n)
    depth = rng.choice([0.05, 0.1, 0.2, 0.3], n)
    channel = rng.integers(0, len(CHANNELS), n)
    send_hour = rng.integers(8, 22, n)
    treated = rng.random(n) < treated_share
    propensity = np.where(treated, treated_share, 1 - treated_share)

    hour_gap = np.abs(((send_hour - user_active_hour[user]) + 12) % 24 - 12)
    p_none = 1 / (1 + np.exp(-(-3.2 + 2.0 * aff_share + 0.6 * views_of_candidate + 0.4 * (user_fav_cat[user] == cat))))
    tau = 0.6 * user_resp[user] * (1 - np.exp(-depth / 0.15)) * (0.4 + 0.6 * np.exp(-(hour_gap**2) / 8.0))
    p_send = np.clip(p_none + tau, 0, 1)
    convert = rng.random(n) < np.where(treated, p_send, p_none)
    click = treated & (rng.random(n) < np.clip(0.05 + 2.0 * tau, 0, 1))

    price = product_price[product]
    events_90d = rng.poisson(30, n).astype(np.float64)
    purchases_90d = rng.poisson(1.5, n).astype(np.float64)
    carts_90d = rng.poisson(4, n).astype(np.float64)
    user_names = np.char.add("u", np.arange(n_users).astype(str))
    product_names = np.char.add("p", np.arange(n_products).astype(str))
    return pl.DataFrame(
        {
            "decision_id": np.char.add("d", np.arange(n).astype(str)),
            "user_id": user_names[user],
            "product_id": product_names[product],
            "offer_id": np.char.add("o", offer_type.astype(str)),
            "as_of_date": as_of,
            "channel": np.array(CHANNELS)[channel],
            "send_hour": send_hour.astype(np.int32),
            # One time zone (UTC): the send's UTC hour is its local hour, as the active hour is.
            "send_at": as_of.astype("datetime64[us]") + (send_hour * 3600).astype("timedelta64[s]"),
            "action": np.where(treated, "send", "none"),
            "is_treated": treated,
            "is_holdout": ~treated,
            "propensity": propensity,
            "label_open": click | (treated & (rng.random(n) < 0.2)),
            "label_click": click,
            "label_convert": convert,
            "label_revenue": np.where(convert, price, 0.0),
            "u_tenure_days": rng.uniform(1, 900, n),
            "u_recency_days": rng.exponential(5, n),
            "u_events_7d": rng.poisson(3, n).astype(np.float64),
            "u_events_30d": rng.poisson(12, n).astype(np.float64),
            "u_events_90d": events_90d,
            "u_purchases_30d": rng.poisson(0.5, n).astype(np.float64),
            "u_purchases_90d": purchases_90d,
            "u_carts_90d": carts_90d,
            "u_carts_per_view_90d": (carts_90d + 1.0) / (events_90d + 10.0),
            "u_purchases_per_cart_90d": (purchases_90d + 1.0) / (carts_90d + 2.0),
            "u_revenue_90d": rng.exponential(60, n),
            "u_avg_price_90d": rng.exponential(30, n),
            "u_price_sensitivity": rng.uniform(0.5, 1.5, n),
            "u_discount_responsiveness": (user_resp[user] * 0.5 + rng.normal(0, 0.02, n)).clip(0, 1),
            "u_click_rate": (0.05 + user_resp[user] + rng.normal(0, 0.03, n)).clip(0, 1),
            "u_sends_7d": rng.poisson(0.5, n).astype(np.float64),
            "u_sends_30d": rng.poisson(2, n).astype(np.float64),
            "u_active_hour": user_active_hour[user].astype(np.int32),
            "u_city_tier": rng.integers(1, 6, n).astype(np.int32),
            "u_member_level": rng.choice(["bronze", "silver", "gold"], n),
            "u_locale": rng.choice(["zh-CN", "en-US"], n),
            "u_gender": rng.choice(["F", "M", "U"], n),
            "u_preferred_platform": rng.choice(["app", "web", "mini"], n),
            "u_cat_affinity": aff_share,
            "u_product_views_7d": views_of_candidate,
            "u_product_carts_30d": rng.poisson(0.2, n).astype(np.float64),
            "u_product_purchases_90d": rng.poisson(0.1, n).astype(np.float64),
            "p_category": np.array(CATEGORIES)[cat],
            "p_brand": np.array([f"b{k}" for k in range(12)])[product % 12],
            "p_price": price,
            "p_price_pct_in_category": rng.uniform(0, 1, n),
            "p_margin_rate": rng.uniform(0.2, 0.5, n),
            "p_popularity_30d": rng.poisson(40, n).astype(np.float64),
            "p_conversion_rate_30d": rng.uniform(0.01, 0.1, n),
            "o_type": np.array(OFFER_TYPES)[offer_type],
            "o_value": depth * 100,
            "o_min_spend": np.zeros(n),
            "o_depth": depth,
            "true_uplift": tau,
        }
    ).with_columns(
        _lists(product_names[seq_products], lengths, "seq_product_ids"),
        _lists(np.array(CATEGORIES)[product_cat[seq_products]], lengths, "seq_categories"),
        _lists(np.array(EVENT_TYPES)[rng.integers(0, len(EVENT_TYPES), total)], lengths, "seq_event_types"),
        _lists(seq_ages, lengths, "seq_age_hours"),
    )
