"""Phrase pieces of the copywriting grammar, per language. Data, not logic (corpus.py composes them).

Every piece is written with slot tokens and no digits, so the model never sees a literal fact, and with
no absolute claims (a test runs the whole grammar through the compliance engine).
"""

from __future__ import annotations

ZH: dict[str, dict[str, list[str]]] = {
    "opener": {
        "new/friendly": ["欢迎来到我们的小店！", "新朋友你好！", "初次见面，送你一份见面礼：", "欢迎加入我们！"],
        "new/urgent": ["新人福利限时领取！", "新人专享，手慢无！", "新人礼今天就要结束啦！"],
        "new/premium": ["欢迎开启品质生活，", "新客尊享礼遇：", "为新朋友精心准备："],
        "active/friendly": ["亲爱的老朋友，", "感谢你的每一次光临！", "又见面啦！"],
        "active/urgent": ["今日专属福利！", "限时好价来了！", "福利倒计时！"],
        "active/premium": ["为你甄选的好物，", "专属礼遇已送达：", "懂你的品味，"],
        "lapsed/friendly": ["好久不见，我们想你啦！", "好久没来逛逛了，", "想你了，回来看看吧！"],
        "lapsed/urgent": ["回归福利即将结束！", "久别重逢礼，限时领取！", "回来看看，福利不等人！"],
        "lapsed/premium": ["久违了，为你准备了回归礼遇：", "欢迎回来，专属心意奉上：", "期待与你再次相遇，"],
        "vip/friendly": ["亲爱的会员，", "会员好！", "感谢会员一路相伴，"],
        "vip/urgent": ["会员专属，限时开抢！", "会员福利倒计时！", "会员特权限时开放！"],
        "vip/premium": ["尊贵会员专享礼遇：", "致尊敬的会员：", "会员尊享，"],
    },
    "context": {
        "bought": ["您刚刚购买了<CONTEXT_PRODUCT>，", "感谢购买<CONTEXT_PRODUCT>！", "买了<CONTEXT_PRODUCT>的你，", "<CONTEXT_PRODUCT>已经下单，"],
        "viewed": ["您刚刚看过<CONTEXT_PRODUCT>，", "还在想着<CONTEXT_PRODUCT>吗？", "看中<CONTEXT_PRODUCT>很久了吧？", "<CONTEXT_PRODUCT>还在购物车里等你，"],
        "favorite_category": ["喜欢<FAV_CATEGORY>的你，", "为爱逛<FAV_CATEGORY>的你准备了惊喜：", "你常逛的<FAV_CATEGORY>有新福利，"],
        "none": [""],
    },
    "core": {
        "percent_off": ["现在购买<PRODUCT>可以享受<DISCOUNT>优惠！", "<PRODUCT>限时<DISCOUNT>！", "<PRODUCT>原价<PRICE>，现在<DISCOUNT>只要<NEW_PRICE>！",
                        "<PRODUCT>享<DISCOUNT>，到手<NEW_PRICE>。", "<BRAND>好物<DISCOUNT>起，<PRODUCT>也在其中！", "入手<PRODUCT>享<DISCOUNT>。"],
        "amount_off": ["<PRODUCT>立减<AMOUNT>！", "下单<PRODUCT>立省<AMOUNT>。", "<PRODUCT>到手价<NEW_PRICE>，立减<AMOUNT>！",
                       "<PRODUCT>直降<AMOUNT>，只要<NEW_PRICE>。", "<BRAND>立减<AMOUNT>，<PRODUCT>等你带回家。"],
        "spend_threshold": ["全场满<MIN_SPEND>减<AMOUNT>！", "<CATEGORY>满<MIN_SPEND>立减<AMOUNT>，<PRODUCT>也参加哦。", "满<MIN_SPEND>减<AMOUNT>，<PRODUCT>凑单正合适。",
                            "购物满<MIN_SPEND>立省<AMOUNT>。", "<BRAND>满<MIN_SPEND>减<AMOUNT>，<PRODUCT>一起带走。"],
        "free_shipping": ["<PRODUCT>现在下单包邮，省下<SHIPPING_FEE>运费！", "包邮到家，立省<SHIPPING_FEE>运费。", "<PRODUCT>免运费，省<SHIPPING_FEE>。",
                          "<BRAND>好物包邮，<PRODUCT>省<SHIPPING_FEE>运费。"],
    },
    "short": {
        "percent_off": ["<PRODUCT><DISCOUNT>", "<CATEGORY>限时<DISCOUNT>", "<BRAND>限时<DISCOUNT>", "<DISCOUNT>好价来袭"],
        "amount_off": ["<PRODUCT>立减<AMOUNT>", "<CATEGORY>立减<AMOUNT>", "<BRAND>直降<AMOUNT>", "立减<AMOUNT>"],
        "spend_threshold": ["满<MIN_SPEND>减<AMOUNT>", "<CATEGORY>满<MIN_SPEND>减<AMOUNT>", "<BRAND>满<MIN_SPEND>减<AMOUNT>"],
        "free_shipping": ["<PRODUCT>包邮省<SHIPPING_FEE>", "包邮省<SHIPPING_FEE>", "<CATEGORY>包邮省<SHIPPING_FEE>"],
    },
    "depth": {"high": ["力度超大！", "超值福利！"], "mid": ["好价来袭！", "划算！"], "low": ["小惊喜，", "一点心意，"]},
    "flavor": {
        "apparel": ["穿出好心情。"], "shoes": ["舒适每一步。"], "beauty": ["美丽加分。"], "electronics": ["科技随身。"],
        "home": ["给家多点温度。"], "food": ["美味不等待。"], "sports": ["一起动起来。"], "baby": ["宝贝用得安心。"],
        "books": ["好书相伴。"], "pets": ["毛孩子的福利。"], "other": ["好物推荐。"],
    },
    "cta": {
        "friendly": ["快来看看吧～", "点击查看详情。", "去逛逛吧！", "等你来挑。"],
        "urgent": ["<VALID_TO>截止，抓紧时间！", "数量有限，先到先得！", "手慢无，速抢！", "活动<VALID_TO>结束，别错过！"],
        "premium": ["静候您的光临。", "即刻尊享。", "期待您的品鉴。"],
    },
}

EN: dict[str, dict[str, list[str]]] = {
    "opener": {
        "new/friendly": ["Welcome aboard!", "Hi there, new friend!", "A little welcome gift for you:", "Great to meet you!"],
        "new/urgent": ["Your welcome deal won't last!", "New here? Grab this fast!", "Welcome offer ending soon!"],
        "new/premium": ["Welcome to something special.", "A refined welcome for you:", "Curated for our newest guest:"],
        "active/friendly": ["Thanks for shopping with us!", "Good to see you again!", "Hey, you're back!"],
        "active/urgent": ["Today only, just for you:", "Hot deal alert!", "Clock is ticking!"],
        "active/premium": ["Hand-picked for you:", "Something special for you:", "Chosen with your taste in mind:"],
        "lapsed/friendly": ["We miss you!", "It's been a while!", "Long time no see!"],
        "lapsed/urgent": ["Come back before it's gone:", "Your comeback deal ends soon!", "Don't let this one slip:"],
        "lapsed/premium": ["Welcome back, we saved something for you:", "A warm welcome back:", "We kept a gift for you:"],
        "vip/friendly": ["Hi VIP!", "Dear member,", "Thanks for being a VIP!"],
        "vip/urgent": ["VIP early access, ends soon:", "Members only, hurry:", "VIP flash deal:"],
        "vip/premium": ["An exclusive for our VIP members:", "Reserved for our members:", "With compliments, for our VIPs:"],
    },
    "context": {
        "bought": ["You just bought <CONTEXT_PRODUCT>.", "Thanks for buying <CONTEXT_PRODUCT>!", "Loving your <CONTEXT_PRODUCT>?", "Since you picked up <CONTEXT_PRODUCT>,"],
        "viewed": ["Still thinking about <CONTEXT_PRODUCT>?", "You recently viewed <CONTEXT_PRODUCT>.", "Had your eye on <CONTEXT_PRODUCT>?", "<CONTEXT_PRODUCT> caught your eye."],
        "favorite_category": ["Love <FAV_CATEGORY>?", "Picked for <FAV_CATEGORY> fans:", "New in <FAV_CATEGORY> for you:"],
        "none": [""],
    },
    "core": {
        "percent_off": ["Get <DISCOUNT> off <PRODUCT> now!", "<PRODUCT> is <DISCOUNT> off today.", "<PRODUCT>: was <PRICE>, now <NEW_PRICE> (<DISCOUNT> off).",
                        "Take <DISCOUNT> off <PRODUCT>.", "<BRAND> at <DISCOUNT> off, <PRODUCT> included!", "<PRODUCT> now <NEW_PRICE>, that's <DISCOUNT> off."],
        "amount_off": ["Save <AMOUNT> on <PRODUCT>.", "<PRODUCT> now <NEW_PRICE>, <AMOUNT> off.", "Take <AMOUNT> off <PRODUCT> today!",
                       "<AMOUNT> off <PRODUCT>, now just <NEW_PRICE>.", "<BRAND> deal: <AMOUNT> off <PRODUCT>."],
        "spend_threshold": ["Spend <MIN_SPEND>, save <AMOUNT>!", "Spend <MIN_SPEND> on <CATEGORY> and save <AMOUNT>.", "Save <AMOUNT> when you spend <MIN_SPEND>; <PRODUCT> counts too.",
                            "<AMOUNT> off orders over <MIN_SPEND>.", "<BRAND>: spend <MIN_SPEND>, get <AMOUNT> off."],
        "free_shipping": ["Free shipping on <PRODUCT>, save <SHIPPING_FEE>.", "Your <PRODUCT> ships free (a <SHIPPING_FEE> saving).", "Free delivery on <PRODUCT>: keep the <SHIPPING_FEE> fee.",
                          "<BRAND> ships free: save <SHIPPING_FEE> on <PRODUCT>."],
    },
    "short": {
        "percent_off": ["<DISCOUNT> off <PRODUCT>", "<CATEGORY>: <DISCOUNT> off", "<BRAND> <DISCOUNT> off", "Now <DISCOUNT> off"],
        "amount_off": ["<AMOUNT> off <PRODUCT>", "<CATEGORY>: save <AMOUNT>", "<BRAND>: <AMOUNT> off", "Save <AMOUNT> today"],
        "spend_threshold": ["Spend <MIN_SPEND>, save <AMOUNT>", "<CATEGORY>: <AMOUNT> off <MIN_SPEND>+", "<BRAND>: <AMOUNT> off <MIN_SPEND>"],
        "free_shipping": ["Ships free: save <SHIPPING_FEE>", "Free shipping, save <SHIPPING_FEE>", "<CATEGORY> ships free, save <SHIPPING_FEE>"],
    },
    "depth": {"high": ["Big savings!", "A deal worth grabbing!"], "mid": ["A great deal:", "Nice savings:"], "low": ["A little treat:", "A small thank-you:"]},
    "flavor": {
        "apparel": ["Style made easy."], "shoes": ["Comfort in every step."], "beauty": ["Glow on."], "electronics": ["Tech that keeps up."],
        "home": ["Make home cozier."], "food": ["Treat your taste buds."], "sports": ["Get moving."], "baby": ["Gentle for little ones."],
        "books": ["Your next good read."], "pets": ["Your pet will thank you."], "other": ["Worth a look."],
    },
    "cta": {
        "friendly": ["Take a look!", "Tap to see more.", "Come have a browse.", "See what's new."],
        "urgent": ["Ends <VALID_TO>, don't miss out!", "Hurry, while stocks last!", "Grab it before it's gone!", "Offer ends <VALID_TO>."],
        "premium": ["Enjoy it at your leisure.", "Discover it now.", "We look forward to seeing you."],
    },
}

GRAMMAR = {"zh-CN": ZH, "en-US": EN}
