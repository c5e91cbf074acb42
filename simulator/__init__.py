"""The simulated shop: landing files for the demo and tests, and the hidden ground truth benchmarks need.

    shop = Shop.create(ShopConfig(n_users=5000, seed=7), home)   # users, products, offers
    shop.write_history()                                          # organic events, one partition a day
    result = shop.advance_day(day, deliveries)                    # one more day, with promotions
    truth = shop.true_effect(actions)                             # the oracle
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from simulator.config import CHANNEL_COST, SEGMENTS, ShopConfig
from simulator.shop import DayResult, Shop


def simulate(
    home: Path,
    config: ShopConfig,
    days_after_history: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> Shop:
    """Create a shop under `home`, write its history and `days_after_history` more days without messages
    (what `promoloop simulate` does). `progress(done, total)` is called after each day."""
    shop = Shop.create(config, home)
    total = config.history_days + days_after_history
    shop.write_history(progress=(lambda done, _: progress(done, total)) if progress else None)
    for i in range(days_after_history):
        shop.advance_day(config.start + timedelta(days=config.history_days + i), None)
        if progress:
            progress(config.history_days + i + 1, total)
    return shop


__all__ = ["CHANNEL_COST", "SEGMENTS", "DayResult", "Shop", "ShopConfig", "simulate"]
