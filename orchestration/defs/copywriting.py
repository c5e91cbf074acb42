"""The copy generator and its click ranker as Dagster assets.

`copy_generator` trains (CUDA with bf16 when present, else CPU), evaluates the rules that must never break
(facts, compliance) and the quality figures, publishes to the registry, and promotes when it is the first or
keeps every rule without a worse held-out perplexity. It reads no warehouse table: its data are the grammar
corpus (generated) and, where present, AdvertiseGen from $PROMO_REAL_DATA_DIR.

`copy_ranker` (daily, in the scoring job before `promo_messages`) fits the click head
(`ml.generator.ranker`) on the messages of earlier days whose feedback window has closed, and promotes it when
it predicts opens and clicks better than the base rates on held-out messages.

`promo_messages` (orchestration/defs/scoring.py) writes with the champion generator, ranked by the champion
ranker (by likelihood before one exists); before a generator exists it uses safe templates."""

import json
import math
from datetime import date, timedelta

import dagster as dg
import polars as pl

from orchestration.defs.scoring import GENERATOR_NAME, RANKER_NAME
from orchestration.partitions import daily_partitions
from orchestration.resources import PromoHome
from orchestration.warehouse import columns_of


class GeneratorTraining(dg.Config):
    """Defaults train on a 2-core CPU in about a minute (grammar corpus only); on a GPU raise max_steps and
    enable AdvertiseGen."""

    max_steps: int = 300
    n_grammar: int = 20_000
    batch_size: int = 32
    use_advertisegen: bool = False
    eval_messages: int = 500
    seed: int = 0


@dg.asset(
    group_name="training",
    pool="gpu",
    kinds={"pytorch"},
    description="Trains the promo-copy generator (slot-based Transformer, own BPE tokenizer), checks "
    "hallucinated facts and compliance on random requests, publishes it and promotes it when it keeps every "
    "rule (0 hallucinations, 100 % compliance after fallback) without a worse held-out perplexity.",
)
def copy_generator(context: dg.AssetExecutionContext, promo: PromoHome, config: GeneratorTraining) -> dg.MaterializeResult:
    from ml.generator.evaluate import message_quality
    from ml.generator.generate import CopyGenerator
    from ml.generator.train import CHECKPOINT_FILE, TrainConfig, train_generator
    from ml.registry import Registry

    run_dir = promo.paths.artifacts / "runs" / context.run_id / "generator"
    cfg = TrainConfig(
        max_steps=config.max_steps, n_grammar=config.n_grammar, batch_size=config.batch_size,
        use_advertisegen=config.use_advertisegen, seed=config.seed, progress=False,
        eval_every=max(config.max_steps // 2, 1), checkpoint_every=max(config.max_steps // 2, 1),
    )
    out = train_generator(cfg, run_dir)
    (out / CHECKPOINT_FILE).unlink(missing_ok=True)  # the registry keeps what serving needs
    generator = CopyGenerator.load(out)
    quality = message_quality(generator, config.eval_messages, seed=config.seed)
    trained = {k: v for k, v in generator.metrics.items() if isinstance(v, int | float)}
    metrics = {**trained, **{k: v for k, v in quality.items() if isinstance(v, int | float)}}
    registry = Registry(promo.paths.artifacts)
    version = registry.publish(GENERATOR_NAME, out, config=cfg.to_dict(), metrics=metrics)

    keeps_rules = quality["hallucinated_messages"] == 0 and quality["compliance_pass_rate"] == 1.0
    champion = registry.champion_version(GENERATOR_NAME)
    perplexity = _perplexity(metrics)
    if not keeps_rules:
        reason = (f"broke a rule: {quality['hallucinated_messages']} hallucinated messages, compliance "
                  f"{quality['compliance_pass_rate']:.2%}")
        registry.keep_champion(GENERATOR_NAME, version.version, reason=reason, metrics=metrics)
    elif champion is None:
        reason = "first generator that keeps every rule"
        registry.promote(GENERATOR_NAME, version.version, reason=reason, metrics=metrics)
    else:
        old = _perplexity(registry.get(GENERATOR_NAME, champion).metrics)
        if perplexity <= old:
            reason = f"keeps every rule; held-out perplexity {perplexity:.2f} <= champion's {old:.2f}"
            registry.promote(GENERATOR_NAME, version.version, reason=reason, metrics=metrics)
        else:
            reason = f"held-out perplexity {perplexity:.2f} > champion's {old:.2f}: champion kept"
            registry.keep_champion(GENERATOR_NAME, version.version, reason=reason, metrics=metrics)
    context.log.info(f"copy generator {version.version}: {reason}")
    return dg.MaterializeResult(
        metadata={
            "version": version.version,
            "decision": reason,
            "champion": registry.champion_version(GENERATOR_NAME) or "",
            "device": str(generator.device),
            "held_out_perplexity": perplexity,
            "hallucinated_messages": quality["hallucinated_messages"],
            "compliance_pass_rate": quality["compliance_pass_rate"],
            "fallback_share": quality["fallback_share"],
            "slot_accuracy": quality["slot_accuracy"],
            "distinct_2": quality["distinct_2"],
            "quality": dg.MetadataValue.json(json.loads(json.dumps(quality, default=str))),
        }
    )


def _perplexity(metrics: dict) -> float:
    """The grammar hold-out perplexity the trainer records (inf when absent)."""
    for key in ("grammar_valid_perplexity", "valid_perplexity", "perplexity"):
        if isinstance(metrics.get(key), int | float):
            return float(metrics[key])
    loss = metrics.get("grammar_valid_loss", metrics.get("valid_loss"))
    return math.exp(loss) if isinstance(loss, int | float) else math.inf


class RankerTraining(dg.Config):
    """Which feedback the click head learns from and how long it trains (a few seconds on a CPU)."""

    window_days: int = 28
    min_rows: int = 300
    min_opens: int = 30
    epochs: int = 300
    seed: int = 0


FEEDBACK_SQL = """
    select m.decision_id, m.decision_date, m.prompt, m.template, m.message, o.label_open as opened,
           o.label_click as clicked
    from delivery.messages m
    join marts.fct_delivery_outcomes o using (decision_id)
    where m.decision_date < DATE '{day}' and m.decision_date >= DATE '{start}'
      and o.window_closed and not o.is_holdout and m.message_source like 'generator:%'
      and m.prompt is not null and m.template is not null
    order by m.decision_id
"""


def logged_feedback(promo: PromoHome, day: date, window_days: int) -> pl.DataFrame:
    """Generated messages sent in the `window_days` before `day` with their open/click labels (labelled
    windows only, holdout excluded); empty before any message or feedback exists."""
    with promo.connect() as con:
        tables = {f"{s}.{t}" for s, t in con.sql("select table_schema, table_name from information_schema.tables").fetchall()}
        if not {"delivery.messages", "marts.fct_delivery_outcomes"} <= tables:
            return pl.DataFrame()
        columns = columns_of(con, "delivery.messages")
        if "prompt" not in columns:  # messages written before variants were logged
            return pl.DataFrame()
        return con.sql(FEEDBACK_SQL.format(day=day, start=day - timedelta(days=window_days))).pl()


@dg.asset(
    deps=[dg.AssetKey(["marts", "fct_delivery_outcomes"])],
    partitions_def=daily_partitions(),
    group_name="scoring",
    pool="duckdb",
    kinds={"pytorch", "duckdb"},
    description="Click head over the generator's message variants (control tokens, tone, length, slots, "
    "words), fitted each day on earlier messages' opens and clicks; promoted when it beats the base rates "
    "on held-out messages. promo_messages ranks its K candidates with the champion, else by likelihood.",
)
def copy_ranker(context: dg.AssetExecutionContext, promo: PromoHome, config: RankerTraining) -> dg.MaterializeResult:
    from ml.generator.ranker import ClickRanker, RankerConfig
    from ml.registry import Registry

    day = date.fromisoformat(context.partition_key)
    feedback = logged_feedback(promo, day, config.window_days)
    cfg = RankerConfig(epochs=config.epochs, min_rows=config.min_rows, min_opens=config.min_opens, seed=config.seed)
    ranker, metrics = ClickRanker.fit(feedback, cfg) if feedback.height else (None, {"rows": 0, "reason": "no logged feedback yet"})
    registry = Registry(promo.paths.artifacts)
    if ranker is None:
        reason = f"{metrics['reason']}: candidates stay ranked by likelihood"
        if registry.champion_version(RANKER_NAME):
            reason = f"{metrics['reason']}: champion ranker kept"
        context.log.info(f"copy ranker for {day}: {reason}")
        return dg.MaterializeResult(metadata={"decision": reason, "rows": metrics.get("rows", 0),
                                              "champion": registry.champion_version(RANKER_NAME) or ""})
    out = promo.paths.artifacts / "runs" / context.run_id / "ranker"
    ranker.save(out)
    window = {"from": str(feedback["decision_date"].min()), "to": str(feedback["decision_date"].max())}
    version = registry.publish(RANKER_NAME, out, config=cfg.to_dict(), metrics=metrics, data_window=window)
    if metrics["valid_gain"] > 0:
        reason = (f"held-out funnel log-loss {metrics['valid_funnel_nll']:.4f} < base rates' "
                  f"{metrics['base_funnel_nll']:.4f} on {metrics['valid_rows']} messages")
        registry.promote(RANKER_NAME, version.version, reason=reason, metrics=metrics)
    else:
        reason = (f"learned nothing: held-out funnel log-loss {metrics['valid_funnel_nll']:.4f} >= base rates' "
                  f"{metrics['base_funnel_nll']:.4f}; champion kept")
        registry.keep_champion(RANKER_NAME, version.version, reason=reason, metrics=metrics)
    context.log.info(f"copy ranker {version.version} for {day}: {reason}")
    return dg.MaterializeResult(metadata={
        "version": version.version, "decision": reason, "champion": registry.champion_version(RANKER_NAME) or "",
        **{k: v for k, v in metrics.items() if isinstance(v, int | float)},
    })


copywriting_assets = [copy_generator, copy_ranker]
