"""The simulated shop: deterministic, in the landing contract, with an honest hidden causal response."""

from __future__ import annotations

import hashlib
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from orchestration.contract import LANDING_TABLES
from simulator import Shop, ShopConfig, simulate

START = date(2026, 3, 2)
CONFIG = ShopConfig(n_users=300, n_products=50, n_offers=8, history_days=4, start=START, seed=3)


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(pl.read_parquet(p).write_csv().encode()).hexdigest()
        for p in sorted(folder.rglob("*.parquet"))
    }


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Shop:
    return simulate(tmp_path_factory.mktemp("shop"), CONFIG)


def test_same_seed_same_shop_other_seed_other_shop(shop: Shop, tmp_path: Path) -> None:
    again = simulate(tmp_path / "again", CONFIG)
    assert _digest(again.landing) == _digest(shop.landing)
    other = simulate(tmp_path / "other", ShopConfig(**{**CONFIG.__dict__, "seed": 4}))
    assert _digest(other.landing) != _digest(shop.landing)


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
            if column.required:
                assert frame[column.name].null_count() == 0, (name, column.name)
            if column.allowed:
                assert set(frame[column.name].drop_nulls().unique()) <= set(column.allowed), (name, column.name)
        assert frame[table.key].is_unique().all(), name
    assert (frames["products"]["price"] > 0).all()
    events = frames["events"]
    assert set(events["user_id"]) <= set(frames["users"]["user_id"])
    assert set(events["product_id"].drop_nulls()) <= set(frames["products"]["product_id"])
    for day_dir in (shop.landing / "events").iterdir():
        day = date.fromisoformat(day_dir.name.split("=")[1])
        day_events = pl.read_parquet(day_dir / "events.parquet")
        assert (day_events["event_at"].dt.date() == day).all()
    assert events.height > 500
    assert {"view", "cart", "purchase"} <= set(events["event_type"])


def test_no_ground_truth_in_landing(shop: Shop) -> None:
    landing_columns = {c for f in shop.landing.rglob("*.parquet") for c in pl.read_parquet_schema(f)}
    for hidden in ("segment", "base_response", "dog_effect", "type_pref", "uplift", "p_convert_send"):
        assert hidden not in landing_columns
    assert (shop.home / "simulator" / "users.npz").exists()


def _deliveries(shop: Shop, day: date, n: int = 200) -> pl.DataFrame:
    rng = np.random.default_rng(0)
    users = rng.choice(CONFIG.n_users, n, replace=False) + 1
    return pl.DataFrame(
        {
            "delivery_id": [f"d{i:04d}" for i in range(n)],
            "user_id": [f"u{u:07d}" for u in users],
            "offer_id": [f"o{(i % CONFIG.n_offers) + 1:03d}" for i in range(n)],
            "product_id": [f"p{(i % CONFIG.n_products) + 1:06d}" for i in range(n)],
            "channel": [("push", "sms", "email")[i % 3] for i in range(n)],
            "send_at": [datetime(day.year, day.month, day.day, 21)] * n,
        }
    )


def test_advance_day_is_idempotent_and_late_responses_land_next_day(shop: Shop) -> None:
    day = START + timedelta(days=CONFIG.history_days)
    deliveries = _deliveries(shop, day)
    first = shop.advance_day(day, deliveries)
    files_first = _digest(shop.landing)
    second = shop.advance_day(day, deliveries)
    assert first == second
    assert _digest(shop.landing) == files_first
    feedback = pl.read_parquet(shop.landing / "feedback" / f"date={day}" / "feedback.parquet")
    assert set(feedback["delivery_id"]) <= set(deliveries["delivery_id"])
    assert {"delivered", "opened"} <= set(feedback["event"])
    shop.advance_day(day + timedelta(days=1), None)
    later = shop.landing / "feedback" / f"date={day + timedelta(days=1)}" / "feedback.parquet"
    # Messages sent at 21:00 get some of their clicks and purchases after midnight.
    assert later.exists()
    assert (pl.read_parquet(later)["event_at"].dt.date() == day + timedelta(days=1)).all()


def test_true_effect_is_heterogeneous_and_honest(shop: Shop) -> None:
    day = START + timedelta(days=CONFIG.history_days)
    n = CONFIG.n_users
    actions = pl.DataFrame(
        {
            "user_id": [f"u{i + 1:07d}" for i in range(n)],
            "product_id": [f"p{(i % CONFIG.n_products) + 1:06d}" for i in range(n)],
            "offer_id": ["o001"] * n,
            "channel": ["push"] * n,
            "send_hour": [20] * n,
            "day": [day] * n,
        }
    )
    effect = shop.true_effect(actions)
    for col in ("p_convert_send", "p_convert_none"):
        assert effect[col].is_between(0, 1).all()
    segment = shop.u["segment"]
    uplift = effect["uplift"].to_numpy()
    assert uplift[segment == 0].mean() > 0.001  # persuadables respond
    assert (uplift[segment == 3] <= 0).all()  # sleeping dogs never gain
    assert abs(uplift[segment == 2].mean()) < uplift[segment == 0].mean() / 5  # lost causes barely move
