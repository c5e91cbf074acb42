"""Predictor throughput: the real data pipeline beside the same model fed tensors already in memory.

Pipeline: a polars frame with the contract's columns (synthetic, 200k rows) -> `FeatureEncoder.transform`
-> `PackedFrame` (one buffer per dtype, on the device when it fits) -> the epoch's `DistributedSampler` order
moved to the device once -> one gather per buffer per batch (exactly how `train_predictor` feeds the model).
In-memory: random tensors of the same shapes, pre-batched on the device. Same model, optimizer, batch size.
The step time is measured over `--steps` steps after warm-up. Three ratios (pipeline time / in-memory time):
- per step: the batch assembly alone;
- one epoch (the headline, target <= 1.15): the encoding, which a run pays once, charged to a single epoch;
- a run of `--epochs` epochs (default 8, the `effect_predictor` asset's): the encoding paid once.
Inference is timed the same way (encode + forward over the frame vs forward over tensors).

    .venv/bin/python -m bench.predictor_throughput [--rows 200000] [--device cuda] [--steps 20] [--epochs 8]
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
from torch.utils.data import DistributedSampler

from bench.common import write_result
from ml.device import autocast_dtype, pick_device
from ml.predictor.features import EncodedFrame, FeatureEncoder, contract_spec
from ml.predictor.loader import PackedFrame, epoch_order
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
        elif key == "action_cross":
            highs = torch.tensor(encoder.cross_cardinalities(), device=device)
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
    p.add_argument("--epochs", type=int, default=8, help="epochs of the run the encoding is amortized over")
    args = p.parse_args(argv)
    device = pick_device(args.device)
    steps = args.steps or (200 if device.type == "cuda" else 8)
    warmup = 3 if device.type == "cpu" else 20
    torch.manual_seed(0)

    frame = synthetic_examples(n_rows=args.rows, n_users=max(args.rows // 10, 100), n_products=max(args.rows // 100, 50), seed=0)
    spec = contract_spec()
    encoder = FeatureEncoder.fit(frame, spec)
    t0 = time.perf_counter()
    encoded = encoder.transform(frame, with_labels=True)
    sync(device)
    transform_s = time.perf_counter() - t0
    data = PackedFrame(encoded, device)
    sync(device)
    encode_s = time.perf_counter() - t0
    sampler = DistributedSampler(data, num_replicas=1, rank=0, shuffle=True, seed=0)
    t0 = time.perf_counter()
    order = epoch_order(sampler, data.index_device)
    sync(device)
    order_s = time.perf_counter() - t0
    n_batches = -(-len(data) // args.batch_size)
    print(f"{args.rows} rows encoded in {transform_s:.2f}s, packed ({data.nbytes() / 2**20:.0f} MiB, "
          f"{'resident on' if data.resident else 'pinned for'} {device}) in {encode_s - transform_s:.2f}s; "
          f"epoch order {order_s * 1e3:.0f} ms; {n_batches} batches of {args.batch_size} per epoch")

    cfg = ModelConfig()
    results = {}
    for feed in ("pipeline", "in_memory"):
        torch.manual_seed(0)
        model = EffectPredictor(cfg, encoder).to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=device.type == "cuda")
        total = warmup + steps
        if feed == "pipeline":
            idx = [order[(i % n_batches) * args.batch_size : (i % n_batches + 1) * args.batch_size] for i in range(total)]
            batches = [lambda ix=ix: data.batch(ix) for ix in idx]
        else:
            fake = fake_frame(EncodedFrame(data.batch(order[: args.batch_size])), encoder, args.batch_size, device).tensors
            batches = [lambda fake=fake: fake] * total
        step_s = time_training(model, optimizer, batches, device, warmup)
        infer_s = time_inference(model, batches[: min(total, 50)], device)
        once, per_epoch = (encode_s, order_s) if feed == "pipeline" else (0.0, 0.0)
        epoch_s = once + per_epoch + step_s * n_batches
        run_s = once + args.epochs * (per_epoch + step_s * n_batches)
        infer_epoch_s = infer_s * n_batches + once
        results[feed] = {
            "train_samples_per_s": len(data) / epoch_s,
            "train_samples_per_s_run": args.epochs * len(data) / run_s,
            "train_step_s": step_s,
            "infer_samples_per_s": len(data) / infer_epoch_s,
        }
        print(f"{feed:>9}: train {results[feed]['train_samples_per_s']:,.0f} samples/s over one epoch, "
              f"{results[feed]['train_samples_per_s_run']:,.0f} over a {args.epochs}-epoch run (step {step_s * 1e3:.1f} ms), "
              f"inference {results[feed]['infer_samples_per_s']:,.0f} samples/s")

    pipe, mem = results["pipeline"], results["in_memory"]
    ratio = mem["train_samples_per_s"] / pipe["train_samples_per_s"]
    step_ratio = pipe["train_step_s"] / mem["train_step_s"]
    run_ratio = mem["train_samples_per_s_run"] / pipe["train_samples_per_s_run"]
    infer_ratio = mem["infer_samples_per_s"] / pipe["infer_samples_per_s"]
    print(f"pipeline time / in-memory time: training {ratio:.3f}x over one epoch (target <= 1.15x), "
          f"{run_ratio:.3f}x over a {args.epochs}-epoch run, {step_ratio:.3f}x per step; inference {infer_ratio:.3f}x")
    name = "predictor_pipeline_overhead" + ("" if device.type == "cpu" else f"_{device.type}")
    write_result(
        name,
        ratio,
        "x (pipeline epoch time / in-memory epoch time, training, encoding charged to one epoch)",
        mem["train_samples_per_s"],
        ratio,
        "<= 1.15" + (" and >= 1M training samples/s" if device.type == "cuda" else ""),
        ratio <= 1.15 and (device.type != "cuda" or pipe["train_samples_per_s"] >= 1e6),
        extra={"device": str(device), "rows": args.rows, "batch_size": args.batch_size, "timed_steps": steps,
               "transform_s": transform_s, "encode_s": encode_s, "epoch_order_s": order_s,
               "resident": data.resident, "step_ratio": step_ratio, "run_epochs": args.epochs,
               "run_ratio": run_ratio, "inference_ratio": infer_ratio, "model": cfg.to_dict(), **results},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
