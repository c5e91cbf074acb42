"""The simulated shop: landing files for the demo and tests, and the hidden ground truth benchmarks need."""

from simulator.shop import CHANNEL_COST, DayResult, Shop, ShopConfig


def simulate(home, config: ShopConfig, progress=None) -> Shop:
    """Create a shop under `home` and write its history (what `promoloop simulate` does)."""
    shop = Shop.create(config, home)
    shop.write_history(progress=progress)
    return shop


__all__ = ["CHANNEL_COST", "DayResult", "Shop", "ShopConfig", "simulate"]
