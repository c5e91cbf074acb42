"""DDP training throughput of the effect predictor: `torchrun` with 1 and N processes on the same data.

Each run launches `torchrun --standalone --nproc_per_node=P` on this module's worker, which calls the real
`train_predictor` (DistributedDataParallel, DistributedSampler shards; gloo on CPU, NCCL on CUDA) on one
synthetic frame written once. Throughput is read from the training loop's own per-epoch figures (the step
loop only: encoding, validation and checkpoints are outside it), on the last epoch so warm-up is excluded.
Reported: samples/s per process and in total (best of `--repeats` alternating runs; the load average at each
start is kept, since other work on the machine slows the lock-step DDP run most); reference = the 1-process
run in the same invocation;
ratio = total with N processes / total with 1 (ideal: N). Each process gets `--threads` intra-op threads, so
on CPU P processes use P x threads cores.

    .venv/bin/python -m bench.ddp_throughput [--procs 2] [--rows 24000] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import write_result

REPO_ROOT = Path(__file__).resolve().parent.parent


def worker(args: argparse.Namespace) -> int:
    """One torchrun rank: train on the shared frame, write this rank's per-epoch history."""
    import polars as pl
    import torch

    from ml.predictor.model import ModelConfig
    from ml.predictor.train import TrainConfig, train_predictor

    torch.set_num_threads(args.threads)
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    cfg = TrainConfig(
        model=ModelConfig(), epochs=args.epochs, batch_size=args.batch_size, patience=args.epochs + 1,
        device=args.device, checkpoint_every=0, resume=False, progress=False, seed=0,
    )
    result = train_predictor(pl.read_parquet(args.data), cfg, Path(args.out) / "model")
    # `samples_per_s` in the history is this rank's samples x world / this rank's loop time.
    per_process = [h["samples_per_s"] / world for h in result.history]
    record = {"rank": rank, "world": world, "per_process_samples_per_s": per_process, "steps": result.steps}
    (Path(args.out) / f"rank{rank}.json").write_text(json.dumps(record))
    return 0


def launch(procs: int, data: Path, out: Path, args: argparse.Namespace) -> dict[str, float]:
    """Run torchrun with `procs` processes; return per-process and total samples/s of the last epoch."""
    out.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}",
        "-m", "bench.ddp_throughput", "--worker", "--data", str(data), "--out", str(out),
        "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--threads", str(args.threads),
        "--device", args.device,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": str(REPO_ROOT)}
    subprocess.run(cmd, cwd=REPO_ROOT, env=env, check=True)
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in range(procs)]
    last = [r["per_process_samples_per_s"][-1] for r in ranks]
    return {"processes": procs, "per_process": sum(last) / procs, "slowest_process": min(last),
            "total": sum(last), "steps": ranks[0]["steps"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--procs", type=int, default=2, help="processes of the scaled run (the reference is 1)")
    p.add_argument("--rows", type=int, default=24_000)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--epochs", type=int, default=2, help="the last one is measured")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads per process")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=3, help="alternate 1 and N processes this often; keep the best of each")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return worker(args)
    if args.procs < 2:
        p.error("--procs must be at least 2 (1 process is the reference)")
    # train_predictor shrinks the batch on small shards (>= 16 steps an epoch); the runs must share one size.
    if int(args.rows * 0.85) // args.procs // 16 < args.batch_size:
        p.error(f"--rows {args.rows} is too few for --batch-size {args.batch_size} on {args.procs} processes: "
                f"need at least {args.batch_size * 16 * args.procs / 0.85:,.0f}")

    from ml.predictor.synthetic import synthetic_examples

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "frame.parquet"
        frame = synthetic_examples(
            n_rows=args.rows, n_users=max(args.rows // 10, 100), n_products=max(args.rows // 100, 50), seed=args.seed
        )
        frame.write_parquet(data)
        # Alternating and keeping each one's best damps other load on a shared machine (logged as loadavg).
        trials: dict[int, list[dict[str, float]]] = {1: [], args.procs: []}
        for rep in range(args.repeats):
            for n in (1, args.procs):
                load = os.getloadavg()[0]
                trials[n].append({**launch(n, data, Path(tmp) / f"r{rep}p{n}", args), "loadavg_1min": load})
                print(f"  run {rep + 1}: {n} process(es) {trials[n][-1]['total']:,.0f} samples/s (load {load:.1f})", flush=True)

    one, many = (max(trials[n], key=lambda r: r["total"]) for n in (1, args.procs))
    runs = [one, many]
    ratio = many["total"] / one["total"]
    efficiency = ratio / args.procs
    backend = "nccl" if args.device == "cuda" else "gloo"
    for r in runs:
        print(f"{r['processes']} process(es), {backend}: {r['per_process']:,.0f} samples/s per process, "
              f"{r['total']:,.0f} in total ({r['steps']} steps per process)")
    print(f"{args.procs} processes / 1: {ratio:.2f}x in total ({efficiency:.0%} scaling efficiency; target >= 1.5x)")
    write_result(
        "ddp_throughput", round(many["total"], 1), f"training samples/s in total, {args.procs} DDP processes ({backend})",
        round(one["total"], 1), round(ratio, 3), ">= 1.5x the 1-process total", ratio >= 1.5,
        extra={
            "device": args.device, "backend": backend, "rows": args.rows, "batch_size": args.batch_size,
            "epochs": args.epochs, "threads_per_process": args.threads, "cpu_count": os.cpu_count(),
            "one_process": one, "n_processes": many, "scaling_efficiency": round(efficiency, 3),
            "trials": {str(n): [round(t["total"], 1) for t in ts] for n, ts in trials.items()},
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
