"""The sandbox's Zendesk Support API, driven by unmodified zenpy (and raw httpx where the wire
itself is the point): tickets, internal notes, search, merge, pagination, users, auth, quota."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Sandbox
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from zenpy import Zenpy
from zenpy.lib.api_objects import Comment, Ticket
from zenpy.lib.exception import APIException

EMAIL = "robot@kuroko.example"
TOKEN = "zendesk-demo-token"
ODC = "[Rakuten Marketplace] Order Details Confirmation (automatic email)"
ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
REFS = Path(__file__).resolve().parent / "refs"
"""A copy of the reference (the Zendesk OpenAPI subset, licence beside it)."""
OAS = REFS / "zendesk" / "zendesk-oas-subset.tickets-comments-search-merge-jobstatus-users.json"


@pytest.fixture
def zenpy(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Zenpy:
    """zenpy as shipped, pointed at the sandbox with its own environment switches."""
    monkeypatch.setenv("ZENPY_FORCE_NETLOC", sandbox.urls["zendesk"].split("://", 1)[1])
    monkeypatch.setenv("ZENPY_FORCE_SCHEME", "http")
    return Zenpy(subdomain="kuroko", email=EMAIL, token=TOKEN, disable_cache=True)


@pytest.fixture
def api(sandbox: Sandbox) -> Iterator[httpx.Client]:
    """Raw HTTP to the Zendesk API, authenticated as the robot."""
    with httpx.Client(base_url=sandbox.urls["zendesk"], auth=(f"{EMAIL}/token", TOKEN), timeout=10) as client:
        yield client


def zendesk_settings(sandbox: Sandbox, **knobs: Any) -> dict[str, Any]:
    return sandbox.post("/admin/zendesk/settings", knobs)


def tickets_by_id(sandbox: Sandbox) -> dict[int, dict[str, Any]]:
    return {t["id"]: t for t in sandbox.state()["zendesk"]["tickets"]}


def note(zenpy: Zenpy, ticket_id: int, body: str, **changes: Any) -> Any:
    return zenpy.tickets.update(Ticket(id=ticket_id, comment=Comment(body=body, public=False), **changes))


# --- tickets and notes -----------------------------------------------------------------------------
def test_create_ticket_then_internal_note_with_status_and_tags(sandbox: Sandbox, zenpy: Zenpy) -> None:
    created = zenpy.tickets.create(Ticket(subject="Question about SIM", comment=Comment(body="Where is my SIM?")))
    ticket = created.ticket
    assert ticket.status == "new"
    assert ticket.via.channel == "api"

    result = note(zenpy, ticket.id, "Checked BOSS: in progress", status="solved", additional_tags=["kuroko"])
    comment_events = [e for e in result.audit.events if e["type"] == "Comment"]
    assert len(comment_events) == 1 and comment_events[0]["public"] is False

    comments = list(zenpy.tickets.comments(ticket=ticket.id))
    assert [(c.body, c.public) for c in comments] == [("Where is my SIM?", True),
                                                      ("Checked BOSS: in progress", False)]
    assert comments[1].id == comment_events[0]["id"]
    shown = zenpy.tickets(id=ticket.id)
    assert (shown.status, shown.tags) == ("solved", ["kuroko"])
    state = tickets_by_id(sandbox)[ticket.id]
    assert state["status"] == "solved"
    assert state["comments"][1]["author_id"] == zenpy.users.me().id


def test_order_mail_arrives_as_email_ticket(sandbox: Sandbox, zenpy: Zenpy, api: httpx.Client) -> None:
    number = sandbox.place_order(["SIM-DATA-30D-20GB"])["order_number"]
    ticket = next(iter(zenpy.search(f'type:ticket "{number}"')))
    assert ticket.subject == ODC
    assert number in ticket.description
    assert ISO_Z.match(ticket.created_at)
    via = api.get(f"/api/v2/tickets/{ticket.id}.json").json()["ticket"]["via"]
    assert via["channel"] == "email"
    assert via["source"]["from"]["address"] == "order@rakuten.co.jp"


def test_audit_log_counts_notes_not_mails_or_merge_comments(sandbox: Sandbox, zenpy: Zenpy) -> None:
    sandbox.place_order(["SIM-DATA-30D-20GB"])
    sandbox.place_order(["SIM-DATA-30D-20GB"])
    first, second = sorted(tickets_by_id(sandbox))
    assert sandbox.audit("zendesk", "comment_added") == []
    note(zenpy, first, "a note")
    zenpy.tickets.merge(first, [second], target_comment="merged", source_comment="merged")
    actions = [e["action"] for e in sandbox.audit("zendesk")]
    assert actions == ["ticket_created", "ticket_created", "comment_added", "status_changed", "tickets_merged"]
    vias = [c["via"] for c in tickets_by_id(sandbox)[first]["comments"]]
    assert vias == ["email", "api", "merge"]


def test_agent_note_opens_a_new_ticket_and_mentions_add_collaborators(sandbox: Sandbox, zenpy: Zenpy) -> None:
    sandbox.place_order(["SIM-DATA-30D-20GB"])
    ticket_id = next(iter(tickets_by_id(sandbox)))
    office = next(iter(zenpy.users.search(query="Japan Office")))
    note(zenpy, ticket_id, "@Japan Office delivery takes 3 days", additional_collaborators=[office.id])
    state = tickets_by_id(sandbox)[ticket_id]
    assert state["status"] == "open"
    assert state["collaborator_ids"] == [office.id]


def test_closed_ticket_refuses_updates(sandbox: Sandbox, zenpy: Zenpy, api: httpx.Client) -> None:
    sandbox.place_order(["SIM-DATA-30D-20GB"])
    ticket_id = next(iter(tickets_by_id(sandbox)))
    zenpy.tickets.update(Ticket(id=ticket_id, status="solved"))
    sandbox.advance(days=3)
    assert zenpy.tickets(id=ticket_id).status == "solved"
    sandbox.advance(days=2)  # Zendesk's automation closes solved tickets after 4 days
    assert zenpy.tickets(id=ticket_id).status == "closed"
    r = api.put(f"/api/v2/tickets/{ticket_id}.json", json={"ticket": {"comment": {"body": "late", "public": False}}})
    assert r.status_code == 422
    assert r.json()["error"] == "RecordInvalid"
    assert "closed" in json.dumps(r.json()["details"])


# --- search ----------------------------------------------------------------------------------------
def test_search_unsolved_order_mails_oldest_first(sandbox: Sandbox, zenpy: Zenpy) -> None:
    first = sandbox.place_order(["SIM-DATA-30D-20GB"])["order_number"]
    sandbox.advance(minutes=5)
    second = sandbox.place_order(["SIM-DATA-90D-50GB"])["order_number"]
    sandbox.advance(minutes=5)
    third = sandbox.place_order(["SIM-VOICE-30D"])["order_number"]
    sandbox.post("/admin/mail", {"subject": "Re: my order", "body": f"About {first}, please hurry",
                                 "sender_name": "Buyer", "sender_email": "buyer@example.jp"})
    ids = {number: next(iter(zenpy.search(f'type:ticket subject:"[Rakuten Marketplace]" "{number}"'))).id
           for number in (first, second, third)}
    zenpy.tickets.update(Ticket(id=ids[second], status="solved"))

    found = list(zenpy.search('type:ticket status<solved subject:"[Rakuten Marketplace]"',
                              sort_by="created_at", sort_order="asc"))
    assert [t.id for t in found] == [ids[first], ids[third]]
    newest_first = list(zenpy.search('type:ticket subject:"[Rakuten Marketplace]"', sort_by="created_at",
                                     sort_order="desc"))
    assert [t.id for t in newest_first] == [ids[third], ids[second], ids[first]]
    assert [t.id for t in zenpy.search("type:ticket status:solved")] == [ids[second]]
    # A bare quoted phrase finds the number in descriptions and in other tickets' text.
    assert len(list(zenpy.search(f'type:ticket "{first}"'))) == 2
    assert len(list(zenpy.search(f'type:ticket "{first}" -subject:"Re:"'))) == 1


def test_search_reads_tags_notes_and_dates(sandbox: Sandbox, zenpy: Zenpy) -> None:
    sandbox.place_order(["SIM-DATA-30D-20GB"])
    sandbox.advance(days=1)
    sandbox.place_order(["SIM-DATA-30D-20GB"])
    first, second = sorted(tickets_by_id(sandbox))
    note(zenpy, first, "handed to a person: eSIM found", additional_tags=["kuroko_hold"])
    assert [t.id for t in zenpy.search("type:ticket tags:kuroko_hold")] == [first]
    assert [t.id for t in zenpy.search("type:ticket -tags:kuroko_hold")] == [second]
    assert [t.id for t in zenpy.search('type:ticket "eSIM found"')] == [first]
    assert [t.id for t in zenpy.search("type:ticket status:open")] == [first]
    assert [t.id for t in zenpy.search("type:ticket created>2026-11-20T12:00:00Z")] == [second]
    assert zenpy.search.count("type:ticket status<solved") == 2


def test_search_pages_with_absolute_next_page(sandbox: Sandbox, zenpy: Zenpy, api: httpx.Client) -> None:
    zendesk_settings(sandbox, max_page_size=2)
    for _ in range(5):
        sandbox.place_order(["SIM-DATA-30D-20GB"])
    r = api.get("/api/v2/search.json", params={"query": "type:ticket status<solved", "per_page": 2})
    page = r.json()
    assert page["count"] == 5 and len(page["results"]) == 2
    assert page["next_page"].startswith(sandbox.urls["zendesk"] + "/api/v2/search")
    second = api.get(page["next_page"]).json()
    assert second["previous_page"].startswith(sandbox.urls["zendesk"])
    assert {t["id"] for t in second["results"]}.isdisjoint({t["id"] for t in page["results"]})
    assert len(list(zenpy.search("type:ticket status<solved"))) == 5  # zenpy follows next_page


def test_unknown_search_keyword_is_refused(api: httpx.Client) -> None:
    r = api.get("/api/v2/search.json", params={"query": "type:ticket colour:blue"})
    assert r.status_code == 400
    assert "colour" in r.json()["description"]


# --- comments pagination -----------------------------------------------------------------------------
def test_comments_paginate_with_absolute_links(sandbox: Sandbox, zenpy: Zenpy, api: httpx.Client) -> None:
    sandbox.place_order(["SIM-DATA-30D-20GB"])
    ticket_id = next(iter(tickets_by_id(sandbox)))
    for i in range(4):
        note(zenpy, ticket_id, f"note {i}")
    zendesk_settings(sandbox, max_page_size=2)

    # zenpy asks for cursor pages (page[size]=100) and follows links.next across the three pages
    bodies = [c.body for c in zenpy.tickets.comments(ticket=ticket_id)]
    assert bodies[1:] == ["note 0", "note 1", "note 2", "note 3"]

    base = sandbox.urls["zendesk"]
    offset = api.get(f"/api/v2/tickets/{ticket_id}/comments.json").json()
    assert [c["body"] for c in offset["comments"]][1:] == ["note 0"]
    assert offset["count"] == 5 and offset["next_page"].startswith(base + f"/api/v2/tickets/{ticket_id}/comments")
    last = api.get(api.get(offset["next_page"]).json()["next_page"]).json()
    assert [c["body"] for c in last["comments"]] == ["note 3"] and last["next_page"] is None

    cursor = api.get(f"/api/v2/tickets/{ticket_id}/comments", params={"page[size]": 2}).json()
    assert cursor["meta"]["has_more"] is True
    assert cursor["links"]["next"].startswith(base + f"/api/v2/tickets/{ticket_id}/comments")
    assert [c["body"] for c in api.get(cursor["links"]["next"]).json()["comments"]] == ["note 1", "note 2"]


# --- merge -------------------------------------------------------------------------------------------------
def test_merge_closes_sources_and_notes_the_target(sandbox: Sandbox, zenpy: Zenpy) -> None:
    zendesk_settings(sandbox, merge_working_polls=1)
    sandbox.set_stock(rsl={"SIM-DATA-30D-20GB": 1})
    number = sandbox.place_order(["SIM-DATA-30D-20GB"])["order_number"]
    sandbox.advance(minutes=31)  # RSL confirms: the second mail
    first, second = sorted(tickets_by_id(sandbox))

    job = zenpy.tickets.merge(first, [second], target_comment=f"Merged #{second} (order {number})",
                              source_comment=f"Merged into #{first}")
    assert job.status == "queued"
    assert zenpy.job_status(id=job.id).status == "working"
    done = zenpy.job_status(id=job.id)
    assert done.status == "completed"
    assert done.progress == done.total == 1

    state = tickets_by_id(sandbox)
    source, target = state[second], state[first]
    assert (source["status"], source["merged_into"]) == ("closed", first)
    assert "closed_by_merge" in source["tags"]
    assert (source["comments"][-1]["body"], source["comments"][-1]["public"]) == (f"Merged into #{first}", False)
    assert target["status"] == "new"
    assert [(c["body"], c["public"]) for c in target["comments"]][-1] == (f"Merged #{second} (order {number})", False)
    unsolved = [t.id for t in zenpy.search(f'type:ticket status<solved "{number}"')]
    assert unsolved == [first]


def test_merge_into_a_closed_ticket_fails_and_changes_nothing(sandbox: Sandbox, zenpy: Zenpy) -> None:
    sandbox.place_order(["SIM-DATA-30D-20GB"])
    sandbox.place_order(["SIM-DATA-30D-20GB"])
    first, second = sorted(tickets_by_id(sandbox))
    zenpy.tickets.update(Ticket(id=first, status="solved"))
    sandbox.advance(days=5)
    assert zenpy.tickets(id=first).status == "closed"

    job = zenpy.tickets.merge(first, [second], target_comment="merge", source_comment="merge")
    failed = zenpy.job_status(id=job.id)
    assert failed.status == "failed"
    assert f"#{first} is closed" in failed.message
    assert tickets_by_id(sandbox)[second]["status"] == "new"
    assert len(tickets_by_id(sandbox)[second]["comments"]) == 1


# --- users -------------------------------------------------------------------------------------------------
def test_users_me_show_and_search(sandbox: Sandbox, zenpy: Zenpy) -> None:
    me = zenpy.users.me()
    assert (me.name, me.email, me.role) == ("Kuroko Robot", EMAIL, "agent")
    office_id = next(u["id"] for u in sandbox.state()["zendesk"]["users"] if u["name"] == "Japan Office")
    assert zenpy.users(id=office_id).name == "Japan Office"
    assert [u.id for u in zenpy.users.search(query="Japan Office")] == [office_id]
    added = sandbox.post("/admin/zendesk/users", {"name": "Sato Hanako", "email": "sato@kuroko.example"})
    assert [u.id for u in zenpy.users.search(query="sato")] == [added["id"]]


def test_paths_answer_with_and_without_json(api: httpx.Client) -> None:
    assert api.get("/api/v2/users/me").json() == api.get("/api/v2/users/me.json").json()
    assert api.get("/api/v2/nothing-here.json").json()["error"] == "InvalidEndpoint"


# --- auth, quota, faults ------------------------------------------------------------------------------------
def test_wrong_or_missing_token_is_401(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZENPY_FORCE_NETLOC", sandbox.urls["zendesk"].split("://", 1)[1])
    monkeypatch.setenv("ZENPY_FORCE_SCHEME", "http")
    wrong = Zenpy(subdomain="kuroko", email=EMAIL, token="not-the-token", disable_cache=True)
    with pytest.raises(APIException) as refused:
        wrong.users.me()
    assert refused.value.response.status_code == 401
    url = sandbox.urls["zendesk"] + "/api/v2/tickets.json"
    for auth in (None, (f"{EMAIL}/token", "nope"), (EMAIL, TOKEN)):
        r = httpx.get(url, auth=auth)
        assert r.status_code == 401
        assert r.json() == {"error": "Couldn't authenticate you"}
        assert "X-Rate-Limit-Remaining" in r.headers


def test_over_quota_answers_429_with_retry_after(sandbox: Sandbox, api: httpx.Client) -> None:
    zendesk_settings(sandbox, rate_limit=3)
    remaining = [api.get("/api/v2/users/me.json").headers["X-Rate-Limit-Remaining"] for _ in range(3)]
    assert remaining == ["2", "1", "0"]
    r = api.get("/api/v2/users/me.json")
    assert r.status_code == 429
    assert r.headers["X-Rate-Limit"] == "3"
    assert 1 <= int(r.headers["Retry-After"]) <= 60


def test_zenpy_waits_out_the_quota(sandbox: Sandbox, zenpy: Zenpy) -> None:
    zendesk_settings(sandbox, rate_limit=2, rate_window_seconds=1.5)
    started = time.monotonic()
    names = [zenpy.users.me().name for _ in range(3)]
    assert names == ["Kuroko Robot"] * 3
    assert time.monotonic() - started >= 1.0  # the third call slept for Retry-After


def test_fault_knobs_give_429_with_retry_after_and_5xx_in_zendesk_shape(
    sandbox: Sandbox, zenpy: Zenpy, api: httpx.Client
) -> None:
    sandbox.fault("zendesk", burst_429=1)
    r = api.get("/api/v2/users/me.json")
    assert (r.status_code, r.headers["Retry-After"]) == (429, "1")
    sandbox.fault("zendesk", burst_429=1)
    assert zenpy.users.me().name == "Kuroko Robot"  # zenpy slept one second and asked again
    sandbox.fault("zendesk", error_rate=1.0)
    r = api.get("/api/v2/users/me.json")
    assert r.status_code == 500
    assert set(r.json()) == {"error", "description"}
    assert "X-Rate-Limit" in r.headers


# --- shapes ----------------------------------------------------------------------------------------------
def _as_json_schema(node: Any) -> Any:
    """OpenAPI 3.0 → JSON Schema: ``nullable: true`` becomes a null alternative; examples dropped."""
    if isinstance(node, list):
        return [_as_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _as_json_schema(v) for k, v in node.items() if k not in ("example", "examples")}
    if out.pop("nullable", False) is True:
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
            if "enum" in out:
                out["enum"] = [*out["enum"], None]
        else:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


@pytest.fixture(scope="module")
def reference() -> Registry:
    document = _as_json_schema(json.loads(OAS.read_text()))
    return Registry().with_resource("urn:zendesk", Resource.from_contents(document, default_specification=DRAFT202012))


def check(registry: Registry, schema: str, body: Any) -> None:
    validator = Draft202012Validator({"$ref": f"urn:zendesk#/components/schemas/{schema}"}, registry=registry)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(body)]
    assert not errors, f"{schema}: {errors[:5]}"


def test_bodies_match_the_reference_schemas(sandbox: Sandbox, api: httpx.Client, reference: Registry) -> None:
    sandbox.set_stock(rsl={"SIM-DATA-30D-20GB": 1})
    sandbox.place_order(["SIM-DATA-30D-20GB"])
    sandbox.advance(minutes=31)
    first, second = sorted(tickets_by_id(sandbox))
    update = api.put(f"/api/v2/tickets/{first}.json", json={"ticket": {
        "comment": {"body": "Boss in progress", "public": False}, "status": "solved", "additional_tags": ["rsl"]}})
    check(reference, "TicketUpdateResponse", update.json())
    ticket = api.get(f"/api/v2/tickets/{first}.json").json()
    check(reference, "TicketResponse", ticket)
    comments = api.get(f"/api/v2/tickets/{first}/comments.json").json()
    check(reference, "TicketCommentsResponse", comments)
    search = api.get("/api/v2/search.json", params={"query": 'type:ticket subject:"[Rakuten Marketplace]"'}).json()
    assert search["count"] == 2
    check(reference, "SearchResponse", search)
    merged = api.post(f"/api/v2/tickets/{first}/merge.json", json={"ids": [second], "target_comment": "dup"}).json()
    check(reference, "JobStatusResponse", merged)
    job = api.get(f"/api/v2/job_statuses/{merged['job_status']['id']}.json").json()
    assert job["job_status"]["status"] == "completed"
    check(reference, "JobStatusResponse", job)
    me = api.get("/api/v2/users/me.json").json()
    check(reference, "CurrentUserResponse", me)
    user = api.get(f"/api/v2/users/{ticket['ticket']['requester_id']}.json").json()
    check(reference, "UserResponse", user)

    stamps = [ticket["ticket"]["created_at"], ticket["ticket"]["updated_at"], me["user"]["created_at"],
              *(c["created_at"] for c in comments["comments"])]
    assert all(ISO_Z.match(s) for s in stamps), stamps
    # The check itself can fail: a wrong status is caught.
    with pytest.raises(AssertionError):
        check(reference, "TicketResponse", {"ticket": ticket["ticket"] | {"status": "done"}})
