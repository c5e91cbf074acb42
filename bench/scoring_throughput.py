"""Scoring throughput: the champion effect predictor on CPU beside a pure-NumPy dot-product scorer of the
same features (the limit: reading the feature columns and one matrix product per head), in the same run.

The frame is shaped like a day of `delivery.scores` input: user x product contexts (point-in-time features
and the behaviour sequence) expanded over 3 channels x 2 send hours, and scored the way `promo_scores`
does it (`Predictor.score`: encoding, the sequence Transformer once per context, the heads per action).
Figure: user x candidate action pairs per second. Target: a 1,000,000-user day (about 24M actions, 8
candidates x 3 channels on average) scored within 10 minutes of the 20-minute daily cycle (issue #7), i.e.
>= 40,000 pairs/s.

    .venv/bin/python -m bench.scoring_throughput [--contexts 40000] [--repeats 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch

from bench.common import write_result
from ml.predictor.features import with_derived_columns
from ml.predictor.predict import Predictor, load_predictor
from ml.predictor.synthetic import synthetic_examples
from ml.predictor.train import TrainConfig, train_predictor

TARGET_PAIRS_PER_SECOND = 40_000
CHANNEL_HOURS = pl.DataFrame({"channel": ["push", "sms", "email"] * 2, "send_hour": [12] * 3 + [19] * 3})


def champion(workdir: Path) -> Predictor:
    """A predictor of the default size, trained briefly on synthetic examples (its speed, not its skill)."""
    trained = train_predictor(synthetic_examples(n_rows=20_000, seed=0), TrainConfig(epochs=1, progress=False), workdir)
    return load_predictor(trained.out_dir, device="cpu")


def day_of_actions(n_contexts: int, seed: int = 1) -> pl.DataFrame:
    contexts = synthetic_examples(n_rows=n_contexts, n_users=n_contexts // 4, n_products=5_000, seed=seed)
    # One row per (user, product, as-of day): duplicates of a context would only flatter the cache.
    contexts = contexts.unique(["user_id", "product_id", "as_of_date"], keep="first", maintain_order=True)
    return (
        contexts.drop("channel", "send_hour", "send_at")
        .join(CHANNEL_HOURS, how="cross")
        .with_columns((pl.col("as_of_date").cast(pl.Datetime("us")) + pl.duration(hours="send_hour")).alias("send_at"))
    )


def numpy_reference(frame: pl.DataFrame, predictor: Predictor) -> np.ndarray:
    """Logistic scores from one dot product per head over the same numeric features and one-hot-free
    categorical codes: the least any scorer of these columns must do (read them, multiply, squash)."""
    spec = predictor.spec
    numeric = [*spec.numeric, *spec.action_numeric]
    categorical = [*spec.categorical, *spec.action_categorical]
    x = with_derived_columns(frame, spec).select(
        *(pl.col(c).cast(pl.Float32).fill_null(0.0) for c in numeric),
        *(pl.col(c).cast(pl.Utf8).hash().mod(1024).cast(pl.Float32) for c in categorical),
    ).to_numpy()
    weights = np.random.default_rng(0).standard_normal((x.shape[1], 3)).astype(np.float32) / x.shape[1]
    return 0.5 * (1.0 + np.tanh(0.5 * (x @ weights)))  # (N, 3) sigmoid, overflow-free


def best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contexts", type=int, default=40_000, help="user x product contexts (x 6 actions each)")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        predictor = champion(Path(tmp) / "model")
        frame = day_of_actions(args.contexts)
        pairs = frame.height
        predictor.score(frame.head(2_000))  # warm-up: first-call allocations and kernel selection
        model_s = best_of(args.repeats, lambda: predictor.score(frame))
        numpy_s = best_of(args.repeats, lambda: numpy_reference(frame, predictor))

    model_rate, numpy_rate = pairs / model_s, pairs / numpy_s
    ratio = numpy_rate / model_rate
    n_params = sum(p.numel() for p in predictor.model.parameters())
    print(f"{pairs:,} user x candidate pairs ({frame['user_id'].n_unique():,} users, "
          f"{pairs // len(CHANNEL_HOURS):,} contexts), {torch.get_num_threads()} CPU threads")
    print(f"  effect predictor ({n_params:,} parameters): {model_s:6.2f} s  {model_rate:12,.0f} pairs/s")
    print(f"  NumPy dot product (the limit):       {numpy_s:6.2f} s  {numpy_rate:12,.0f} pairs/s")
    print(f"  the limit is {ratio:.1f}x faster; target >= {TARGET_PAIRS_PER_SECOND:,} pairs/s for the predictor: "
          f"{'met' if model_rate >= TARGET_PAIRS_PER_SECOND else 'MISSED'}")
    write_result(
        "scoring_throughput_pairs_per_second", round(model_rate), "pairs/s", round(numpy_rate), round(ratio, 2),
        f">= {TARGET_PAIRS_PER_SECOND} pairs/s (1M users' ~24M actions in <= 10 min)",
        model_rate >= TARGET_PAIRS_PER_SECOND,
        extra={"pairs": pairs, "model_seconds": round(model_s, 3), "numpy_seconds": round(numpy_s, 3),
               "parameters": n_params, "threads": torch.get_num_threads()},
    )


if __name__ == "__main__":
    main()
