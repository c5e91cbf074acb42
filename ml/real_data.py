"""Where the real public datasets live (Hillstrom, Olist, AdvertiseGen, Open Bandit): never in the repository."""

from __future__ import annotations

import os
from pathlib import Path


def real_data_dir() -> Path:
    """$PROMO_REAL_DATA_DIR, else ../shared/data beside the repository root."""
    env = os.environ.get("PROMO_REAL_DATA_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"
