"""Copy generator benchmark: messages per second with the KV cache beside without it (CPU by default,
`--device cuda` on a GPU machine), and the measurement run (hallucinated facts and compliance after
fallback in 10,000 rendered messages).

    python -m bench.generator --model DIR [--messages 10000] [--device cpu|cuda]

DIR is a model directory from `python -m ml.generator.train --out DIR`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from bench.common import write_result
from ml.device import pick_device
from ml.generator.evaluate import evaluate_generator, random_requests
from ml.generator.generate import CopyGenerator


def messages_per_second(gen: CopyGenerator, batch: int, use_cache: bool, repeats: int) -> float:
    """Full pipeline (sample, render, verify, check) for `batch` requests, one candidate each; median of repeats."""
    requests = random_requests(batch, seed=123)
    gen.generate(requests[:4], k=1, seed=0, use_cache=use_cache)  # warm-up
    times = []
    for r in range(repeats):
        start = time.perf_counter()
        gen.generate(requests, k=1, seed=r, use_cache=use_cache)
        times.append(time.perf_counter() - start)
    return batch / statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.generator", description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="generator model directory")
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda; the figure's file says which")
    parser.add_argument("--adgen-limit", type=int, default=None, help="score only the first N AdvertiseGen validation records")
    args = parser.parse_args(argv)
    if not Path(args.model).is_dir():
        parser.error(f"--model {args.model}: no such directory (train one with python -m ml.generator.train --out DIR)")

    device = pick_device(args.device)
    gen = CopyGenerator.load(args.model, device=device)
    with torch.inference_mode():
        cached = messages_per_second(gen, args.batch, True, args.repeats)
        uncached = messages_per_second(gen, args.batch, False, args.repeats)
    speedup = cached / uncached
    print(f"{device.type.upper()}, batch {args.batch}: {cached:.1f} msg/s with KV cache, {uncached:.1f} msg/s without: {speedup:.2f}x")
    suffix = "" if device.type == "cpu" else f"_{device.type}"
    write_result(f"generator_kv_cache_speedup{suffix}", round(speedup, 3), "x", round(uncached, 2), round(speedup, 3), "> 1 (cache faster)",
                 speedup > 1.0, extra={"msgs_per_s_cache": round(cached, 2), "msgs_per_s_no_cache": round(uncached, 2),
                                       "batch": args.batch, "torch_threads": torch.get_num_threads()})

    report = evaluate_generator(args.model, args.messages, adgen_limit=args.adgen_limit)
    q = report["messages"]
    print(json.dumps(report, indent=2, ensure_ascii=False))
    summary = {
        "perplexity": report["perplexity"], "distinct_1": q["distinct_1"], "distinct_2": q["distinct_2"],
        "slot_accuracy": q["slot_accuracy"], "fallback_share": q["fallback_share"],
        "candidates_with_fact_errors": q["candidates_with_fact_errors"], "candidates": q["candidates"],
        "advertisegen": {k: v for k, v in report["advertisegen"].items() if k != "examples"}, "trained": report["trained"],
    }
    print(f"hallucinated messages: {q['hallucinated_messages']} of {q['messages']} "
          f"(candidates with fact errors before the verifier: {q['candidates_with_fact_errors']} of {q['candidates']})")
    write_result("generator_hallucinations", q["hallucinated_messages"], "messages", q["candidates_with_fact_errors"], None,
                 f"0 in {q['messages']} sent messages", q["hallucinated_messages"] == 0, extra=summary)
    before = 1.0 - q["fallback_share"]  # share whose own best candidate already passed every check
    print(f"compliance after fallback: {q['compliance_pass_rate']:.4f} (without fallback: {before:.4f})")
    write_result("generator_compliance", q["compliance_pass_rate"], "share", round(before, 4), round(q["compliance_pass_rate"] / max(before, 1e-9), 3),
                 "1.0 after fallback", q["compliance_pass_rate"] == 1.0, extra=summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
