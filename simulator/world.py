"""Drawing the shop: users (with hidden traits), products and the offer catalogue.

Each user carries hidden traits that drive both organic behaviour and the causal response to a message. The
hidden segment leaves observable traces (activity, cart abandonment, price sensitivity, member level,
platform, open rate), so a model can learn who is who from behaviour, but never reads the segment itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from simulator import catalog
from simulator.config import OFFER_TYPES, ShopConfig

SEGMENT_SHARES = (0.30, 0.15, 0.45, 0.10)  # persuadable, sure thing, lost cause, sleeping dog
N_CATEGORIES = len(catalog.CATEGORIES)
CATEGORY_NAMES = tuple(catalog.CATEGORIES)


@dataclass
class World:
    """Hidden per-user and per-product arrays plus the offer catalogue (with index columns)."""

    users: dict[str, np.ndarray]
    products: dict[str, np.ndarray]
    offers: pl.DataFrame

    def save(self, folder: Path) -> None:
        np.savez(folder / "users.npz", **self.users)
        np.savez(folder / "products.npz", **self.products)
        self.offers.write_parquet(folder / "offers.parquet")

    @classmethod
    def load(cls, folder: Path) -> World:
        return cls(
            users=dict(np.load(folder / "users.npz")),
            products=dict(np.load(folder / "products.npz")),
            offers=pl.read_parquet(folder / "offers.parquet"),
        )


def user_id(idx: pl.Expr) -> pl.Expr:
    return pl.format("u{}", (idx + 1).cast(pl.Utf8).str.zfill(7))


def product_id(idx: pl.Expr) -> pl.Expr:
    return pl.format("p{}", (idx + 1).cast(pl.Utf8).str.zfill(6))


def midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day)


def draw_world(config: ShopConfig) -> tuple[World, dict[str, pl.DataFrame]]:
    """The hidden world and the landing frames (users, products, offers) it shows the platform."""
    rng = np.random.default_rng([config.seed, 0])
    users, user_frame = _draw_users(config, rng)
    products, product_frame = _draw_products(config, rng)
    offers = _draw_offers(config, products, rng)
    landing_offers = offers.drop("type_idx", "scope_category_idx", "scope_product_idx")
    world = World(users=users, products=products, offers=offers)
    return world, {"users": user_frame, "products": product_frame, "offers": landing_offers}


def _draw_users(config: ShopConfig, rng: np.random.Generator) -> tuple[dict[str, np.ndarray], pl.DataFrame]:
    n = config.n_users
    segment = rng.choice(4, size=n, p=SEGMENT_SHARES)
    # Organic behaviour: sure things and sleeping dogs are frequent, decisive buyers; persuadables browse and
    # abandon carts; lost causes rarely come.
    activity = rng.lognormal(0.0, 0.5, n) * np.array([1.2, 2.0, 0.4, 1.8])[segment]
    cart_rate = rng.uniform(0.12, 0.24, n) * np.array([2.0, 1.0, 0.6, 1.0])[segment]
    buy_prob = (rng.beta(2, 5, n) * np.array([0.45, 2.6, 0.9, 2.2])[segment]).clip(0.02, 0.95)
    revisit = rng.uniform(0.15, 0.35, n) * np.array([1.0, 2.0, 0.8, 1.8])[segment]  # return to viewed items
    price_sens = rng.gamma(2.0, 0.5, n) * np.array([1.6, 0.5, 1.0, 0.7])[segment]
    pref = rng.dirichlet(np.full(N_CATEGORIES, 0.35), n)
    locale_zh = rng.random(n) < 0.7
    city_zh = _zipf_choice(rng, len(catalog.CITIES_ZH), n)
    city_en = _zipf_choice(rng, len(catalog.CITIES_EN), n)
    city = np.where(locale_zh, np.array([c[0] for c in catalog.CITIES_ZH])[city_zh],
                    np.array([c[0] for c in catalog.CITIES_EN])[city_en])
    tier = np.where(locale_zh, np.array([c[1] for c in catalog.CITIES_ZH])[city_zh],
                    np.array([c[1] for c in catalog.CITIES_EN])[city_en])
    tz_names = np.where(locale_zh, np.array([c[2] for c in catalog.CITIES_ZH])[city_zh],
                        np.array([c[2] for c in catalog.CITIES_EN])[city_en])
    tz_zh = np.array([catalog.TIMEZONES.index(c[2]) for c in catalog.CITIES_ZH])
    tz_en = np.array([catalog.TIMEZONES.index(c[2]) for c in catalog.CITIES_EN])
    tz_idx = np.where(locale_zh, tz_zh[city_zh], tz_en[city_en])
    platform = np.where(
        segment == 3, rng.choice(3, size=n, p=[0.2, 0.7, 0.1]), rng.choice(3, size=n, p=[0.6, 0.22, 0.18])
    )
    member = np.where(
        segment == 1, rng.choice(4, size=n, p=[0.1, 0.3, 0.35, 0.25]), rng.choice(4, size=n, p=[0.5, 0.3, 0.15, 0.05])
    )
    engagement = np.where(segment == 3, rng.beta(1.2, 6, n), rng.beta(2, 3, n))
    # The causal response to a message (see simulator/response.py for how these combine).
    base_response = np.select(
        [segment == 0, segment == 1, segment == 2],
        [rng.uniform(0.12, 0.18, n), rng.uniform(0.0, 0.01, n), rng.uniform(0.0, 0.004, n)],
        default=0.0,
    )
    depth_scale = 0.3 / (1.0 + price_sens) * rng.lognormal(0.0, 0.15, n)  # the price-sensitive need less
    noise = rng.lognormal(0.0, 0.15, (n, 4))
    type_pref = np.stack(
        [
            1.0 + 0.3 * (price_sens - 1.0),  # percent_off: the price-sensitive read percentages
            np.ones(n),  # amount_off
            0.7 + 0.15 * member + 0.2 * (activity > 1.0),  # spend_threshold: regulars with big baskets
            0.6 + 0.15 * (tier - 1),  # free_shipping: matters more away from the big cities
        ],
        axis=1,
    ).clip(0.2, 2.5) * noise
    channel_aff = np.stack(
        [
            np.where(platform == 0, 1.2, 0.6),  # push reaches app users
            np.where(locale_zh, 0.9, 0.5),  # sms
            np.where(locale_zh, 0.5, 1.2),  # email
        ],
        axis=1,
    ) * rng.lognormal(0.0, 0.15, (n, 3))
    dog_effect = np.where(segment == 3, rng.uniform(0.3, 0.7, n), 0.0)
    consent = np.stack([rng.random(n) < 0.7, rng.random(n) < 0.4, rng.random(n) < 0.55], axis=1)
    hidden = {
        "segment": segment.astype(np.int8),
        "activity": activity,
        "cart_rate": cart_rate,
        "buy_prob": buy_prob,
        "revisit": revisit,
        "price_sens": price_sens,
        "pref": pref,
        "active_hour": rng.choice([8, 9, 12, 13, 19, 20, 21, 22], size=n,
                                  p=[0.08, 0.07, 0.12, 0.1, 0.15, 0.2, 0.18, 0.1]).astype(np.int8),
        "tz_idx": tz_idx.astype(np.int8),
        "platform": platform.astype(np.int8),
        "engagement": engagement,
        "base_response": base_response,
        "depth_scale": depth_scale,
        "type_pref": type_pref,
        "channel_aff": channel_aff,
        "dog_effect": dog_effect,
        "consent": consent,
    }
    start = np.datetime64(midnight(config.start), "s")
    signup = start - (rng.uniform(1, 900, n) * 86_400).astype("timedelta64[s]")
    phone_digits = rng.integers(0, 100_000_000, n)
    frame = pl.DataFrame(
        {
            "user_idx": np.arange(n, dtype=np.int64),
            "signup_at": signup.astype("datetime64[us]"),
            "gender": np.array(["F", "M", "U"])[rng.choice(3, size=n, p=[0.55, 0.4, 0.05])],
            "birth_year": rng.integers(1958, 2007, n),
            "city": city,
            "city_tier": tier.astype(np.int64),
            "member_level": np.array(catalog.MEMBER_LEVELS)[member],
            "locale": np.where(locale_zh, "zh-CN", "en-US"),
            "timezone": tz_names,
            "phone_digits": phone_digits,
            "consent_push": consent[:, 0],
            "consent_sms": consent[:, 1],
            "consent_email": consent[:, 2],
        }
    ).select(
        user_id(pl.col("user_idx")).alias("user_id"),
        "signup_at", "gender", "birth_year", "city", "city_tier", "member_level", "locale", "timezone",
        pl.format("user{}.{}@example.com", pl.col("user_idx") + 1, pl.col("phone_digits") % 997).alias("email"),
        pl.when(pl.col("locale") == "zh-CN")
        .then(pl.format("+86-13{}", pl.col("phone_digits").cast(pl.Utf8).str.zfill(9)))
        .otherwise(pl.format("+1-555-{}", (pl.col("phone_digits") % 10_000_000).cast(pl.Utf8).str.zfill(7)))
        .alias("phone"),
        "consent_push", "consent_sms", "consent_email",
    )
    return hidden, frame


def _zipf_choice(rng: np.random.Generator, k: int, n: int) -> np.ndarray:
    """Indices 0..k-1 with the first (biggest) cities most likely."""
    weights = 1.0 / np.arange(1, k + 1) ** 0.8
    return rng.choice(k, size=n, p=weights / weights.sum())


def _draw_products(config: ShopConfig, rng: np.random.Generator) -> tuple[dict[str, np.ndarray], pl.DataFrame]:
    n = config.n_products
    cat = rng.choice(N_CATEGORIES, size=n, p=np.array(catalog.CATEGORY_WEIGHTS) / sum(catalog.CATEGORY_WEIGHTS))
    first = min(n, N_CATEGORIES)
    cat[:first] = np.arange(first)  # every category has a product when there are enough products
    base_price = np.array([catalog.CATEGORIES[c][2] for c in CATEGORY_NAMES])[cat]
    price = np.round(base_price * rng.lognormal(0.0, 0.5, n)).clip(1.0, None) - 0.1  # 199.9-style prices
    cost = np.round(price * rng.uniform(0.4, 0.8, n), 2)
    active = rng.random(n) < 0.97
    active[:first] = True  # a category is never empty of things to buy
    popularity = np.where(active, rng.pareto(1.2, n) + 0.05, 0.0)
    cat_pop = np.bincount(cat, weights=popularity, minlength=N_CATEGORIES)
    cat_median = np.array([np.median(price[cat == c]) if (cat == c).any() else 1.0 for c in range(N_CATEGORIES)])
    brand = rng.integers(0, len(catalog.BRANDS), n)
    adjective = rng.integers(0, len(catalog.ADJECTIVES_EN), n)
    noun_pick = rng.integers(0, 1_000, n)
    sub_pick = rng.integers(0, 1_000, n)
    zh = rng.random(n) < 0.6
    frame = (
        pl.DataFrame(
            {
                "product_idx": np.arange(n, dtype=np.int64),
                "category": np.array(CATEGORY_NAMES)[cat],
                "brand": np.array(catalog.BRANDS)[brand],
                "adj_en": np.array(catalog.ADJECTIVES_EN)[adjective],
                "adj_zh": np.array(catalog.ADJECTIVES_ZH)[adjective],
                "noun_pick": noun_pick,
                "sub_pick": sub_pick,
                "zh": zh,
                "price": price,
                "cost": cost,
                "is_active": active,
            }
        )
        .with_columns(
            pl.col("category").replace_strict(_lists(catalog.NOUNS_EN), return_dtype=pl.List(pl.Utf8)).alias("nouns_en"),
            pl.col("category").replace_strict(_lists(catalog.NOUNS_ZH), return_dtype=pl.List(pl.Utf8)).alias("nouns_zh"),
            pl.col("category")
            .replace_strict({c: list(v[1]) for c, v in catalog.CATEGORIES.items()}, return_dtype=pl.List(pl.Utf8))
            .alias("subs"),
        )
        .with_columns(
            pl.col("nouns_en").list.get(pl.col("noun_pick") % pl.col("nouns_en").list.len()).alias("noun_en"),
            pl.col("nouns_zh").list.get(pl.col("noun_pick") % pl.col("nouns_zh").list.len()).alias("noun_zh"),
            pl.col("subs").list.get(pl.col("sub_pick") % pl.col("subs").list.len()).alias("subcategory"),
        )
        .select(
            product_id(pl.col("product_idx")).alias("product_id"),
            pl.when(pl.col("zh"))
            .then(pl.format("{} {}{}", "brand", "adj_zh", "noun_zh"))
            .otherwise(pl.format("{} {} {}", "brand", "adj_en", "noun_en"))
            .alias("title"),
            "brand", "category", "subcategory", "price", "cost", "is_active",
        )
    )
    hidden = {
        "category_idx": cat.astype(np.int64),
        "price": price,
        "cost": cost,
        "active": active,
        "popularity": popularity,
        "pop_share": np.divide(popularity, cat_pop[cat], out=np.zeros(n), where=cat_pop[cat] > 0),
        "price_rel": price / cat_median[cat],
    }
    return hidden, frame


def _lists(mapping: dict[str, tuple[str, ...]]) -> dict[str, list[str]]:
    return {k: list(v) for k, v in mapping.items()}


def _draw_offers(config: ShopConfig, products: dict[str, np.ndarray], rng: np.random.Generator) -> pl.DataFrame:
    """A catalogue cycling through the four offer types; the first eight apply to everything for a long time,
    later ones are category or product offers valid for a few weeks, as a merchandising calendar would be."""
    start = midnight(config.start)
    by_popularity = np.argsort(-products["popularity"], kind="stable")
    rows = []
    for i in range(config.n_offers):
        offer_type = i % 4
        if offer_type == 0:
            value, min_spend = float(rng.choice([5, 10, 15, 20, 25, 30])), 0.0
        elif offer_type == 1:
            value, min_spend = float(rng.choice([5, 10, 20, 30, 50])), 0.0
        elif offer_type == 2:
            min_spend = float(rng.choice([99, 199, 299, 499]))
            value = float(round(min_spend * rng.choice([0.1, 0.15, 0.2])))
        else:
            value, min_spend = float(rng.choice([6, 8, 10, 12])), 0.0
        scope, scope_value, cat_idx, prod_idx = "all", None, -1, -1
        valid_from, valid_to = start - timedelta(days=30), start + timedelta(days=365)
        if i >= 8:
            valid_from = start + timedelta(days=int(rng.integers(-10, 20)))
            valid_to = valid_from + timedelta(days=int(rng.integers(21, 60)))
            if i % 2 == 0:
                cat_idx = int(rng.integers(0, N_CATEGORIES))
                scope, scope_value = "category", CATEGORY_NAMES[cat_idx]
            else:
                prod_idx = int(by_popularity[int(rng.integers(0, min(20, config.n_products)))])
                scope, scope_value = "product", f"p{prod_idx + 1:06d}"
        rows.append(
            {
                "offer_id": f"o{i + 1:03d}",
                "offer_type": OFFER_TYPES[offer_type],
                "value": value,
                "min_spend": min_spend,
                "scope": scope,
                "scope_value": scope_value,
                "valid_from": valid_from,
                "valid_to": valid_to,
                "type_idx": offer_type,
                "scope_category_idx": cat_idx,
                "scope_product_idx": prod_idx,
            }
        )
    return pl.DataFrame(
        rows,
        schema_overrides={"scope_value": pl.Utf8, "valid_from": pl.Datetime("us"), "valid_to": pl.Datetime("us")},
    )
