"""Copy generator: the verifier and the rules catch planted violations, fallback never returns nothing,
generation is reproducible, the KV cache changes nothing but speed, slots render per locale."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest
import torch

from ml.generator.compliance import ComplianceEngine, sms_segments
from ml.generator.config import TONES, GPTConfig
from ml.generator.corpus import adgen_prompt, feedback_examples, grammar_examples, sample_weights
from ml.generator.evaluate import random_requests
from ml.generator.generate import CopyGenerator
from ml.generator.grammar import GRAMMAR
from ml.generator.metrics import corpus_bleu, distinct_n, rouge_l
from ml.generator.request import CopyRequest, OfferInfo, ProductInfo
from ml.generator.slots import render
from ml.generator.train import TrainConfig, train_generator
from ml.generator.verifier import Verifier

TEE = ProductInfo("p1", "Aurora 经典T恤", "apparel", 199.0, "Aurora")
MUG = ProductInfo("p2", "Lumen Cozy Mug", "home", 25.5, "Lumen")
OTHER = ProductInfo("p3", "Nordwind 轻盈夹克", "apparel", 399.0, "Nordwind")
PCT20 = OfferInfo("o1", "percent_off", 20.0, valid_to=date(2026, 6, 30))


def request(locale: str = "zh-CN", channel: str = "push", product: ProductInfo = TEE, offer: OfferInfo = PCT20, **kw) -> CopyRequest:
    return CopyRequest("r1", locale, channel, kw.pop("segment", "active"), kw.pop("tone", "friendly"), product, offer, **kw)


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model trained for a few steps on the grammar: enough to exercise every path, not to write well."""
    cfg = TrainConfig(model=GPTConfig(n_layer=1, n_head=2, n_embd=32, block_size=96), n_grammar=1500, use_advertisegen=False,
                      vocab_size=600, max_steps=12, batch_size=16, eval_every=12, checkpoint_every=1000, progress=False, device="cpu")
    return train_generator(cfg, tmp_path_factory.mktemp("gen") / "model")


@pytest.fixture(scope="module")
def generator(tiny_model_dir: Path) -> CopyGenerator:
    return CopyGenerator.load(tiny_model_dir)


# ---------------------------------------------------------------------------------------------- slots
def test_slots_render_per_locale() -> None:
    zh = render("<PRODUCT>原价<PRICE>，现在<DISCOUNT>只要<NEW_PRICE>，<VALID_TO>截止", request())
    assert zh.ok and zh.text == "Aurora 经典T恤原价¥199，现在8折只要¥159.2，6月30日截止"
    en = render("<DISCOUNT> off <PRODUCT>, now <NEW_PRICE>. Ends <VALID_TO>.", request("en-US", product=MUG))
    assert en.text == "20% off Lumen Cozy Mug, now $20.4. Ends Jun 30."
    assert render("<DISCOUNT>", request(offer=OfferInfo("o", "percent_off", 15.0))).text == "8.5折"
    spend = request("en-US", offer=OfferInfo("o", "spend_threshold", 30.0, min_spend=199.0))
    assert render("Spend <MIN_SPEND>, save <AMOUNT>", spend).text == "Spend $199, save $30"
    missing = render("<CONTEXT_PRODUCT> <SHIPPING_FEE> <NOT_A_SLOT>", request())
    assert missing.unavailable == ["<CONTEXT_PRODUCT>", "<SHIPPING_FEE>"] and missing.unknown == ["<NOT_A_SLOT>"]


def test_bad_records_are_named() -> None:
    with pytest.raises(ValueError, match="offer 'x'.*offer_type"):
        OfferInfo("x", "bogo", 1.0)
    with pytest.raises(ValueError, match="request 'r1'.*channel"):
        request(channel="fax")
    with pytest.raises(ValueError, match="context_product"):
        request(context="bought")


# ---------------------------------------------------------------------------------------------- verifier
def test_verifier_catches_planted_facts() -> None:
    v = Verifier(known_brands=["Aurora", "Nordwind"], known_products=[TEE.title, OTHER.title])
    req = request()
    assert v.verify("Aurora 经典T恤限时8折，只要¥159.2，6月30日截止", req).ok
    kinds = lambda text: {x.kind for x in v.verify(text, req).violations}  # noqa: E731
    assert kinds("Aurora 经典T恤限时7折") == {"wrong_zhe"}
    assert kinds("Aurora 经典T恤限时七折") == {"wrong_zhe"}
    assert kinds("现在只要¥59！") == {"wrong_money"}
    assert kinds("现在只要59元！") == {"wrong_money"}
    assert kinds("Nordwind 新品同享8折") == {"unknown_name"}
    assert kinds("前100名下单享8折") == {"unknown_number"}
    assert kinds("7月1日截止") == {"wrong_date"}
    assert kinds("<PRODUCT>享<DISCOUNT>") == {"placeholder"}
    en = request("en-US", product=MUG)
    assert v.verify("20% off Lumen Cozy Mug, now $20.4", en).ok
    assert {x.kind for x in v.verify("30% off Lumen Cozy Mug, was $30", en).violations} == {"wrong_percent", "wrong_money"}


# ---------------------------------------------------------------------------------------------- compliance
def test_compliance_catches_planted_violations() -> None:
    engine = ComplianceEngine()
    rules = lambda text, ch="push", loc="zh-CN", **kw: {v.rule for v in engine.check(text, ch, loc, **kw).violations}  # noqa: E731
    assert rules("Aurora 经典T恤限时8折，欢迎选购。", names=request().own_names()) == set()
    assert rules("全网最低价，8折！") == {"banned_term"}
    assert rules("国家级品质，8折") == {"banned_term"}
    assert rules("最近看过的好物8折") == set()  # 最近 ("recently") is allowed
    assert rules("The best ever deal: 20% off", loc="en-US") == {"banned_term"}
    assert rules("Guaranteed savings, 20% off", loc="en-US") == {"banned_term"}
    assert rules("8折优惠，详询 shop@example.com") == {"pii", "mixed_language"}  # an address is Latin text too
    assert rules("8折优惠，致电13812345678") == {"pii"}
    assert rules("8折优惠", ch="sms") == {"sms_opt_out"}
    assert rules(engine.finalize("8折优惠", "sms", "zh-CN"), ch="sms") == set()
    long_sms = engine.finalize("好" * 70, "sms", "zh-CN")
    assert sms_segments(long_sms) == (2, "ucs2") and rules(long_sms, ch="sms") == {"sms_segments"}
    assert sms_segments("a" * 160) == (1, "gsm7") and sms_segments("a" * 159 + "€") == (2, "gsm7")
    assert rules("x" * 61, ch="email_subject", loc="en-US") == {"length"}
    late = engine.check("8折优惠", "push", "zh-CN", send_at=datetime(2026, 6, 1, 23, 30))
    assert late.content_ok and not late.timing_ok and late.earliest_send_at == datetime(2026, 6, 2, 8, 0)
    early = engine.check("8折优惠", "push", "zh-CN", send_at=datetime(2026, 6, 1, 7, 0))
    assert early.earliest_send_at == datetime(2026, 6, 1, 8, 0)
    assert engine.check("8折优惠", "push", "zh-CN", send_at=datetime(2026, 6, 1, 12, 0)).passed


def test_grammar_has_no_absolute_claims_or_digits() -> None:
    engine = ComplianceEngine()
    for locale, grammar in GRAMMAR.items():
        for group in grammar.values():
            for pieces in group.values():
                for piece in pieces:
                    assert not any(ch.isdigit() for ch in piece), piece
                    assert "banned_term" not in {v.rule for v in engine.check(piece or "x", "push", locale).violations}, piece


# ---------------------------------------------------------------------------------------------- generation
def test_fallback_never_returns_nothing(generator: CopyGenerator, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = ["全网最低价<DISCOUNT>！", "<DISCOUNT> 致电13812345678", "仅需¥1"]
    monkeypatch.setattr(generator, "sample_templates", lambda prompts, k, seed, **kw: [[(bad[i % 3], -1.0) for i in range(k)] for _ in prompts])
    long_title = ProductInfo("p9", "Aurora " + "超长的商品名称" * 10, "apparel", 199.0, "Aurora")
    reqs = [request(), request(channel="sms", product=long_title), request("en-US", "banner", MUG, send_at=datetime(2026, 6, 1, 23, 0))]
    messages = generator.generate(reqs, k=3, seed=1)
    engine = ComplianceEngine()
    for r, m in zip(reqs, messages, strict=True):
        assert m.text and m.used_fallback and m.passed and m.candidate_index == -1
        assert any(reason.startswith("fallback") for reason in m.reasons)
        assert engine.check(m.text, r.channel, r.locale, names=r.own_names()).content_ok
    assert "超长" not in messages[1].text and messages[1].text.endswith("回T退订")
    assert messages[2].send_at == datetime(2026, 6, 2, 8, 0)


def test_generated_messages_are_checked_and_logged(generator: CopyGenerator) -> None:
    reqs = random_requests(24, seed=3)
    messages = generator.generate(reqs, k=4, seed=0)
    for r, m in zip(reqs, messages, strict=True):
        assert m.text and m.passed and len(m.candidates) == 4 and 0 < m.propensity <= 1
        assert Verifier([r.product.brand or ""], [r.product.title]).verify(m.text, r).ok
        assert ComplianceEngine().check(m.text, r.channel, r.locale, names=r.own_names()).content_ok
        assert m.prompt.startswith("<task:promo><lang:")
        if not m.used_fallback:
            assert m.candidates[m.candidate_index].passed


def test_scorer_picks_the_candidate(generator: CopyGenerator, monkeypatch: pytest.MonkeyPatch) -> None:
    good = ["<PRODUCT>限时<DISCOUNT>。", "限时<DISCOUNT>优惠。", "<PRODUCT>享<DISCOUNT>！"]
    monkeypatch.setattr(generator, "sample_templates", lambda prompts, k, seed, **kw: [[(good[i], -1.0) for i in range(k)] for _ in prompts])
    by_length = lambda candidates, req: [-float(len(c.text)) for c in candidates]  # noqa: E731
    m = generator.generate([request()], k=3, seed=0, scorer=by_length, explore=0.0)[0]
    assert m.candidate_index == 1 and m.text == "限时8折优惠。" and m.propensity == 1.0


def test_generation_is_deterministic_for_a_seed(generator: CopyGenerator) -> None:
    reqs = random_requests(8, seed=5)
    first = [(m.text, [c.template for c in m.candidates]) for m in generator.generate(reqs, k=3, seed=42)]
    again = [(m.text, [c.template for c in m.candidates]) for m in generator.generate(reqs, k=3, seed=42)]
    assert first == again


def test_kv_cache_matches_full_recompute(generator: CopyGenerator) -> None:
    """Greedy tokens with and without the cache, for left-padded prompts of different lengths, and each
    prompt alone against the batch (padding must not change a row)."""
    prompts = [adgen_prompt("类型#裙*颜色#红色"), adgen_prompt("类型#上衣*版型#宽松*风格#简约*图案#条纹*衣样式#卫衣"),
               grammar_examples(1, seed=3)[0].prompt]
    cached = generator.sample_templates(prompts, k=1, seed=0, greedy=True, max_new_tokens=24, use_cache=True)
    full = generator.sample_templates(prompts, k=1, seed=0, greedy=True, max_new_tokens=24, use_cache=False)
    assert [c[0][0] for c in cached] == [f[0][0] for f in full]
    for c, f in zip(cached, full, strict=True):
        assert c[0][1] == pytest.approx(f[0][1], abs=1e-4)
    alone = [generator.sample_templates([p], k=1, seed=0, greedy=True, max_new_tokens=24)[0][0][0] for p in prompts]
    assert alone == [c[0][0] for c in cached]


def test_save_load_round_trip(generator: CopyGenerator, tmp_path: Path) -> None:
    generator.save(tmp_path / "copy")
    again = CopyGenerator.load(tmp_path / "copy")
    reqs = random_requests(4, seed=9)
    assert [m.text for m in again.generate(reqs, seed=3)] == [m.text for m in generator.generate(reqs, seed=3)]
    with pytest.raises(FileNotFoundError, match="missing model.pt"):
        CopyGenerator.load(tmp_path)


def test_tokenizer_round_trips(generator: CopyGenerator) -> None:
    tok = generator.tokenizer
    for text in ("您刚刚购买了<CONTEXT_PRODUCT>，现在购买<PRODUCT>可以享受<DISCOUNT>优惠！", "Get <DISCOUNT> off <PRODUCT>, friend!"):
        assert tok.decode(tok.encode(text)) == text


# ---------------------------------------------------------------------------------------------- data, metrics
def test_feedback_weights() -> None:
    rows = [{"prompt": "<task:promo>", "text": "a", "clicked": 0, "converted": 0},
            {"prompt": "<task:promo>", "text": "b", "clicked": 1, "converted": 0},
            {"prompt": "<task:promo>", "text": "c", "clicked": 1, "converted": 1}]
    assert sample_weights(rows).tolist() == [1.0, 2.0, 5.0]
    assert [e.weight for e in feedback_examples(rows, click_bonus=0.5, convert_bonus=1.0)] == [1.0, 1.5, 2.5]
    with pytest.raises(ValueError, match="row 0: missing columns \\['converted'\\]"):
        sample_weights([{"prompt": "p", "text": "t", "clicked": 1}])


def test_grammar_is_deterministic() -> None:
    assert grammar_examples(50, seed=7) == grammar_examples(50, seed=7)
    assert grammar_examples(50, seed=7) != grammar_examples(50, seed=8)


def test_text_metrics() -> None:
    assert corpus_bleu(["宽松的阔腿裤很好穿"], ["宽松的阔腿裤很好穿"]) == pytest.approx(100.0)
    assert corpus_bleu(["宽松的阔腿裤很好穿"], ["完全不同的句子啊"]) == 0.0
    assert rouge_l(["abcd"], ["abxd"]) == pytest.approx(0.0)  # one Latin word each, no overlap
    assert rouge_l(["宽松阔腿"], ["宽松裤腿"]) == pytest.approx(75.0)  # LCS 宽松腿 = 3 of 4
    assert distinct_n(["a b a b"], 1) == pytest.approx(0.5)


def test_weighted_loss_uses_weights() -> None:
    from ml.generator.model import CopyGPT

    torch.manual_seed(0)
    model = CopyGPT(GPTConfig(vocab_size=50, block_size=16, n_layer=1, n_head=2, n_embd=16))
    ids = torch.randint(0, 50, (2, 8))
    mask = torch.ones(2, 8, dtype=torch.bool)
    with torch.no_grad():
        per_row = [float(model.loss(ids[i : i + 1], mask[i : i + 1], mask[i : i + 1], torch.ones(1))) for i in range(2)]
        weighted = float(model.loss(ids, mask, mask, torch.tensor([3.0, 1.0])))
    assert weighted == pytest.approx((3 * per_row[0] + per_row[1]) / 4, rel=1e-5)


# ---------------------------------------------------------------------------------------------- language, titles
def test_mixed_language_messages_are_rejected() -> None:
    engine = ComplianceEngine()
    rules = lambda text, loc="zh-CN", names=(): {v.rule for v in engine.check(text, "push", loc, names=names).violations}  # noqa: E731
    zh_names = request().own_names()
    assert rules("Aurora 经典T恤限时8折，快来看看吧～", names=zh_names) == set()  # the brand is a name, 恤's T a letter
    assert rules("Aurora 经典T恤限时8折，hurry up！", names=zh_names) == {"mixed_language"}  # planted English words
    assert rules("Aurora 经典T恤限时8折") == {"mixed_language"}  # without the names the brand is English too
    assert rules("专属优惠已送达，详情请见App。") == set()  # an allowed word
    mug = request("en-US", product=MUG).own_names()
    assert rules("Take 20% off Lumen Cozy Mug, 快来看看吧！", "en-US", mug) == {"mixed_language"}
    assert rules("Take 20% off Lumen Cozy Mug！", "en-US", mug) == {"mixed_language"}  # a full-width mark
    assert rules("Take 20% off Lumen Cozy Mug today!", "en-US", mug) == set()
    qinghe = ProductInfo("p5", "青禾 Classic Tee", "apparel", 99.0, "青禾")
    assert rules("青禾 Classic Tee is 20% off today.", "en-US", request("en-US", product=qinghe).own_names()) == set()
    detail = engine.check("8折，hurry", "push", "zh-CN").reasons
    assert detail == ["mixed_language: 'hurry' not in zh-CN"]


def test_mixed_language_candidate_falls_back(generator: CopyGenerator, monkeypatch: pytest.MonkeyPatch) -> None:
    """A generated zh-CN candidate with English words outside the slots never reaches a reader."""
    mixed = ["<PRODUCT>限时<DISCOUNT>，hurry up！", "<PRODUCT>限时<DISCOUNT>，快来看看吧～"]
    monkeypatch.setattr(generator, "sample_templates", lambda prompts, k, seed, **kw: [[(mixed[i % 2], -1.0 - i) for i in range(k)] for _ in prompts])
    m = generator.generate([request()], k=2, seed=0, explore=0.0)[0]
    assert not m.candidates[0].passed and any(r.startswith("mixed_language") for r in m.candidates[0].reasons)
    assert m.candidate_index == 1 and m.text == "Aurora 经典T恤限时8折，快来看看吧～"


def test_chinese_titles_reach_english_readers_in_english() -> None:
    zh_title = ProductInfo("p7", "Aurora 经典T恤", "apparel", 199.0, "Aurora", subcategory="tops")
    assert zh_title.title_for("en-US") == "Aurora tops" and zh_title.title_for("zh-CN") == "Aurora 经典T恤"
    assert ProductInfo("p8", "青禾 柔软卫衣", "apparel", 99.0, "青禾").title_for("en-US") == "apparel"  # no Latin brand
    assert MUG.title_for("en-US") == MUG.title  # already English: unchanged
    assert ProductInfo("p9", "青禾 柔软卫衣", "服装", 99.0, "青禾").title_for("en-US") == "青禾 柔软卫衣"  # nothing English to say
    en = request("en-US", product=zh_title, context="viewed", context_product=zh_title)
    rendered = render("Still thinking about <CONTEXT_PRODUCT>? Get <DISCOUNT> off <PRODUCT>!", en)
    assert rendered.text == "Still thinking about Aurora tops? Get 20% off Aurora tops!"
    assert Verifier(["Aurora"], [zh_title.title]).verify(rendered.text, en).ok
    assert ComplianceEngine().check(rendered.text, "push", "en-US", names=en.own_names()).passed
    assert render("<PRODUCT>限时<DISCOUNT>", request(product=zh_title)).text == "Aurora 经典T恤限时8折"


def test_variants_spread_over_tones(generator: CopyGenerator) -> None:
    reqs = random_requests(6, seed=4)
    messages = generator.generate(reqs, k=3, seed=1, tones=TONES)
    for m in messages:
        assert [c.tone for c in m.candidates] == list(TONES)
        assert all(f"<tone:{c.tone}>" in c.prompt for c in m.candidates)
        if m.candidate_index >= 0:
            assert m.prompt == m.candidates[m.candidate_index].prompt
    assert [m.text for m in generator.generate(reqs, k=3, seed=1, tones=TONES)] == [m.text for m in messages]
    with pytest.raises(ValueError, match="tones must be"):
        generator.generate(reqs, k=3, tones=["shouty"])


def test_scorer_sees_each_variant_and_exploration_is_logged(generator: CopyGenerator, monkeypatch: pytest.MonkeyPatch) -> None:
    good = ["<PRODUCT>限时<DISCOUNT>。", "限时<DISCOUNT>优惠。", "<PRODUCT>享<DISCOUNT>！"]
    monkeypatch.setattr(generator, "sample_templates", lambda prompts, k, seed, **kw: [[(good[i % 3], -1.0)] * k for i, _ in enumerate(prompts)])
    premium = lambda candidates, req: [float(c.tone == "premium") for c in candidates]  # noqa: E731
    m = generator.generate([request()], k=3, seed=0, scorer=premium, explore=0.0, tones=TONES)[0]
    assert m.candidate_index == 2 and m.candidates[2].tone == "premium" and m.propensity == 1.0
    explored = generator.generate([request()] * 200, k=3, seed=0, scorer=premium, explore=1.0, tones=TONES)
    assert {x.candidate_index for x in explored} == {0, 1, 2}
    assert all(x.propensity == pytest.approx(1 / 3) for x in explored)
