"""Advertising-rule checks per locale and channel; the rules themselves are data (rules/compliance.json).

Content rules (banned absolute claims, one language, length budget, SMS opt-out, PII) decide whether a text
may be sent;
the timing rule (quiet hours) decides when. A text that fails content is replaced (generate.py falls back
to another candidate, then to the safe templates here); a send time inside quiet hours is deferred to the
end of the window, never dropped. Every finding is a `RuleViolation` with its reason.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ml.generator.config import CHANNELS, LOCALES

RULES_PATH = Path(__file__).resolve().parent / "rules" / "compliance.json"

GSM7_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = set("^{}\\[~]|€\f")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_PHONE = re.compile(r"(?<!\d)(?:1[3-9]\d{9}|\+?\d(?:[\s-]?\d){8,14})(?!\d)")


@dataclass(frozen=True)
class RuleViolation:
    rule: str  # banned_term | mixed_language | length | sms_segments | sms_opt_out | pii | empty | quiet_hours
    detail: str


@dataclass
class ComplianceResult:
    text: str
    violations: list[RuleViolation] = field(default_factory=list)
    earliest_send_at: datetime | None = None  # set when the asked send time falls in quiet hours

    @property
    def content_ok(self) -> bool:
        return not any(v.rule != "quiet_hours" for v in self.violations)

    @property
    def timing_ok(self) -> bool:
        return not any(v.rule == "quiet_hours" for v in self.violations)

    @property
    def passed(self) -> bool:
        return not self.violations

    @property
    def reasons(self) -> list[str]:
        return [f"{v.rule}: {v.detail}" for v in self.violations]


def sms_segments(text: str) -> tuple[int, str]:
    """(segments, encoding): GSM-7 160 septets single / 153 per part; else UCS-2 70 single / 67 per part."""
    if all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text):
        septets = sum(2 if c in GSM7_EXTENSION else 1 for c in text)
        return (1 if septets <= 160 else math.ceil(septets / 153)), "gsm7"
    units = len(text.encode("utf-16-le")) // 2
    return (1 if units <= 70 else math.ceil(units / 67)), "ucs2"


class ComplianceEngine:
    def __init__(self, rules: dict[str, Any] | None = None, rules_path: Path | str = RULES_PATH) -> None:
        self.rules = rules if rules is not None else json.loads(Path(rules_path).read_text(encoding="utf-8"))
        for locale in LOCALES:
            if locale not in self.rules:
                raise ValueError(f"compliance rules: locale {locale!r} missing")
            for key in ("banned", "opt_out", "channels", "quiet_hours", "language", "safe_templates"):
                if key not in self.rules[locale]:
                    raise ValueError(f"compliance rules: {locale}.{key} missing")
            for channel in CHANNELS:
                if channel not in self.rules[locale]["channels"]:
                    raise ValueError(f"compliance rules: {locale}.channels.{channel} missing")
        self._banned = [self._banned_patterns(loc) for loc in LOCALES]
        self._foreign = {loc: re.compile(self.rules[loc]["language"]["foreign"]) for loc in LOCALES}
        # The fallback of last resort must always pass: prove it once, at load time.
        for locale in LOCALES:
            last = self.rules[locale]["safe_templates"]["any"][-1]
            for channel in CHANNELS:
                result = self.check(self.finalize(last, channel, locale), channel, locale)
                if not result.content_ok:
                    raise ValueError(f"compliance rules: last safe template of {locale} fails on {channel}: {result.reasons}")

    def _banned_patterns(self, locale: str) -> tuple[list[tuple[str, re.Pattern[str]]], list[str]]:
        spec = self.rules[locale]["banned"]
        patterns = []
        for term in spec["terms"]:
            if term.isascii():
                left = r"(?<![A-Za-z0-9])" if term[0].isalnum() else ""
                right = r"(?![A-Za-z0-9])" if term[-1].isalnum() else ""
                patterns.append((term, re.compile(left + re.escape(term) + right, re.IGNORECASE)))
            else:
                patterns.append((term, re.compile(re.escape(term))))
        return patterns, list(spec.get("allow", []))

    def opt_out(self, locale: str) -> str:
        return self.rules[locale]["opt_out"]

    def finalize(self, text: str, channel: str, locale: str) -> str:
        """The text as it will be sent: SMS gets the opt-out line when it lacks one."""
        text = text.strip()
        if channel == "sms" and self.opt_out(locale) not in text:
            sep = "" if locale == "zh-CN" else " "
            text = f"{text}{sep}{self.opt_out(locale)}"
        return text

    def safe_templates(self, locale: str, offer_type: str) -> list[str]:
        templates = self.rules[locale]["safe_templates"]
        return [*templates.get(offer_type, []), *templates["any"]]

    def foreign_words(self, text: str, locale: str, names: Iterable[str] = ()) -> list[str]:
        """Words of another language in `text` (rules: `<locale>.language`), leaving out `names` (the request's
        own product and brand names, which are what they are in any language) and the allowed words."""
        for name in sorted({n for n in names if n}, key=len, reverse=True):
            text = text.replace(name, " ")
        allow = set(self.rules[locale]["language"].get("allow", []))
        return [m.group(0) for m in self._foreign[locale].finditer(text) if m.group(0) not in allow]

    def check(self, text: str, channel: str, locale: str, send_at: datetime | None = None, timezone: str | None = None,
              names: Iterable[str] = ()) -> ComplianceResult:
        """Every rule on `text`; `names` are the request's product and brand names (exempt from the language
        rule: a Latin brand in a Chinese message, or a Chinese brand in an English one, is not mixed language)."""
        if locale not in LOCALES:
            raise ValueError(f"unknown locale {locale!r}; allowed: {LOCALES}")
        if channel not in CHANNELS:
            raise ValueError(f"unknown channel {channel!r}; allowed: {CHANNELS}")
        rules = self.rules[locale]
        found: list[RuleViolation] = []
        if not text.strip():
            found.append(RuleViolation("empty", "no text"))
        for patterns, allow in self._banned:
            scrubbed = text
            for word in allow:
                scrubbed = scrubbed.replace(word, "\u0000" * len(word))
            for term, pattern in patterns:
                if pattern.search(scrubbed):
                    found.append(RuleViolation("banned_term", f"{term!r} is an absolute claim"))
        foreign = self.foreign_words(text, locale, names)
        if foreign:
            found.append(RuleViolation("mixed_language", f"{', '.join(repr(w) for w in foreign[:3])} not in {locale}"))
        if _EMAIL.search(text):
            found.append(RuleViolation("pii", "contains an e-mail address"))
        if _PHONE.search(text):
            found.append(RuleViolation("pii", "contains a phone number"))
        limits = rules["channels"][channel]
        if channel == "sms":
            segments, encoding = sms_segments(text)
            if segments > limits["max_segments"]:
                found.append(RuleViolation("sms_segments", f"{segments} {encoding} segments > {limits['max_segments']}"))
            if rules["opt_out"] not in text:
                found.append(RuleViolation("sms_opt_out", f"missing {rules['opt_out']!r}"))
        elif len(text) > limits["max_chars"]:
            found.append(RuleViolation("length", f"{len(text)} chars > {limits['max_chars']} for {channel}"))
        earliest = None
        if send_at is not None:
            earliest = self.quiet_hours_end(send_at, locale, timezone)
            if earliest is not None:
                found.append(RuleViolation("quiet_hours", f"{send_at.isoformat()} is in quiet hours; deferred to {earliest.isoformat()}"))
        return ComplianceResult(text=text, violations=found, earliest_send_at=earliest)

    def quiet_hours_end(self, send_at: datetime, locale: str, timezone: str | None = None) -> datetime | None:
        """None when `send_at` (recipient-local) is outside quiet hours, else the first allowed moment."""
        if timezone and send_at.tzinfo is not None:
            send_at = send_at.astimezone(ZoneInfo(timezone))
        window = self.rules[locale]["quiet_hours"]
        start, end = time.fromisoformat(window["start"]), time.fromisoformat(window["end"])
        now = send_at.time()
        inside = (now >= start or now < end) if start > end else (start <= now < end)
        if not inside:
            return None
        day = send_at.date() if now < end else send_at.date() + timedelta(days=1)
        return datetime.combine(day, end, tzinfo=send_at.tzinfo)
