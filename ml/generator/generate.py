"""Write, check and pick promo messages: `CopyGenerator.load(dir).generate(requests, k=4, seed=0)`.

Per request the model samples K slot templates (with `tones`, candidate i is written in tones[i % len], so
the K variants differ in tone, not only by sampling); each is rendered from the request's records, finalized
for its channel (SMS opt-out), verified against the facts and checked against the rules. The chosen message
is the best-scoring candidate that passed (a scorer such as `ranker.ClickRanker.score`, else mean
log-likelihood), with epsilon exploration over the passing ones and the choice's probability logged; when none passed, the first safe template that
passes; never nothing. A send time in quiet hours is deferred, not dropped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ml.generator.compliance import ComplianceEngine
from ml.generator.config import TONES, GPTConfig
from ml.generator.corpus import prompt_string
from ml.generator.model import CopyGPT
from ml.generator.request import CopyRequest, prompt_tokens
from ml.generator.slots import missing_required, render
from ml.generator.tokenizer import CopyTokenizer
from ml.generator.verifier import Verifier

_CONTROL_TONE = re.compile(r"<tone:([a-z]+)>")

@dataclass
class Candidate:
    index: int
    template: str
    text: str
    logprob: float  # mean per-token log-likelihood under the model
    score: float
    passed: bool
    reasons: list[str] = field(default_factory=list)
    prompt: str = ""  # the control prefix this candidate was written from
    tone: str = ""


# Scores each of a request's candidates (higher is better); e.g. ranker.ClickRanker.score.
Scorer = Callable[[list[Candidate], CopyRequest], list[float]]


@dataclass
class Message:
    request_id: str
    text: str
    template: str
    slots: dict[str, str]
    prompt: str  # the control prefix; with `template` it is the feedback row the loop retrains on
    candidate_index: int  # -1 when a safe template was used
    propensity: float  # probability that this candidate was the one chosen
    passed: bool
    used_fallback: bool
    reasons: list[str] = field(default_factory=list)
    send_at: datetime | None = None  # the asked time, or the end of quiet hours when it fell inside
    candidates: list[Candidate] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class CopyGenerator:
    def __init__(self, model: CopyGPT, tokenizer: CopyTokenizer, *, train_config: dict[str, Any] | None = None,
                 metrics: dict[str, Any] | None = None, compliance: ComplianceEngine | None = None) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.train_config = train_config or {}
        self.metrics = metrics or {}
        self.compliance = compliance or ComplianceEngine()

    # ------------------------------------------------------------------------------------------ storage
    def save(self, out_dir: Path | str) -> Path:
        """weights (model.pt), config.json, tokenizer.json, metrics.json: everything `load` needs."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        torch.save(self.model.state_dict(), out / "model.pt")
        (out / "config.json").write_text(json.dumps({"model": self.model.cfg.to_dict(), "train": self.train_config}, indent=2, default=str))
        self.tokenizer.save(out / "tokenizer.json")
        (out / "metrics.json").write_text(json.dumps(self.metrics, indent=2, ensure_ascii=False, default=str))
        return out

    @classmethod
    def load(cls, model_dir: Path | str, device: str | torch.device = "cpu") -> CopyGenerator:
        d = Path(model_dir)
        for name in ("model.pt", "config.json", "tokenizer.json"):
            if not (d / name).exists():
                raise FileNotFoundError(f"{d}: not a generator model directory (missing {name})")
        config = json.loads((d / "config.json").read_text())
        model = CopyGPT(GPTConfig(**config["model"]))
        model.load_state_dict(torch.load(d / "model.pt", map_location="cpu", weights_only=True))
        metrics = json.loads((d / "metrics.json").read_text()) if (d / "metrics.json").exists() else {}
        return cls(model.to(device), CopyTokenizer.load(d / "tokenizer.json"), train_config=config.get("train"), metrics=metrics)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # ------------------------------------------------------------------------------------------ decoding
    @torch.no_grad()
    def sample_templates(self, prompts: list[str], k: int, seed: int, *, top_p: float = 0.9, temperature: float = 1.0,
                         greedy: bool = False, max_new_tokens: int = 64, use_cache: bool = True,
                         batch_rows: int = 768) -> list[list[tuple[str, float]]]:
        """K (template, mean log-prob) per prompt. Prompts may differ in length (left-padded). `batch_rows`
        sequences decode together: 768 holds about 0.8 GB of KV cache for the default model and decodes ~1.5x
        faster on CPU than 256 (per-step overhead is shared by more rows)."""
        tok = self.tokenizer
        encoded = [[tok.bos_id, *ids, tok.sep_id] for ids in tok.encode_batch(prompts)]
        rows = [e for e in encoded for _ in range(k)]
        gen = torch.Generator(device=self.device).manual_seed(seed)
        banned = torch.tensor(tok.never_generated_ids, device=self.device)
        out: list[tuple[str, float]] = []
        for start in range(0, len(rows), batch_rows):
            chunk = rows[start : start + batch_rows]
            T0 = max(len(r) for r in chunk)
            prefix = torch.full((len(chunk), T0), tok.pad_id, dtype=torch.long)
            mask = torch.zeros(len(chunk), T0, dtype=torch.bool)
            for i, r in enumerate(chunk):
                prefix[i, T0 - len(r) :] = torch.tensor(r)
                mask[i, T0 - len(r) :] = True
            g = self.model.generate(prefix.to(self.device), mask.to(self.device), max_new_tokens, tok.eos_id, tok.pad_id,
                                    top_p=top_p, temperature=temperature, greedy=greedy, generator=gen,
                                    banned_ids=banned, use_cache=use_cache)
            tokens, logp, lengths = g.tokens.cpu().tolist(), g.logprobs.sum(1).cpu(), g.lengths.cpu()
            for i in range(len(chunk)):
                out.append((tok.decode(tokens[i]), float(logp[i] / max(int(lengths[i]), 1))))
        return [out[i * k : (i + 1) * k] for i in range(len(prompts))]

    # ------------------------------------------------------------------------------------------ the API
    def generate(self, requests: Sequence[CopyRequest], k: int = 4, seed: int = 0, *, scorer: Scorer | None = None,
                 explore: float = 0.1, top_p: float = 0.9, temperature: float = 1.0, max_new_tokens: int = 64,
                 verifier: Verifier | None = None, use_cache: bool = True, tones: Sequence[str] | None = None) -> list[Message]:
        """One checked message per request, in order. `verifier` defaults to one that knows every product
        and brand name in `requests`, so a message naming another request's product is rejected. `tones`
        spreads the K candidates over tones (each request's own tone when None)."""
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if tones is not None and (not tones or any(t not in TONES for t in tones)):
            raise ValueError(f"tones must be a non-empty list of {TONES}, got {list(tones)}")
        if not 0.0 <= explore <= 1.0:
            raise ValueError(f"explore must be in [0, 1], got {explore}")
        if verifier is None:
            names = [p for r in requests for p in (r.product, r.context_product) if p is not None]
            verifier = Verifier(known_brands=[p.brand for p in names if p.brand], known_products=[p.title for p in names])
        prompts = [prompt_string(prompt_tokens(r)) for r in requests]
        options = dict(top_p=top_p, temperature=temperature, max_new_tokens=max_new_tokens, use_cache=use_cache)
        if tones is None:
            variant_prompts = [[p] * k for p in prompts]
            sampled = self.sample_templates(prompts, k, seed, **options)
        else:  # one row per candidate, in the same order as K rows per prompt
            variant_prompts = [[prompt_string(prompt_tokens(r, tones[i % len(tones)])) for i in range(k)] for r in requests]
            flat = self.sample_templates([p for ps in variant_prompts for p in ps], 1, seed, **options)
            sampled = [[row[0] for row in flat[i * k : (i + 1) * k]] for i in range(len(requests))]
        rng = np.random.default_rng(seed)
        return [self._choose(r, p, vp, s, scorer, explore, verifier, rng)
                for r, p, vp, s in zip(requests, prompts, variant_prompts, sampled, strict=True)]

    def check_template(self, template: str, request: CopyRequest, verifier: Verifier) -> tuple[str, dict[str, str], list[str]]:
        """(final text, slots used, reasons it fails); no reasons means it may be sent."""
        rendered = render(template, request)
        reasons = [f"slot_unavailable: {s}" for s in rendered.unavailable] + [f"unknown_slot: {s}" for s in rendered.unknown]
        reasons += [f"missing_required_slot: {s}" for s in sorted(missing_required(template, request.offer.offer_type))]
        text = self.compliance.finalize(rendered.text, request.channel, request.locale)
        reasons += verifier.verify(text, request).reasons
        reasons += self.compliance.check(text, request.channel, request.locale, names=request.own_names()).reasons
        return text, rendered.slots, reasons

    def _choose(self, request: CopyRequest, prompt: str, variant_prompts: list[str], sampled: list[tuple[str, float]],
                scorer: Scorer | None, explore: float, verifier: Verifier, rng: np.random.Generator) -> Message:
        checked = [self.check_template(t, request, verifier) for t, _ in sampled]
        candidates = [Candidate(i, t, c[0], lp, lp, not c[2], c[2], vp, _CONTROL_TONE.search(vp).group(1))
                      for i, ((t, lp), c, vp) in enumerate(zip(sampled, checked, variant_prompts, strict=True))]
        if scorer is not None:
            scores = list(scorer(candidates, request))
            if len(scores) != len(candidates):
                raise ValueError(f"scorer returned {len(scores)} scores for {len(candidates)} candidates")
            for c, score in zip(candidates, scores, strict=True):
                c.score = float(score)
        passing = [c for c in candidates if c.passed]
        send_at, timing = self._timing(request)
        if passing:
            best = max(passing, key=lambda c: c.score)
            n = len(passing)
            chosen = passing[int(rng.integers(n))] if n > 1 and rng.random() < explore else best
            propensity = (1 - explore) * (chosen is best) + (explore / n if n > 1 else explore)
            return Message(request.request_id, chosen.text, chosen.template, checked[chosen.index][1], chosen.prompt, chosen.index,
                           float(propensity), True, False, timing, send_at, candidates)
        why = sorted({r.split(":")[0] for c in candidates for r in c.reasons})
        for template in self.compliance.safe_templates(request.locale, request.offer.offer_type):
            text, slots, reasons = self.check_template(template, request, verifier)
            if not reasons or template == self.compliance.safe_templates(request.locale, request.offer.offer_type)[-1]:
                return Message(request.request_id, text, template, slots, prompt, -1, 1.0, not reasons, True,
                               [f"fallback: no candidate passed ({', '.join(why)})", *reasons, *timing], send_at, candidates)
        raise AssertionError("unreachable: the safe template list is never empty")

    def _timing(self, request: CopyRequest) -> tuple[datetime | None, list[str]]:
        if request.send_at is None:
            return None, []
        end = self.compliance.quiet_hours_end(request.send_at, request.locale, request.timezone)
        if end is None:
            return request.send_at, []
        return end, [f"quiet_hours: {request.send_at.isoformat()} deferred to {end.isoformat()}"]
