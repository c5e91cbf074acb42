"""promo_scores scores a day in batches of users (so a million users' actions never sit in memory at once);
the rows it writes must not depend on the batch size (up to float32 rounding: the predictor multiplies
other batches of contexts, which moves a few probabilities by one unit in the last place)."""

from __future__ import annotations

import shutil
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import polars as pl
import pytest

KEY = ["user_id", "product_id", "offer_id", "channel", "send_hour"]


def _scores(warehouse: Path, day: date) -> pl.DataFrame:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.sql(f"select * from delivery.scores where decision_date = DATE '{day}'").pl().sort(KEY)
    finally:
        con.close()


def test_scores_do_not_depend_on_the_batch_size(pipeline_home: Path, tmp_path: Path, monkeypatch) -> None:
    from ml.predictor.predict import MODEL_NAME, publish_predictor
    from ml.predictor.synthetic import synthetic_examples
    from ml.predictor.train import TrainConfig, train_predictor
    from ml.registry import Registry
    from orchestration.definitions import build_definitions
    from orchestration.defs.scoring import promo_scores
    from orchestration.demo import run_job
    from orchestration.instance import get_instance
    from orchestration.resources import PromoHome
    from orchestration.settings import PromoPaths

    home = tmp_path / "home"  # a copy: the session's shop stays as the other tests expect it
    shutil.copytree(pipeline_home, home)
    monkeypatch.setenv("PROMO_HOME", str(home))
    paths = PromoPaths(home)
    # A champion, so the batches go through the real predictor (context sharing included), not the prior.
    registry = Registry(paths.artifacts)
    trained = train_predictor(
        synthetic_examples(n_rows=1500, n_days=4, seed=3), TrainConfig(epochs=1, progress=False), tmp_path / "model"
    )
    version = publish_predictor(registry, trained.out_dir, metrics={}, data_window=trained.data_window)
    registry.promote(MODEL_NAME, version.version, reason="test champion")

    day = date.today() - timedelta(days=1)
    run_job(build_definitions(), get_instance(paths.dagster_home), "daily_scoring_job", str(day))
    whole = _scores(paths.warehouse, day)
    n_users = whole["user_id"].n_unique()
    assert n_users > 20 and whole["model_version"].unique().to_list() == [f"{MODEL_NAME}:{version.version}"]

    promo = PromoHome(home=str(home))
    for batch_users in (7, n_users - 1):
        result = dg.materialize(
            [promo_scores], partition_key=str(day), resources={"promo": promo},
            run_config={"ops": {"promo_scores": {"config": {"batch_users": batch_users}}}},
        )
        assert result.success
        batched = _scores(paths.warehouse, day)
        assert batched.height == whole.height  # the day was replaced, not appended to
        assert batched.drop("expected_margin", "p_click", "p_convert_send", "p_convert_none", "expected_uplift",
                            "expected_cost").equals(whole.drop("expected_margin", "p_click", "p_convert_send",
                                                               "p_convert_none", "expected_uplift", "expected_cost"))
        for column in ("p_click", "p_convert_send", "p_convert_none", "expected_uplift"):
            assert batched[column].to_numpy() == pytest.approx(whole[column].to_numpy(), rel=1e-5, abs=1e-5), column
        # Money is a float32 probability times a price: its rounding is the probability's, scaled by the price.
        price = whole["p_price"].to_numpy()
        for column in ("expected_margin", "expected_cost"):
            assert np.abs(batched[column].to_numpy() - whole[column].to_numpy()).max() < 1e-6 * price.max() + 1e-5, column

    # A failure after some batches were staged leaves the day's previous scores, and no staging table.
    import orchestration.defs.scoring as scoring

    real, calls = scoring.score_with_champion, []

    def fail_on_third_batch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("planted scoring failure")
        return real(*args, **kwargs)

    monkeypatch.setattr(scoring, "score_with_champion", fail_on_third_batch)
    result = dg.materialize(
        [promo_scores], partition_key=str(day), resources={"promo": promo}, raise_on_error=False,
        run_config={"ops": {"promo_scores": {"config": {"batch_users": 7}}}},
    )
    assert not result.success and len(calls) == 3
    assert _scores(paths.warehouse, day).equals(batched)
    con = duckdb.connect(str(paths.warehouse), read_only=True)
    try:
        assert con.execute(
            "select count(*) from information_schema.tables where table_name = '_scores_staging'"
        ).fetchall()[0][0] == 0
    finally:
        con.close()


def test_batch_size_must_be_positive(pipeline_home: Path) -> None:
    from orchestration.defs.scoring import promo_scores
    from orchestration.resources import PromoHome

    result = dg.materialize(
        [promo_scores], partition_key=str(date.today() - timedelta(days=1)),
        resources={"promo": PromoHome(home=str(pipeline_home))},
        run_config={"ops": {"promo_scores": {"config": {"batch_users": 0}}}}, raise_on_error=False,
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "batch_users must be at least 1" in str(failure.step_failure_data.error)
