"""Training data: (a) the copywriting grammar, (b) real AdvertiseGen ad copy, (c) feedback re-weighting.

(a) composes grammar.py's pieces per channel, language, offer type, depth, tone, segment and context into
slot templates, deterministically for a seed; (b) teaches the model real Chinese copy from product
attributes as a second task (prefix `<task:adgen>` + the attribute string); (c) turns delivered messages
with their clicks and conversions into weighted examples so the loop's retraining favours what worked.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ml.generator.compliance import RULES_PATH
from ml.generator.config import (
    CATEGORIES,
    CHANNELS,
    CONTEXTS,
    DEPTHS,
    LOCALES,
    OFFER_TYPES,
    SEGMENTS,
    TONES,
    control_token,
)
from ml.generator.grammar import GRAMMAR
from ml.generator.slots import SLOT_PATTERN
from ml.real_data import real_data_dir

ADVERTISEGEN_FILE = Path("advertisegen") / "train_head5000.json"


@dataclass(frozen=True)
class Example:
    prompt: str  # control tokens written together ("<task:promo><lang:zh-CN>…") or "<task:adgen>" + attributes
    text: str  # the target: a slot template (promo) or real ad copy (adgen)
    task: str = "promo"
    weight: float = 1.0


def prompt_string(tokens: Iterable[str]) -> str:
    return "".join(tokens)


# ---------------------------------------------------------------------------------------------- grammar
def grammar_examples(n: int, seed: int = 0) -> list[Example]:
    """`n` templates drawn uniformly over the control space; the same list for the same seed."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        fields = {
            "lang": rng.choice(LOCALES),
            "ch": rng.choice(CHANNELS),
            "seg": rng.choice(SEGMENTS),
            "ctx": rng.choice(CONTEXTS),
            "cat": rng.choice(CATEGORIES),
            "brand": rng.choice(("yes", "no")),
            "offer": rng.choice(OFFER_TYPES),
            "depth": rng.choice(DEPTHS),
            "tone": rng.choice(TONES),
        }
        text = compose(fields, rng)
        tokens = [control_token("task", "promo")] + [control_token(k, v) for k, v in fields.items()]
        out.append(Example(prompt=prompt_string(tokens), text=text))
    return out


def compose(fields: dict[str, str], rng: random.Random) -> str:
    """One template for the control fields: which pieces a channel uses, then a random variant of each."""
    g = GRAMMAR[fields["lang"]]
    has_brand = fields["brand"] == "yes"

    def pick(options: list[str]) -> str:
        usable = [o for o in options if has_brand or "<BRAND>" not in o]
        return rng.choice(usable)

    budget = length_budget(fields["lang"], fields["ch"])
    opener = pick(g["opener"][f"{fields['seg']}/{fields['tone']}"])
    context = pick(g["context"][fields["ctx"]])
    channel = fields["ch"]
    if channel == "banner":
        pieces = [pick(g["short"][fields["offer"]])]
    elif channel == "email_subject":
        lead = context if context and rng.random() < 0.5 else opener
        pieces = [lead if rng.random() < 0.6 else "", pick(g["short"][fields["offer"]])]
    else:
        lead = [context] if context and rng.random() < 0.5 else [opener, context]
        pieces = [*lead, pick(g["depth"][fields["depth"]]) if rng.random() < 0.4 else "", pick(g["core"][fields["offer"]])]
        if channel == "push" and rng.random() < 0.5:
            pieces.append(pick(g["flavor"][fields["cat"]]))
        if rng.random() < 0.7:
            pieces.append(pick(g["cta"][fields["tone"]]))
    pieces = [p for p in pieces if p]
    # Teach the channel's length budget: drop random extras (never the offer itself) until a typical fill fits.
    while estimated_length(join_pieces(pieces, fields["lang"]), fields["lang"]) > budget:
        extras = [i for i, p in enumerate(pieces) if not any(s in p for s in _OFFER_SLOTS)]
        if not extras:
            break
        pieces.pop(rng.choice(extras))
    return join_pieces(pieces, fields["lang"])


_OFFER_SLOTS = ("<DISCOUNT>", "<AMOUNT>", "<SHIPPING_FEE>")
# Typical rendered length of each slot (characters): product titles run long, prices short.
_TYPICAL_SLOT_CHARS = {"zh-CN": {"<PRODUCT>": 12, "<CONTEXT_PRODUCT>": 12, "<BRAND>": 5, "<CATEGORY>": 2, "<FAV_CATEGORY>": 2, "<VALID_TO>": 6},
                       "en-US": {"<PRODUCT>": 24, "<CONTEXT_PRODUCT>": 24, "<BRAND>": 7, "<CATEGORY>": 8, "<FAV_CATEGORY>": 8, "<VALID_TO>": 6}}
_RULES = json.loads(RULES_PATH.read_text(encoding="utf-8"))


def estimated_length(template: str, locale: str) -> int:
    typical = _TYPICAL_SLOT_CHARS[locale]
    return len(SLOT_PATTERN.sub(lambda m: "x" * typical.get(m.group(0), 5), template))


def length_budget(locale: str, channel: str) -> int:
    """Characters a template may fill: the channel limit, less the SMS opt-out line."""
    rules = _RULES[locale]
    if channel == "sms":
        single = 70 if locale == "zh-CN" else 160
        return single - len(rules["opt_out"]) - (0 if locale == "zh-CN" else 1)
    return int(rules["channels"][channel]["max_chars"])


def join_pieces(pieces: list[str], locale: str) -> str:
    if locale == "zh-CN":
        return "".join(pieces)
    out = ""
    for piece in pieces:
        if out.endswith(",") and piece[:1].isupper() and not piece.startswith("<"):
            piece = piece[0].lower() + piece[1:]
        out = f"{out} {piece}" if out else piece
    return out


# ---------------------------------------------------------------------------------------------- AdvertiseGen
def advertisegen_path() -> Path | None:
    path = real_data_dir() / ADVERTISEGEN_FILE
    return path if path.exists() else None


def load_advertisegen(path: Path | str) -> list[tuple[str, str]]:
    """(content, summary) pairs from AdvertiseGen JSON lines; a bad line is an error naming its number."""
    pairs = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                content, summary = record["content"], record["summary"]
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{lineno}: not an AdvertiseGen record ({exc!r})") from exc
            if not isinstance(content, str) or not isinstance(summary, str):
                raise ValueError(f"{path}:{lineno}: content and summary must be strings")
            # The corpus marks dropped words with <UNK>: they are not text to learn.
            pairs.append((content.strip(), summary.replace("<UNK>", "").strip()))
    return pairs


def split_advertisegen(pairs: list[tuple[str, str]], valid_fraction: float = 0.1, seed: int = 0) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Fixed-seed shuffle, then the first `valid_fraction` is validation."""
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    n_valid = int(round(valid_fraction * len(pairs)))
    return [pairs[i] for i in order[n_valid:]], [pairs[i] for i in order[:n_valid]]


def adgen_prompt(content: str) -> str:
    return control_token("task", "adgen") + content


def adgen_examples(pairs: list[tuple[str, str]]) -> list[Example]:
    return [Example(prompt=adgen_prompt(c), text=s, task="adgen") for c, s in pairs if s]


# ---------------------------------------------------------------------------------------------- feedback
FEEDBACK_COLUMNS = ("prompt", "text", "clicked", "converted")


def _rows(frame: Any) -> list[dict[str, Any]]:
    """Rows of a polars or pandas frame, or a list of dicts."""
    if hasattr(frame, "to_dicts"):
        rows = frame.to_dicts()
    elif hasattr(frame, "to_dict"):
        rows = frame.to_dict("records")
    else:
        rows = list(frame)
    for i, row in enumerate(rows):
        missing = [c for c in FEEDBACK_COLUMNS if c not in row]
        if missing:
            raise ValueError(f"feedback row {i}: missing columns {missing}; need {FEEDBACK_COLUMNS}")
    return rows


def sample_weights(frame: Any, click_bonus: float = 1.0, convert_bonus: float = 3.0) -> np.ndarray:
    """Weight per delivered message: 1, plus `click_bonus` if clicked, plus `convert_bonus` if converted."""
    rows = _rows(frame)
    clicked = np.array([bool(r["clicked"]) for r in rows], dtype=np.float64)
    converted = np.array([bool(r["converted"]) for r in rows], dtype=np.float64)
    return 1.0 + click_bonus * clicked + convert_bonus * converted


def feedback_examples(frame: Any, click_bonus: float = 1.0, convert_bonus: float = 3.0) -> list[Example]:
    """Delivered messages (prompt = generate.py's logged prompt, text = its slot template) as weighted examples."""
    rows = _rows(frame)
    weights = sample_weights(rows, click_bonus, convert_bonus)
    return [Example(prompt=str(r["prompt"]), text=str(r["text"]), task="promo", weight=float(w)) for r, w in zip(rows, weights, strict=True)]
