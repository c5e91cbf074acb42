"""The generator's own tokenizer, trained from its corpus (never downloaded): BPE over runs of word
characters, with every control token and slot token atomic, and a decoder that joins pieces verbatim.

Whitespace and punctuation are single pre-tokens, so decoding is exact: decode(encode(s)) == s for any
text whose characters were seen in training.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

from ml.generator.config import BOS, EOS, PAD, SEP, UNK, all_control_tokens
from ml.generator.slots import SLOT_TOKENS

SPECIAL_TOKENS = [PAD, UNK, BOS, SEP, EOS, *all_control_tokens(), *SLOT_TOKENS]


class CopyTokenizer:
    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tk = tokenizer
        missing = [t for t in SPECIAL_TOKENS if tokenizer.token_to_id(t) is None]
        if missing:
            raise ValueError(f"tokenizer lacks special tokens {missing[:5]}… ({len(missing)} in all)")
        self.pad_id, self.unk_id, self.bos_id, self.sep_id, self.eos_id = (tokenizer.token_to_id(t) for t in (PAD, UNK, BOS, SEP, EOS))
        self.slot_ids = [tokenizer.token_to_id(t) for t in SLOT_TOKENS]
        # Tokens a generated text may never contain: structure, controls, unknown.
        self.never_generated_ids = [tokenizer.token_to_id(t) for t in SPECIAL_TOKENS if t not in SLOT_TOKENS and t != EOS]

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int = 6000, min_frequency: int = 2) -> CopyTokenizer:
        tk = Tokenizer(models.BPE(unk_token=UNK))
        tk.pre_tokenizer = pre_tokenizers.Split(Regex(r"\s+|[^\w\s]"), behavior="isolated")
        tk.decoder = decoders.Fuse()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=SPECIAL_TOKENS, show_progress=False)
        tk.train_from_iterator(texts, trainer)
        return cls(tk)

    @property
    def vocab_size(self) -> int:
        return self.tk.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        return self.tk.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.tk.encode_batch(texts, add_special_tokens=False)]

    def decode(self, ids: list[int]) -> str:
        """Text of generated ids up to (not including) <eos>; slot tokens are kept."""
        if self.eos_id in ids:
            ids = ids[: ids.index(self.eos_id)]
        return self.tk.decode([i for i in ids if i != self.pad_id], skip_special_tokens=False)

    def save(self, path: Path | str) -> None:
        self.tk.save(str(path))

    @classmethod
    def load(cls, path: Path | str) -> CopyTokenizer:
        return cls(Tokenizer.from_file(str(path)))
