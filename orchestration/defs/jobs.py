"""Jobs: named selections of the asset graph that schedules, sensors and the demo run."""

from __future__ import annotations

from functools import cache

import dagster as dg

RAW = ["raw"]


@cache
def ingest_catalog_job() -> dg.UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        "ingest_catalog_job",
        selection=dg.AssetSelection.assets(["raw", "users"], ["raw", "products"], ["raw", "offers"]),
        description="Load the users, products and offers snapshots.",
    )


@cache
def ingest_events_job() -> dg.UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        "ingest_events_job",
        selection=dg.AssetSelection.assets(["raw", "events"]),
        description="Load one day (or a range, in one run) of behaviour events.",
    )


@cache
def ingest_feedback_job() -> dg.UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        "ingest_feedback_job",
        selection=dg.AssetSelection.assets(["raw", "feedback"]),
        description="Load one day of channel feedback (run by the feedback sensor).",
    )


@cache
def features_job() -> dg.UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        "features_job",
        selection=dg.AssetSelection.groups("features") | dg.AssetSelection.assets("training_dataset"),
        description="dbt build of staging, intermediate and marts (tests as checks), then the training set.",
    )


@cache
def training_job() -> dg.UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        "training_job",
        selection=dg.AssetSelection.assets("effect_predictor", "copy_generator"),
        description="Train the effect predictor and the copy generator and publish them to the registry.",
    )


@cache
def daily_scoring_job() -> dg.UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        "daily_scoring_job",
        selection=dg.AssetSelection.groups("scoring") - dg.AssetSelection.assets(["delivery", "decision_log"]),
        description="candidates -> scores -> plan -> messages -> delivery export, for one day.",
    )


@cache
def retrain_job() -> dg.UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        "retrain_job",
        selection=dg.AssetSelection.groups("features")
        | dg.AssetSelection.assets("training_dataset", "retrained_predictor"),
        description="Refresh features with the new outcomes, train a challenger, evaluate it off-policy, "
        "and promote it only if it is better beyond the uncertainty.",
    )


def all_jobs() -> list[dg.UnresolvedAssetJobDefinition]:
    return [
        ingest_catalog_job(),
        ingest_events_job(),
        ingest_feedback_job(),
        features_job(),
        training_job(),
        daily_scoring_job(),
        retrain_job(),
    ]
