"""What a message is about: the product, the offer, the user context, and where and when it goes.

A `CopyRequest` holds every fact a message may state; nothing else may appear in the rendered text. Its
control prefix (`prompt_tokens`) is what conditions the model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime

from ml.generator.config import (
    CATEGORIES,
    CHANNELS,
    CONTEXTS,
    LOCALES,
    OFFER_TYPES,
    SEGMENTS,
    TONES,
    control_token,
)

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")


@dataclass(frozen=True)
class ProductInfo:
    product_id: str
    title: str
    category: str
    price: float
    brand: str | None = None
    subcategory: str | None = None

    def __post_init__(self) -> None:
        if not self.title.strip():
            raise ValueError(f"product {self.product_id!r}: empty title")
        if not self.price > 0:
            raise ValueError(f"product {self.product_id!r}: price must be > 0, got {self.price}")

    def title_for(self, locale: str) -> str:
        """The name a reader of `locale` sees. The landing contract carries one title per product; for an
        en-US reader a title in Chinese script is replaced by what the records say in English: the brand (when
        it is written in Latin script) and the subcategory, else the category ("Aurora tops"). Where those are
        not English either, the title stays: a name is never invented."""
        if locale != "en-US" or not _CJK.search(self.title):
            return self.title
        kind = next((k for k in (self.subcategory, self.category) if k and k.strip() and not _CJK.search(k)), None)
        if kind is None:
            return self.title
        brand = self.brand if self.brand and not _CJK.search(self.brand) else None
        return f"{brand} {kind}" if brand else kind


@dataclass(frozen=True)
class OfferInfo:
    offer_id: str
    offer_type: str  # percent_off | amount_off | spend_threshold | free_shipping
    value: float  # percent (percent_off), money (amount_off, spend_threshold), shipping fee waived (free_shipping)
    min_spend: float = 0.0
    valid_to: date | None = None

    def __post_init__(self) -> None:
        if self.offer_type not in OFFER_TYPES:
            raise ValueError(f"offer {self.offer_id!r}: unknown offer_type {self.offer_type!r}; allowed: {OFFER_TYPES}")
        if not self.value > 0:
            raise ValueError(f"offer {self.offer_id!r}: value must be > 0, got {self.value}")
        if self.offer_type == "percent_off" and not self.value < 100:
            raise ValueError(f"offer {self.offer_id!r}: percent_off value must be < 100, got {self.value}")
        if self.offer_type == "spend_threshold" and not self.min_spend > self.value:
            raise ValueError(f"offer {self.offer_id!r}: spend_threshold needs min_spend > value, got {self.min_spend} <= {self.value}")


@dataclass(frozen=True)
class CopyRequest:
    request_id: str
    locale: str
    channel: str
    segment: str
    tone: str
    product: ProductInfo
    offer: OfferInfo
    context: str = "none"  # none | viewed | bought | favorite_category
    context_product: ProductInfo | None = None
    favorite_category: str | None = None
    send_at: datetime | None = None  # local time of the recipient, or aware (then `timezone` converts it)
    timezone: str | None = None  # IANA name of the recipient's zone

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("locale", self.locale, LOCALES),
            ("channel", self.channel, CHANNELS),
            ("segment", self.segment, SEGMENTS),
            ("tone", self.tone, TONES),
            ("context", self.context, CONTEXTS),
        ):
            if value not in allowed:
                raise ValueError(f"request {self.request_id!r}: {name} {value!r} is not one of {allowed}")
        if self.context in ("viewed", "bought") and self.context_product is None:
            raise ValueError(f"request {self.request_id!r}: context {self.context!r} needs context_product")
        if self.context == "favorite_category" and not self.favorite_category:
            raise ValueError(f"request {self.request_id!r}: context 'favorite_category' needs favorite_category")

    def own_names(self) -> list[str]:
        """The product and brand names this request may state: titles, the titles shown to its reader, brands."""
        products = [p for p in (self.product, self.context_product) if p is not None]
        names = [n for p in products for n in (p.title, p.title_for(self.locale), p.brand) if n]
        return list(dict.fromkeys(names))


def category_bucket(category: str) -> str:
    return category if category in CATEGORIES else "other"


def depth_bucket(offer: OfferInfo, price: float) -> str:
    """How deep the offer is, relative to what it applies to: low / mid / high."""
    if offer.offer_type == "percent_off":
        share = offer.value / 100.0
    elif offer.offer_type == "amount_off":
        share = offer.value / price
    elif offer.offer_type == "spend_threshold":
        share = offer.value / offer.min_spend
    else:
        share = offer.value / max(price, offer.value)
    return "low" if share < 0.1 else "mid" if share < 0.2 else "high"


def prompt_tokens(request: CopyRequest, tone: str | None = None) -> list[str]:
    """The control prefix, a fixed field order (config.CONTROL_FIELDS), task first; `tone` overrides the
    request's (the K variants of one request may be written in different tones)."""
    return [
        control_token("task", "promo"),
        control_token("lang", request.locale),
        control_token("ch", request.channel),
        control_token("seg", request.segment),
        control_token("ctx", request.context),
        control_token("cat", category_bucket(request.product.category)),
        control_token("brand", "yes" if request.product.brand else "no"),
        control_token("offer", request.offer.offer_type),
        control_token("depth", depth_bucket(request.offer, request.product.price)),
        control_token("tone", tone or request.tone),
    ]
