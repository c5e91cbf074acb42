"""The copy generator in the platform: the daily messages step and the `copy_generator` asset."""

from __future__ import annotations

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
