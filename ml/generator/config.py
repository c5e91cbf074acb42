"""Model size and the closed vocabularies of the control prefix.

The prefix is a fixed sequence of control tokens (one per field, in this order), so every promo request
has the same prefix length and a batch of them needs no padding.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

LOCALES = ("zh-CN", "en-US")
CHANNELS = ("push", "sms", "email_subject", "banner")
SEGMENTS = ("new", "active", "lapsed", "vip")
CONTEXTS = ("none", "viewed", "bought", "favorite_category")
OFFER_TYPES = ("percent_off", "amount_off", "spend_threshold", "free_shipping")
DEPTHS = ("low", "mid", "high")
TONES = ("friendly", "urgent", "premium")
CATEGORIES = ("apparel", "shoes", "beauty", "electronics", "home", "food", "sports", "baby", "books", "pets", "other")

# Field name -> allowed values; the prefix token for field f and value v is f"<{f}:{v}>".
CONTROL_FIELDS: dict[str, tuple[str, ...]] = {
    "lang": LOCALES,
    "ch": CHANNELS,
    "seg": SEGMENTS,
    "ctx": CONTEXTS,
    "cat": CATEGORIES,
    "brand": ("yes", "no"),
    "offer": OFFER_TYPES,
    "depth": DEPTHS,
    "tone": TONES,
    "task": ("promo", "adgen"),
}

PAD, UNK, BOS, SEP, EOS = "<pad>", "<unk>", "<bos>", "<sep>", "<eos>"


def control_token(field: str, value: str) -> str:
    """The prefix token for one control field; unknown values are an error, not a silent default."""
    allowed = CONTROL_FIELDS.get(field)
    if allowed is None:
        raise ValueError(f"unknown control field {field!r}; known: {sorted(CONTROL_FIELDS)}")
    if value not in allowed:
        raise ValueError(f"control field {field!r} has no value {value!r}; allowed: {allowed}")
    return f"<{field}:{value}>"


def all_control_tokens() -> list[str]:
    return [control_token(f, v) for f, values in CONTROL_FIELDS.items() for v in values]


@dataclass
class GPTConfig:
    """nanoGPT-style size. The default trains on a laptop CPU in a few minutes."""

    vocab_size: int = 5000
    block_size: int = 192  # longest sequence (prefix + text) the position table covers
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0  # the grammar is abundant; dropout costs a third of a CPU step
    bias: bool = False

    def __post_init__(self) -> None:
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
