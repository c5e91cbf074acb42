"""Check a rendered message against the facts of its request: no number, amount, percentage, 折 or name
that the offer and product do not contain.

Why parse the rendered text when slots already make the model unable to write a price? Because the model
can still write digits or a brand it saw in training, a template can be wrong, and fallbacks are text too:
the verifier is the one gate every message passes, whatever produced it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from ml.generator.request import CopyRequest
from ml.generator.slots import MONTHS_EN, new_price, zhe

_NUM = r"\d+(?:\.\d+)?"
_ZH_NUM = "零〇一二两三四五六七八九十百千万半"
_MONEY = re.compile(rf"[¥￥$]\s*({_NUM})|({_NUM})\s*(?:元|块|美元|RMB|USD|dollars?\b|bucks?\b)", re.IGNORECASE)
_ZH_MONEY = re.compile(rf"([{_ZH_NUM}]+)\s*[元块]")
_PERCENT = re.compile(rf"({_NUM})\s*(?:%|％|percent\b|per cent\b)", re.IGNORECASE)
_ZHE = re.compile(rf"({_NUM})\s*折")
_ZH_ZHE = re.compile(rf"([{_ZH_NUM}]+)\s*折")
_DATE_ZH = re.compile(r"(\d{1,2})\s*月\s*(\d{1,2})\s*[日号]")
_DATE_EN = re.compile(r"\b(" + "|".join(MONTHS_EN) + r")[a-z]*\.?\s+(\d{1,2})\b")
_BARE = re.compile(_NUM)
_PLACEHOLDER = re.compile(r"<[A-Za-z_:\-]+>|\bBRAND\b|\bUNK\b")
_ZH_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}


@dataclass(frozen=True)
class Violation:
    kind: str  # wrong_money | wrong_percent | wrong_zhe | wrong_date | unknown_number | unknown_name | placeholder
    detail: str


@dataclass
class VerifyResult:
    ok: bool
    violations: list[Violation] = field(default_factory=list)

    @property
    def reasons(self) -> list[str]:
        return [f"{v.kind}: {v.detail}" for v in self.violations]


def zh_numeral(text: str) -> float | None:
    """八 -> 8, 八五 -> 8.5 (折 style), 二十 -> 20, 一百五 -> 150; None when it is not a number we read."""
    if text == "半":
        return 5.0
    if all(c in _ZH_DIGITS for c in text):
        digits = [_ZH_DIGITS[c] for c in text]
        return float(digits[0]) if len(digits) == 1 else float(f"{digits[0]}.{''.join(map(str, digits[1:]))}")
    total, section, current = 0, 0, 0
    units = {"十": 10, "百": 100, "千": 1000}
    for c in text:
        if c in _ZH_DIGITS:
            current = _ZH_DIGITS[c]
        elif c in units:
            section += (current or 1) * units[c]
            current = 0
        elif c == "万":
            total += (section + current) * 10_000
            section, current = 0, 0
        else:
            return None
    return float(total + section + current)


class Verifier:
    """`known_brands` / `known_products`: the shop's names; any that appears but is not this request's own
    is an invented reference to another product."""

    def __init__(self, known_brands: Iterable[str] = (), known_products: Iterable[str] = ()) -> None:
        self.known_brands = {b for b in known_brands if b}
        self.known_products = {p for p in known_products if p}

    def verify(self, text: str, request: CopyRequest) -> VerifyResult:
        violations: list[Violation] = []
        own = set(request.own_names())
        for name in sorted((self.known_brands | self.known_products) - own):
            if _contains_name(text, name) and not any(_contains_name(o, name) for o in own):
                violations.append(Violation("unknown_name", f"{name!r} is not in this request"))
        # Names may carry digits (a model number): take them out before reading numbers.
        masked = text
        for name in sorted(own, key=len, reverse=True):
            masked = masked.replace(name, " ")
        for m in _PLACEHOLDER.finditer(masked):
            violations.append(Violation("placeholder", f"unfilled token {m.group(0)!r}"))
        violations += self._numbers(masked, request)
        return VerifyResult(ok=not violations, violations=violations)

    def _numbers(self, text: str, request: CopyRequest) -> list[Violation]:
        offer, product = request.offer, request.product
        money = {product.price}
        if offer.offer_type in ("amount_off", "spend_threshold", "free_shipping"):
            money.add(offer.value)
        if offer.offer_type == "spend_threshold":
            money.add(offer.min_spend)
        after = new_price(product, offer)
        if after is not None and after > 0:
            money.add(after)
        percents = {offer.value} if offer.offer_type == "percent_off" else set()
        zhes = {zhe(offer.value)} if offer.offer_type == "percent_off" else set()
        dates = {(offer.valid_to.month, offer.valid_to.day)} if offer.valid_to else set()
        allowed_any = money | percents | zhes | {float(x) for md in dates for x in md}

        violations: list[Violation] = []
        spans: list[tuple[int, int]] = []

        def check(pattern: re.Pattern[str], kind: str, allowed: set[float], zh: bool = False) -> None:
            for m in pattern.finditer(text):
                if _overlaps(m.span(), spans):
                    continue
                spans.append(m.span())
                raw = next(g for g in m.groups() if g is not None)
                value = zh_numeral(raw) if zh else float(raw)
                if value is None or not _member(value, allowed):
                    violations.append(Violation(kind, f"{m.group(0).strip()!r} is not in the offer or product"))

        for m in list(_DATE_ZH.finditer(text)) + list(_DATE_EN.finditer(text)):
            spans.append(m.span())
            month = int(m.group(1)) if m.group(1).isdigit() else MONTHS_EN.index(m.group(1)[:3]) + 1
            if (month, int(m.group(2))) not in dates:
                violations.append(Violation("wrong_date", f"{m.group(0)!r} is not the offer's end date"))
        check(_MONEY, "wrong_money", money)
        check(_ZH_MONEY, "wrong_money", money, zh=True)
        check(_PERCENT, "wrong_percent", percents)
        check(_ZHE, "wrong_zhe", zhes)
        check(_ZH_ZHE, "wrong_zhe", zhes, zh=True)
        for m in _BARE.finditer(text):
            if not _overlaps(m.span(), spans) and not _member(float(m.group(0)), allowed_any):
                violations.append(Violation("unknown_number", f"{m.group(0)!r} is not in the offer or product"))
        return violations


def _member(value: float, allowed: set[float]) -> bool:
    return any(abs(value - a) < 0.005 for a in allowed)


def _overlaps(span: tuple[int, int], spans: list[tuple[int, int]]) -> bool:
    return any(span[0] < e and s < span[1] for s, e in spans)


def _contains_name(text: str, name: str) -> bool:
    """Latin names match as whole words, case-insensitively; others as substrings."""
    if name.isascii():
        return re.search(rf"(?<![A-Za-z0-9]){re.escape(name)}(?![A-Za-z0-9])", text, re.IGNORECASE) is not None
    return name in text
