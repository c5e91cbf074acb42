"""Slot tokens: the model writes `<DISCOUNT>`, never "8折"; facts are filled from the records at render time.

Rendering is locale-aware (zh-CN: 8折, ¥199, 6月30日; en-US: 20%, $199, Jun 30). A slot whose fact does not
exist for this request (no brand, no validity date, a new price below zero) is "unavailable": a template
that uses it cannot be rendered and is rejected, never filled with something made up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ml.generator.request import CopyRequest, OfferInfo, ProductInfo

SLOT_TOKENS = (
    "<PRODUCT>", "<BRAND>", "<CATEGORY>", "<CONTEXT_PRODUCT>", "<FAV_CATEGORY>", "<DISCOUNT>", "<AMOUNT>",
    "<MIN_SPEND>", "<PRICE>", "<NEW_PRICE>", "<SHIPPING_FEE>", "<VALID_TO>",
)
SLOT_PATTERN = re.compile(r"<[A-Z_]+>")

# The slots a message must contain to state its offer at all.
REQUIRED_SLOTS: dict[str, frozenset[str]] = {
    "percent_off": frozenset({"<DISCOUNT>"}),
    "amount_off": frozenset({"<AMOUNT>"}),
    "spend_threshold": frozenset({"<MIN_SPEND>", "<AMOUNT>"}),
    "free_shipping": frozenset({"<SHIPPING_FEE>"}),
}
CURRENCY = {"zh-CN": "¥", "en-US": "$"}
CATEGORY_NAMES_ZH = {
    "apparel": "服装", "shoes": "鞋靴", "beauty": "美妆", "electronics": "数码", "home": "家居", "food": "食品",
    "sports": "运动", "baby": "母婴", "books": "图书", "pets": "宠物",
}
MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass
class Rendered:
    text: str
    slots: dict[str, str] = field(default_factory=dict)  # slot token -> the text it became
    unavailable: list[str] = field(default_factory=list)  # slots used but without a fact behind them
    unknown: list[str] = field(default_factory=list)  # <...> tokens that are not slots at all

    @property
    def ok(self) -> bool:
        return not self.unavailable and not self.unknown


def format_number(x: float) -> str:
    """199 -> "199", 199.5 -> "199.5", 199.456 -> "199.46"."""
    return f"{round(x, 2):.2f}".rstrip("0").rstrip(".")


def format_money(amount: float, locale: str) -> str:
    return f"{CURRENCY[locale]}{format_number(amount)}"


def zhe(percent_off: float) -> float:
    """20% off is 8折 (pay 80%): (100 - percent) / 10."""
    return round((100.0 - percent_off) / 10.0, 2)


def category_name(category: str, locale: str) -> str:
    return CATEGORY_NAMES_ZH.get(category, category) if locale == "zh-CN" else category


def new_price(product: ProductInfo, offer: OfferInfo) -> float | None:
    """Price after the offer, where the offer alone determines it; None where it does not."""
    if offer.offer_type == "percent_off":
        return round(product.price * (1.0 - offer.value / 100.0), 2)
    if offer.offer_type == "amount_off" and product.price > offer.value:
        return round(product.price - offer.value, 2)
    if offer.offer_type == "spend_threshold" and product.price >= offer.min_spend:
        return round(product.price - offer.value, 2)
    return None


def slot_values(request: CopyRequest) -> dict[str, str]:
    """Every slot this request can fill, rendered for its locale."""
    loc, product, offer = request.locale, request.product, request.offer
    values = {
        "<PRODUCT>": product.title_for(loc),
        "<CATEGORY>": category_name(product.category, loc),
        "<PRICE>": format_money(product.price, loc),
    }
    if product.brand:
        values["<BRAND>"] = product.brand
    if request.context in ("viewed", "bought") and request.context_product is not None:
        values["<CONTEXT_PRODUCT>"] = request.context_product.title_for(loc)
    if request.context == "favorite_category" and request.favorite_category:
        values["<FAV_CATEGORY>"] = category_name(request.favorite_category, loc)
    if offer.offer_type == "percent_off":
        values["<DISCOUNT>"] = f"{format_number(zhe(offer.value))}折" if loc == "zh-CN" else f"{format_number(offer.value)}%"
    elif offer.offer_type in ("amount_off", "spend_threshold"):
        values["<AMOUNT>"] = format_money(offer.value, loc)
    else:
        values["<SHIPPING_FEE>"] = format_money(offer.value, loc)
    if offer.offer_type == "spend_threshold":
        values["<MIN_SPEND>"] = format_money(offer.min_spend, loc)
    after = new_price(product, offer)
    if after is not None and after > 0:
        values["<NEW_PRICE>"] = format_money(after, loc)
    if offer.valid_to is not None:
        d = offer.valid_to
        values["<VALID_TO>"] = f"{d.month}月{d.day}日" if loc == "zh-CN" else f"{MONTHS_EN[d.month - 1]} {d.day}"
    return values


def render(template: str, request: CopyRequest) -> Rendered:
    """Fill every slot token in `template` from the request; report slots it cannot fill."""
    values = slot_values(request)
    used: dict[str, str] = {}
    unavailable: list[str] = []
    unknown: list[str] = []

    def fill(match: re.Match[str]) -> str:
        token = match.group(0)
        if token not in SLOT_TOKENS:
            unknown.append(token)
            return token
        if token not in values:
            unavailable.append(token)
            return token
        used[token] = values[token]
        return values[token]

    text = SLOT_PATTERN.sub(fill, template)
    return Rendered(text=text, slots=used, unavailable=unavailable, unknown=unknown)


def slots_in(template: str) -> set[str]:
    return {t for t in SLOT_PATTERN.findall(template) if t in SLOT_TOKENS}


def missing_required(template: str, offer_type: str) -> set[str]:
    return set(REQUIRED_SLOTS[offer_type] - slots_in(template))
