# ruff: noqa: RUF001  (Russian text in string literals is intended)
"""Value pools: built once per run (Faker, seeded), then sampled with numpy.

Faker is far too slow to call per row, so it fills pools of a few hundred to
a few thousand names, streets and cities per locale; rows pick indices into
them. Everything is deterministic for a given seed: Faker instances are
seeded and pools keep Faker's order (first occurrence), never set order.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from faker import Faker

from cdp.generator.vec import I64, Arr, Rng, strings

# Locale codes used throughout: index into LOCALES.
RU, GB, US = 0, 1, 2
LOCALES: tuple[str, ...] = ("ru_RU", "en_GB", "en_US")
LOCALE_WEIGHTS: tuple[float, ...] = (0.86, 0.08, 0.06)
COUNTRY: tuple[str, ...] = ("RU", "GB", "US")
PHONE_CC: tuple[str, ...] = ("7", "44", "1")
CURRENCY: tuple[str, ...] = ("RUB", "GBP", "USD")
JURISDICTION: tuple[str, ...] = ("RU", "EU", "EU")
SITE: tuple[str, ...] = (
    "https://shop.example.ru",
    "https://shop.example.com",
    "https://shop.example.com",
)

# Device types (index): what a cookie / device id is.
DESKTOP, MOBILE, TABLET, APP, BOT = 0, 1, 2, 3, 4
DEVICE_NAMES: tuple[str, ...] = ("desktop", "mobile", "tablet", "app", "bot")

_TRANSLIT = {
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "e", "ж": "zh",
    "з": "z", "и": "i", "й": "y", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o",
    "п": "p", "р": "r", "с": "s", "т": "t", "у": "u", "ф": "f", "х": "kh", "ц": "ts",
    "ч": "ch", "ш": "sh", "щ": "shch", "ъ": "ie", "ы": "y", "ь": "", "э": "e", "ю": "iu",
    "я": "ia",
}  # fmt: skip


def translit(text: str) -> str:
    """Cyrillic to Latin (passport style), keeping the case of the first letter."""
    out = "".join(_TRANSLIT.get(ch.lower(), ch.lower()) for ch in text)
    return out[:1].upper() + out[1:] if text[:1].isupper() else out


def feminine_surname(male: str) -> str:
    """Russian surname agreement: Петров -> Петрова, Трубецкой -> Трубецкая."""
    for suffix, repl in (("ский", "ская"), ("цкий", "цкая"), ("ой", "ая"), ("ый", "ая")):
        if male.endswith(suffix):
            return male[: -len(suffix)] + repl
    if male.endswith(("ов", "ев", "ёв", "ин", "ын")):
        return male + "а"
    return male


@dataclass(frozen=True)
class Grouped:
    """One pool split into groups (e.g. per locale); ``sample`` picks within a row's group."""

    values: Arr
    offsets: I64
    sizes: I64

    def sample(self, rng: Rng, groups: I64) -> I64:
        u = rng.random(len(groups))
        return self.offsets[groups] + (u * self.sizes[groups]).astype(np.int64)


def _grouped(groups: Sequence[Sequence[str]]) -> Grouped:
    sizes = np.array([len(g) for g in groups], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    flat = [v for g in groups for v in g]
    return Grouped(strings(flat), offsets, sizes)


def _aligned(base: Grouped, groups: Sequence[Sequence[str]]) -> Grouped:
    """A pool with the same layout as ``base`` (same index = same entity)."""
    flat = [v for g in groups for v in g]
    assert len(flat) == len(base.values)
    return Grouped(strings(flat), base.offsets, base.sizes)


def _unique(draw: Callable[[], str], n: int, extra: Sequence[str] = ()) -> list[str]:
    seen = dict.fromkeys(list(extra) + [draw().strip() for _ in range(n)])
    return [v for v in seen if v]


_RU_COMMON_M = (
    "Александр", "Сергей", "Дмитрий", "Андрей", "Алексей", "Максим", "Иван", "Михаил",
    "Артём", "Никита", "Евгений", "Владимир", "Павел", "Роман", "Денис", "Николай",
    "Фёдор", "Пётр", "Семён", "Егор", "Кирилл", "Илья", "Олег", "Антон",
)  # fmt: skip
_RU_COMMON_F = (
    "Анна", "Елена", "Ольга", "Наталья", "Екатерина", "Мария", "Татьяна", "Ирина",
    "Светлана", "Юлия", "Алёна", "Дарья", "Анастасия", "Ксения", "Полина", "Виктория",
    "Людмила", "Валентина", "Галина", "Софья", "Алина", "Марина",
)  # fmt: skip
_RU_SURNAMES_EXTRA = (
    "Иванов", "Смирнов", "Кузнецов", "Попов", "Васильев", "Петров", "Соколов", "Михайлов",
    "Новиков", "Фёдоров", "Морозов", "Волков", "Алексеев", "Лебедев", "Семёнов", "Егоров",
    "Королёв", "Соловьёв", "Воробьёв", "Ковалёв", "Муравьёв", "Пугачёв", "Новосёлов",
    "Дёмин", "Сёмин", "Толстой", "Белый", "Достоевский", "Вишневецкий",
)  # fmt: skip
_RU_BIG_CITIES = (
    ("Москва", 120), ("Санкт-Петербург", 60), ("Новосибирск", 12), ("Екатеринбург", 12),
    ("Казань", 10), ("Нижний Новгород", 9), ("Челябинск", 8), ("Самара", 8), ("Омск", 7),
    ("Ростов-на-Дону", 8), ("Уфа", 7), ("Красноярск", 7), ("Пермь", 6), ("Воронеж", 6),
    ("Королёв", 3), ("Орёл", 3), ("Химки", 4), ("Подольск", 3),
)  # fmt: skip
_GB_BIG_CITIES = (
    ("London", 60), ("Manchester", 12), ("Birmingham", 12), ("Leeds", 8), ("Glasgow", 8),
    ("Edinburgh", 7), ("Bristol", 6), ("Liverpool", 6), ("Cardiff", 4),
)  # fmt: skip
_US_BIG_CITIES = (
    ("New York", 40), ("Los Angeles", 20), ("Chicago", 15), ("Houston", 10),
    ("Boston", 8), ("San Francisco", 8), ("Seattle", 7), ("Miami", 6),
)  # fmt: skip
_DOMAINS = (
    (("mail.ru", 35), ("yandex.ru", 30), ("gmail.com", 18), ("bk.ru", 5), ("list.ru", 4),
     ("inbox.ru", 3), ("rambler.ru", 3), ("ya.ru", 2)),
    (("gmail.com", 45), ("hotmail.co.uk", 18), ("outlook.com", 15), ("yahoo.co.uk", 10),
     ("btinternet.com", 7), ("icloud.com", 5)),
    (("gmail.com", 50), ("yahoo.com", 18), ("outlook.com", 14), ("hotmail.com", 10),
     ("icloud.com", 8)),
)  # fmt: skip


def _weighted(pairs: Sequence[tuple[str, int]], rest: Sequence[str] = ()) -> list[str]:
    out = [name for name, w in pairs for _ in range(w)]
    return out + [r for r in rest if r not in dict(pairs)]


# (category, slug, price range in roubles, Russian nouns, English nouns)
_CATEGORIES = (
    ("Электроника", "electronics", (990, 149_990),
     ("Смартфон", "Наушники", "Планшет", "Ноутбук", "Умные часы", "Колонка"),
     ("smartphone", "headphones", "tablet", "laptop", "smart watch", "speaker")),
    ("Одежда", "clothing", (490, 19_990),
     ("Футболка", "Джинсы", "Куртка", "Платье", "Свитер", "Пальто"),
     ("t-shirt", "jeans", "jacket", "dress", "jumper", "coat")),
    ("Обувь", "shoes", (1_490, 24_990),
     ("Кроссовки", "Ботинки", "Туфли", "Сапоги", "Кеды"),
     ("trainers", "boots", "shoes", "wellies", "sneakers")),
    ("Дом и сад", "home", (190, 59_990),
     ("Чайник", "Сковорода", "Пылесос", "Лампа", "Плед", "Кофеварка"),
     ("kettle", "frying pan", "vacuum cleaner", "lamp", "blanket", "coffee maker")),
    ("Красота", "beauty", (190, 9_990),
     ("Крем для лица", "Шампунь", "Парфюм", "Помада", "Фен"),
     ("face cream", "shampoo", "perfume", "lipstick", "hair dryer")),
    ("Детские товары", "kids", (290, 39_990),
     ("Коляска", "Конструктор", "Автокресло", "Кукла", "Самокат"),
     ("pushchair", "building set", "car seat", "doll", "scooter")),
    ("Спорт", "sport", (390, 89_990),
     ("Велосипед", "Гантели", "Коврик для йоги", "Палатка", "Мяч"),
     ("bicycle", "dumbbells", "yoga mat", "tent", "ball")),
    ("Книги", "books", (190, 2_990),
     ("Роман", "Детектив", "Учебник", "Комикс", "Атлас"),
     ("novel", "thriller", "textbook", "comic", "atlas")),
)  # fmt: skip
_BRANDS = (  # per category, in the order of _CATEGORIES
    ("Samsung", "Apple", "Xiaomi", "Sony", "Huawei", "JBL"),
    ("Levi's", "Zara", "Gloria Jeans", "Uniqlo", "Befree"),
    ("Nike", "Adidas", "Puma", "ECCO", "Ralf Ringer"),
    ("Bosch", "Philips", "Tefal", "Redmond", "Polaris", "Bork"),
    ("L'Oréal", "Nivea", "Natura Siberica", "Philips", "Чёрный жемчуг"),
    ("LEGO", "Chicco", "Happy Baby", "Ёлочка", "Hasbro"),
    ("Stels", "Decathlon", "Torneo", "Demix", "Nordway"),
    ("Эксмо", "АСТ", "Манн, Иванов и Фербер", "Penguin", "Азбука"),
)  # fmt: skip

_UA_DESKTOP = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/{v}.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/{v}.0.0.0 YaBrowser/24.{m}.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/{v}.0.0.0 Safari/537.36 Edg/{v}.0.0.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:{f}.0) Gecko/20100101 Firefox/{f}.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.{m} Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/{v}.0.0.0 Safari/537.36",
)
_UA_MOBILE = (
    "Mozilla/5.0 (Linux; Android {a}; {model}) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/{v}.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_{m} like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.{m} Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android {a}; {model}) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/{v}.0.0.0 YaBrowser/24.{m}.1.0 Mobile Safari/537.36",
)
_UA_TABLET = (
    "Mozilla/5.0 (iPad; CPU OS 17_{m} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.{m} Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android {a}; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/{v}.0.0.0 Safari/537.36",
)
_UA_APP = (
    "ShopApp/5.{m}.{v} (iPhone; iOS 17.{m}; Scale/3.00)",
    "ShopApp/5.{m}.{v} (Android {a}; {model}; okhttp/4.12.0)",
)
_UA_BOT = (
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)",
    "python-requests/2.31.0",
)
_PHONE_MODELS = ("SM-A546B", "SM-S918B", "Redmi Note 12", "Pixel 8", "M2101K6G", "CPH2581")

REFERRERS: tuple[str, ...] = (
    "https://yandex.ru/",
    "https://www.google.com/",
    "https://www.google.ru/",
    "https://vk.com/",
    "https://t.me/",
    "https://dzen.ru/",
    "https://www.bing.com/",
    "https://mail.ru/",
)
UTM_SOURCES: tuple[str, ...] = ("yandex", "google", "vk", "email", "telegram", "mytarget")
UTM_MEDIUMS: tuple[str, ...] = ("cpc", "email", "social", "referral", "push")
CAMPAIGNS: tuple[str, ...] = (
    "black_friday",
    "new_year_sale",
    "spring_sale",
    "back_to_school",
    "loyalty_bonus",
    "welcome_series",
    "abandoned_cart",
    "summer_clearance",
)


@dataclass(frozen=True)
class Products:
    sku: Arr
    name: Arr
    category: Arr
    cat_idx: I64
    price_cents: I64  # roubles
    cum_weight: np.ndarray  # popularity (Zipf-like), cumulative
    sku_or_null: Arr  # index 0 is null, i + 1 is sku i
    json_extra: Arr  # web event properties for a product, per sku

    def sample(self, rng: Rng, n: int) -> I64:
        return np.searchsorted(self.cum_weight, rng.random(n), side="right").astype(np.int64)


@dataclass(frozen=True)
class Pools:
    first: Grouped  # group = locale * 2 + is_female
    first_lat: Grouped  # aligned, lower-case Latin (for e-mail local parts)
    first_lat_cap: Grouped  # aligned, capitalised Latin (transliterated records)
    surname_m: Grouped  # group = locale
    surname_f: Grouped  # aligned feminine form
    surname_lat_m: Grouped  # aligned, lower-case Latin
    surname_lat_f: Grouped
    surname_cap_lat_m: Grouped
    surname_cap_lat_f: Grouped
    patronymic: Grouped  # group = is_female (Russian only)
    city: Grouped  # group = locale (weighted by repetition)
    street: Grouped  # group = locale
    gb_postcode: Arr
    domain: Grouped  # group = locale (weighted by repetition)
    products: Products
    pages: Pages
    search: Grouped  # group = 0 Russian, 1 English
    user_agent: Grouped  # group = device type
    new_surname: Grouped  # aligned with surname_f: a different surname (marriage)


def _faker(locale: str, seed: int) -> Faker:
    fake = Faker(locale)
    fake.seed_instance(seed)
    return fake


def _products(rng: Rng, n: int = 1500) -> Products:
    cat_idx = rng.integers(0, len(_CATEGORIES), size=n)
    skus, names, cats, prices = [], [], [], []
    for i, c in enumerate(cat_idx.tolist()):  # pool construction, n ~ 1500
        cat, _, (lo, hi), nouns, _ = _CATEGORIES[c]
        noun = nouns[int(rng.integers(0, len(nouns)))]
        brands = _BRANDS[c]
        brand = brands[int(rng.integers(0, len(brands)))]
        model = f"{chr(65 + int(rng.integers(0, 26)))}{int(rng.integers(10, 999))}"
        skus.append(f"SKU-{100000 + i * 37 % 900000:06d}")
        names.append(f"{noun} {brand} {model}")
        cats.append(cat)
        # log-uniform price, ending in 90 roubles like shop prices do
        rub = int(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        prices.append(max(lo, rub // 100 * 100 + 90) * 100)
    weights = 1.0 / np.arange(1, n + 1) ** 0.8
    cum = np.cumsum(weights / weights.sum())
    cum[-1] = 1.0
    return Products(
        sku=strings(skus),
        name=strings(names),
        category=strings(cats),
        cat_idx=cat_idx.astype(np.int64),
        price_cents=np.array(prices, dtype=np.int64),
        cum_weight=cum,
        sku_or_null=strings([None, *skus]),
        json_extra=strings(
            [
                f', "sku": {json.dumps(k)}, "price": {p // 100}.{p % 100:02d}, "currency": "RUB"'
                for k, p in zip(skus, prices, strict=True)
            ]
        ),
    )


# Web pages: fixed pages, then one per category, campaign and product (see ``page_index``).
SITES: tuple[str, ...] = ("https://shop.example.ru", "https://shop.example.com", "app://shop")
FIXED_PAGES: tuple[str, ...] = (
    "/", "/sale", "/help/delivery", "/account/orders", "/stores", "/cart", "/checkout",
    "/search", "/login", "/signup", "/account/profile", "/subscribe",
)  # fmt: skip


@dataclass(frozen=True)
class Pages:
    urls: Arr  # site-major: urls[site * n_paths + path]
    n_paths: int
    catalog_offset: int
    promo_offset: int
    product_offset: int


def _pages(products: Products) -> Pages:
    paths = list(FIXED_PAGES)
    catalog_offset = len(paths)
    paths += [f"/catalog/{c[1]}" for c in _CATEGORIES]
    promo_offset = len(paths)
    paths += [f"/promo/{c}" for c in CAMPAIGNS]
    product_offset = len(paths)
    paths += [f"/product/{k}" for k in products.sku.to_pylist()]
    urls = [site + path for site in SITES for path in paths]
    return Pages(strings(urls), len(paths), catalog_offset, promo_offset, product_offset)


def _search_queries(rng: Rng) -> Grouped:
    ru: list[str] = []
    en: list[str] = []
    for (_, _, _, nouns_ru, nouns_en), brands in zip(_CATEGORIES, _BRANDS, strict=True):
        for noun in nouns_ru:
            ru += [noun.lower(), f"{noun.lower()} недорого", f"купить {noun.lower()}"]
            ru += [f"{noun.lower()} {b.lower()}" for b in rng.choice(brands, 3, replace=False)]
        for noun in nouns_en:
            en += [noun, f"cheap {noun}", f"{noun} sale"]
            en += [f"{b.lower()} {noun}" for b in rng.choice(brands, 3, replace=False)]
    ru += ["доставка", "возврат товара", "скидки", "подарок маме", "чёрная пятница"]
    en += ["delivery", "returns", "gift card", "black friday"]
    return _grouped([ru, en])


def _user_agents(rng: Rng) -> Grouped:
    groups: list[list[str]] = []
    for templates, n in ((_UA_DESKTOP, 60), (_UA_MOBILE, 60), (_UA_TABLET, 20), (_UA_APP, 20)):
        pool: list[str] = []
        for _ in range(n):
            t = templates[int(rng.integers(0, len(templates)))]
            pool.append(
                t.format(
                    v=int(rng.integers(118, 131)),
                    m=int(rng.integers(0, 7)),
                    f=int(rng.integers(115, 133)),
                    a=int(rng.integers(10, 15)),
                    model=_PHONE_MODELS[int(rng.integers(0, len(_PHONE_MODELS)))],
                )
            )
        groups.append(list(dict.fromkeys(pool)))
    groups.append(list(_UA_BOT))
    return _grouped(groups)


def build_pools(seed: int) -> Pools:
    """All pools for one run; deterministic for ``seed``."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xB001]))
    fakers = [_faker(loc, seed + i) for i, loc in enumerate(LOCALES)]
    ru, gb, us = fakers

    first_groups: list[list[str]] = []
    for loc, fake in enumerate(fakers):
        extra_m = list(_RU_COMMON_M) * 3 if loc == RU else []
        extra_f = list(_RU_COMMON_F) * 3 if loc == RU else []
        males = _unique(fake.first_name_male, 400)
        females = _unique(fake.first_name_female, 400)
        first_groups.append(extra_m + [m for m in males if m not in extra_m])
        first_groups.append(extra_f + [f for f in females if f not in extra_f])
    first = _grouped(first_groups)
    first_lat_cap = _aligned(first, [[translit(x) for x in g] for g in first_groups])
    first_lat = _aligned(first, [[translit(x).lower() for x in g] for g in first_groups])

    ru_surnames = _unique(ru.last_name_male, 1200, _RU_SURNAMES_EXTRA)
    gb_surnames = _unique(gb.last_name, 500)
    us_surnames = _unique(us.last_name, 500)
    sur_m_groups = [ru_surnames, gb_surnames, us_surnames]
    sur_f_groups = [[feminine_surname(s) for s in ru_surnames], gb_surnames, us_surnames]
    surname_m = _grouped(sur_m_groups)
    surname_f = _aligned(surname_m, sur_f_groups)
    # a different surname for the same slot: a marriage / rectification target
    shifted = [g[len(g) // 2 :] + g[: len(g) // 2] for g in sur_f_groups]

    patronymic = _grouped([_unique(ru.middle_name_male, 400), _unique(ru.middle_name_female, 400)])

    ru_cities = _weighted(_RU_BIG_CITIES, _unique(ru.city_name, 600))
    gb_cities = _weighted(_GB_BIG_CITIES, _unique(gb.city, 300))
    us_cities = _weighted(_US_BIG_CITIES, _unique(us.city, 300))

    products = _products(rng)
    return Pools(
        first=first,
        first_lat=first_lat,
        first_lat_cap=first_lat_cap,
        surname_m=surname_m,
        surname_f=surname_f,
        surname_lat_m=_aligned(surname_m, [[translit(x).lower() for x in g] for g in sur_m_groups]),
        surname_lat_f=_aligned(surname_m, [[translit(x).lower() for x in g] for g in sur_f_groups]),
        surname_cap_lat_m=_aligned(surname_m, [[translit(x) for x in g] for g in sur_m_groups]),
        surname_cap_lat_f=_aligned(surname_m, [[translit(x) for x in g] for g in sur_f_groups]),
        patronymic=patronymic,
        city=_grouped([ru_cities, gb_cities, us_cities]),
        street=_grouped(
            [
                _unique(ru.street_name, 1500),
                _unique(gb.street_name, 600),
                _unique(us.street_name, 600),
            ]
        ),
        gb_postcode=strings(_unique(gb.postcode, 600)),
        domain=_grouped([_weighted(d) for d in _DOMAINS]),
        products=products,
        pages=_pages(products),
        search=_search_queries(rng),
        user_agent=_user_agents(rng),
        new_surname=_aligned(surname_m, shifted),
    )
