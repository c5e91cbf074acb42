"""Names for the simulated shop: categories, brands, words for titles, cities. Data, not logic."""

from __future__ import annotations

# category -> (Chinese name, subcategories, typical price)
CATEGORIES: dict[str, tuple[str, tuple[str, ...], float]] = {
    "apparel": ("服装", ("tops", "dresses", "outerwear", "pants"), 180.0),
    "shoes": ("鞋靴", ("sneakers", "boots", "sandals"), 320.0),
    "beauty": ("美妆", ("skincare", "makeup", "fragrance", "haircare"), 150.0),
    "electronics": ("数码", ("phones", "audio", "accessories", "wearables"), 900.0),
    "home": ("家居", ("kitchen", "bedding", "decor", "storage"), 120.0),
    "food": ("食品", ("snacks", "tea", "coffee", "fresh"), 45.0),
    "sports": ("运动", ("fitness", "outdoor", "cycling"), 260.0),
    "baby": ("母婴", ("diapers", "toys", "feeding"), 110.0),
    "books": ("图书", ("fiction", "children", "business"), 50.0),
    "pets": ("宠物", ("food", "toys", "care"), 90.0),
}

BRANDS = (
    "Aurora", "Lumen", "Nordwind", "Kiwa", "Solace", "Maple&Co", "Tessera", "Brio", "Calyx", "Dune",
    "Everly", "Fjord", "Gala", "Halo", "Iris", "Juniper", "Koru", "Lark", "Mosaic", "Nimbus",
    "青禾", "木棉", "云朵", "山川", "拾光", "小野", "简屋", "朝露", "星河", "暖阳",
)

ADJECTIVES_EN = ("Classic", "Light", "Soft", "Urban", "Premium", "Everyday", "Compact", "Organic", "Cozy", "Smart")
ADJECTIVES_ZH = ("经典", "轻盈", "柔软", "都市", "精选", "日常", "便携", "有机", "舒适", "智能")
NOUNS_EN = {
    "apparel": ("T-shirt", "Dress", "Jacket", "Jeans", "Hoodie"),
    "shoes": ("Sneakers", "Boots", "Sandals", "Loafers"),
    "beauty": ("Serum", "Lipstick", "Cleanser", "Perfume", "Shampoo"),
    "electronics": ("Earbuds", "Charger", "Smartwatch", "Phone Case", "Speaker"),
    "home": ("Pan", "Duvet", "Vase", "Storage Box", "Mug"),
    "food": ("Green Tea", "Coffee Beans", "Nut Mix", "Cookies"),
    "sports": ("Yoga Mat", "Dumbbells", "Tent", "Bike Light"),
    "baby": ("Diapers", "Building Blocks", "Bottle", "Stroller Toy"),
    "books": ("Novel", "Picture Book", "Business Guide"),
    "pets": ("Cat Food", "Dog Toy", "Pet Shampoo"),
}
NOUNS_ZH = {
    "apparel": ("T恤", "连衣裙", "夹克", "牛仔裤", "卫衣"),
    "shoes": ("运动鞋", "靴子", "凉鞋", "乐福鞋"),
    "beauty": ("精华液", "口红", "洁面乳", "香水", "洗发水"),
    "electronics": ("耳机", "充电器", "智能手表", "手机壳", "音箱"),
    "home": ("炒锅", "被子", "花瓶", "收纳箱", "马克杯"),
    "food": ("绿茶", "咖啡豆", "坚果", "曲奇"),
    "sports": ("瑜伽垫", "哑铃", "帐篷", "车灯"),
    "baby": ("纸尿裤", "积木", "奶瓶", "推车玩具"),
    "books": ("小说", "绘本", "商业指南"),
    "pets": ("猫粮", "狗玩具", "宠物香波"),
}

# Share of products per category (apparel and beauty have the longest catalogues).
CATEGORY_WEIGHTS = (0.16, 0.1, 0.14, 0.1, 0.12, 0.1, 0.08, 0.07, 0.07, 0.06)

TIMEZONES = ("Asia/Shanghai", "America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles")

# (city, tier, timezone); the first cities of each list are the most populous.
CITIES_ZH = (
    ("Shanghai", 1, "Asia/Shanghai"), ("Beijing", 1, "Asia/Shanghai"), ("Shenzhen", 1, "Asia/Shanghai"),
    ("Guangzhou", 1, "Asia/Shanghai"), ("Hangzhou", 2, "Asia/Shanghai"), ("Chengdu", 2, "Asia/Shanghai"),
    ("Wuhan", 2, "Asia/Shanghai"), ("Nanjing", 2, "Asia/Shanghai"), ("Xi'an", 3, "Asia/Shanghai"),
    ("Kunming", 3, "Asia/Shanghai"), ("Xiamen", 3, "Asia/Shanghai"), ("Luoyang", 4, "Asia/Shanghai"),
    ("Ganzhou", 4, "Asia/Shanghai"), ("Dali", 5, "Asia/Shanghai"), ("Lijiang", 5, "Asia/Shanghai"),
)
CITIES_EN = (
    ("New York", 1, "America/New_York"), ("Los Angeles", 1, "America/Los_Angeles"),
    ("Chicago", 1, "America/Chicago"), ("Houston", 1, "America/Chicago"), ("Seattle", 2, "America/Los_Angeles"),
    ("Boston", 2, "America/New_York"), ("Denver", 2, "America/Denver"), ("Austin", 3, "America/Chicago"),
    ("Portland", 3, "America/Los_Angeles"), ("Boise", 4, "America/Denver"), ("Burlington", 5, "America/New_York"),
)
MEMBER_LEVELS = ("bronze", "silver", "gold", "vip")
