"""Bring your own data: convert the Olist Brazilian e-commerce export into the landing contract.

What maps to what (documented in README, "Bring your own data"):
- customers -> users. `user_id` is `customer_unique_id` (the person); Olist lists a person once per order, so
  repeat customers arrive as duplicate user rows, which ingestion quarantines (`duplicate_key`). Consent is
  unknown in Olist and so written as false (nobody is contacted). Olist's locale (pt-BR) is outside the
  contract; users get `en-US`, timezone `America/Sao_Paulo`.
- products -> products. Olist has no titles or list prices: the title is the English category plus the id
  prefix, the price is the product's median item price; a product never sold has no price and is quarantined.
  Category names are translated with Olist's own table (misspelt `product_*_lenght` columns are ignored).
- orders + items -> `purchase` events (one per item), reviews -> `review` events; timestamps are Sao Paulo
  local time converted to UTC. Orders without items yield no event (counted in the report); duplicate review
  ids are kept so quarantine catches them.
- payments of type `voucher` are an observed promotion signal with no offer definition behind them: they are
  written to `landing/_signals/olist_vouchers.parquet` (outside the contract, not ingested) for analysis.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

SOURCE_TZ = "America/Sao_Paulo"


@dataclass
class ConversionReport:
    users: int
    products: int
    events: int
    days: int
    orders_without_items: int
    duplicate_review_ids: int
    voucher_payments: int
    first_day: str
    last_day: str

    def __str__(self) -> str:
        return (
            f"olist -> landing: {self.users:,} user rows, {self.products:,} products, {self.events:,} events over "
            f"{self.days} days ({self.first_day} .. {self.last_day}); {self.orders_without_items:,} orders without "
            f"items (no event), {self.duplicate_review_ids:,} duplicate review ids (left for quarantine), "
            f"{self.voucher_payments:,} voucher payments (landing/_signals)"
        )


def _utc(column: str) -> pl.Expr:
    local = pl.col(column).str.to_datetime("%Y-%m-%d %H:%M:%S", strict=False)
    return local.dt.replace_time_zone(SOURCE_TZ, ambiguous="earliest", non_existent="null").dt.convert_time_zone("UTC").dt.replace_time_zone(None)


def convert_olist(src: Path, landing: Path) -> ConversionReport:
    def read(name: str) -> pl.DataFrame:
        return pl.read_csv(src / f"olist_{name}_dataset.csv", infer_schema=False)

    customers, orders, items = read("customers"), read("orders"), read("order_items")
    products, reviews, payments = read("products"), read("order_reviews"), read("order_payments")
    translation = pl.read_csv(src / "product_category_name_translation.csv", infer_schema=False)

    users = customers.select(
        pl.col("customer_unique_id").alias("user_id"),
        pl.col("customer_city").alias("city"),
        pl.lit("en-US").alias("locale"),
        pl.lit(SOURCE_TZ).alias("timezone"),
        pl.lit(False).alias("consent_push"),
        pl.lit(False).alias("consent_sms"),
        pl.lit(False).alias("consent_email"),
    )
    prices = items.group_by("product_id").agg(pl.col("price").cast(pl.Float64).median().alias("price"))
    product_rows = (
        products.join(translation, on="product_category_name", how="left")
        .join(prices, on="product_id", how="left")
        .select(
            "product_id",
            pl.concat_str([pl.col("product_category_name_english").fill_null("item"), pl.col("product_id").str.slice(0, 8)], separator=" ").alias("title"),
            pl.coalesce("product_category_name_english", "product_category_name").alias("category"),
            "price",
        )
    )
    owner = orders.join(customers.select("customer_id", "customer_unique_id"), on="customer_id", how="left")
    purchases = items.join(owner, on="order_id", how="inner").select(
        pl.concat_str(["order_id", "order_item_id"], separator="-").alias("event_id"),
        pl.col("customer_unique_id").alias("user_id"),
        pl.lit("purchase").alias("event_type"),
        _utc("order_purchase_timestamp").alias("event_at"),
        "product_id",
        pl.col("order_id").alias("session_id"),
        pl.lit(1, pl.Int64).alias("quantity"),
        pl.col("price").cast(pl.Float64, strict=False),
        pl.lit("web").alias("platform"),
    )
    first_item = items.filter(pl.col("order_item_id") == "1").select("order_id", "product_id")
    review_events = reviews.join(owner, on="order_id", how="inner").join(first_item, on="order_id", how="left").select(
        pl.concat_str([pl.lit("r"), pl.col("review_id")], separator="-").alias("event_id"),
        pl.col("customer_unique_id").alias("user_id"),
        pl.lit("review").alias("event_type"),
        _utc("review_creation_date").alias("event_at"),
        "product_id",
        pl.col("order_id").alias("session_id"),
        pl.lit(1, pl.Int64).alias("quantity"),
        pl.lit(None, pl.Float64).alias("price"),
        pl.lit("web").alias("platform"),
    )
    events = pl.concat([purchases, review_events]).filter(pl.col("event_at").is_not_null())

    for name, frame in (("users", users), ("products", product_rows)):
        folder = landing / name
        folder.mkdir(parents=True, exist_ok=True)
        frame.write_csv(folder / f"olist_{name}.csv")
    events = events.with_columns(pl.col("event_at").dt.date().alias("_day"))
    for (day,), part in events.partition_by("_day", as_dict=True).items():
        folder = landing / "events" / f"date={day}"
        folder.mkdir(parents=True, exist_ok=True)
        part.drop("_day").with_columns(pl.col("event_at").dt.strftime("%Y-%m-%dT%H:%M:%S")).write_csv(folder / "olist_events.csv")
    vouchers = payments.filter(pl.col("payment_type") == "voucher").join(owner.select("order_id", "customer_unique_id"), on="order_id", how="left")
    (landing / "_signals").mkdir(parents=True, exist_ok=True)
    vouchers.write_parquet(landing / "_signals" / "olist_vouchers.parquet")
    days = events["_day"].unique().sort()
    return ConversionReport(
        users=users.height,
        products=product_rows.height,
        events=events.height,
        days=len(days),
        orders_without_items=orders.join(items.select("order_id").unique(), on="order_id", how="anti").height,
        duplicate_review_ids=reviews.height - reviews["review_id"].n_unique(),
        voucher_payments=vouchers.height,
        first_day=str(days.min()) if len(days) else "",
        last_day=str(days.max()) if len(days) else "",
    )
