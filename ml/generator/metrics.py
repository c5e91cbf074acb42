"""Text metrics, implemented from their definitions: distinct-n, corpus BLEU-4 (Papineni et al. 2002), ROUGE-L
F1 (Lin 2004). Chinese is scored on characters (no word segmenter needed), English on whitespace words."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

_CJK = re.compile(r"[\u3400-\u9fff]")


def units(text: str) -> list[str]:
    """Characters for Chinese (non-space), words for Latin text: 'Get 8折' -> ['Get', '8', '折']."""
    out: list[str] = []
    for word in text.split():
        if _CJK.search(word):
            out.extend(word)
        else:
            out.append(word)
    return out


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Distinct n-grams over all n-grams in the texts (Li et al. 2016); 0 when there are none."""
    grams = [tuple(u[i : i + n]) for t in texts for u in [units(t)] for i in range(len(u) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def corpus_bleu(references: Sequence[str], hypotheses: Sequence[str], max_n: int = 4) -> float:
    """Corpus BLEU with one reference per hypothesis, uniform weights, brevity penalty; in [0, 100]."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    matches, totals = [0] * max_n, [0] * max_n
    ref_len = hyp_len = 0
    for ref, hyp in zip(references, hypotheses, strict=True):
        r, h = units(ref), units(hyp)
        ref_len += len(r)
        hyp_len += len(h)
        for n in range(1, max_n + 1):
            h_grams = Counter(tuple(h[i : i + n]) for i in range(len(h) - n + 1))
            r_grams = Counter(tuple(r[i : i + n]) for i in range(len(r) - n + 1))
            matches[n - 1] += sum(min(c, r_grams[g]) for g, c in h_grams.items())
            totals[n - 1] += max(len(h) - n + 1, 0)
    if hyp_len == 0 or min(matches) == 0:
        return 0.0
    log_precision = sum(math.log(m / t) for m, t in zip(matches, totals, strict=True)) / max_n
    brevity = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    return 100.0 * brevity * math.exp(log_precision)


def _lcs(a: list[str], b: list[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Mean sentence ROUGE-L F1 (beta = 1) over the pairs, in [0, 100]."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    scores = []
    for ref, hyp in zip(references, hypotheses, strict=True):
        r, h = units(ref), units(hyp)
        lcs = _lcs(r, h)
        if lcs == 0:
            scores.append(0.0)
            continue
        p, rec = lcs / len(h), lcs / len(r)
        scores.append(2 * p * rec / (p + rec))
    return 100.0 * sum(scores) / len(scores) if scores else 0.0
