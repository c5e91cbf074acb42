"""Bring your own data: the real Olist export through the converter and the landing rules."""

from datetime import date, datetime
from pathlib import Path

import pytest

from ml.real_data import real_data_dir
from orchestration.contract import LANDING_TABLES
from orchestration.landing import References, list_files, read_landing
from orchestration.olist import convert_olist

OLIST = real_data_dir() / "olist_subset"


@pytest.mark.skipif(not OLIST.exists(), reason=f"Olist data not found at {OLIST} (set PROMO_REAL_DATA_DIR)")
def test_olist_converts_and_every_row_is_accounted_for(tmp_path: Path) -> None:
    report = convert_olist(OLIST, tmp_path)
    assert report.events > 10_000 and report.orders_without_items > 0 and report.duplicate_review_ids > 0
    now = datetime(2030, 1, 1)
    users = read_landing(LANDING_TABLES["users"], list_files(tmp_path / "users"), None, now)
    products = read_landing(LANDING_TABLES["products"], list_files(tmp_path / "products"), None, now)
    # Real defects are caught, not fixed: repeat customers listed per order, products never sold (no price).
    assert users.stats.quarantine_reasons.get("duplicate_key", 0) > 0
    assert products.stats.quarantine_reasons.get("missing_required", 0) > 0
    known_users = set(users.loaded["user_id"])
    known_products = set(products.loaded["product_id"])
    refs = References(
        known={
            "user_id": lambda s: s.is_in(list(known_users)),
            "product_id": lambda s: s.is_in(list(known_products)),
        }
    )
    days = sorted((tmp_path / "events").iterdir())[:60]
    for folder in days:
        day = date.fromisoformat(folder.name.split("=")[1])
        batch = read_landing(LANDING_TABLES["events"], list_files(folder), day, now, refs)
        assert batch.stats.reconciled
        for f in batch.stats.per_file:
            assert f.rows_read == f.rows_loaded + f.rows_quarantined
    assert (tmp_path / "_signals" / "olist_vouchers.parquet").exists()
