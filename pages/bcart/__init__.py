"""Page objects of the Bカート admin screens: what only the screens do (template mails, 帳票,
出荷実績インポート). Reading orders and updating shipments go through services/bcart_api.py."""
