"""Train the effect predictor: `train_predictor(df, cfg, out_dir)` or `python -m ml.predictor.train`.

Split (no leakage): `time` puts the latest decision dates (`as_of_date`) in validation, so the model is
judged on days after the ones it learned from, as in production; `user` puts a stable hash-chosen set of
users wholly in validation; `auto` (default) is `time` when the frame spans at least two dates, else `user`.

The encoded training set is packed into one buffer per dtype (`ml.predictor.loader.PackedFrame`), moved to
the training device once when it fits (pinned host memory otherwise); a batch is one gather per buffer with
a slice of the epoch's order, which `DistributedSampler` gives (seeded by cfg.seed + epoch) and which is moved
to the device once per epoch. That order is what makes training reproducible and resumable: a checkpoint stores epoch, batch position, model, optimizer, scheduler, every RNG state,
the best metric and the early-stopping counter, so a run resumed after a crash ends with exactly the
weights of an uninterrupted run. With `TrainConfig.refit` (`--refit`; off by default), once validation
has chosen how many epochs to keep, the model is retrained from its start on training + validation rows for that many; each of the two
runs has its own checkpoint, so a crash in either resumes exactly. Without the refit, each head is then
Platt-recalibrated on the validation rows (`TrainConfig.calibrate`, ml/predictor/calibration.py). Multi-GPU: launch with `torchrun --nproc_per_node=N -m ml.predictor.train`
(nccl on CUDA, gloo on CPU); each rank reads the same frame and trains on its sampler shard.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import polars as pl
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler
from tqdm import tqdm

from ml.device import autocast_dtype, pick_device
from ml.predictor.calibration import Calibration, fit_calibration
from ml.predictor.features import EncodedFrame, FeatureEncoder, FeatureSpec, contract_spec, unit_codes
from ml.predictor.loader import PackedFrame, epoch_order
from ml.predictor.model import EffectPredictor, ModelConfig, effect_loss
from ml.predictor.predict import Predictor, load_predictor, save_predictor
from ml.reproducibility import rng_state, seed_everything, set_rng_state

CHECKPOINT_FILE = "checkpoint.pt"


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    epochs: int = 20
    batch_size: int = 4096
    lr: float = 3e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 20
    grad_clip: float = 1.0
    patience: int = 3  # epochs without validation improvement before stopping
    # An epoch replaces the kept model only when its validation loss is lower by more than this many
    # standard errors of the paired per-row difference (`improves_on`); 0 keeps any decrease.
    keep_margin_se: float = 1.0
    # Retrain on training + validation rows for the chosen number of epochs (`train_predictor`). Off by
    # default: on the simulator's closed loop the refitted first model planned worse (README).
    refit: bool = False
    # Platt-recalibrate each head on the validation rows (ml/predictor/calibration.py). Needs rows the
    # network did not learn from, so a refit model stays uncalibrated.
    calibrate: bool = True
    split: str = "auto"  # auto | time | user
    valid_fraction: float = 0.15
    seed: int = 0
    device: str | None = None  # None: CUDA when available (ml.device.pick_device)
    checkpoint_every: int = 100  # steps; a checkpoint is also written at every epoch end
    resume: bool = True  # continue from out_dir/checkpoint.pt when it exists
    min_count: int = 2  # values seen fewer times in training map to "unknown"
    max_weight: float = 20.0  # clip of inverse-propensity weights
    progress: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainResult:
    out_dir: Path
    model: EffectPredictor
    encoder: FeatureEncoder
    best_valid_loss: float
    best_epoch: int
    epochs_run: int
    steps: int
    history: list[dict[str, float]]  # the selection run's epochs
    data_window: dict[str, str | int | bool | None]
    refit_epochs: int | None = None  # epochs of the refit on training + validation rows (None: no refit)
    calibration: Calibration | None = None  # fitted on the validation rows (None: not calibrated)

    def metrics(self) -> dict[str, float]:
        refit = {} if self.refit_epochs is None else {"refit_epochs": self.refit_epochs}
        calibration = self.calibration.summary() if self.calibration is not None else {}
        return {"best_valid_loss": self.best_valid_loss, "best_epoch": self.best_epoch, "steps": self.steps,
                **refit, **calibration}


# ---------------------------------------------------------------------------------------------- splitting
def effective_batch_size(batch_size: int, n_rows: int, min_steps_per_epoch: int = 16) -> int:
    """The configured batch, smaller on small data so an epoch is at least `min_steps_per_epoch` steps
    (a first model trained on one labelled day would otherwise take a handful of steps in total)."""
    return max(64, min(batch_size, n_rows // min_steps_per_epoch))


def base_rates(df: pl.DataFrame, spec: FeatureSpec) -> tuple[float, float, float]:
    """(P(convert | no send), P(convert | send), P(click | send)) in `df`, for the output biases."""
    treated = df[spec.treatment].cast(pl.Boolean)
    convert = df[spec.convert_label].cast(pl.Float64)
    sent, unsent = convert.filter(treated), convert.filter(~treated)
    click = df[spec.click_label].cast(pl.Float64).filter(treated) if spec.click_label else sent

    def rate(values: pl.Series, default: float) -> float:
        return float(values.mean()) if values.len() else default  # type: ignore[arg-type]

    none = rate(unsent, 0.02)
    return none, rate(sent, none), rate(click, 0.05)


def split_examples(df: pl.DataFrame, strategy: str = "auto", valid_fraction: float = 0.15, seed: int = 0) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(train, valid) without leakage: by time (latest dates validate) or by user (disjoint users)."""
    if not 0.0 < valid_fraction < 1.0:
        raise ValueError(f"valid_fraction must be in (0, 1), got {valid_fraction}")
    if strategy == "auto":
        has_dates = "as_of_date" in df.columns and df["as_of_date"].n_unique() >= 2
        strategy = "time" if has_dates else "user"
    if strategy == "time":
        if "as_of_date" not in df.columns:
            raise ValueError("split 'time' needs an as_of_date column")
        per_day = df.group_by("as_of_date").len().sort("as_of_date", descending=True)
        share = per_day["len"].cum_sum() / df.height
        # The latest days whose rows make up about valid_fraction; at least one day, never all of them.
        n_valid_days = max(1, min(int((share < valid_fraction).sum()) + 1, per_day.height - 1))
        if per_day.height < 2:
            raise ValueError("split 'time' needs at least two distinct as_of_date values")
        cut = per_day["as_of_date"][n_valid_days - 1]
        return df.filter(pl.col("as_of_date") < cut), df.filter(pl.col("as_of_date") >= cut)
    if strategy == "user":
        if "user_id" not in df.columns:
            raise ValueError("split 'user' needs a user_id column")
        bucket = pl.col("user_id").cast(pl.Utf8).hash(seed=seed) % 10_000
        in_valid = bucket < int(valid_fraction * 10_000)
        return df.filter(~in_valid), df.filter(in_valid)
    raise ValueError(f"unknown split strategy {strategy!r}; use auto, time or user")


def rows_learned_from(train_df: pl.DataFrame, valid_df: pl.DataFrame, refit: bool) -> pl.DataFrame:
    """The rows a `train_predictor` model learns from: the training split, and the validation rows too when
    it is refitted (`TrainConfig.refit`). Baselines shown beside it learn from the same rows."""
    return pl.concat([train_df, valid_df], how="diagonal_relaxed") if refit else train_df  # matched by name


def data_window(df: pl.DataFrame) -> dict[str, str | int | None]:
    """The rows a model learned from: first and last decision date and the row count."""
    if "as_of_date" in df.columns and df.height:
        return {"first": str(df["as_of_date"].min()), "last": str(df["as_of_date"].max()), "rows": df.height}
    return {"first": None, "last": None, "rows": df.height}


# ---------------------------------------------------------------------------------------------- plumbing


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def check_resumable(ckpt: dict[str, Any], model: torch.nn.Module, cfg: TrainConfig, train_rows: int, path: Path) -> None:
    """A checkpoint resumes only the run that wrote it: same config, same data size, same parameter shapes
    (the vocabularies follow the data). Anything else is another run's file, named with what differs."""
    ignored = {"resume", "progress"}
    theirs = {k: v for k, v in ckpt.get("config", {}).items() if k not in ignored}
    ours = {k: v for k, v in cfg.to_dict().items() if k not in ignored}
    differences = [f"config {k}: {theirs.get(k)!r} there, {ours.get(k)!r} here"
                   for k in sorted(set(theirs) | set(ours)) if theirs.get(k) != ours.get(k)]
    if ckpt.get("train_rows", train_rows) != train_rows:
        differences.append(f"training rows: {ckpt['train_rows']:,} there, {train_rows:,} here")
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    differences += [f"parameter {k}: {tuple(v.shape)} there, {shapes.get(k)} here"
                    for k, v in ckpt["model"].items() if shapes.get(k) != tuple(v.shape)][:3]
    if differences:
        raise ValueError(
            f"{path} is the checkpoint of another training run ({'; '.join(differences)}): delete it to train "
            "from scratch, or train into a new directory"
        )


def _init_distributed(device_pref: str | None) -> tuple[int, int, bool]:
    """(rank, world_size, created): joins torchrun's group when WORLD_SIZE > 1 (nccl on CUDA, else gloo)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), False
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, False
    backend = "nccl" if pick_device(device_pref).type == "cuda" else "gloo"
    dist.init_process_group(backend=backend)
    return dist.get_rank(), dist.get_world_size(), True


def _lr_lambda(warmup: int, total: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


@torch.no_grad()
def validation_row_losses(
    model: torch.nn.Module, data: EncodedFrame | PackedFrame, batch_size: int, device: torch.device
) -> torch.Tensor:
    """(N,) float64, each validation row's share of the conversion heads' loss; they sum to
    `validation_loss`: P(convert | send)'s weighted log-loss averaged over the treated rows plus
    P(convert | no send)'s over the untreated ones (`effect_loss(..., with_click=False)` over the whole set).

    Per row, so that two models can be compared on the same rows with a standard error (`improves_on`)."""
    model.eval()
    packed = data if isinstance(data, PackedFrame) else PackedFrame(data, device)
    dtype = autocast_dtype(device)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    parts, weight_sums = [], torch.zeros(2, dtype=torch.float64, device=device)
    for start in range(0, len(packed), batch_size):
        batch = packed.rows(start, min(start + batch_size, len(packed)))
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            out = model(batch)
        treated, w, y = batch["treated"].double(), batch["weight"].double(), batch["convert"].double()
        send = bce(out["convert_send"].double(), y, reduction="none") * w * treated
        none = bce(out["convert_none"].double(), y, reduction="none") * w * (1.0 - treated)
        parts.append(torch.stack([send, none]))  # (2, B)
        weight_sums += torch.stack([(w * treated).sum(), (w * (1.0 - treated)).sum()])
    model.train()
    if not parts:
        return torch.zeros(0, dtype=torch.float64)
    rows = torch.cat(parts, dim=1) / weight_sums.clamp(min=1e-12)[:, None]  # (2, N)
    return rows.sum(0).cpu()


def validation_loss(model: torch.nn.Module, data: EncodedFrame | PackedFrame, batch_size: int, device: torch.device) -> float:
    """The conversion heads' loss on the validation rows: what early stopping and the kept epoch are judged by.

    The click head trains beside them but is left out here: uplift and expected margin are made of the two
    conversion heads only, and the click loss, the largest of the three, otherwise chose the epoch: on the
    24-day log of `bench.predictor_simulator --loop-days 24` the epoch the three-head sum kept ranked the
    true conversion probabilities at AUC 0.768 with a send and 0.848 without, the one kept now 0.778 and
    0.855 (the T-learner 0.775 and 0.861)."""
    return float(validation_row_losses(model, data, batch_size, device).sum())


def improves_on(candidate: torch.Tensor, best: torch.Tensor, margin_se: float) -> bool:
    """Whether a model's validation loss (`candidate`, per row) is lower than the kept one's (`best`, on the
    same rows) by more than `margin_se` standard errors of the paired difference (0: any decrease).

    Why: at a shop's size a validation set holds a few dozen purchases, and a lower loss by less than its
    noise kept epochs that ranked held-out purchases worse than the starting linear fit (a challenger must
    beat the champion beyond the uncertainty, as the promotion gate asks)."""
    diff = candidate - best  # (N,)
    total = float(diff.sum())
    se = math.sqrt(len(diff)) * float(diff.std()) if len(diff) > 1 else 0.0
    return total < -max(margin_se * se, 1e-5)


# ---------------------------------------------------------------------------------------------- training
SELECTION_DIR = "selection"  # where the selection run keeps its checkpoint when the model is refitted


def train_predictor(
    df: pl.DataFrame,
    cfg: TrainConfig,
    out_dir: Path | str,
    *,
    spec: FeatureSpec | None = None,
    valid_df: pl.DataFrame | None = None,
    step_hook: Callable[[int], None] | None = None,
    init_from: Path | str | None = None,
) -> TrainResult:
    """Train on `df` (split by cfg.split unless `valid_df` is given); write the model to `out_dir`.

    Two runs when `cfg.refit`: the first trains on the training split and chooses by
    validation how many epochs to keep (the start itself, or the best epoch); the second starts afresh on
    training and validation rows together and trains that many epochs, with nothing held out. Why: the
    validation days are the newest, and at a shop's size two days are a fifth of its purchases; a model
    that never learns from them is judged on the next days with a fifth less to go on. The reported
    validation loss and history are the first run's, the only ones measured on rows the model had not seen.

    `init_from`: a saved predictor folder (the champion) to warm-start from: its encoder and weights are
    kept, so retraining on a sliding window refines the serving model instead of starting over (values
    first seen after the champion was trained map to "unknown" until a cold retrain).

    `step_hook(global_step)` runs after every optimizer step of either run (tests use it to simulate a crash).
    Returns the kept model (also saved in `out_dir`, by rank 0).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    spec = spec or contract_spec()
    rank, world, created_group = _init_distributed(cfg.device)
    device = pick_device(cfg.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
        torch.cuda.set_device(device)

    if valid_df is None:
        train_df, valid_df = split_examples(df, cfg.split, cfg.valid_fraction, cfg.seed)
    else:
        train_df = df
    if train_df.height == 0 or valid_df.height == 0:
        raise ValueError(f"empty split: {train_df.height} training and {valid_df.height} validation rows")
    base = load_predictor(Path(init_from), device="cpu", expected_spec=spec) if init_from is not None else None
    run = _Run(cfg, spec, base, rank, world, device, step_hook)
    selection = run.fit(train_df, valid_df, cfg.epochs, out / SELECTION_DIR if cfg.refit else out)
    model, encoder, refit_epochs = selection.model, selection.encoder, None
    learned_from = rows_learned_from(train_df, valid_df, cfg.refit)
    calibration = None
    if cfg.refit:
        refit_epochs = selection.state["best_epoch"] + 1
        final = run.fit(learned_from, None, refit_epochs, out)
        model, encoder = final.model, final.encoder
    elif cfg.calibrate:
        calibration = calibration_on(Predictor(model, encoder, device), valid_df)
    window = {**data_window(learned_from), "valid_first": data_window(valid_df)["first"],
              "valid_last": data_window(valid_df)["last"], "refit": cfg.refit, "calibrated": calibration is not None}
    if rank == 0:
        save_predictor(out, model, encoder, calibration)
        if cfg.refit:
            (out / SELECTION_DIR / CHECKPOINT_FILE).unlink(missing_ok=True)  # the refit is what was kept
    if created_group:
        dist.barrier()
        dist.destroy_process_group()
    state = selection.state
    return TrainResult(
        out_dir=out, model=model.eval(), encoder=encoder, best_valid_loss=float(state["best"]),
        best_epoch=int(state["best_epoch"]), epochs_run=len(state["history"]), steps=int(state["step"]),
        history=state["history"], data_window=window, refit_epochs=refit_epochs, calibration=calibration,
    )


def calibration_on(predictor: Predictor, rows: pl.DataFrame) -> Calibration:
    """Each head's Platt recalibration fitted on `rows` (labelled, not learned from), from raw probabilities."""
    spec = predictor.spec
    probs = predictor.predict_encoded(predictor.encoder.transform(rows, with_labels=False), raw=True)
    click = rows[spec.click_label] if spec.click_label else rows[spec.convert_label]
    return fit_calibration(
        probs, click.cast(pl.Float64).to_numpy(), rows[spec.convert_label].cast(pl.Float64).to_numpy(),
        rows[spec.treatment].cast(pl.Boolean).to_numpy(),
    )


@dataclass
class _Fitted:
    model: EffectPredictor
    encoder: FeatureEncoder
    state: dict[str, Any]


@dataclass
class _Run:
    """What both runs of `train_predictor` share: config, feature spec, warm start, process group, device."""

    cfg: TrainConfig
    spec: FeatureSpec
    base: Any  # the warm start's Predictor, or None
    rank: int
    world: int
    device: torch.device
    step_hook: Callable[[int], None] | None

    def fit(self, train_df: pl.DataFrame, valid_df: pl.DataFrame | None, epochs: int, ckpt_dir: Path) -> _Fitted:
        """Train for up to `epochs` from the start (warm start, else base rates and the wide start), resuming
        from `ckpt_dir`'s checkpoint. With `valid_df`, keep the best epoch (`improves_on`) and stop early;
        without, keep the last."""
        cfg, spec, base, rank, world, device = self.cfg, self.spec, self.base, self.rank, self.world, self.device
        run_cfg = replace(cfg, epochs=epochs)
        seed_everything(cfg.seed)
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        encoder = base.encoder if base else FeatureEncoder.fit(train_df, spec, min_count=cfg.min_count, max_weight=cfg.max_weight)
        train_encoded = encoder.transform(train_df, with_labels=True)
        train_data = PackedFrame(train_encoded, device)
        valid_data = PackedFrame(encoder.transform(valid_df, with_labels=True), device) if valid_df is not None else None

        model = EffectPredictor(base.model.cfg if base else cfg.model, encoder)
        if base:
            model.load_state_dict(base.model.state_dict())
        else:
            model.init_output_bias(*base_rates(train_df, spec))
            if model.cfg.wide:
                model.init_wide(train_encoded, encoder, cfg.seed, unit_codes(train_df, spec))
        del train_encoded  # the packed copy is what training reads
        model = model.to(device)
        wrapped: torch.nn.Module = DistributedDataParallel(model) if world > 1 else model
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=device.type == "cuda"
        )
        sampler = DistributedSampler(train_data, num_replicas=world, rank=rank, shuffle=True, seed=cfg.seed)
        batch_size = effective_batch_size(cfg.batch_size, len(sampler))
        steps_per_epoch = math.ceil(len(sampler) / batch_size)
        total_steps = epochs * steps_per_epoch
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(min(cfg.warmup_steps, total_steps // 10), total_steps))
        dtype = autocast_dtype(device)

        state: dict[str, Any] = {
            "epoch": 0, "batch": 0, "step": 0, "best": math.inf, "best_epoch": -1, "bad_epochs": 0,
            "stopped": False, "history": [], "best_state": None, "best_rows": None,
        }
        ckpt_path = ckpt_dir / CHECKPOINT_FILE
        if cfg.resume and ckpt_path.exists():
            ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
            check_resumable(ckpt, model, run_cfg, len(train_data), ckpt_path)
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            scheduler.load_state_dict(ckpt["scheduler"])
            set_rng_state(ckpt["rng"][rank] if isinstance(ckpt["rng"], list) else ckpt["rng"])
            state = ckpt["state"]

        def checkpoint() -> None:
            rngs: Any = rng_state()
            if world > 1:
                gathered: list[Any] = [None] * world
                dist.all_gather_object(gathered, rngs)
                rngs = gathered
            if rank == 0:
                _atomic_save(
                    {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                     "rng": rngs, "state": state, "config": run_cfg.to_dict(), "train_rows": len(train_data)},
                    ckpt_path,
                )

        if valid_data is not None and state["best_state"] is None and state["step"] == 0:
            # The starting point is a candidate too (a warm start's champion, the wide models' linear fit): an
            # epoch must beat it to be kept. Evaluation draws no random numbers, so training is unchanged.
            rows = validation_row_losses(model, valid_data, cfg.batch_size * 4, device)
            state.update(best=float(rows.sum()), best_rows=rows, best_epoch=-1)
            state["best_state"] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        wrapped.train()
        show = cfg.progress and rank == 0
        while state["epoch"] < epochs and not state["stopped"]:
            epoch = state["epoch"]
            sampler.set_epoch(epoch)
            batches = epoch_order(sampler, train_data.index_device).split(batch_size)
            phase = "epoch" if valid_data is not None else "refit epoch"
            bar = tqdm(total=len(batches), initial=state["batch"], desc=f"{phase} {epoch}", disable=not show, leave=False)
            first_batch, seen, started = state["batch"], 0, time.perf_counter()
            loss_sum = torch.zeros((), device=device)
            for b in range(first_batch, len(batches)):
                batch = train_data.batch(batches[b])
                with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                    loss = effect_loss(wrapped(batch), batch)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                optimizer.step()
                scheduler.step()
                loss_sum += loss.detach()
                seen += len(batches[b])
                state["step"] += 1
                state["batch"] = b + 1
                if show and (b % 10 == 0 or b == len(batches) - 1):
                    bar.set_postfix(loss=f"{float(loss):.4f}", samples_s=f"{seen / (time.perf_counter() - started):,.0f}")
                bar.update(1)
                if self.step_hook is not None:
                    self.step_hook(state["step"])
                if cfg.checkpoint_every and state["step"] % cfg.checkpoint_every == 0 and state["batch"] < len(batches):
                    checkpoint()
            bar.close()
            elapsed = time.perf_counter() - started
            n_batches = max(len(batches) - first_batch, 1)
            entry = {"epoch": epoch, "train_loss": float(loss_sum) / n_batches,
                     "samples_per_s": seen * world / max(elapsed, 1e-9)}
            if valid_data is not None:
                rows = validation_row_losses(model, valid_data, cfg.batch_size * 4, device)
                entry["valid_loss"] = float(rows.sum())
                if improves_on(rows, state["best_rows"], cfg.keep_margin_se):
                    state.update(best=entry["valid_loss"], best_rows=rows, best_epoch=epoch, bad_epochs=0)
                    state["best_state"] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
                else:
                    state["bad_epochs"] += 1
                    state["stopped"] = state["bad_epochs"] >= cfg.patience
            state["history"].append(entry)
            state["epoch"], state["batch"] = epoch + 1, 0
            if show:
                valid = f" valid {entry['valid_loss']:.4f}" if "valid_loss" in entry else ""
                tqdm.write(f"{phase} {epoch}: train {entry['train_loss']:.4f}{valid} ({entry['samples_per_s']:,.0f} samples/s)")
            checkpoint()

        if state["best_state"] is not None:
            model.load_state_dict(state["best_state"])
        return _Fitted(model, encoder, state)


# ---------------------------------------------------------------------------------------------- CLI
def read_frame(data: str | None, duckdb_path: str | None, table: str) -> pl.DataFrame:
    """Rows from a Parquet file, or from a table of a DuckDB file (opened read-only)."""
    if data:
        path = Path(data)
        if not path.exists():
            raise FileNotFoundError(f"--data {path}: no such file")
        return pl.read_parquet(path)
    if duckdb_path:
        import duckdb

        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?", table):
            raise ValueError(f"--table {table!r} is not a plain [schema.]table name")
        if not Path(duckdb_path).exists():
            raise FileNotFoundError(f"--duckdb {duckdb_path}: no such file")
        with duckdb.connect(duckdb_path, read_only=True) as con:
            return con.sql(f"select * from {table}").pl()
    raise ValueError("give --data FILE.parquet or --duckdb WAREHOUSE.duckdb")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ml.predictor.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", help="Parquet file with the fct_training_examples columns")
    p.add_argument("--duckdb", help="DuckDB warehouse file (read-only)")
    p.add_argument("--table", default="marts.fct_training_examples")
    p.add_argument("--out", required=True, help="output folder (model files and checkpoint.pt)")
    d = TrainConfig()
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--patience", type=int, default=d.patience)
    p.add_argument("--keep-margin-se", type=float, default=d.keep_margin_se,
                   help="an epoch replaces the kept model when its validation loss is lower by this many standard errors")
    p.add_argument("--refit", action="store_true",
                   help="retrain on training + validation rows for the epochs validation chose")
    p.add_argument("--no-calibrate", action="store_true",
                   help="keep the heads' raw probabilities (default: Platt-recalibrate them on the validation rows)")
    p.add_argument("--split", choices=["auto", "time", "user"], default=d.split)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", default=None, help="cpu or cuda (default: CUDA when available)")
    p.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint in --out")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    df = read_frame(args.data, args.duckdb, args.table)
    cfg = TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, patience=args.patience,
        keep_margin_se=args.keep_margin_se, refit=args.refit, calibrate=not args.no_calibrate, split=args.split,
        seed=args.seed, device=args.device, resume=not args.no_resume, progress=not args.no_progress,
    )
    result = train_predictor(df, cfg, args.out)
    if int(os.environ.get("RANK", "0")) == 0:
        refit = f"; refitted on training + validation rows for {result.refit_epochs} epoch(s)" if cfg.refit else ""
        print(f"best validation loss {result.best_valid_loss:.4f} at epoch {result.best_epoch}{refit}; model in {result.out_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
