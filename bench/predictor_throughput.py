"""Predictor throughput: the real data pipeline beside the same model fed tensors already in memory.

Pipeline: a polars frame with the contract's columns (synthetic, 200k rows) -> `FeatureEncoder.transform`
-> device -> batches gathered in the sampler's order (exactly how `train_predictor` feeds the model).
In-memory: random tensors of the same shapes, pre-batched on the device. Same model, optimizer, batch size.
One epoch's time is the encoding (paid once per run) plus the mean step time × steps per epoch, with the
step time measured over `--steps` steps after warm-up; ratio = pipeline time / in-memory time (target
<= 1.15). Inference is timed the same way (encode + forward over the frame vs forward over tensors).

    .venv/bin/python -m bench.predictor_throughput [--rows 200000] [--device cuda] [--steps 20]
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from bench.common import write_result
from ml.device import autocast_dtype, pick_device
from ml.predictor.features import EncodedFrame, FeatureEncoder, contract_spec
from ml.predictor.model import EffectPredictor, ModelConfig, effect_loss
from ml.predictor.synthetic import synthetic_examples


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def fake_frame(like: EncodedFrame, encoder: FeatureEncoder, n: int, device: torch.device) -> EncodedFrame:
    """Random tensors with the shapes, dtypes and value ranges of an encoded frame, made on the device."""
    cards = encoder.cardinalities()
    spec = encoder.spec
    g = torch.Generator(device=device).manual_seed(0)
    out: dict[str, torch.Tensor] = {}
    for key, ref in like.tensors.items():
        shape = (n, *ref.shape[1:])
        if key in ("categorical", "action_categorical"):
            cols = spec.categorical if key == "categorical" else spec.action_categorical
            highs = torch.tensor([cards[c] for c in cols], device=device)
            out[key] = (torch.rand(shape, generator=g, device=device) * highs).long()
        elif key in ("seq_product", "target_product"):
            out[key] = torch.randint(0, cards["product"], shape, generator=g, device=device)
        elif key in ("seq_category", "target_category"):
            out[key] = torch.randint(0, cards["category"], shape, generator=g, device=device)
        elif key == "seq_event":
            out[key] = torch.randint(0, cards["event_type"], shape, generator=g, device=device)
        elif key == "seq_age":
            out[key] = torch.randint(0, spec.sequence.age_buckets, shape, generator=g, device=device)
        elif key == "seq_mask":
            out[key] = torch.rand(shape, generator=g, device=device) < 0.7
        elif key in ("treated", "click", "convert"):
            out[key] = (torch.rand(shape, generator=g, device=device) < 0.5).float()
        elif key == "weight":
            out[key] = torch.ones(shape, device=device)
        else:
            out[key] = torch.randn(shape, generator=g, device=device)
    return EncodedFrame(out)


def time_training(model, optimizer, batches, device, warmup: int) -> float:
    """Mean seconds per optimizer step over `batches` (callables returning a batch), after warm-up steps."""
    dtype = autocast_dtype(device)
    model.train()

    def step(batch):
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = effect_loss(model(batch), batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for get in batches[:warmup]:
        step(get())
    sync(device)
    started = time.perf_counter()
    for get in batches[warmup:]:
        step(get())
    sync(device)
    return (time.perf_counter() - started) / max(len(batches) - warmup, 1)


@torch.no_grad()
def time_inference(model, batches, device) -> float:
    dtype = autocast_dtype(device)
    model.eval()
    with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        model(batches[0]())
        sync(device)
        started = time.perf_counter()
        for get in batches:
            torch.sigmoid(model(get())["convert_send"])
        sync(device)
    return (time.perf_counter() - started) / len(batches)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument("--batch-size", type=int, default=4096)
    p.add_argument("--steps", type=int, default=None, help="timed steps (default: 8 on CPU, 200 on CUDA)")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    device = pick_device(args.device)
    steps = args.steps or (200 if device.type == "cuda" else 8)
    warmup = 3 if device.type == "cpu" else 20
    torch.manual_seed(0)

    frame = synthetic_examples(n_rows=args.rows, n_users=max(args.rows // 10, 100), n_products=max(args.rows // 100, 50), seed=0)
    spec = contract_spec()
    encoder = FeatureEncoder.fit(frame, spec)
    t0 = time.perf_counter()
    data = encoder.transform(frame, with_labels=True).to(device)
    sync(device)
    encode_s = time.perf_counter() - t0
    n_batches = -(-len(data) // args.batch_size)
    print(f"{args.rows} rows encoded and moved to {device} in {encode_s:.2f}s; {n_batches} batches of {args.batch_size} per epoch")

    cfg = ModelConfig()
    results = {}
    for feed in ("pipeline", "in_memory"):
        torch.manual_seed(0)
        model = EffectPredictor(cfg, encoder).to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=device.type == "cuda")
        total = warmup + steps
        if feed == "pipeline":
            order = torch.randperm(len(data), device=device)
            idx = [order[(i % n_batches) * args.batch_size : (i % n_batches + 1) * args.batch_size] for i in range(total)]
            batches = [lambda ix=ix: data.take(ix) for ix in idx]
        else:
            fake = fake_frame(data, encoder, args.batch_size, device).tensors
            batches = [lambda fake=fake: fake] * total
        step_s = time_training(model, optimizer, batches, device, warmup)
        infer_s = time_inference(model, batches[: min(total, 50)], device)
        epoch_s = step_s * n_batches + (encode_s if feed == "pipeline" else 0.0)
        infer_epoch_s = infer_s * n_batches + (encode_s if feed == "pipeline" else 0.0)
        results[feed] = {
            "train_samples_per_s": len(data) / epoch_s,
            "train_step_s": step_s,
            "infer_samples_per_s": len(data) / infer_epoch_s,
        }
        print(f"{feed:>9}: train {results[feed]['train_samples_per_s']:,.0f} samples/s (step {step_s * 1e3:.1f} ms), "
              f"inference {results[feed]['infer_samples_per_s']:,.0f} samples/s")

    ratio = results["in_memory"]["train_samples_per_s"] / results["pipeline"]["train_samples_per_s"]
    infer_ratio = results["in_memory"]["infer_samples_per_s"] / results["pipeline"]["infer_samples_per_s"]
    print(f"pipeline time / in-memory time: training {ratio:.3f}x, inference {infer_ratio:.3f}x (target <= 1.15x)")
    name = "predictor_pipeline_overhead" + ("" if device.type == "cpu" else f"_{device.type}")
    write_result(
        name,
        ratio,
        "x (pipeline epoch time / in-memory epoch time, training)",
        results["in_memory"]["train_samples_per_s"],
        ratio,
        "<= 1.15" + (" and >= 1M training samples/s" if device.type == "cuda" else ""),
        ratio <= 1.15 and (device.type != "cuda" or results["pipeline"]["train_samples_per_s"] >= 1e6),
        extra={"device": str(device), "rows": args.rows, "batch_size": args.batch_size, "timed_steps": steps,
               "encode_s": encode_s, "inference_ratio": infer_ratio, "model": cfg.to_dict(), **results},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
