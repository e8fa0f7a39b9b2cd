"""Static facts of the synthetic brand: products, stores, cities, names. Prices in fen (CNY minor units)."""

from __future__ import annotations

from dataclasses import dataclass

BRAND_ID = "demo-brand"
CURRENCY = "CNY"

CAKE = "birthday_cake"
AIR_CONDITIONER = "air_conditioner"


@dataclass(frozen=True)
class Product:
    sku: str
    name: str
    category: str
    unit_price_minor: int


PRODUCTS: tuple[Product, ...] = (
    Product("CAKE-6IN", "6-inch birthday cake", CAKE, 19_800),
    Product("CAKE-8IN", "8-inch birthday cake", CAKE, 26_800),
    Product("CAKE-FRUIT", "Fruit cream birthday cake", CAKE, 32_800),
    Product("PST-CROISSANT", "Butter croissant", "pastry", 1_200),
    Product("PST-EGGTART", "Egg tart box", "pastry", 2_800),
    Product("PST-MOONCAKE", "Mooncake gift box", "pastry", 9_800),
    Product("AC-1.5HP", "Inverter air conditioner 1.5 HP", AIR_CONDITIONER, 329_900),
    Product("AC-3HP", "Floor air conditioner 3 HP", AIR_CONDITIONER, 699_900),
    Product("APL-FAN", "Tower fan", "small_appliance", 29_900),
    Product("APL-KETTLE", "Electric kettle", "small_appliance", 19_900),
    Product("APL-PURIFIER", "Air purifier", "small_appliance", 159_900),
    Product("APP-TEE", "Cotton tee", "apparel", 9_900),
    Product("APP-JACKET", "Light down jacket", "apparel", 49_900),
    Product("BTY-SERUM", "Repair serum", "beauty", 39_900),
    Product("BTY-MASK", "Sheet mask x10", "beauty", 12_900),
    Product("SNK-NUTS", "Daily nuts x30", "snacks", 6_900),
    Product("SNK-TEA", "Oolong tea tin", "snacks", 8_800),
)
PRODUCTS_BY_CATEGORY: dict[str, tuple[Product, ...]] = {}
for _product in PRODUCTS:
    PRODUCTS_BY_CATEGORY[_product.category] = (*PRODUCTS_BY_CATEGORY.get(_product.category, ()), _product)

# Everyday categories a person has an affinity for; cakes and air conditioners follow their own seasonal rules.
EVERYDAY_CATEGORIES: tuple[str, ...] = ("pastry", "small_appliance", "apparel", "beauty", "snacks")
RETURN_RATE = {"apparel": 0.2, "beauty": 0.08, "small_appliance": 0.07, AIR_CONDITIONER: 0.04}
DEFAULT_RETURN_RATE = 0.03


@dataclass(frozen=True)
class City:
    name: str
    country: str
    timezone: str
    weight: float
    stores: tuple[str, ...] = ()


CITIES: tuple[City, ...] = (
    City("Shanghai", "CN", "Asia/Shanghai", 0.34, ("sh01", "sh02", "sh03")),
    City("Beijing", "CN", "Asia/Shanghai", 0.15, ("bj01", "bj02")),
    City("Hangzhou", "CN", "Asia/Shanghai", 0.09, ("hz01",)),
    City("Shenzhen", "CN", "Asia/Shanghai", 0.08, ("sz01",)),
    City("Guangzhou", "CN", "Asia/Shanghai", 0.07, ("gz01",)),
    City("Chengdu", "CN", "Asia/Shanghai", 0.06, ("cd01",)),
    City("Nanjing", "CN", "Asia/Shanghai", 0.05, ("nj01",)),
    City("Wuhan", "CN", "Asia/Shanghai", 0.04, ("wh01",)),
    City("Hong Kong", "HK", "Asia/Hong_Kong", 0.03),
    City("Singapore", "SG", "Asia/Singapore", 0.03),
    City("Tokyo", "JP", "Asia/Tokyo", 0.02),
    City("London", "GB", "Europe/London", 0.02),
    City("Los Angeles", "US", "America/Los_Angeles", 0.02),
)

# Dealer stores run their own points program (10 points per yuan) and their own member levels.
DEALER_STORES = frozenset({"sh01", "bj02"})
APP_POINTS_PROGRAM = "app"
# The busiest stores have a sign-up tablet at the counter that hundreds of customers type into.
TABLET_STORES: tuple[str, ...] = ("sh01", "sh02", "bj01")

MEMBER_LEVELS: tuple[str, ...] = ("gold", "silver", "bronze")
PHONE_PREFIXES: tuple[str, ...] = ("138", "139", "150", "186", "135", "137", "158", "188")
EMAIL_DOMAINS: tuple[str, ...] = ("qq.com", "163.com", "126.com", "gmail.com", "outlook.com", "foxmail.com")

SURNAMES: tuple[str, ...] = ("Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Zhao", "Huang", "Zhou", "Wu", "Xu", "Sun")
GIVEN_NAMES: tuple[str, ...] = (
    "Wei",
    "Fang",
    "Na",
    "Min",
    "Jing",
    "Lei",
    "Yan",
    "Jie",
    "Tao",
    "Ying",
    "Hao",
    "Xin",
    "Yu",
    "Lin",
    "Qiang",
    "Mei",
)

# Newsletters the brand e-mailed to consenting subscribers (campaign id, day sent); clicks reveal responsiveness.
NEWSLETTERS: tuple[tuple[str, str], ...] = (
    ("nl-2025-08", "2025-08-06"),
    ("nl-2025-12", "2025-12-03"),
    ("nl-2026-03", "2026-03-04"),
    ("nl-2026-06", "2026-06-03"),
)
