"""The landing contract as data: the one place that says what a shop must drop into `landing/`.

`../shared/ARCHITECTURE.md` describes it in prose; ingestion, the simulator's tests and the docs all read
this module, so the contract cannot drift between them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ColumnType = Literal["string", "int", "float", "bool", "timestamp"]


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType
    required: bool = False
    allowed: tuple[str, ...] | None = None  # closed value set, checked at ingestion
    min_exclusive: float | None = None  # e.g. price > 0
    min_value: float | None = None
    max_value: float | None = None
    pii: bool = False  # never leaves ingestion in clear


@dataclass(frozen=True)
class LandingTable:
    name: str
    columns: tuple[Column, ...]
    key: str  # primary key column; duplicates are quarantined
    partitioned: bool = False  # landing/<name>/date=YYYY-MM-DD/*
    time_column: str | None = None  # must fall inside the partition day
    references: dict[str, str] = field(default_factory=dict)  # column -> referenced table

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


GENDERS = ("F", "M", "U")
LOCALES = ("zh-CN", "en-US")
EVENT_TYPES = ("view", "favorite", "cart", "purchase", "review")
OFFER_TYPES = ("percent_off", "amount_off", "spend_threshold", "free_shipping")
OFFER_SCOPES = ("all", "category", "product")
FEEDBACK_EVENTS = ("delivered", "opened", "clicked", "converted", "unsubscribed", "bounced", "complained")
CHANNELS = ("push", "sms", "email")
PLATFORMS = ("app", "web", "mini_program")

USERS = LandingTable(
    name="users",
    key="user_id",
    columns=(
        Column("user_id", "string", required=True),
        Column("signup_at", "timestamp"),
        Column("gender", "string", allowed=GENDERS),
        Column("birth_year", "int", min_value=1900, max_value=2025),
        Column("city", "string"),
        Column("city_tier", "int", min_value=1, max_value=5),
        Column("member_level", "string"),
        Column("locale", "string", allowed=LOCALES),
        Column("timezone", "string"),
        Column("email", "string", pii=True),
        Column("phone", "string", pii=True),
        Column("consent_push", "bool", required=True),
        Column("consent_sms", "bool", required=True),
        Column("consent_email", "bool", required=True),
    ),
)

PRODUCTS = LandingTable(
    name="products",
    key="product_id",
    columns=(
        Column("product_id", "string", required=True),
        Column("title", "string", required=True),
        Column("brand", "string"),
        Column("category", "string", required=True),
        Column("subcategory", "string"),
        Column("price", "float", required=True, min_exclusive=0.0),
        Column("cost", "float", min_value=0.0),
        Column("is_active", "bool"),
    ),
)

OFFERS = LandingTable(
    name="offers",
    key="offer_id",
    columns=(
        Column("offer_id", "string", required=True),
        Column("offer_type", "string", required=True, allowed=OFFER_TYPES),
        Column("value", "float", required=True, min_exclusive=0.0),
        Column("min_spend", "float", min_value=0.0),
        Column("scope", "string", allowed=OFFER_SCOPES),
        Column("scope_value", "string"),
        Column("valid_from", "timestamp"),
        Column("valid_to", "timestamp"),
    ),
)

EVENTS = LandingTable(
    name="events",
    key="event_id",
    partitioned=True,
    time_column="event_at",
    references={"user_id": "users", "product_id": "products"},
    columns=(
        Column("event_id", "string", required=True),
        Column("user_id", "string", required=True),
        Column("event_type", "string", required=True, allowed=EVENT_TYPES),
        Column("event_at", "timestamp", required=True),
        Column("product_id", "string"),
        Column("session_id", "string"),
        Column("quantity", "int", min_value=0),
        Column("price", "float", min_value=0.0),
        Column("platform", "string", allowed=PLATFORMS),
    ),
)

FEEDBACK = LandingTable(
    name="feedback",
    key="feedback_id",  # derived at ingestion: delivery_id|event|event_at (a file has no id of its own)
    partitioned=True,
    time_column="event_at",
    columns=(
        Column("delivery_id", "string", required=True),
        Column("event", "string", required=True, allowed=FEEDBACK_EVENTS),
        Column("event_at", "timestamp", required=True),
        Column("order_id", "string"),
        Column("revenue", "float", min_value=0.0),
    ),
)

LANDING_TABLES: dict[str, LandingTable] = {t.name: t for t in (USERS, PRODUCTS, OFFERS, EVENTS, FEEDBACK)}
