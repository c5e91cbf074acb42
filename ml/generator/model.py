"""A small decoder-only Transformer (nanoGPT style) with a key/value cache for batched generation.

Rows in a batch may have prefixes of different lengths: they are left-padded, `key_mask` marks the real
tokens and positions count real tokens only, so a padded row computes exactly what it would alone. The
cache is preallocated per generation call; the no-cache path recomputes the whole sequence each step and
must give the same tokens (a test checks it under greedy decoding).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ml.generator.config import GPTConfig


class KVCache:
    """Keys and values of every layer for the slots already processed: (L, B, H, S_max, D) each."""

    def __init__(self, cfg: GPTConfig, batch: int, max_len: int, device: torch.device, dtype: torch.dtype) -> None:
        head_dim = cfg.n_embd // cfg.n_head
        shape = (cfg.n_layer, batch, cfg.n_head, max_len, head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.length = 0  # slots filled so far (same for every row: padding is part of the slots)

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store k, v (B, H, T, D) at the next T slots of `layer`; return all keys/values so far."""
        t = k.size(2)
        end = self.length + t
        self.k[layer, :, :, self.length : end] = k.to(self.k.dtype)
        self.v[layer, :, :, self.length : end] = v.to(self.v.dtype)
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.n_head = cfg.n_head
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.dropout = cfg.dropout

    def forward(self, x: torch.Tensor, mask: torch.Tensor, cache: KVCache | None, layer: int) -> torch.Tensor:
        B, T, C = x.shape  # (B, T, C)
        q, k, v = self.qkv(x).split(C, dim=2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, H, T, D)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, H, T, D)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, H, T, D)
        if cache is not None:
            k, v = cache.update(layer, k, v)  # (B, H, S, D)
            k, v = k.to(q.dtype), v.to(q.dtype)
        drop = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=drop)  # (B, H, T, D)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C)
        return self.proj(y)


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=cfg.bias)
        self.out = nn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.out(F.gelu(self.fc(x))))


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.attn = CausalSelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, cache: KVCache | None, layer: int) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), mask, cache, layer)
        return x + self.mlp(self.ln2(x))


@dataclass
class Generation:
    tokens: torch.Tensor  # (B, N) generated ids, eos included, pad after it
    logprobs: torch.Tensor  # (B, N) log-probability of each generated token under the model (0 after eos)
    lengths: torch.Tensor  # (B,) tokens up to and including eos (N when it never ended)


class CopyGPT(nn.Module):
    """Decoder-only language model over [control prefix, <sep>, text, <eos>]."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # weight tying
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("out.weight") or name.endswith("proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(
        self,
        idx: torch.Tensor,
        key_mask: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
        cache: KVCache | None = None,
    ) -> torch.Tensor:
        """Logits (B, T, V) for `idx` (B, T). `key_mask` (B, S) marks real tokens among all S slots seen so
        far (cache slots + these T); `positions` (B, T) are the tokens' positions among real tokens."""
        B, T = idx.shape
        past = cache.length if cache is not None else 0
        S = past + T
        if self.cfg.block_size < S:
            raise ValueError(f"sequence of {S} tokens exceeds block_size {self.cfg.block_size}")
        if key_mask is None:
            key_mask = torch.ones(B, S, dtype=torch.bool, device=idx.device)
        if positions is None:
            positions = (key_mask.long().cumsum(1) - 1).clamp(min=0)[:, past:]  # (B, T)
        causal = torch.ones(T, S, dtype=torch.bool, device=idx.device).tril(diagonal=past)  # (T, S)
        mask = causal[None, None] & key_mask[:, None, None, :]  # (B, 1, T, S)
        # A padded query row with no visible key would give NaN; let it see itself (its output is unused).
        eye = torch.zeros(T, S, dtype=torch.bool, device=idx.device)
        eye[torch.arange(T), past + torch.arange(T)] = True
        mask = mask | eye[None, None]
        x = self.drop(self.wte(idx) + self.wpe(positions))  # (B, T, C)
        for layer, block in enumerate(self.blocks):
            x = block(x, mask, cache, layer)
        if cache is not None:
            cache.length = S
        return self.lm_head(self.ln_f(x))  # (B, T, V)

    def loss(self, idx: torch.Tensor, key_mask: torch.Tensor, loss_mask: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Weighted next-token loss. idx/key_mask/loss_mask (B, T); loss_mask marks the targets that count
        (the text after <sep>); weights (B,) scale each example (feedback up-weighting)."""
        logits = self(idx[:, :-1], key_mask[:, :-1])  # (B, T-1, V)
        targets = idx[:, 1:]  # (B, T-1)
        tok_loss = F.cross_entropy(logits.float().transpose(1, 2), targets, reduction="none")  # (B, T-1)
        m = loss_mask[:, 1:].float()
        per_example = (tok_loss * m).sum(1) / m.sum(1).clamp(min=1.0)  # (B,)
        return (per_example * weights).sum() / weights.sum().clamp(min=1e-8)

    @torch.no_grad()
    def generate(
        self,
        prefix: torch.Tensor,
        prefix_mask: torch.Tensor,
        max_new_tokens: int,
        eos_id: int,
        pad_id: int,
        *,
        top_p: float = 0.9,
        temperature: float = 1.0,
        greedy: bool = False,
        generator: torch.Generator | None = None,
        banned_ids: torch.Tensor | None = None,
        use_cache: bool = True,
    ) -> Generation:
        """Continue each left-padded `prefix` (B, T0) until <eos> or `max_new_tokens`.

        Sampling is nucleus (top-p) at `temperature`, reproducible through `generator`; `greedy` takes the
        argmax. Log-probabilities are those of the untempered model, for ranking candidates."""
        if not 0.0 < top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        B, T0 = prefix.shape
        device = prefix.device
        max_new_tokens = min(max_new_tokens, self.cfg.block_size - T0)
        if max_new_tokens <= 0:
            raise ValueError(f"prefix of {T0} tokens leaves no room in block_size {self.cfg.block_size}")
        dtype = next(self.parameters()).dtype
        cache = KVCache(self.cfg, B, T0 + max_new_tokens, device, dtype) if use_cache else None
        seq, mask = prefix, prefix_mask.bool()
        out_tokens = torch.full((B, max_new_tokens), pad_id, dtype=torch.long, device=device)
        out_logp = torch.zeros(B, max_new_tokens, device=device)
        finished = torch.zeros(B, dtype=torch.bool, device=device)
        lengths = torch.full((B,), max_new_tokens, dtype=torch.long, device=device)
        step_input = prefix
        for step in range(max_new_tokens):
            # With the cache only the new token is fed; without it, the whole sequence again.
            logits = (self(step_input, mask, cache=cache) if use_cache else self(seq, mask))[:, -1, :].float()  # (B, V)
            if banned_ids is not None:
                logits[:, banned_ids] = float("-inf")
            logp = F.log_softmax(logits, dim=-1)  # (B, V)
            if greedy:
                nxt = logp.argmax(dim=-1)  # (B,)
            else:
                nxt = _sample_top_p(logits / max(temperature, 1e-6), top_p, generator)  # (B,)
            nxt = torch.where(finished, torch.full_like(nxt, pad_id), nxt)
            out_tokens[:, step] = nxt
            out_logp[:, step] = torch.where(finished, 0.0, logp.gather(1, nxt[:, None]).squeeze(1))
            just_ended = (~finished) & (nxt == eos_id)
            lengths = torch.where(just_ended, step + 1, lengths)
            finished = finished | just_ended
            if bool(finished.all()):
                break
            step_input = nxt[:, None]  # (B, 1)
            seq = torch.cat([seq, step_input], dim=1)
            mask = torch.cat([mask, torch.ones(B, 1, dtype=torch.bool, device=device)], dim=1)
        n = int(lengths.max()) if B else 0
        return Generation(out_tokens[:, :n], out_logp[:, :n], lengths)


def _sample_top_p(logits: torch.Tensor, top_p: float, generator: torch.Generator | None) -> torch.Tensor:
    """One token per row (B,) from the smallest set of tokens whose probability reaches top_p."""
    probs = F.softmax(logits, dim=-1)  # (B, V)
    sorted_p, sorted_idx = probs.sort(dim=-1, descending=True)
    outside = (sorted_p.cumsum(dim=-1) - sorted_p) > top_p  # tokens after the nucleus is full
    sorted_p = sorted_p.masked_fill(outside, 0.0)
    choice = torch.multinomial(sorted_p, 1, generator=generator)  # (B, 1) renormalized implicitly
    return sorted_idx.gather(1, choice).squeeze(1)
