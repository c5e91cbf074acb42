"""The copy generator in the platform: the daily messages step and the `copy_generator` asset."""

from __future__ import annotations

import json
from datetime import datetime

import dagster as dg
import polars as pl
import pytest

from ml.generator.messages import MESSAGE_SCHEMA, write_messages


@pytest.fixture(scope="module")
def tiny_generator(tmp_path_factory):
    from ml.generator.generate import CopyGenerator
    from ml.generator.train import TrainConfig, train_generator

    out = train_generator(
        TrainConfig(max_steps=40, n_grammar=3000, use_advertisegen=False, progress=False, eval_every=40,
                    checkpoint_every=40, vocab_size=1500),
        tmp_path_factory.mktemp("generator"),
    )
    return CopyGenerator.load(out)


def _sends() -> pl.DataFrame:
    rows = [
        ("d1", "push", "zh-CN", "羊毛围巾", "apparel", 199.0, "o1", "percent_off", 20.0, 0.0, "viewed_not_bought"),
        ("d2", "sms", "en-US", "Trail Shoes", "shoes", 89.0, "o2", "amount_off", 10.0, 0.0, "carted_not_bought"),
        ("d3", "email", "en-US", "Face Cream", "beauty", 45.0, "o3", "spend_threshold", 30.0, 199.0, "category_affinity"),
        ("d4", "sms", "zh-CN", "猫粮", "pets", 120.0, "o4", "free_shipping", 8.0, 0.0, "repurchase"),
        # A spend threshold whose minimum does not exceed its value: not a valid offer for the generator.
        ("d5", "push", "en-US", "Desk Lamp", "home", 60.0, "o5", "spend_threshold", 50.0, 40.0, "cold_start_prior"),
    ]
    frame = pl.DataFrame(rows, orient="row", schema=["decision_id", "channel", "locale", "title", "category", "price",
                                                     "offer_id", "offer_type", "offer_value", "min_spend", "candidate_source"])
    return frame.with_columns(pl.lit(datetime(2026, 3, 2, 12)).alias("send_at"), pl.lit(None, pl.Utf8).alias("brand"))


def test_cold_start_uses_safe_templates() -> None:
    out = write_messages(_sends(), None)
    assert out.schema == pl.Schema(MESSAGE_SCHEMA)
    assert out["message_source"].unique().to_list() == ["safe_template"]
    assert out["message"].str.len_chars().min() > 0


def test_every_send_gets_a_checked_message_and_a_seed_fixes_it(tiny_generator) -> None:
    sends = _sends()
    first = write_messages(sends, tiny_generator, "v1", seed=3)
    assert first["decision_id"].to_list() == sends["decision_id"].to_list()  # order kept, nothing lost
    assert first["message"].str.len_chars().min() > 0
    assert first["compliance_passed"].all()
    by_id = {r["decision_id"]: r for r in first.iter_rows(named=True)}
    assert by_id["d5"]["message_source"] == "safe_template" and "min_spend" in by_id["d5"]["reasons"]
    assert {by_id[d]["message_source"] for d in ("d1", "d2", "d3", "d4")} == {"generator:v1"}
    assert "STOP" in by_id["d2"]["message"] and "退订" in by_id["d4"]["message"]  # SMS opt-out lines
    assert write_messages(sends, tiny_generator, "v1", seed=3).equals(first)


def test_copy_generator_asset_publishes_and_promotes(tmp_path) -> None:
    from ml.registry import Registry
    from orchestration.defs.copywriting import copy_generator
    from orchestration.defs.scoring import GENERATOR_NAME
    from orchestration.resources import PromoHome

    promo = PromoHome(home=str(tmp_path))
    result = dg.materialize(
        [copy_generator], resources={"promo": promo},
        run_config={"ops": {"copy_generator": {"config": {"max_steps": 40, "n_grammar": 3000, "eval_messages": 60}}}},
    )
    assert result.success
    metadata = result.asset_materializations_for_node("copy_generator")[0].metadata
    assert metadata["hallucinated_messages"].value == 0
    assert metadata["compliance_pass_rate"].value == 1.0
    registry = Registry(promo.paths.artifacts)
    assert registry.champion_version(GENERATOR_NAME) == metadata["version"].value


def test_messages_log_their_variant_and_what_ranked_it(tiny_generator) -> None:
    from ml.generator.config import TONES
    from ml.generator.ranker import ClickRanker
    from tests.test_copy_ranker import _logged

    sends = _sends()
    plain = write_messages(sends, tiny_generator, "v1", seed=3)
    generated = plain.filter(pl.col("message_source") == "generator:v1")
    assert generated["ranker"].unique().to_list() == ["likelihood"]
    variants = generated.filter(pl.col("variant") >= 0)  # not a fallback: a variant in a tone
    assert variants.height and set(variants["tone"].to_list()) <= set(TONES)
    assert all(f"<tone:{t}>" in p for t, p in zip(variants["tone"], variants["prompt"], strict=True))
    assert generated["variant_propensity"].is_between(0, 1, closed="right").all()
    ranker, _ = ClickRanker.fit(_logged(1000, seed=4))
    ranked = write_messages(sends, tiny_generator, "v1", seed=3, ranker=ranker, ranker_version="r1")
    assert ranked.filter(pl.col("message_source") == "generator:v1")["ranker"].unique().to_list() == ["ranker:r1"]
    assert ranked["compliance_passed"].all()


def test_english_readers_get_english_product_names(tiny_generator) -> None:
    """dim_products carries one title; a Chinese one reaches an en-US reader as brand + subcategory."""
    sends = _sends().with_columns(
        pl.when(pl.col("locale") == "en-US").then(pl.lit("Aurora 经典跑鞋")).otherwise(pl.col("title")).alias("title"),
        pl.lit("Aurora").alias("brand"), pl.lit("sneakers").alias("subcategory"),
    )
    english = sends["locale"] == "en-US"
    for written in (write_messages(sends, None), write_messages(sends, tiny_generator, "v1", seed=3)):
        texts = written.filter(english)["message"]
        assert not texts.str.contains(r"[\u4e00-\u9fff]").any(), texts.to_list()
    cold = write_messages(sends, None).filter(english)["message"].to_list()
    assert all(t.startswith("Aurora sneakers is now") for t in cold)
    assert write_messages(sends, None).filter(~english)["message"].str.contains("羊毛围巾|猫粮").all()


def _feedback_warehouse(promo, rows: pl.DataFrame, day) -> None:
    from datetime import timedelta

    frame = rows.with_columns(
        pl.format("m{}", pl.int_range(pl.len())).alias("decision_id"),
        pl.lit(day - timedelta(days=3)).alias("decision_date"),
        pl.lit("generator:v1").alias("message_source"),
    )
    with promo.connect() as con:
        con.execute("create schema if not exists delivery; create schema if not exists marts")
        messages = frame.select("decision_id", "decision_date", "prompt", "template", "message", "message_source")
        outcomes = frame.select("decision_id", pl.col("opened").alias("label_open"), pl.col("clicked").alias("label_click"),
                                pl.lit(True).alias("window_closed"), pl.lit(False).alias("is_holdout"))
        con.register("m", messages)
        con.register("o", outcomes)
        con.execute("create table delivery.messages as select * from m")
        con.execute("create table marts.fct_delivery_outcomes as select * from o")


def test_copy_ranker_asset_learns_from_feedback_and_promotes(tmp_path) -> None:
    from datetime import date

    from ml.registry import Registry
    from orchestration.defs.copywriting import copy_ranker
    from orchestration.defs.scoring import RANKER_NAME, champion_ranker
    from orchestration.resources import PromoHome
    from tests.test_copy_ranker import _logged

    day = date(2026, 3, 10)
    empty = PromoHome(home=str(tmp_path / "empty"))
    result = dg.materialize([copy_ranker], partition_key=str(day), resources={"promo": empty})
    assert result.success
    decision = result.asset_materializations_for_node("copy_ranker")[0].metadata["decision"].value
    assert decision == "no logged feedback yet: candidates stay ranked by likelihood"
    assert champion_ranker(empty) == (None, "")

    promo = PromoHome(home=str(tmp_path / "fed"))
    _feedback_warehouse(promo, _logged(4000, seed=1), day)
    result = dg.materialize([copy_ranker], partition_key=str(day), resources={"promo": promo})
    metadata = result.asset_materializations_for_node("copy_ranker")[0].metadata
    assert metadata["rows"].value == 4000 and metadata["valid_gain"].value > 0
    assert Registry(promo.paths.artifacts).champion_version(RANKER_NAME) == metadata["version"].value
    ranker, version = champion_ranker(promo)
    assert ranker is not None and version == metadata["version"].value
    # A champion saved by code with another feature layout is not used: the day ranks by likelihood.
    meta_file = Registry(promo.paths.artifacts).get(RANKER_NAME, version).path / "ranker.json"
    meta = json.loads(meta_file.read_text())
    meta_file.write_text(json.dumps({**meta, "n_features": meta["n_features"] - 64}))
    assert champion_ranker(promo) == (None, "")
    meta_file.write_text(json.dumps(meta))
    # Messages of the day itself are not feedback yet: a day earlier, nothing to learn from.
    earlier = dg.materialize([copy_ranker], partition_key=str(date(2026, 3, 7)), resources={"promo": promo})
    assert earlier.asset_materializations_for_node("copy_ranker")[0].metadata["rows"].value == 0
