"""What the shop sells and who buys it: products, Japanese buyers, RMS's fixed lists."""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum


class ProductKind(StrEnum):
    PHYSICAL_SIM = "physical"
    ESIM = "esim"


@dataclass(frozen=True)
class Product:
    sku: str
    name: str
    kind: ProductKind
    price_yen: int


PRODUCTS: dict[str, Product] = {
    p.sku: p
    for p in [
        Product("SIM-DATA-30D-20GB", "【物理SIM】日本 プリペイドSIM 30日間 20GB ドコモ回線",
                ProductKind.PHYSICAL_SIM, 2980),
        Product("SIM-DATA-90D-50GB", "【物理SIM】日本 プリペイドSIM 90日間 50GB ドコモ回線",
                ProductKind.PHYSICAL_SIM, 5980),
        Product("SIM-VOICE-30D", "【物理SIM】音声通話付き SIM 30日間 ソフトバンク回線", ProductKind.PHYSICAL_SIM, 4480),
        Product("ESIM-DATA-30D-20GB", "【eSIM】日本 eSIM 30日間 20GB 即日発行", ProductKind.ESIM, 2480),
        Product("ESIM-DATA-7D-5GB", "【eSIM】日本 eSIM 7日間 5GB 即日発行", ProductKind.ESIM, 980),
    ]
}

PHYSICAL_SKUS = [p.sku for p in PRODUCTS.values() if p.kind is ProductKind.PHYSICAL_SIM]
ESIM_SKUS = [p.sku for p in PRODUCTS.values() if p.kind is ProductKind.ESIM]

RMS_CARRIERS = ["日本郵便", "ヤマト運輸", "佐川急便", "西濃運輸", "福山通運", "その他"]
"""RMS's 配送会社 list: a fixed set, not free text."""

RMS_TEMPLATES = {
    "thank_you": "サンクスメール",
    "shipping_jm": "発送メール JM",
    "shipping_js": "発送メール JS",
}

SURNAMES = [("佐藤", "サトウ"), ("鈴木", "スズキ"), ("高橋", "タカハシ"), ("田中", "タナカ"), ("伊藤", "イトウ"),
            ("渡辺", "ワタナベ"), ("山本", "ヤマモト"), ("中村", "ナカムラ"), ("小林", "コバヤシ"), ("加藤", "カトウ"),
            ("吉田", "ヨシダ"), ("山田", "ヤマダ"), ("松本", "マツモト"), ("井上", "イノウエ"), ("木村", "キムラ")]
GIVEN_NAMES = [("翔太", "ショウタ"), ("陽菜", "ヒナ"), ("蓮", "レン"), ("結衣", "ユイ"), ("大輝", "ダイキ"),
               ("美咲", "ミサキ"), ("健一", "ケンイチ"), ("さくら", "サクラ"), ("拓海", "タクミ"), ("葵", "アオイ")]
ADDRESSES = [
    ("160-0023", "東京都", "新宿区", "西新宿2-8-1"),
    ("530-0001", "大阪府", "大阪市北区", "梅田3-1-1"),
    ("450-0002", "愛知県", "名古屋市中村区", "名駅1-1-4"),
    ("812-0012", "福岡県", "福岡市博多区", "博多駅中央街1-1"),
    ("060-0001", "北海道", "札幌市中央区", "北1条西2丁目"),
    ("900-0021", "沖縄県", "那覇市", "泉崎1-2-2"),
    ("980-0021", "宮城県", "仙台市青葉区", "中央1-1-1"),
    ("730-0011", "広島県", "広島市中区", "基町10-52"),
]
REMOTE_PREFECTURES = {"沖縄県", "北海道"}
"""MCF promises these later than two days."""


@dataclass(frozen=True)
class Buyer:
    name: str
    kana: str
    email: str
    phone: str
    postal_code: str
    prefecture: str
    city: str
    address: str

    @property
    def full_address(self) -> str:
        return f"〒{self.postal_code} {self.prefecture}{self.city}{self.address}"


def make_buyer(rng: random.Random, *, remote: bool | None = None) -> Buyer:
    surname, surname_kana = rng.choice(SURNAMES)
    given, given_kana = rng.choice(GIVEN_NAMES)
    if remote is None:
        postal, prefecture, city, street = rng.choice(ADDRESSES)
    else:
        pool = [a for a in ADDRESSES if (a[1] in REMOTE_PREFECTURES) == remote]
        postal, prefecture, city, street = rng.choice(pool)
    building = rng.choice(["", " 101号室", " サンハイツ205", " グランドメゾン3F"])
    return Buyer(
        name=f"{surname} {given}",
        kana=f"{surname_kana} {given_kana}",
        email=f"buyer{rng.randrange(10_000, 99_999)}@pc.fw.rakuten.ne.jp",  # Rakuten masks the buyer address
        phone=f"0{rng.randrange(70, 91)}-{rng.randrange(1000, 9999)}-{rng.randrange(1000, 9999)}",
        postal_code=postal,
        prefecture=prefecture,
        city=city,
        address=street + building,
    )
