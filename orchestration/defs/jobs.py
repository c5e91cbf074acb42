"""Jobs: named selections of the asset graph that schedules, sensors and the demo run."""


from functools import cache

import dagster as dg

from orchestration.partitions import daily_partitions


@cache
def ingest_catalog_job() -> dg.JobDefinition:
    return dg.define_asset_job(
        "ingest_catalog_job",
        selection=dg.AssetSelection.assets(["raw", "users"], ["raw", "products"], ["raw", "offers"]),
        description="Load the users, products and offers snapshots.",
    )


@cache
def ingest_events_job() -> dg.JobDefinition:
    return dg.define_asset_job(
        "ingest_events_job",
        selection=dg.AssetSelection.assets(["raw", "events"]),
        description="Load one day (or a range, in one run) of behaviour events.",
    )


@cache
def ingest_feedback_job() -> dg.JobDefinition:
    return dg.define_asset_job(
        "ingest_feedback_job",
        selection=dg.AssetSelection.assets(["raw", "feedback"]),
        description="Load one day of channel feedback (run by the feedback sensor).",
    )


@cache
def features_job() -> dg.JobDefinition:
    return dg.define_asset_job(
        "features_job",
        selection=dg.AssetSelection.groups("features"),
        description="dbt build of staging, intermediate and marts, with dbt tests as asset checks.",
    )


@cache
def training_job() -> dg.JobDefinition:
    return dg.define_asset_job(
        "training_job",
        selection=dg.AssetSelection.assets("training_dataset", "effect_predictor"),
        description="Export the point-in-time training set, train the effect predictor from scratch, gate it.",
    )


@cache
def retraining_job() -> dg.JobDefinition:
    return dg.define_asset_job(
        "retraining_job",
        selection=dg.AssetSelection.assets("training_dataset", "retrained_predictor"),
        description="Export the new labelled window, warm-start a challenger from the champion, promote it only "
        "if it beats the champion off-policy (run by the retrain sensor).",
    )


@cache
def copywriting_job() -> dg.JobDefinition:
    return dg.define_asset_job(
        "copywriting_job",
        selection=dg.AssetSelection.assets("copy_generator"),
        description="Train, check and publish the copy generator (the daily messages use the champion).",
    )


@cache
def daily_scoring_job() -> dg.JobDefinition:
    return dg.define_asset_job(
        "daily_scoring_job",
        selection=dg.AssetSelection.groups("scoring") - dg.AssetSelection.assets(["delivery", "decision_log"]),
        partitions_def=daily_partitions(),
        description="The day's candidates (and, as they land, scores -> plan -> messages -> export).",
    )


def all_jobs() -> list:
    return [
        ingest_catalog_job(),
        ingest_events_job(),
        ingest_feedback_job(),
        features_job(),
        training_job(),
        retraining_job(),
        copywriting_job(),
        daily_scoring_job(),
    ]
