"""The robot's helpdesk service through its Protocol, on real zenpy against the sandbox's Zendesk."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from conftest import Sandbox
from pydantic import SecretStr

from kuroko.errors import ApiError, ConfigurationError, SiteUnavailable
from services.helpdesk import Helpdesk, ZendeskHelpdesk, ZendeskSettings

ODC = "[Rakuten Marketplace] Order Details Confirmation (automatic email)"
OC = "[Rakuten Marketplace] Order Confirmation (automatic email)"


@pytest.fixture
def desk(settings_env: Path) -> Helpdesk:
    return ZendeskHelpdesk(ZendeskSettings())


def zendesk_state(sandbox: Sandbox) -> dict[int, dict[str, Any]]:
    return {t["id"]: t for t in sandbox.state()["zendesk"]["tickets"]}


def user_named(sandbox: Sandbox, name: str) -> int:
    return next(u["id"] for u in sandbox.state()["zendesk"]["users"] if u["name"] == name)


def test_order_mail_tickets_are_the_unsolved_rakuten_mails_oldest_first(sandbox: Sandbox, desk: Helpdesk) -> None:
    sandbox.set_stock(rsl={"SIM-DATA-30D-20GB": 1})
    stocked = sandbox.place_order(["SIM-DATA-30D-20GB"])["order_number"]
    sandbox.advance(minutes=10)
    other = sandbox.place_order(["SIM-DATA-90D-50GB"])["order_number"]
    sandbox.post("/admin/mail", {"subject": "Where is my SIM?", "body": f"Order {other}",
                                 "sender_name": "Buyer", "sender_email": "buyer@example.jp"})
    sandbox.advance(minutes=21)  # RSL confirms the stocked order: its second mail arrives

    tickets = desk.order_mail_tickets()
    assert [t.subject for t in tickets] == [ODC, ODC, OC]
    assert stocked in tickets[0].description and other in tickets[1].description
    assert stocked in tickets[2].description
    assert tickets[0].created_at < tickets[1].created_at < tickets[2].created_at
    assert tickets[0].status == "new" and tickets[0].requester_id is not None

    desk.set_status(tickets[1].id, "solved")
    assert [t.id for t in desk.order_mail_tickets()] == [tickets[0].id, tickets[2].id]


def test_tickets_for_order_finds_both_mails_of_that_order_only(sandbox: Sandbox, desk: Helpdesk) -> None:
    sandbox.set_stock(rsl={"SIM-DATA-30D-20GB": 1})
    number = sandbox.place_order(["SIM-DATA-30D-20GB"])["order_number"]
    other = sandbox.place_order(["SIM-DATA-90D-50GB"])["order_number"]
    sandbox.advance(minutes=31)

    found = desk.tickets_for_order(number)
    assert [t.subject for t in found] == [ODC, OC]
    assert all(number in t.description for t in found)
    assert [t.subject for t in desk.tickets_for_order(other)] == [ODC]
    assert desk.tickets_for_order("381234-20261120-0000000000") == []


def test_tickets_with_note_finds_the_robots_note_on_a_solved_ticket_too(sandbox: Sandbox, desk: Helpdesk) -> None:
    number = sandbox.place_order(["SIM-DATA-30D-20GB"])["order_number"]
    other = sandbox.place_order(["SIM-DATA-90D-50GB"])["order_number"]
    [mine] = desk.tickets_for_order(number)
    [theirs] = desk.tickets_for_order(other)
    tag = f"[kuroko:{number}:fulfillment]"
    desk.add_internal_note(mine.id, f"FBA note\n\n{tag}", status="solved")
    desk.add_internal_note(theirs.id, f"FBA note\n\n[kuroko:{other}:fulfillment]")
    assert [t.id for t in desk.tickets_with_note(tag)] == [mine.id], "solved, and found by its own marker only"
    assert desk.tickets_with_note(f"[kuroko:{number}:completed]") == []


def test_internal_note_can_solve_tag_and_mention_in_one_update(sandbox: Sandbox, desk: Helpdesk) -> None:
    number = sandbox.place_order(["SIM-DATA-30D-20GB"])["order_number"]
    ticket = desk.tickets_for_order(number)[0]
    office = desk.user_id("Japan Office")
    assert office == user_named(sandbox, "Japan Office")

    comment_id = desk.add_internal_note(ticket.id, "Boss in progress", status="solved", add_tags=["rsl_stock"],
                                        mention_user_ids=[office])

    comments = desk.comments(ticket.id)
    assert comments[-1].id == comment_id
    assert (comments[-1].body, comments[-1].public) == ("Boss in progress", False)
    assert comments[0].public is True and number in comments[0].body
    after = desk.ticket(ticket.id)
    assert (after.status, after.tags) == ("solved", ["rsl_stock"])
    assert zendesk_state(sandbox)[ticket.id]["collaborator_ids"] == [office]
    assert desk.order_mail_tickets() == []
    assert desk.tickets_for_order(number) == []


def test_note_keeps_ticket_open_and_tags_come_and_go(sandbox: Sandbox, desk: Helpdesk) -> None:
    number = sandbox.place_order(["SIM-DATA-30D-20GB"])["order_number"]
    ticket_id = desk.tickets_for_order(number)[0].id
    desk.add_internal_note(ticket_id, "Thank You email sent; MCF order created", status="open")
    desk.add_tags(ticket_id, ["kuroko_hold", "mcf"])
    desk.remove_tags(ticket_id, ["kuroko_hold"])
    after = desk.ticket(ticket_id)
    assert (after.status, after.tags) == ("open", ["mcf"])
    assert [t.id for t in desk.tickets_for_order(number)] == [ticket_id]


def test_tickets_for_order_also_finds_a_mention_in_a_later_comment(sandbox: Sandbox, desk: Helpdesk) -> None:
    number = sandbox.place_order(["SIM-DATA-30D-20GB"])["order_number"]
    asked = sandbox.post("/admin/mail", {"subject": "Question", "body": "When will it ship?",
                                         "sender_name": "Buyer", "sender_email": "buyer@example.jp"})["ticket_id"]
    desk.add_internal_note(asked, f"This is about Rakuten order {number}")
    assert [t.id for t in desk.tickets_for_order(number)][1:] == [asked]


def test_merge_puts_the_later_mail_into_the_first(sandbox: Sandbox, desk: Helpdesk) -> None:
    sandbox.post("/admin/zendesk/settings", {"merge_working_polls": 2})
    sandbox.set_stock(rsl={"SIM-DATA-30D-20GB": 1})
    number = sandbox.place_order(["SIM-DATA-30D-20GB"])["order_number"]
    sandbox.advance(minutes=31)
    first, second = desk.tickets_for_order(number)

    desk.merge(first.id, [second.id], note=f"Merged #{second.id}: same order {number}")

    assert [t.id for t in desk.tickets_for_order(number)] == [first.id]
    assert desk.ticket(second.id).status == "closed"
    assert desk.comments(first.id)[-1].body == f"Merged #{second.id}: same order {number}"
    assert desk.comments(first.id)[-1].public is False
    assert zendesk_state(sandbox)[second.id]["merged_into"] == first.id


def test_merge_into_a_closed_ticket_raises_api_error(sandbox: Sandbox, desk: Helpdesk) -> None:
    first = sandbox.place_order(["SIM-DATA-30D-20GB"])["order_number"]
    second = sandbox.place_order(["SIM-DATA-30D-20GB"])["order_number"]
    target, source = desk.tickets_for_order(first)[0], desk.tickets_for_order(second)[0]
    desk.set_status(target.id, "solved")
    sandbox.advance(days=5)  # solved tickets close after four days
    with pytest.raises(ApiError) as failed:
        desk.merge(target.id, [source.id], note="duplicate")
    assert failed.value.code == "merge_failed"
    assert f"#{target.id}" in failed.value.message and "closed" in failed.value.message
    assert desk.ticket(source.id).status == "new"


def test_user_lookup_for_mentions(sandbox: Sandbox, desk: Helpdesk) -> None:
    assert desk.user_id("japan office") == user_named(sandbox, "Japan Office")
    assert desk.user_id("Japan") is None  # a part of a name is not a person
    assert desk.user_id("Nobody Here") is None


def test_refusals_become_api_errors_without_the_token(sandbox: Sandbox, settings_env: Path) -> None:
    wrong = ZendeskHelpdesk(ZendeskSettings(zendesk_token=SecretStr("s3cret-wrong-token")))
    with pytest.raises(ApiError) as refused:
        wrong.order_mail_tickets()
    assert refused.value.code == "401"
    assert "KUROKO_ZENDESK_TOKEN" in refused.value.message
    assert "s3cret-wrong-token" not in str(refused.value)

    desk = ZendeskHelpdesk(ZendeskSettings())
    with pytest.raises(ApiError) as missing:
        desk.ticket(99)
    assert missing.value.code == "404" and "RecordNotFound" in missing.value.message


def test_configuration_is_checked_before_any_request(settings_env: Path) -> None:
    with pytest.raises(ConfigurationError):
        ZendeskHelpdesk(ZendeskSettings(zendesk_url="not a url"))
    with pytest.raises(ConfigurationError):
        ZendeskHelpdesk(ZendeskSettings(zendesk_token=SecretStr("")))


def test_a_429_is_waited_out_and_every_request_is_counted(sandbox: Sandbox, desk: Helpdesk) -> None:
    number = sandbox.place_order(["SIM-DATA-30D-20GB"])["order_number"]
    ticket_id = desk.tickets_for_order(number)[0].id
    before = desk.request_count()
    sandbox.fault("zendesk", burst_429=1)
    started = time.monotonic()
    assert desk.ticket(ticket_id).id == ticket_id
    assert time.monotonic() - started >= 1.0  # Retry-After: 1
    assert desk.request_count() == before + 2  # the 429, then the answer


def test_quota_beyond_the_wait_budget_fails_as_api_error(sandbox: Sandbox, settings_env: Path) -> None:
    desk = ZendeskHelpdesk(ZendeskSettings(), rate_limit_wait_seconds=1)
    sandbox.post("/admin/zendesk/settings", {"rate_limit": 1, "rate_window_seconds": 60})
    desk.order_mail_tickets()
    with pytest.raises(ApiError) as limited:
        desk.order_mail_tickets()
    assert limited.value.code == "429"


def test_server_errors_and_unreachable_zendesk_are_application_errors(sandbox: Sandbox, settings_env: Path,
                                                                       desk: Helpdesk) -> None:
    sandbox.fault("zendesk", error_rate=1.0)
    with pytest.raises(ApiError) as broken:
        desk.order_mail_tickets()
    assert broken.value.code == "500" and "tried again" in broken.value.message
    gone = ZendeskHelpdesk(ZendeskSettings(zendesk_url="http://127.0.0.1:9"))
    with pytest.raises(SiteUnavailable):
        gone.ticket(1)
