"""Train the copy generator: `train_generator(cfg, out_dir)` or `python -m ml.generator.train`.

Data: the grammar (a held-out 5 % of distinct templates validates), AdvertiseGen when present (its own
fixed-seed train/validation split, corpus.split_advertisegen), and optional feedback examples with their
weights. Batches hold one task each (promo templates are short, ad copy long) and are padded on the right.
The batch order comes from (seed, epoch), so a run resumed from `checkpoint.pt` (model, optimizer,
scheduler, step, RNG states) continues exactly where it stopped.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from ml.device import autocast_dtype, pick_device
from ml.generator.config import GPTConfig
from ml.generator.corpus import (
    Example,
    adgen_examples,
    advertisegen_path,
    grammar_examples,
    load_advertisegen,
    split_advertisegen,
)
from ml.generator.model import CopyGPT
from ml.generator.tokenizer import CopyTokenizer
from ml.reproducibility import rng_state, seed_everything, set_rng_state

CHECKPOINT_FILE = "checkpoint.pt"


@dataclass
class TrainConfig:
    model: GPTConfig = field(default_factory=GPTConfig)
    n_grammar: int = 40_000  # grammar examples drawn (before the validation hold-out)
    grammar_valid_share: float = 0.05  # share of distinct templates held out
    use_advertisegen: bool = True  # skipped with a message when the file is absent
    adgen_valid_fraction: float = 0.1
    adgen_limit: int | None = None  # use only the first N AdvertiseGen records (tests)
    vocab_size: int = 5000
    max_steps: int = 500
    batch_size: int = 32
    lr: float = 3e-3
    min_lr_share: float = 0.1
    warmup_steps: int = 50
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    eval_every: int = 250
    checkpoint_every: int = 250
    seed: int = 0
    device: str | None = None
    resume: bool = True
    progress: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class EncodedSet:
    """Token ids per example: [<bos>, prompt, <sep>, text, <eos>], the <sep> index, and weights."""

    ids: list[list[int]]
    sep_at: list[int]
    weights: list[float]

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class DataBundle:
    train: dict[str, EncodedSet]  # task -> examples
    valid: dict[str, EncodedSet]
    adgen_valid_pairs: list[tuple[str, str]]
    tokenizer: CopyTokenizer


def encode_examples(examples: list[Example], tok: CopyTokenizer, block_size: int) -> EncodedSet:
    prompts = tok.encode_batch([e.prompt for e in examples])
    texts = tok.encode_batch([e.text for e in examples])
    ids, seps = [], []
    for p, t in zip(prompts, texts, strict=True):
        seq = [tok.bos_id, *p, tok.sep_id, *t, tok.eos_id]
        if len(p) + 3 > block_size:
            raise ValueError(f"prompt of {len(p)} tokens does not fit block_size {block_size}")
        ids.append(seq[:block_size])
        seps.append(len(p) + 1)
    return EncodedSet(ids, seps, [e.weight for e in examples])


def holdout_split(examples: list[Example], share: float) -> tuple[list[Example], list[Example]]:
    """Hold out whole distinct templates (by a stable hash), so validation texts are unseen in training."""
    cut = int(share * 10_000)
    valid = [e for e in examples if zlib.crc32((e.prompt + e.text).encode()) % 10_000 < cut]
    train = [e for e in examples if zlib.crc32((e.prompt + e.text).encode()) % 10_000 >= cut]
    return train, valid


def build_data(cfg: TrainConfig, feedback: list[Example] | None = None, tokenizer: CopyTokenizer | None = None) -> DataBundle:
    grammar_train, grammar_valid = holdout_split(grammar_examples(cfg.n_grammar, cfg.seed), cfg.grammar_valid_share)
    train = {"promo": grammar_train + list(feedback or [])}
    valid = {"promo": grammar_valid}
    adgen_valid_pairs: list[tuple[str, str]] = []
    path = advertisegen_path() if cfg.use_advertisegen else None
    if cfg.use_advertisegen and path is None:
        print("AdvertiseGen not found under $PROMO_REAL_DATA_DIR (advertisegen/train_head5000.json): training on the grammar only")
    if path is not None:
        pairs = load_advertisegen(path)[: cfg.adgen_limit]
        adgen_train, adgen_valid_pairs = split_advertisegen(pairs, cfg.adgen_valid_fraction, seed=0)
        train["adgen"] = adgen_examples(adgen_train)
        valid["adgen"] = adgen_examples(adgen_valid_pairs)
    if tokenizer is None:
        texts = [t for ex in train.values() for e in ex for t in (e.prompt, e.text)]
        tokenizer = CopyTokenizer.train(texts, vocab_size=cfg.vocab_size)
    bs = cfg.model.block_size
    return DataBundle(
        train={k: encode_examples(v, tokenizer, bs) for k, v in train.items() if v},
        valid={k: encode_examples(v, tokenizer, bs) for k, v in valid.items() if v},
        adgen_valid_pairs=adgen_valid_pairs,
        tokenizer=tokenizer,
    )


def collate(data: EncodedSet, index: list[int], pad_id: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """(ids, key_mask, loss_mask, weights) for the examples in `index`, right-padded."""
    T = max(len(data.ids[i]) for i in index)
    ids = torch.full((len(index), T), pad_id, dtype=torch.long)
    key_mask = torch.zeros(len(index), T, dtype=torch.bool)
    loss_mask = torch.zeros(len(index), T, dtype=torch.bool)
    for row, i in enumerate(index):
        seq = data.ids[i]
        ids[row, : len(seq)] = torch.tensor(seq)
        key_mask[row, : len(seq)] = True
        loss_mask[row, data.sep_at[i] + 1 : len(seq)] = True
    weights = torch.tensor([data.weights[i] for i in index], dtype=torch.float32)
    return ids.to(device), key_mask.to(device), loss_mask.to(device), weights.to(device)


def epoch_batches(train: dict[str, EncodedSet], batch_size: int, seed: int, epoch: int) -> list[tuple[str, list[int]]]:
    """Every example once, in single-task batches, in an order fixed by (seed, epoch)."""
    rng = random.Random(seed * 100_003 + epoch)
    batches = []
    for task in sorted(train):
        order = list(range(len(train[task])))
        rng.shuffle(order)
        batches += [(task, order[i : i + batch_size]) for i in range(0, len(order), batch_size)]
    rng.shuffle(batches)
    return batches


@torch.no_grad()
def mean_loss(model: CopyGPT, data: EncodedSet, pad_id: int, device: torch.device, batch_size: int = 128) -> float:
    """Token-weighted mean next-token loss over the text part (perplexity = exp of it)."""
    was_training = model.training
    model.eval()
    dtype = autocast_dtype(device)
    total, tokens = 0.0, 0
    for start in range(0, len(data), batch_size):
        ids, key_mask, loss_mask, _ = collate(data, list(range(start, min(start + batch_size, len(data)))), pad_id, device)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            logits = model(ids[:, :-1], key_mask[:, :-1])
        tok_loss = torch.nn.functional.cross_entropy(logits.float().transpose(1, 2), ids[:, 1:], reduction="none")
        m = loss_mask[:, 1:]
        total += float(tok_loss[m].sum())
        tokens += int(m.sum())
    model.train(was_training)
    return total / max(tokens, 1)


def train_generator(cfg: TrainConfig, out_dir: Path | str, feedback: list[Example] | None = None) -> Path:
    """Train and save the model directory (generate.CopyGenerator.save) to `out_dir`; returns it."""
    from ml.generator.generate import CopyGenerator

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.seed)
    device = pick_device(cfg.device)
    t0 = time.perf_counter()
    ckpt_path = out_dir / CHECKPOINT_FILE
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False) if cfg.resume and ckpt_path.exists() else None
    tokenizer = CopyTokenizer.load(out_dir / "tokenizer.json") if ckpt is not None else None
    data = build_data(cfg, feedback, tokenizer)
    data.tokenizer.save(out_dir / "tokenizer.json")
    cfg.model.vocab_size = data.tokenizer.vocab_size
    model = CopyGPT(cfg.model).to(device)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr, betas=(0.9, 0.95), fused=device.type == "cuda",
    )

    def lr_factor(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
        return cfg.min_lr_share + (1 - cfg.min_lr_share) * 0.5 * (1 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    step, epoch, batch_pos, history = 0, 0, 0, []
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        step, epoch, batch_pos, history = ckpt["step"], ckpt["epoch"], ckpt["batch_pos"], ckpt["history"]
        set_rng_state(ckpt["rng"])
    dtype = autocast_dtype(device)
    model.train()
    bar = tqdm(total=cfg.max_steps, initial=step, disable=not cfg.progress, desc="generator", unit="step")
    tokens_seen, tick = 0, time.perf_counter()

    def save_checkpoint() -> None:
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                 "step": step, "epoch": epoch, "batch_pos": batch_pos, "history": history, "rng": rng_state(), "config": cfg.to_dict()}
        tmp = ckpt_path.with_suffix(f".tmp{os.getpid()}")
        torch.save(state, tmp)
        os.replace(tmp, ckpt_path)

    while step < cfg.max_steps:
        batches = epoch_batches(data.train, cfg.batch_size, cfg.seed, epoch)
        while batch_pos < len(batches) and step < cfg.max_steps:
            task, index = batches[batch_pos]
            ids, key_mask, loss_mask, weights = collate(data.train[task], index, data.tokenizer.pad_id, device)
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                loss = model.loss(ids, key_mask, loss_mask, weights)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            step += 1
            batch_pos += 1
            tokens_seen += int(key_mask.sum())
            if step % 10 == 0:
                rate = tokens_seen / max(time.perf_counter() - tick, 1e-9)
                bar.set_postfix(loss=f"{loss.item():.3f}", tok_s=f"{rate:,.0f}")
            bar.update(1)
            if step % cfg.eval_every == 0 or step == cfg.max_steps:
                record = {"step": step, "train_loss": loss.item()}
                record.update({f"valid_loss_{k}": mean_loss(model, v, data.tokenizer.pad_id, device) for k, v in data.valid.items()})
                history.append(record)
                bar.write(json.dumps(record))
            if step % cfg.checkpoint_every == 0:
                save_checkpoint()
        if batch_pos >= len(batches):
            epoch, batch_pos = epoch + 1, 0
    bar.close()
    save_checkpoint()
    final = history[-1] if history else {}
    metrics = {
        "steps": step,
        "train_seconds": round(time.perf_counter() - t0, 1),
        "device": str(device),
        "parameters": model.num_parameters(),
        "train_examples": {k: len(v) for k, v in data.train.items()},
        **{f"perplexity_{k.removeprefix('valid_loss_')}": math.exp(v) for k, v in final.items() if k.startswith("valid_loss_")},
        "history": history,
    }
    CopyGenerator(model.cpu().eval(), data.tokenizer, train_config=cfg.to_dict(), metrics=metrics).save(out_dir)
    return out_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml.generator.train", description="Train the promo-copy generator.")
    parser.add_argument("--out", required=True, help="model directory to write (weights, config, tokenizer, metrics)")
    parser.add_argument("--steps", type=int, default=TrainConfig.max_steps)
    parser.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    parser.add_argument("--lr", type=float, default=TrainConfig.lr)
    parser.add_argument("--n-grammar", type=int, default=TrainConfig.n_grammar)
    parser.add_argument("--layers", type=int, default=GPTConfig.n_layer)
    parser.add_argument("--heads", type=int, default=GPTConfig.n_head)
    parser.add_argument("--dim", type=int, default=GPTConfig.n_embd)
    parser.add_argument("--no-advertisegen", action="store_true", help="train on the grammar only")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="cpu or cuda (default: CUDA when available)")
    parser.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint in --out")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    cfg = TrainConfig(
        model=GPTConfig(n_layer=args.layers, n_head=args.heads, n_embd=args.dim),
        n_grammar=args.n_grammar, use_advertisegen=not args.no_advertisegen, max_steps=args.steps,
        batch_size=args.batch_size, lr=args.lr, seed=args.seed, device=args.device, resume=not args.fresh, progress=not args.quiet,
    )
    out = train_generator(cfg, args.out)
    metrics = json.loads((out / "metrics.json").read_text())
    print(json.dumps({k: v for k, v in metrics.items() if k != "history"}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
