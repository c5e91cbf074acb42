"""The daily messages: one checked message per planned send, written by the generator when one is trained.

`write_messages` turns the plan's sends (joined with user, product and offer records) into `CopyRequest`s,
lets the generator write K candidates per send (spread over the tones), keeps the best that passes the fact
verifier and the compliance rules — best by the click ranker when one is trained on feedback, else by the
generator's likelihood, with exploration over the variants and the chosen one's probability logged — and
falls back to a safe template, never to nothing. Before any generator is trained
(cold start), and for a send whose records do not make a valid request, the safe templates of
`ml.delivery.templates` write the message. Every row says which source wrote it and why.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import polars as pl

from ml.delivery.templates import render_frame
from ml.generator.config import TONES
from ml.generator.generate import CopyGenerator
from ml.generator.ranker import ClickRanker
from ml.generator.request import CopyRequest, OfferInfo, ProductInfo

# The planner's channels -> the generator's (an email is addressed by its subject line).
CHANNEL = {"push": "push", "sms": "sms", "email": "email_subject"}
# Where the candidate came from -> what the message may refer to.
CONTEXT = {
    "viewed_not_bought": "viewed",
    "carted_not_bought": "viewed",
    "repurchase": "bought",
    "category_affinity": "favorite_category",
}
MESSAGE_SCHEMA = {
    "decision_id": pl.Utf8,
    "message": pl.Utf8,
    "message_source": pl.Utf8,
    "template": pl.Utf8,
    "variant": pl.Int32,  # candidate index chosen (-1: a safe template)
    "variant_propensity": pl.Float64,  # probability the chosen variant had (exploration over variants)
    "tone": pl.Utf8,  # the tone the chosen variant was written in
    "prompt": pl.Utf8,  # its control prefix: with template and the feedback, what the ranker learns from
    "ranker": pl.Utf8,  # what ranked the candidates: "ranker:<version>" or "likelihood"
    "used_fallback": pl.Boolean,
    "compliance_passed": pl.Boolean,
    "reasons": pl.Utf8,
}
SEND_COLUMNS = ("decision_id", "channel", "locale", "title", "category", "price", "offer_id", "offer_type",
                "offer_value", "min_spend")


def segment_of(row: dict) -> str:
    """new / lapsed / vip / active from the user's tenure, recency and spend (when the columns are there)."""
    if (row.get("tenure_days") or 999) < 14:
        return "new"
    if (row.get("recency_days") or 0) > 30:
        return "lapsed"
    if (row.get("revenue_90d") or 0.0) >= 1000.0:
        return "vip"
    return "active"


def to_request(row: dict) -> CopyRequest:
    """A send as a generator request; raises ValueError naming the field when the records do not fit."""
    product = ProductInfo(
        product_id=row.get("product_id") or row["decision_id"], title=row["title"], category=row["category"],
        price=float(row["price"]), brand=row.get("brand"), subcategory=row.get("subcategory"),
    )
    offer = OfferInfo(
        offer_id=row["offer_id"], offer_type=row["offer_type"], value=float(row["offer_value"]),
        min_spend=float(row.get("min_spend") or 0.0),
        valid_to=row["valid_to"].date() if isinstance(row.get("valid_to"), datetime) else None,
    )
    context = CONTEXT.get(row.get("candidate_source") or "", "none")
    send_at = row.get("send_at")
    return CopyRequest(
        request_id=row["decision_id"], locale=row["locale"], channel=CHANNEL.get(row["channel"], row["channel"]),
        segment=segment_of(row), tone="friendly", product=product, offer=offer, context=context,
        context_product=product if context in ("viewed", "bought") else None,
        favorite_category=row["category"] if context == "favorite_category" else None,
        send_at=send_at.replace(tzinfo=None) if isinstance(send_at, datetime) else None,
        timezone=None,
    )


def reader_titles(sends: pl.DataFrame) -> pl.Series:
    """The product name each send's reader sees (`ProductInfo.title_for`: English for en-US readers when the
    one title the landing contract carries is in Chinese)."""
    def title(row: dict) -> str | None:
        if not isinstance(row["title"], str) or not row["title"].strip():
            return row["title"]  # an invalid record: the template writes it as it is
        product = ProductInfo(product_id="", title=row["title"], category=row.get("category") or "", price=1.0,
                              brand=row.get("brand"), subcategory=row.get("subcategory"))
        return product.title_for(row["locale"])

    return pl.Series("title", [title(r) for r in sends.iter_rows(named=True)], dtype=pl.Utf8)


def _template_rows(sends: pl.DataFrame, reason: str) -> pl.DataFrame:
    return sends.select("decision_id").with_columns(
        render_frame(sends.with_columns(reader_titles(sends))).alias("message"),
        pl.lit("safe_template").alias("message_source"),
        pl.lit(None, pl.Utf8).alias("template"),
        pl.lit(-1, pl.Int32).alias("variant"),
        pl.lit(1.0).alias("variant_propensity"),
        pl.lit(None, pl.Utf8).alias("tone"),
        pl.lit(None, pl.Utf8).alias("prompt"),
        pl.lit(None, pl.Utf8).alias("ranker"),
        pl.lit(False).alias("used_fallback"),
        pl.lit(True).alias("compliance_passed"),
        pl.lit(reason).alias("reasons"),
    )


def _batches(frame: pl.DataFrame, size: int) -> Iterator[pl.DataFrame]:
    for start in range(0, frame.height, size):
        yield frame.slice(start, size)


def write_messages(
    sends: pl.DataFrame, generator: CopyGenerator | None, version: str = "", seed: int = 0, k: int = 3,
    batch_size: int = 256, ranker: ClickRanker | None = None, ranker_version: str = "", explore: float = 0.1,
    tones: tuple[str, ...] = TONES,
) -> pl.DataFrame:
    """One row per send (MESSAGE_SCHEMA), in `sends`' order; bounded batches so memory stays flat."""
    missing = [c for c in SEND_COLUMNS if c not in sends.columns]
    if missing:
        raise ValueError(f"write_messages: sends lack column(s) {missing}")
    if sends.is_empty():
        return pl.DataFrame(schema=MESSAGE_SCHEMA)
    if generator is None:
        return _template_rows(sends, "cold start: no copy generator trained yet").select(list(MESSAGE_SCHEMA))
    parts = []
    for number, batch in enumerate(_batches(sends, batch_size)):
        requests, invalid = [], []
        for row in batch.iter_rows(named=True):
            try:
                requests.append(to_request(row))
            except ValueError as err:
                invalid.append((row["decision_id"], str(err)))
        scorer = ranker.score if ranker is not None else None
        messages = generator.generate(requests, k=k, seed=seed + number, scorer=scorer, explore=explore,
                                      tones=tones) if requests else []
        ranked_by = f"ranker:{ranker_version}" if ranker is not None else "likelihood"
        rows = [
            {
                "decision_id": m.request_id, "message": m.text, "message_source": f"generator:{version}",
                "template": m.template, "variant": m.candidate_index, "variant_propensity": m.propensity,
                "tone": m.candidates[m.candidate_index].tone if m.candidate_index >= 0 else None,
                "prompt": m.prompt, "ranker": ranked_by,
                "used_fallback": m.used_fallback, "compliance_passed": m.passed, "reasons": "; ".join(m.reasons),
            }
            for m in messages
        ]
        parts.append(pl.DataFrame(rows, schema=MESSAGE_SCHEMA) if rows else pl.DataFrame(schema=MESSAGE_SCHEMA))
        if invalid:
            bad = batch.filter(pl.col("decision_id").is_in([d for d, _ in invalid]))
            why = dict(invalid)
            parts.append(
                _template_rows(bad, "").with_columns(
                    pl.col("decision_id").replace_strict(why, return_dtype=pl.Utf8).alias("reasons")
                ).select(list(MESSAGE_SCHEMA))
            )
    out = pl.concat(parts)
    return sends.select("decision_id").join(out, on="decision_id", how="left", maintain_order="left")
