"""Ranking message variants by feedback: the simulator's hidden message effect, and the click head that learns it."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from ml.generator.corpus import grammar_examples, length_budget
from ml.generator.ranker import ClickRanker, RankerConfig, parse_prompt
from ml.generator.slots import SLOT_PATTERN
from simulator import Shop, ShopConfig, simulate
from simulator.response import message_appeal


# ---------------------------------------------------------------------------------------------- simulator
@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Shop:
    return simulate(tmp_path_factory.mktemp("shop"), ShopConfig(n_users=3000, n_products=60, n_offers=8, history_days=3, seed=5))


def _deliveries(shop: Shop, message: str | None) -> pl.DataFrame:
    day, n = shop.next_day(), shop.config.n_users
    frame = pl.DataFrame({
        "delivery_id": [f"d{i:05d}" for i in range(n)],
        "user_id": [f"u{i + 1:07d}" for i in range(n)],
        "offer_id": [f"o{(i % 4) + 1:03d}" for i in range(n)],
        "product_id": [f"p{(i % 60) + 1:06d}" for i in range(n)],
        "channel": ["push"] * n,
        "send_at": [datetime(day.year, day.month, day.day, 10)] * n,
    })
    return frame if message == "no column" else frame.with_columns(pl.lit(message, pl.Utf8).alias("message"))


def _responses(shop: Shop, deliveries: pl.DataFrame) -> tuple[np.ndarray, pl.DataFrame, int]:
    """Opened per delivery (today's feedback), the feedback file, and conversions."""
    day = shop.next_day()
    result = shop.advance_day(day, deliveries)
    feedback = pl.read_parquet(shop.landing / "feedback" / f"date={day}" / "feedback.parquet")
    opened = deliveries["delivery_id"].is_in(feedback.filter(pl.col("event") == "opened")["delivery_id"].implode()).to_numpy()
    for later in sorted((shop.truth_dir / "promo_state").glob("*.npz")):  # redo the same day next time
        if later.stem > str(day):
            later.unlink()
    return opened, feedback, result.realized_conversions


def test_message_words_move_opens_not_purchases(shop: Shop) -> None:
    """No text (no column, or nulls) is the world as before; a short urgent text wins Chinese readers and
    loses English ones, a long calm one the reverse; purchases never change."""
    _, plain, conversions = _responses(shop, _deliveries(shop, "no column"))
    _, nulls, same = _responses(shop, _deliveries(shop, None))
    assert plain.equals(nulls) and same == conversions
    chinese = shop.u["tz_idx"][: shop.config.n_users] == 0
    short_urgent, _, c1 = _responses(shop, _deliveries(shop, "限时8折！手慢无"))
    long_calm, _, c2 = _responses(shop, _deliveries(shop, "Aurora 经典T恤现在购买可以享受8折优惠，欢迎来店里慢慢挑选，期待与您再次相遇，祝您生活愉快。"))
    assert c1 == c2 == conversions
    assert short_urgent[chinese].mean() > 1.3 * long_calm[chinese].mean()
    assert long_calm[~chinese].mean() > 1.2 * short_urgent[~chinese].mean()
    # The same reader, the same text: the same appeal (keyed draws), and no text means no effect.
    users, zh = np.arange(5), np.array([True, True, False, False, True])
    texts = ["限时8折！", None, "Take 20% off", "", "好物推荐"]
    first = message_appeal(5, users, zh, np.zeros(5, dtype=np.int64), texts)
    assert np.array_equal(first, message_appeal(5, users, zh, np.zeros(5, dtype=np.int64), texts))
    assert first[1] == first[3] == 1.0 and first[0] != 1.0


# ---------------------------------------------------------------------------------------------- ranker
def _true_rates(prompt: str, text: str) -> tuple[float, float]:
    """A planted taste: Chinese readers open and click short copy, English readers long copy."""
    fields = parse_prompt(prompt)
    brevity = 1.0 - 2.0 * min(len(text) / length_budget(fields["lang"], fields["ch"]), 1.0)
    taste = 1.0 if fields["lang"] == "zh-CN" else -1.0
    return 0.25 * np.exp(1.2 * taste * brevity), 0.3 * np.exp(0.8 * taste * brevity)


def _logged(n: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for e in grammar_examples(n, seed=seed):
        text = SLOT_PATTERN.sub("xxxx", e.text)
        p_open, p_click = _true_rates(e.prompt, text)
        opened = rng.random() < p_open
        rows.append({"prompt": e.prompt, "template": e.text, "message": text, "opened": opened,
                     "clicked": bool(opened and rng.random() < p_click)})
    return pl.DataFrame(rows)


def test_ranker_learns_what_readers_open_and_click(tmp_path: Path) -> None:
    ranker, metrics = ClickRanker.fit(_logged(8000, seed=1), RankerConfig(seed=0))
    assert ranker is not None and metrics["valid_gain"] > 0 and metrics["valid_funnel_nll"] < metrics["base_funnel_nll"]
    fresh = [(e.prompt, e.text, SLOT_PATTERN.sub("xxxx", e.text)) for e in grammar_examples(600, seed=2)]
    truth = np.array([np.prod(_true_rates(p, m)) for p, _, m in fresh])
    predicted = ranker.predict(*zip(*fresh, strict=True))["p_click"]
    assert np.corrcoef(np.log(truth), np.log(predicted))[0, 1] > 0.5
    # Variants for the same language and channel whose true click rates differ by 30 % or more: the ranker
    # orders most of them right (a likelihood ranking knows nothing of the readers: half).
    context = np.array([parse_prompt(p)["lang"] + parse_prompt(p)["ch"] for p, _, _ in fresh])
    i, j = np.triu_indices(len(fresh), 1)
    clear = (np.abs(np.log(truth[i] / truth[j])) > np.log(1.3)) & (context[i] == context[j])
    agree = np.sign(truth[i] - truth[j]) == np.sign(predicted[i] - predicted[j])
    assert clear.sum() > 1000 and agree[clear].mean() > 0.7
    ranker.save(tmp_path / "ranker")
    again = ClickRanker.load(tmp_path / "ranker")
    assert np.array_equal(again.predict(*zip(*fresh[:20], strict=True))["p_click"], predicted[:20])
    with pytest.raises(FileNotFoundError, match="missing ranker.pt"):
        ClickRanker.load(tmp_path)


def test_ranker_needs_feedback_and_says_why() -> None:
    ranker, metrics = ClickRanker.fit(_logged(50, seed=3))
    assert ranker is None and metrics["reason"].startswith("too little feedback: 50 messages")
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['clicked'\]"):
        ClickRanker.fit(_logged(50, seed=3).drop("clicked"))
    with pytest.raises(ValueError, match="lacks control field"):
        parse_prompt("<task:promo><lang:zh-CN>")
