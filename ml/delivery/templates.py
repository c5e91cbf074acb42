"""Safe message templates: the fallback that is always compliant, so a planned send never goes out empty.

Numbers and names come only from the offer and product records (slots), never from free text; SMS carries
the opt-out line. The copy generator (ml/generator) writes richer copy and falls back to these.
"""

from __future__ import annotations

import polars as pl

OPT_OUT = {"zh-CN": "回T退订", "en-US": "Reply STOP to opt out"}
SMS_LIMIT = {"zh-CN": 70, "en-US": 160}


def offer_phrase(offer_type: str, value: float, min_spend: float, locale: str) -> str:
    zh = locale == "zh-CN"
    if offer_type == "percent_off":
        discount = round(100 - value) / 10  # 20 % off = 8折
        return f"{discount:g}折" if zh else f"{value:g}% off"
    if offer_type == "amount_off":
        return f"立减¥{value:g}" if zh else f"${value:g} off"
    if offer_type == "spend_threshold":
        return f"满¥{min_spend:g}减¥{value:g}" if zh else f"${value:g} off orders over ${min_spend:g}"
    return f"免运费(省¥{value:g})" if zh else f"free shipping (save ${value:g})"


def render(title: str, offer_type: str, value: float, min_spend: float, channel: str, locale: str) -> str:
    locale = locale if locale in OPT_OUT else "en-US"
    phrase = offer_phrase(offer_type, value, min_spend, locale)
    if locale == "zh-CN":
        text = f"您关注的{title}现在{phrase}，快来看看吧"
    else:
        text = f"{title} is now {phrase}. Take a look"
    if channel == "sms":
        limit = SMS_LIMIT[locale] - len(OPT_OUT[locale]) - 1
        if len(text) > limit:
            text = text[: limit - 1] + "…"
        text = f"{text} {OPT_OUT[locale]}"
    return text


def render_frame(sends: pl.DataFrame) -> pl.Series:
    """`sends` columns: title, offer_type, offer_value, min_spend, channel, locale."""
    return pl.Series(
        "message",
        [
            render(r["title"], r["offer_type"], r["offer_value"], r["min_spend"], r["channel"], r["locale"])
            for r in sends.iter_rows(named=True)
        ],
        dtype=pl.Utf8,
    )
