"""たまごリピート's admin screens as page objects: 注文検索 (flagged orders), 注文詳細 with 要対応設定 and
注文修正, 顧客検索. Built with ``TamagoSite`` (site.py) and configured by ``TamagoSettings``."""
