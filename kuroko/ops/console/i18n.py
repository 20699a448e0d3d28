"""The console's words in English and Japanese. The language is the ``lang`` cookie (the switch on
every page) or else the browser's Accept-Language."""

from __future__ import annotations

from typing import Any

LANGUAGES = ("ja", "en")

MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "app": "Kuroko desk console",
        "today": "Today", "waiting": "Waiting for a person", "search": "Search", "item": "Item",
        "report": "Kuroko report", "logout": "Log out", "login": "Log in", "name": "Name", "password": "Password",
        "signed_in_as": "{name} ({role})", "role.viewer": "viewer", "role.operator": "operator",
        "login.wrong": "Wrong name or password.",
        "login.locked": "Too many wrong passwords: this login is locked until {until}. Try again later.",
        "login.needed": "Please log in.",
        "state.active": "in progress", "state.held": "waiting for a person", "state.done": "done",
        "state.total": "total",
        "counts": "Work items by procedure and state", "procedure": "Procedure",
        "chart": "Work per hour on {day}", "taken_in": "taken in", "completed": "done",
        "handed_over": "handed over", "hour": "hour",
        "schedules": "Schedules", "job": "Job", "trigger": "Trigger", "ran_last": "Ran last", "runs_next": "Runs next",
        "never": "not yet", "no_schedule": "No schedule file: {path}",
        "passes": "Last passes", "pass.when": "Started", "pass.seconds": "Seconds", "pass.items": "Items run",
        "pass.outcomes": "Outcomes", "pass.errors": "Errors", "no_passes": "No pass recorded yet.",
        "waiting.none": "Nothing waits for a person.",
        "waiting.count": "{n} item(s) wait for a person.",
        "reason": "Reason", "done_so_far": "What the robot did", "needed": "What is needed",
        "evidence": "Evidence", "ticket": "Ticket", "step": "Step", "since": "Since", "nothing": "nothing",
        "trace_cmd": "open with", "download_trace": "Download the trace",
        "release": "Release", "release.help": "The robot goes on from '{step}' at the next pass (also removes the "
                                              "hold tag on the ticket).",
        "released": "Released {key}: it goes on from '{step}' at the next pass.",
        "viewer_note": "You can read; an operator acts on items.",
        "steps": "Steps", "status": "Status", "attempt": "Attempt", "reference": "Reference", "detail": "Detail",
        "timeline": "Timeline", "when": "When", "who": "Who", "system": "System", "action": "Action",
        "facts": "Facts", "path": "Path", "next_due": "Next look", "state": "State", "hold_code": "Code",
        "search.placeholder": "Order number, ticket number or tracking number", "search.go": "Search",
        "search.none": "Nothing found for “{q}”.", "search.results": "{n} item(s) for “{q}”.",
        "written": "Written {when}", "items": "Work items", "live": "updates itself every few seconds",
        "cmd.ship": "Record an office shipment", "param.carrier": "Carrier", "param.tracking": "Tracking number",
        "awaits_command": "Waits for a person's action", "open_item": "Open",
        "forbidden": "Only an operator may do this.", "csrf": "The form has expired or was not sent by this "
                                                            "console; reload the page and try again.",
        "not_found": "No such item.", "time_note": "Times are {tz}.",
        "claims": "Claims", "claims.count": "{open} open of {n} claim(s).", "claims.currency": "Currency",
        "claims.claimed": "Claimed", "claims.paid": "Paid", "claims.show_all": "Show every claim (closed too)",
        "claims.open_only": "Open claims only", "claims.none": "No open claims.", "claims.id": "Claim",
        "claims.kind": "Kind", "claims.mcf_order": "MCF order", "claims.package": "Package",
        "claims.case": "Case id", "claims.waits_for": "Waits for", "claims.deadline": "By",
        "claims.kind.lost": "lost", "claims.kind.damaged": "damaged",
        "claims.status.New": "New", "claims.status.Filed": "Filed", "claims.status.Waiting": "Waiting",
        "claims.status.MoreInfo": "More info asked", "claims.status.Stalled": "Stalled",
        "claims.status.Reimbursed": "Reimbursed", "claims.status.Rejected": "Rejected",
        "claims.status.Closed": "Closed",
        "cmd.claim": "Record a claim's case id", "param.claim_id": "Claim", "param.case_id": "Case id",
        "param.amount": "Amount claimed (optional)", "param.currency": "Currency",
        "cmd.return": "Start a return", "param.reason": "Return reason code",
        "param.units": "SKU:QTY, … (optional: every unit)", "param.comment": "Comment for Amazon (optional)",
    },
    "ja": {
        "app": "黒子 デスクコンソール",
        "today": "今日", "waiting": "担当者待ち", "search": "検索", "item": "案件",
        "report": "黒子 レポート", "logout": "ログアウト", "login": "ログイン", "name": "ユーザー名",
        "password": "パスワード",
        "signed_in_as": "{name}（{role}）", "role.viewer": "閲覧者", "role.operator": "オペレーター",
        "login.wrong": "ユーザー名またはパスワードが違います。",
        "login.locked": "パスワードの誤りが続いたため、{until} までログインできません。"
                        "しばらくしてからお試しください。",
        "login.needed": "ログインしてください。",
        "state.active": "処理中", "state.held": "担当者待ち", "state.done": "完了", "state.total": "合計",
        "counts": "手順・状態別の件数", "procedure": "手順",
        "chart": "{day} の時間別の件数", "taken_in": "受付", "completed": "完了", "handed_over": "担当者へ",
        "hour": "時",
        "schedules": "スケジュール", "job": "ジョブ", "trigger": "トリガー", "ran_last": "前回", "runs_next": "次回",
        "never": "まだ", "no_schedule": "スケジュールファイルがありません: {path}",
        "passes": "最近の実行", "pass.when": "開始", "pass.seconds": "秒", "pass.items": "処理件数",
        "pass.outcomes": "結果", "pass.errors": "エラー", "no_passes": "実行の記録はまだありません。",
        "waiting.none": "担当者待ちの案件はありません。",
        "waiting.count": "担当者待ちの案件が {n} 件あります。",
        "reason": "理由", "done_so_far": "ロボットが行ったこと", "needed": "必要な対応",
        "evidence": "証跡", "ticket": "チケット", "step": "ステップ", "since": "発生", "nothing": "なし",
        "trace_cmd": "開くコマンド", "download_trace": "トレースをダウンロード",
        "release": "再開", "release.help": "次回の実行で「{step}」から再開します（チケットの保留タグも外します）。",
        "released": "{key} を再開しました。次回の実行で「{step}」から続けます。",
        "viewer_note": "閲覧のみできます。操作はオペレーターが行います。",
        "steps": "ステップ", "status": "状態", "attempt": "試行", "reference": "参照", "detail": "詳細",
        "timeline": "タイムライン", "when": "日時", "who": "実行者", "system": "システム", "action": "操作",
        "facts": "判明した事実", "path": "経路", "next_due": "次の確認", "state": "状態", "hold_code": "コード",
        "search.placeholder": "注文番号・チケット番号・お荷物伝票番号", "search.go": "検索",
        "search.none": "「{q}」に該当する案件はありません。", "search.results": "「{q}」の案件 {n} 件",
        "written": "{when} 作成", "items": "案件", "live": "数秒ごとに自動更新",
        "cmd.ship": "事務所発送を記録", "param.carrier": "配送会社", "param.tracking": "お荷物伝票番号",
        "awaits_command": "担当者の操作待ち", "open_item": "開く",
        "forbidden": "この操作はオペレーターのみ行えます。",
        "csrf": "フォームの有効期限が切れたか、このコンソールから送信されたものではありません。"
                "再読み込みしてください。",
        "not_found": "該当する案件がありません。", "time_note": "時刻は {tz} です。",
        "claims": "補償申請", "claims.count": "補償申請 {n} 件のうち未完了 {open} 件",
        "claims.currency": "通貨", "claims.claimed": "申請額", "claims.paid": "支払額",
        "claims.show_all": "すべての申請を表示（完了分も）", "claims.open_only": "未完了の申請のみ",
        "claims.none": "未完了の補償申請はありません。", "claims.id": "申請", "claims.kind": "種類",
        "claims.mcf_order": "MCF注文", "claims.package": "荷物", "claims.case": "ケースID",
        "claims.waits_for": "待っているもの", "claims.deadline": "期限",
        "claims.kind.lost": "紛失", "claims.kind.damaged": "破損",
        "claims.status.New": "未申請", "claims.status.Filed": "申請済み", "claims.status.Waiting": "回答待ち",
        "claims.status.MoreInfo": "追加情報の依頼", "claims.status.Stalled": "停滞",
        "claims.status.Reimbursed": "補償済み", "claims.status.Rejected": "却下", "claims.status.Closed": "終了",
        "cmd.claim": "補償申請のケースIDを記録", "param.claim_id": "申請", "param.case_id": "ケースID",
        "param.amount": "申請額（任意）", "param.currency": "通貨",
        "cmd.return": "返品を開始", "param.reason": "返品理由コード",
        "param.units": "SKU:数量, …（任意：省略時は全数）", "param.comment": "Amazonへのコメント（任意）",
    },
}


def pick_language(cookie: str | None, accept_language: str | None) -> str:
    if cookie in LANGUAGES:
        return str(cookie)
    weighted: list[tuple[float, str]] = []
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        weighted.append((quality - position / 1000, tag.strip().lower()))
    for _, tag in sorted(weighted, reverse=True):
        base = tag.split("-")[0]
        if base in LANGUAGES:
            return base
    return "en"


def translator(lang: str) -> Any:
    table = MESSAGES.get(lang, MESSAGES["en"])

    def t(message: str, /, **values: Any) -> str:
        text = table.get(message) or MESSAGES["en"].get(message) or message
        return text.format(**values) if values else text

    return t
