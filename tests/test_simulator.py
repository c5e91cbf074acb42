"""The simulated shop: deterministic, in the landing contract, with an honest hidden causal response."""

from __future__ import annotations

import hashlib
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from orchestration.contract import LANDING_TABLES
from simulator import SEGMENTS, Shop, ShopConfig, simulate

START = date(2026, 3, 2)
CONFIG = ShopConfig(n_users=300, n_products=50, n_offers=12, history_days=5, start=START, seed=3)
# Bigger, for statistics over the response (still about a second to simulate).
STATS_CONFIG = ShopConfig(n_users=4000, n_products=200, n_offers=8, history_days=10, start=START, seed=9)


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*.*"))}


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Shop:
    return simulate(tmp_path_factory.mktemp("shop"), CONFIG)


@pytest.fixture(scope="module")
def stats_shop(tmp_path_factory: pytest.TempPathFactory) -> Shop:
    return simulate(tmp_path_factory.mktemp("stats"), STATS_CONFIG)


def _deliveries(config: ShopConfig, day: date, users: np.ndarray, products: np.ndarray, hour: int = 21) -> pl.DataFrame:
    n = len(users)
    return pl.DataFrame(
        {
            "delivery_id": [f"d{day:%m%d}-{i:05d}" for i in range(n)],
            "user_id": [f"u{u + 1:07d}" for u in users],
            "offer_id": [f"o{(i % 4) + 1:03d}" for i in range(n)],  # the four always-valid, all-scope offers
            "product_id": [f"p{p + 1:06d}" for p in products],
            "channel": [("push", "sms", "email")[i % 3] for i in range(n)],
            "send_at": [datetime(day.year, day.month, day.day, hour)] * n,
        }
    )


def _recently_viewed(shop: Shop, day: date) -> tuple[np.ndarray, np.ndarray]:
    """Every user with a memory, and the product they viewed last: the candidates a shop would promote."""
    recent = np.load(shop._recent_path(day))
    users = np.flatnonzero(recent[:, 0] >= 0)
    return users, recent[users, 0].astype(np.int64)


def test_same_seed_same_files_other_seed_other_files(shop: Shop, tmp_path: Path) -> None:
    again = simulate(tmp_path / "again", CONFIG)
    assert _digest(again.landing) == _digest(shop.landing)
    other = simulate(tmp_path / "other", ShopConfig(**{**CONFIG.__dict__, "seed": 4}))
    theirs, ours = _digest(other.landing), _digest(shop.landing)
    assert theirs.keys() == ours.keys()
    assert all(theirs[k] != ours[k] for k in ours)


def test_csv_format_holds_the_same_rows(shop: Shop, tmp_path: Path) -> None:
    csv = simulate(tmp_path / "csv", ShopConfig(**{**CONFIG.__dict__, "fmt": "csv"}))
    day = f"date={START + timedelta(days=1)}"
    from_csv = pl.read_csv(csv.landing / "events" / day / "events.csv", try_parse_dates=True)
    from_parquet = pl.read_parquet(shop.landing / "events" / day / "events.parquet")
    assert from_csv.columns == from_parquet.columns
    assert from_csv["event_id"].to_list() == from_parquet["event_id"].to_list()
    assert from_csv["event_at"].cast(pl.Datetime("us")).to_list() == from_parquet["event_at"].to_list()


def test_files_satisfy_the_landing_contract(shop: Shop) -> None:
    frames = {}
    for name, table in LANDING_TABLES.items():
        files = sorted((shop.landing / name).rglob("*.parquet"))
        if name == "feedback":
            assert not files  # no messages were sent during the history
            continue
        frame = pl.concat([pl.read_parquet(f) for f in files], how="vertical_relaxed")
        frames[name] = frame
        assert set(table.required) <= set(frame.columns), name
        assert set(frame.columns) <= set(table.column_names), f"{name} has columns outside the contract"
        for column in table.columns:
            values = frame[column.name]
            if column.required:
                assert values.null_count() == 0, (name, column.name)
            if column.allowed:
                assert set(values.drop_nulls().unique()) <= set(column.allowed), (name, column.name)
            if column.min_value is not None:
                assert (values.drop_nulls() >= column.min_value).all(), (name, column.name)
            if column.max_value is not None:
                assert (values.drop_nulls() <= column.max_value).all(), (name, column.name)
        if table.key in frame.columns:
            assert frame[table.key].is_unique().all(), name
    assert (frames["products"]["price"] > 0).all()
    assert {"percent_off", "amount_off", "spend_threshold", "free_shipping"} == set(frames["offers"]["offer_type"])
    assert {"all", "category", "product"} == set(frames["offers"]["scope"])
    assert set(frames["users"]["locale"]) == {"zh-CN", "en-US"}
    titles = frames["products"]["title"]
    assert titles.str.contains(r"[\u4e00-\u9fff]").any() and titles.str.contains(r"^[ -~]+$").any()
    events = frames["events"]
    assert set(events["user_id"]) <= set(frames["users"]["user_id"])
    assert set(events["product_id"].drop_nulls()) <= set(frames["products"]["product_id"])
    for day_dir in (shop.landing / "events").iterdir():
        day = date.fromisoformat(day_dir.name.split("=")[1])
        assert (pl.read_parquet(day_dir / "events.parquet")["event_at"].dt.date() == day).all()
    assert events.height > 500
    assert {"view", "favorite", "cart", "purchase"} <= set(events["event_type"])


def test_no_ground_truth_in_landing(shop: Shop) -> None:
    landing_columns = {c for f in shop.landing.rglob("*.parquet") for c in pl.read_parquet_schema(f)}
    for hidden in ("segment", "base_response", "dog_effect", "type_pref", "uplift", "p_convert_send", "user_idx"):
        assert hidden not in landing_columns
    assert not list(shop.landing.rglob("*.np*"))
    assert (shop.home / "simulator" / "users.npz").exists()


def test_advance_day_is_idempotent_and_late_responses_land_next_day(shop: Shop) -> None:
    day = START + timedelta(days=CONFIG.history_days)
    users = np.random.default_rng(0).choice(CONFIG.n_users, 200, replace=False)
    deliveries = _deliveries(CONFIG, day, users, users % CONFIG.n_products)
    first = shop.advance_day(day, deliveries)
    files_first = _digest(shop.landing)
    second = shop.advance_day(day, deliveries.sample(fraction=1.0, shuffle=True, seed=1))  # order is irrelevant
    assert first == second
    assert _digest(shop.landing) == files_first
    assert first.deliveries == 200 and first.delivered > 180
    feedback = pl.read_parquet(shop.landing / "feedback" / f"date={day}" / "feedback.parquet")
    assert set(feedback["delivery_id"]) <= set(deliveries["delivery_id"])
    assert {"delivered", "opened"} <= set(feedback["event"])
    nxt = day + timedelta(days=1)
    shop.advance_day(nxt, None)
    later = pl.read_parquet(shop.landing / "feedback" / f"date={nxt}" / "feedback.parquet")
    # Messages sent at 21:00 get some of their opens and purchases after midnight.
    assert later.height and (later["event_at"].dt.date() == nxt).all()
    assert set(later["delivery_id"]) <= set(deliveries["delivery_id"])
    reloaded = Shop.load(shop.home)
    assert reloaded.config == CONFIG and reloaded.next_day() == nxt + timedelta(days=1)


def test_bad_input_is_refused_with_a_clear_error(shop: Shop) -> None:
    day = shop.next_day()
    good = _deliveries(CONFIG, day, np.arange(3), np.arange(3))
    with pytest.raises(ValueError, match="unknown user_id"):
        shop.advance_day(day, good.with_columns(pl.lit("u9999999").alias("user_id")))
    with pytest.raises(ValueError, match="lack column"):
        shop.advance_day(day, good.drop("channel"))
    with pytest.raises(ValueError, match="send_at"):
        shop.advance_day(day, good.with_columns(pl.col("send_at") - timedelta(days=1)))
    with pytest.raises(ValueError, match="duplicate delivery_id"):
        shop.advance_day(day, pl.concat([good, good]))
    with pytest.raises(ValueError, match="next day to simulate"):
        shop.advance_day(day + timedelta(days=2), None)


def _actions(users: np.ndarray, products: np.ndarray, day: date, offer: str = "o001", channel: str = "push") -> pl.DataFrame:
    n = len(users)
    return pl.DataFrame(
        {
            "user_id": [f"u{u + 1:07d}" for u in users],
            "product_id": [f"p{p + 1:06d}" for p in products],
            "offer_id": [offer] * n,
            "channel": [channel] * n,
            "send_hour": [20] * n,
            "day": [day] * n,
        }
    )


def test_true_effect_is_sane_and_heterogeneous(stats_shop: Shop) -> None:
    day = stats_shop.next_day()
    users, products = _recently_viewed(stats_shop, day)
    effect = stats_shop.true_effect(_actions(users, products, day))
    assert effect.height == len(users) and effect["user_id"].to_list() == [f"u{u + 1:07d}" for u in users]
    for column in ("p_convert_send", "p_convert_none"):
        assert effect[column].is_between(0, 1).all()
    segment = stats_shop.u["segment"][users]
    uplift = effect["uplift"].to_numpy()
    persuadable, sure, lost, dog = (uplift[segment == SEGMENTS.index(s)] for s in SEGMENTS)
    assert persuadable.mean() > 0.02
    assert (dog <= 0).all() and dog.mean() < 0
    assert abs(lost.mean()) < persuadable.mean() / 10
    # A discount to someone who buys anyway costs money: sure things lose margin on average.
    margin = effect["expected_incremental_margin"].to_numpy()
    assert margin[segment == SEGMENTS.index("sure_thing")].mean() < 0 < margin[segment == 0].mean()
    # Deeper discounts of the same type move persuadables more (o001 and o005 are both percent_off).
    other = stats_shop.true_effect(_actions(users, products, day, offer="o005"))
    deeper = np.sign(other["depth"].to_numpy() - effect["depth"].to_numpy())
    assert deeper.any()
    gain = (other["uplift"].to_numpy() - uplift) * deeper
    assert (gain[segment == 0] >= -1e-12).all() and (gain[segment == 0] > 0).mean() > 0.9


def test_promotions_cause_real_conversions_and_sleeping_dogs_lose_some(stats_shop: Shop) -> None:
    """Realized, coupled outcomes agree with the truth: organic purchases match P(buy | none), messages add
    purchases for persuadables and remove some for sleeping dogs."""
    day = stats_shop.next_day()
    users, products = _recently_viewed(stats_shop, day)
    result = stats_shop.advance_day(day, _deliveries(STATS_CONFIG, day, users, products, hour=10))
    outcomes = pl.read_parquet(stats_shop.outcomes_path(day))
    assert result.deliveries == outcomes.height == len(users)
    n = outcomes.height
    p_none, bought_none = outcomes["p_convert_none"].mean(), outcomes["bought_none"].mean()
    assert abs(bought_none - p_none) < 4 * np.sqrt(p_none / n) + 0.005
    by_segment = outcomes.group_by("segment").agg(
        (pl.col("bought_send").cast(pl.Int64) - pl.col("bought_none").cast(pl.Int64)).sum().alias("incremental"),
        pl.col("uplift").sum().alias("expected"),
    )
    incremental = dict(zip(by_segment["segment"], by_segment["incremental"], strict=True))
    assert incremental["persuadable"] > 10
    assert incremental["sleeping_dog"] < 0
    assert result.true_incremental_conversions == sum(incremental.values())
    assert abs(result.true_incremental_conversions - result.expected_incremental_conversions) < 4 * np.sqrt(
        max(result.expected_incremental_conversions, 1.0)
    ) + 5
    # The landing files show the caused purchases and the coupon on purchases that happened anyway.
    promo = pl.read_parquet(stats_shop.landing / "events" / f"date={day}" / "promo_responses.parquet")
    assert (promo["event_type"] == "purchase").sum() == result.promo_purchases > 0
    # Fatigue: a second message the next day does less for the same persuadables.
    nxt = day + timedelta(days=1)
    again = stats_shop.true_effect(_actions(users, products, nxt))
    first = stats_shop.true_effect(_actions(users, products, day))
    delivered = outcomes["delivered"].to_numpy() & (stats_shop.u["segment"][users] == 0)
    assert (again["uplift"].to_numpy()[delivered] < first["uplift"].to_numpy()[delivered]).mean() > 0.8
