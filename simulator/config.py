"""The shop's size and seed, and the closed value sets it writes.

The enum tuples mirror `orchestration/contract.py`; they are copied, not imported, because the simulator stands
alone (no orchestration, ml or dagster). `tests/test_simulator.py` checks the files against the real contract.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import date

SEGMENTS = ("persuadable", "sure_thing", "lost_cause", "sleeping_dog")
OFFER_TYPES = ("percent_off", "amount_off", "spend_threshold", "free_shipping")
CHANNELS = ("push", "sms", "email")
PLATFORMS = ("app", "web", "mini_program")
EVENT_TYPES = ("view", "favorite", "cart", "purchase", "review")
CHANNEL_COST = {"push": 0.0, "email": 0.002, "sms": 0.04}  # money per message (docs/contracts.md)
RESPONSE_HOURS = 48.0  # a conversion is a purchase of the promoted product within this window after send_at
FORMATS = ("parquet", "csv")


@dataclass(frozen=True)
class ShopConfig:
    """Everything that decides the shop: the same config writes the same files, byte for byte."""

    n_users: int = 5000
    n_products: int = 500
    n_offers: int = 16
    history_days: int = 30
    start: date = date(2026, 10, 1)
    seed: int = 7
    fmt: str = "parquet"  # landing file format: "parquet" or "csv"
    sessions_per_day: float = 0.22  # mean sessions per user per day before per-user activity

    def __post_init__(self) -> None:
        for name in ("n_users", "n_products", "n_offers"):
            if getattr(self, name) < 1:
                raise ValueError(f"ShopConfig.{name} must be at least 1, got {getattr(self, name)}")
        if self.n_users > 9_999_999:
            raise ValueError(f"ShopConfig.n_users must be below 10,000,000 (7-digit user ids), got {self.n_users}")
        if self.n_products > 999_999:
            raise ValueError(f"ShopConfig.n_products must be below 1,000,000 (6-digit ids), got {self.n_products}")
        if self.history_days < 0:
            raise ValueError(f"ShopConfig.history_days must be >= 0, got {self.history_days}")
        if self.fmt not in FORMATS:
            raise ValueError(f"ShopConfig.fmt must be one of {FORMATS}, got {self.fmt!r}")
        if not isinstance(self.start, date):
            raise ValueError(f"ShopConfig.start must be a datetime.date, got {self.start!r}")
        if self.sessions_per_day <= 0:
            raise ValueError(f"ShopConfig.sessions_per_day must be > 0, got {self.sessions_per_day}")

    def to_json(self) -> str:
        fields = asdict(self)
        fields["start"] = self.start.isoformat()
        return json.dumps(fields, indent=2)

    @classmethod
    def from_json(cls, text: str) -> ShopConfig:
        fields = json.loads(text)
        fields["start"] = date.fromisoformat(fields["start"])
        return cls(**fields)
