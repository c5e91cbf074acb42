"""The copy generator as a Dagster asset: train (CUDA with bf16 when present, else CPU), evaluate the
rules that must never break (facts, compliance) and the quality figures, publish to the registry, and
promote when it is the first or keeps every rule without a worse held-out perplexity.

`promo_messages` (orchestration/defs/scoring.py) writes with the champion; before one exists it uses safe
templates. Reads no warehouse table: its data are the grammar corpus (generated) and, where present,
AdvertiseGen from $PROMO_REAL_DATA_DIR."""

import json
import math

import dagster as dg

from orchestration.defs.scoring import GENERATOR_NAME
from orchestration.resources import PromoHome


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


copywriting_assets = [copy_generator]
