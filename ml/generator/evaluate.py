"""Evaluate a generator model directory: `python -m ml.generator.evaluate --model DIR [--data PATH]`.

Reports held-out perplexity (grammar hold-out and AdvertiseGen validation), distinct-1/2 and slot accuracy
of the sampled candidates, hallucinated facts and compliance pass rate of the chosen messages over
`--messages` random requests (must be 0 and 100 %), the share that needed a fallback, and BLEU-4 /
ROUGE-L (character level) of ad copy written from AdvertiseGen attributes: on `--data` when given, else on
the fixed-seed validation part of the 5,000 records the model was trained beside.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from dataclasses import fields
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from ml.generator.config import CATEGORIES, CHANNELS, CONTEXTS, LOCALES, SEGMENTS, TONES, GPTConfig
from ml.generator.corpus import adgen_prompt, advertisegen_path, load_advertisegen
from ml.generator.generate import CopyGenerator
from ml.generator.metrics import corpus_bleu, distinct_n, rouge_l
from ml.generator.request import CopyRequest, OfferInfo, ProductInfo
from ml.generator.slots import missing_required
from ml.generator.train import TrainConfig, build_data, mean_loss
from ml.generator.verifier import Verifier

_BRANDS = ("Aurora", "Lumen", "Nordwind", "Kiwa", "Solace", "Maple&Co", "Tessera", "Calyx", "青禾", "木棉", "云朵", "山川", "拾光", "星河")
_NOUNS = {
    "zh-CN": {"apparel": "连衣裙", "shoes": "运动鞋", "beauty": "精华液", "electronics": "耳机", "home": "马克杯", "food": "绿茶",
              "sports": "瑜伽垫", "baby": "积木", "books": "绘本", "pets": "猫粮", "other": "礼盒"},
    "en-US": {"apparel": "Dress", "shoes": "Sneakers", "beauty": "Serum", "electronics": "Earbuds", "home": "Mug", "food": "Green Tea",
              "sports": "Yoga Mat", "baby": "Building Blocks", "books": "Picture Book", "pets": "Cat Food", "other": "Gift Box"},
}
_ADJ = {"zh-CN": ("经典", "轻盈", "柔软", "都市", "舒适"), "en-US": ("Classic", "Light", "Soft", "Urban", "Cozy")}
_TYPICAL_PRICE = {"apparel": 180, "shoes": 320, "beauty": 150, "electronics": 900, "home": 120, "food": 45, "sports": 260, "baby": 110,
                  "books": 50, "pets": 90, "other": 100}


def random_requests(n: int, seed: int = 0) -> list[CopyRequest]:
    """Realistic requests over the whole control space (prices with cents, dates, both locales)."""
    rng = random.Random(seed)

    def product(i: int, locale: str) -> ProductInfo:
        cat = rng.choice(CATEGORIES)
        brand = rng.choice(_BRANDS) if rng.random() < 0.85 else None
        noun = _NOUNS[locale][cat]
        title = f"{brand + ' ' if brand else ''}{rng.choice(_ADJ[locale])}{'' if locale == 'zh-CN' else ' '}{noun}"
        price = round(_TYPICAL_PRICE[cat] * math.exp(rng.gauss(0, 0.5)), rng.choice((0, 2)))
        return ProductInfo(f"p{i}", title, cat, max(price, 1.0), brand)

    out = []
    for i in range(n):
        locale = rng.choice(LOCALES)
        p = product(i, locale)
        kind = rng.randrange(4)
        if kind == 0:
            offer = OfferInfo(f"o{i}", "percent_off", float(rng.choice((5, 10, 15, 20, 25, 30))))
        elif kind == 1:
            offer = OfferInfo(f"o{i}", "amount_off", float(rng.choice((5, 10, 20, 30, 50))))
        elif kind == 2:
            ms = float(rng.choice((99, 199, 299, 499)))
            offer = OfferInfo(f"o{i}", "spend_threshold", float(round(ms * rng.choice((0.1, 0.15, 0.2)))), min_spend=ms)
        else:
            offer = OfferInfo(f"o{i}", "free_shipping", float(rng.choice((6, 8, 10, 12))))
        offer = OfferInfo(offer.offer_id, offer.offer_type, offer.value, offer.min_spend, date(2026, 1, 1) + timedelta(days=rng.randrange(365)))
        context = rng.choice(CONTEXTS)
        send_at = datetime(2026, 6, 1, rng.randrange(24), rng.randrange(60))
        out.append(CopyRequest(
            f"r{i}", locale, rng.choice(CHANNELS), rng.choice(SEGMENTS), rng.choice(TONES), p, offer, context,
            context_product=product(n + i, locale) if context in ("viewed", "bought") else None,
            favorite_category=rng.choice(CATEGORIES[:-1]) if context == "favorite_category" else None, send_at=send_at,
        ))
    return out


def message_quality(gen: CopyGenerator, n_messages: int, seed: int = 0, k: int = 4, batch: int = 1000) -> dict[str, Any]:
    """Generate for `n_messages` random requests; count facts the records do not hold, rule failures, fallbacks."""
    hallucinated, raw_hallucinated, noncompliant, fallbacks, deferred = 0, 0, 0, 0, 0
    slot_ok, candidates_total = 0, 0
    templates: dict[str, list[str]] = {loc: [] for loc in LOCALES}
    requests = random_requests(n_messages, seed)
    start = time.perf_counter()
    for lo in range(0, n_messages, batch):
        chunk = requests[lo : lo + batch]
        names = [p for r in chunk for p in (r.product, r.context_product) if p is not None]
        verifier = Verifier([p.brand for p in names if p.brand], [p.title for p in names])
        for r, m in zip(chunk, gen.generate(chunk, k=k, seed=seed + lo, verifier=verifier), strict=True):
            # An independent re-check of what would be sent: verifier and content rules on the final text.
            if not verifier.verify(m.text, r).ok:
                hallucinated += 1
            if not gen.compliance.check(m.text, r.channel, r.locale, names=r.own_names()).content_ok or not m.text:
                noncompliant += 1
            fallbacks += m.used_fallback
            deferred += m.send_at is not None and m.send_at != r.send_at
            for c in m.candidates:
                candidates_total += 1
                slot_ok += not missing_required(c.template, r.offer.offer_type)
                raw_hallucinated += any(x.split(":")[0] in ("wrong_money", "wrong_percent", "wrong_zhe", "wrong_date", "unknown_number", "unknown_name", "placeholder")
                                        for x in c.reasons)
                templates[r.locale].append(c.template)
    all_templates = [t for ts in templates.values() for t in ts]
    return {
        "messages": n_messages,
        "hallucinated_messages": hallucinated,
        "compliance_pass_rate": 1.0 - noncompliant / n_messages,
        "fallback_share": fallbacks / n_messages,
        "deferred_for_quiet_hours": deferred,
        "candidates": candidates_total,
        "candidates_with_fact_errors": raw_hallucinated,
        "slot_accuracy": slot_ok / max(candidates_total, 1),
        "distinct_1": distinct_n(all_templates, 1),
        "distinct_2": distinct_n(all_templates, 2),
        "distinct_2_by_locale": {loc: distinct_n(ts, 2) for loc, ts in templates.items()},
        "generation_seconds": round(time.perf_counter() - start, 1),
    }


def adgen_scores(gen: CopyGenerator, pairs: list[tuple[str, str]], seed: int = 0, top_p: float = 0.5, max_new_tokens: int = 160) -> dict[str, Any]:
    """BLEU-4 / ROUGE-L of copy written from each record's attributes against its real copy."""
    limit = gen.model.cfg.block_size
    prompts = [adgen_prompt(c) for c, _ in pairs]
    outputs = gen.sample_templates(prompts, k=1, seed=seed, top_p=top_p, max_new_tokens=min(max_new_tokens, limit - 2))
    hyps = [o[0][0] for o in outputs]
    refs = [s for _, s in pairs]
    return {"records": len(pairs), "bleu4": corpus_bleu(refs, hyps), "rouge_l": rouge_l(refs, hyps), "top_p": top_p,
            "examples": [{"attributes": c, "generated": h} for (c, _), h in zip(pairs[:3], hyps[:3], strict=True)]}


def evaluate_generator(model_dir: Path | str, n_messages: int = 10_000, data_path: Path | str | None = None, seed: int = 0,
                       adgen_limit: int | None = None) -> dict[str, Any]:
    gen = CopyGenerator.load(model_dir)
    train_cfg = {k: v for k, v in gen.train_config.items() if k in {f.name for f in fields(TrainConfig)}}
    train_cfg["model"] = GPTConfig(**train_cfg.get("model", gen.model.cfg.to_dict()))
    cfg = TrainConfig(**train_cfg)
    data = build_data(cfg, tokenizer=gen.tokenizer)
    report: dict[str, Any] = {"model_dir": str(model_dir), "trained": {k: gen.metrics.get(k) for k in ("steps", "train_seconds", "device", "parameters")}}
    report["perplexity"] = {task: math.exp(mean_loss(gen.model, ds, gen.tokenizer.pad_id, gen.device)) for task, ds in data.valid.items()}
    report["messages"] = message_quality(gen, n_messages, seed)
    if data_path is not None:
        pairs = load_advertisegen(data_path)[:adgen_limit]
        report["advertisegen"] = {"source": str(data_path), **adgen_scores(gen, pairs, seed)}
    elif data.adgen_valid_pairs:
        report["advertisegen"] = {"source": f"validation split of {advertisegen_path()}", **adgen_scores(gen, data.adgen_valid_pairs[:adgen_limit], seed)}
    else:
        report["advertisegen"] = {"skipped": "AdvertiseGen not found under $PROMO_REAL_DATA_DIR"}
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml.generator.evaluate", description="Evaluate a copy generator model directory.")
    parser.add_argument("--model", required=True, help="model directory written by ml.generator.train")
    parser.add_argument("--data", default=None, help="AdvertiseGen JSON lines to score BLEU-4 / ROUGE-L on (default: the validation split)")
    parser.add_argument("--messages", type=int, default=10_000, help="random requests to generate for the fact and rule checks")
    parser.add_argument("--adgen-limit", type=int, default=None, help="score only the first N AdvertiseGen records")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="also write the report as JSON here")
    args = parser.parse_args(argv)
    if not Path(args.model).is_dir():
        parser.error(f"--model {args.model}: no such directory")
    if args.data is not None and not Path(args.data).is_file():
        parser.error(f"--data {args.data}: no such file")
    report = evaluate_generator(args.model, args.messages, args.data, args.seed, args.adgen_limit)
    text = json.dumps(report, indent=2, ensure_ascii=False)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
