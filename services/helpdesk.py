"""The robot's view of Zendesk: a small Protocol in business words, and the real client behind it
(zenpy, unmodified).

Against the sandbox (any ``KUROKO_ZENDESK_URL`` that is not ``https://<subdomain>.zendesk.com``)
zenpy is pointed with its own switches, ``ZENPY_FORCE_NETLOC`` and ``ZENPY_FORCE_SCHEME``, which it
reads from the environment on every request; they are (re)set before each call, and removed again
for a real ``*.zendesk.com`` account.

Rate limits: zenpy waits out a 429 itself, sleeping for ``Retry-After`` and asking again. Each
operation here may spend at most ``rate_limit_wait_seconds`` (default 90 s: Zendesk's quota is per
minute) waiting like that; beyond it the operation fails with ``ApiError`` code ``429`` and the
runner's retry with backoff takes over. A 429 without ``Retry-After`` fails at once the same way.

Errors: every refusal from Zendesk becomes ``kuroko.errors.ApiError`` whose ``code`` is the HTTP
status (``"401"``, ``"404"``, ``"422"``, ``"429"``, ``"500"`` …; ``"merge_failed"`` and
``"merge_pending"`` for merge jobs); connection failures and timeouts become ``SiteUnavailable``.
Messages name the operation, Zendesk's error and description, and what to do; never a credential.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

import requests
from pydantic import BaseModel, SecretStr
from requests.adapters import HTTPAdapter
from zenpy import Zenpy
from zenpy.lib.api_objects import Comment as ZenpyComment
from zenpy.lib.api_objects import Ticket as ZenpyTicket
from zenpy.lib.exception import APIException, RatelimitBudgetExceeded, ZenpyException

from kuroko.connections import CheckLine, Connection, Connections, checked
from kuroko.errors import ApiError, ConfigurationError, SiteUnavailable
from kuroko.settings import KurokoSettings, load, secret_values


class ZendeskSettings(KurokoSettings):
    zendesk_url: str = "http://127.0.0.1:8103"
    """The Zendesk account (https://<subdomain>.zendesk.com) or the sandbox."""
    zendesk_email: str = "robot@kuroko.example"
    """The robot's own agent: notes are written, and hand-over tickets requested, as this user."""
    zendesk_token: SecretStr = SecretStr("zendesk-demo-token")


class ClaimsAddress(KurokoSettings):
    claims_recipient: str = ""
    """KUROKO_CLAIMS_RECIPIENT: the desk's address that receives only Amazon's forwarded case mails.
    A ticket whose Zendesk ``recipient`` is this address belongs to the Amazon claims procedure alone."""


def is_claims_mail(ticket: TicketView) -> bool:
    """Was this ticket received at the claims address (and so is the claims procedure's alone)?"""
    address = load(ClaimsAddress).claims_recipient.strip().casefold()
    return bool(address) and (ticket.recipient or "").strip().casefold() == address


ORDER_MAIL_MARK = "[Rakuten Marketplace]"
UNSOLVED = "status<solved"
T = TypeVar("T")


class TicketView(BaseModel):
    id: int
    subject: str
    description: str
    status: str
    tags: list[str]
    created_at: datetime
    requester_id: int | None
    # Additive (the claims procedure): how the mail reached Zendesk.
    recipient: str | None = None
    """Zendesk's ``recipient``: the support address the mail was sent to (e.g. the claims address)."""
    via_from: str | None = None
    """Zendesk's ``via.source.from.address``: the address the mail came from (for an auto-forwarded
    mail, the mailbox that forwarded it)."""
    submitter_id: int | None = None
    """Who created the ticket: for an agent-forwarded mail the forwarding agent (the requester is
    then the original sender Zendesk read out of the forwarded text)."""
    requester_email: str | None = None
    """The sender's address as the mail gave it (``via.source.from.address``): for a Rakuten buyer the
    masked …@*.fw.rakuten.ne.jp address that is also on the RMS order."""


class CommentView(BaseModel):
    id: int
    body: str
    public: bool
    author_id: int
    created_at: datetime


class Helpdesk(Protocol):
    def order_mail_tickets(self) -> list[TicketView]:
        """Unsolved tickets whose subject contains ``[Rakuten Marketplace]``, oldest first."""
        ...

    def tickets_for_order(self, order_number: str) -> list[TicketView]:
        """Unsolved tickets that mention the order number (subject, description or comments),
        oldest first."""
        ...

    def ticket(self, ticket_id: int) -> TicketView: ...

    def tickets_with_note(self, tag: str) -> list[TicketView]:
        """Tickets of any status (solved and closed too) carrying a comment with ``tag`` (a robot
        note's marker), oldest first: how a robot whose ledger was lost finds its own tickets again."""
        ...

    def unsolved_tickets(self) -> list[TicketView]:
        """Every unsolved ticket, oldest first (the router reads them)."""
        ...

    def tagged_tickets(self, tag: str) -> list[TicketView]:
        """Unsolved tickets carrying ``tag``, oldest first."""
        ...

    def add_public_reply(self, ticket_id: int, body: str, *, status: str | None = None,
                         add_tags: Sequence[str] = ()) -> None:
        """A public comment (Zendesk mails it to the requester), with a status change and tags, in one update."""
        ...

    def comments(self, ticket_id: int) -> list[CommentView]:
        """Every comment, internal notes included, oldest first."""
        ...

    def add_internal_note(self, ticket_id: int, body: str, *, status: str | None = None,
                          add_tags: Sequence[str] = (), mention_user_ids: Sequence[int] = ()) -> int:
        """A private comment, with an optional status change, tags and people to notify, in one
        update. Returns the new comment's id."""
        ...

    def set_status(self, ticket_id: int, status: str) -> None: ...

    def add_tags(self, ticket_id: int, tags: Sequence[str]) -> None: ...

    def remove_tags(self, ticket_id: int, tags: Sequence[str]) -> None: ...

    def merge(self, target_id: int, source_ids: Sequence[int], *, note: str) -> None:
        """Merge the sources into the target and wait (bounded) until Zendesk has done it."""
        ...

    def user_id(self, name: str) -> int | None:
        """The Zendesk user with exactly this name (agents first), for @mentions."""
        ...

    def open_internal_ticket(self, *, subject: str, body: str, external_id: str, tags: Sequence[str] = (),
                             follow_up_of: int | None = None) -> int:
        """A ticket requested by the robot's own agent, its first comment private (Zendesk mails
        nobody outside), status Open; a follow-up of the closed ticket ``follow_up_of``. Returns its id."""
        ...

    def ticket_by_external_id(self, external_id: str) -> int | None:
        """The newest ticket with this external id."""
        ...

    def tickets_to(self, recipient: str) -> list[TicketView]:
        """Unsolved tickets whose ``recipient`` is this address, oldest first."""
        ...

    def user_email(self, user_id: int) -> str | None:
        """The e-mail address of a Zendesk user."""
        ...

    def request_count(self) -> int:
        """HTTP requests made so far (for the benchmark)."""
        ...


ADVICE = {
    401: "Check KUROKO_ZENDESK_EMAIL and KUROKO_ZENDESK_TOKEN (an API token of an agent).",
    403: "The agent behind KUROKO_ZENDESK_EMAIL may not do this; ask a Zendesk admin.",
    404: "It may have been deleted or merged away; look it up in Zendesk.",
    409: "Someone changed the ticket at the same moment; it will be tried again.",
    422: "Zendesk would not accept the change; look at the ticket in Zendesk (a closed ticket cannot change).",
    429: "Zendesk's API quota is used up for now; it will be tried again later.",
}


def _parse_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _ticket_view(ticket: Any) -> TicketView:
    return TicketView(
        id=int(ticket.id),
        subject=ticket.subject or "",
        description=ticket.description or "",
        status=ticket.status,
        tags=list(ticket.tags or []),
        created_at=_parse_time(ticket.created_at),
        requester_id=ticket.requester_id,
        recipient=getattr(ticket, "recipient", None) or None,
        via_from=_via_from(ticket),
        requester_email=_via_from(ticket),
        submitter_id=getattr(ticket, "submitter_id", None),
    )


def _field(obj: Any, *names: str) -> Any:
    for name in names:
        value = obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
        if value is not None:
            return value
    return None


def _via_from(ticket: Any) -> str | None:
    """``via.source.from.address`` (zenpy gives ``via`` as objects or dicts, ``from`` as ``from_``)."""
    source = _field(_field(ticket, "via") or {}, "source") or {}
    address = _field(_field(source, "from_", "from") or {}, "address")
    return str(address) if address else None


def _comment_change(ticket_id: int, body: str, *, public: bool, status: str | None,
                    add_tags: Sequence[str]) -> ZenpyTicket:
    """The ticket update that adds one comment (and maybe a status and tags) in one request."""
    change = ZenpyTicket(id=ticket_id, comment=ZenpyComment(body=body, public=public))
    if status is not None:
        change.status = status
    if add_tags:
        change.additional_tags = list(add_tags)
    return change


def _comment_view(comment: Any) -> CommentView:
    return CommentView(
        id=int(comment.id),
        body=comment.body or "",
        public=bool(comment.public),
        author_id=int(comment.author_id),
        created_at=_parse_time(comment.created_at),
    )


def _oldest_first(tickets: Iterable[TicketView]) -> list[TicketView]:
    return sorted(tickets, key=lambda t: (t.created_at, t.id))


def open_helpdesk(connections: Connections) -> ZendeskHelpdesk:
    return ZendeskHelpdesk()


class ZendeskHelpdesk:
    """``Helpdesk`` over zenpy. Not shared between threads."""

    def __init__(self, settings: ZendeskSettings | None = None, *, rate_limit_wait_seconds: int = 90,
                 merge_wait_seconds: float = 30.0, timeout_seconds: float = 30.0) -> None:
        settings = settings or load(ZendeskSettings)
        self._settings = settings
        self.rate_limit_wait_seconds = rate_limit_wait_seconds
        self.merge_wait_seconds = merge_wait_seconds
        email = settings.zendesk_email
        token = settings.zendesk_token.get_secret_value()
        if not email or not token:
            raise ConfigurationError("KUROKO_ZENDESK_EMAIL and KUROKO_ZENDESK_TOKEN must both be set "
                                     "(an agent's address and an API token)")
        subdomain, self._forced = self._where(settings.zendesk_url)
        self._count = 0
        self._lock = threading.Lock()
        self._me: int | None = None
        session = requests.Session()
        session.mount("https://", HTTPAdapter(**Zenpy.http_adapter_kwargs()))
        session.hooks["response"].append(self._counted)
        self._zenpy = Zenpy(subdomain=subdomain, email=email, token=token, session=session,
                            timeout=timeout_seconds, ratelimit_budget=rate_limit_wait_seconds,
                            disable_cache=True)

    @staticmethod
    def _where(url: str) -> tuple[str, tuple[str, str] | None]:
        """(subdomain, forced scheme and netloc): a real account, or zenpy's override for the sandbox."""
        parts = urlsplit(url or "")
        host = parts.hostname or ""
        if not parts.scheme or not host:
            raise ConfigurationError(f"KUROKO_ZENDESK_URL {url!r} is not a URL; give e.g. "
                                     "https://yourcompany.zendesk.com or http://127.0.0.1:8103")
        if host.endswith(".zendesk.com") and parts.scheme == "https" and parts.port is None:
            return host.split(".")[0], None
        return "kuroko", (parts.scheme, parts.netloc)

    def _counted(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        with self._lock:
            self._count += 1

    def request_count(self) -> int:
        return self._count

    def metrics(self) -> dict[str, int]:
        return {"zendesk_requests": self._count}

    # --- the one way in -----------------------------------------------------------------------
    def _call(self, what: str, action: Callable[[], T]) -> T:
        if self._forced is not None:
            os.environ["ZENPY_FORCE_SCHEME"], os.environ["ZENPY_FORCE_NETLOC"] = self._forced
        else:
            os.environ.pop("ZENPY_FORCE_SCHEME", None)
            os.environ.pop("ZENPY_FORCE_NETLOC", None)
        z = self._zenpy
        for api in (z.tickets, z.search, z.users, z.users.search, z.job_status):
            api.ratelimit_budget = self.rate_limit_wait_seconds  # zenpy spends it down; a fresh budget per call
        try:
            return action()
        except RatelimitBudgetExceeded as exc:
            raise ApiError(f"Zendesk kept answering 429 (rate limited) for more than "
                           f"{self.rate_limit_wait_seconds} s while trying to {what}. {ADVICE[429]}",
                           code="429") from exc
        except APIException as exc:
            raise self._refused(what, exc.response, str(exc)) from exc
        except requests.HTTPError as exc:
            raise self._refused(what, exc.response, "") from exc
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise SiteUnavailable(f"Zendesk could not be reached to {what} ({type(exc).__name__}); "
                                  f"is {self._settings.zendesk_url} up? It will be tried again.") from exc
        except ZenpyException as exc:
            raise ApiError(self._redact(f"Zendesk's answer to {what} could not be read by zenpy: {exc}"),
                           code="unreadable_response") from exc

    def _refused(self, what: str, response: requests.Response | None, fallback: str) -> ApiError:
        status = response.status_code if response is not None else 0
        error, description = "", fallback
        if response is not None:
            try:
                body = response.json()
                error = str(body.get("error") or "")
                description = str(body.get("description") or body.get("details") or "")
                if body.get("details"):
                    description = f"{description} {body['details']}".strip()
            except ValueError:
                description = response.text[:200]
        advice = ADVICE.get(status, "Zendesk had a problem; it will be tried again." if status >= 500 else "")
        detail = ": ".join(x for x in (error, description) if x)
        message = f"Zendesk refused to {what} (HTTP {status}{' ' + detail if detail else ''}). {advice}".strip()
        return ApiError(self._redact(message), code=str(status or "error"))

    def _redact(self, text: str) -> str:
        for secret in {*secret_values(), *self._settings.own_secrets()}:
            text = text.replace(secret, "***")
        return text

    def _me_id(self) -> int:
        if self._me is None:
            self._me = int(self._call("read the robot's own Zendesk user", self._zenpy.users.me).id)
        return self._me

    def check(self, order: str | None = None) -> list[CheckLine]:
        """`kuroko check`: the credentials (users/me), the intake's search, the hold tag. Read-only."""
        from kuroko.settings import get_settings

        system = "zendesk"

        def me() -> str:
            user = self._call("read the robot's own Zendesk user", self._zenpy.users.me)
            if getattr(user, "id", None) is None:
                raise ApiError(f"Zendesk answered users/me without a user. {ADVICE[401]}", code="401")
            self._me = int(user.id)
            return f"signed in as {user.name} <{user.email}> ({user.role}) on {self._settings.zendesk_url}"

        lines = [checked(system, "credentials", me)]
        if not lines[0].ok:
            return lines
        lines.append(checked(system, "intake search",
                             lambda: f"{len(self.order_mail_tickets())} unsolved Rakuten order mails found"))
        hold_tag = get_settings().hold_tag

        def hold() -> str:
            held = self._search_tickets("search the held tickets", f"type:ticket tags:{hold_tag}")
            return f"hold tag {hold_tag!r} (KUROKO_HOLD_TAG): on {len(held)} tickets now"

        lines.append(checked(system, "hold tag", hold))
        return lines

    # --- reading ---------------------------------------------------------------------------------
    def _search_tickets(self, what: str, query: str) -> list[TicketView]:
        def run() -> list[TicketView]:
            found = self._zenpy.search(query, sort_by="created_at", sort_order="asc")
            return [_ticket_view(t) for t in found if getattr(t, "status", None) is not None]

        return _oldest_first(self._call(what, run))

    def order_mail_tickets(self) -> list[TicketView]:
        found = self._search_tickets("search the Rakuten order mails",
                                     f'type:ticket {UNSOLVED} subject:"{ORDER_MAIL_MARK}"')
        return [t for t in found if ORDER_MAIL_MARK in t.subject and t.status not in ("solved", "closed")]

    def tickets_for_order(self, order_number: str) -> list[TicketView]:
        number = order_number.strip()
        if not number or '"' in number:
            raise ValueError(f"not an order number: {order_number!r}")
        found = self._search_tickets(f"search the tickets of order {number}", f'type:ticket {UNSOLVED} "{number}"')
        mine = []
        for ticket in found:
            if ticket.status in ("solved", "closed"):
                continue
            # Zendesk's search is word-based; keep only tickets that really carry the number.
            if number in ticket.subject or number in ticket.description or any(
                number in c.body for c in self.comments(ticket.id)
            ):
                mine.append(ticket)
        return mine

    def tickets_with_note(self, tag: str) -> list[TicketView]:
        phrase = tag.strip()
        if not phrase or '"' in phrase:
            raise ValueError(f"not a note marker: {tag!r}")
        found = self._search_tickets(f"search the tickets noted {phrase}", f'type:ticket "{phrase}"')
        # Zendesk's search is word-based; keep only tickets that really carry the marker.
        return [t for t in found if any(phrase in c.body for c in self.comments(t.id))]

    def unsolved_tickets(self) -> list[TicketView]:
        found = self._search_tickets("search the unsolved tickets", f"type:ticket {UNSOLVED}")
        return [t for t in found if t.status not in ("solved", "closed")]

    def tagged_tickets(self, tag: str) -> list[TicketView]:
        if not re.fullmatch(r"[\w-]+", tag):
            raise ValueError(f"not a tag: {tag!r}")
        found = self._search_tickets(f"search the tickets tagged {tag}", f"type:ticket {UNSOLVED} tags:{tag}")
        return [t for t in found if tag in t.tags and t.status not in ("solved", "closed")]

    def ticket(self, ticket_id: int) -> TicketView:
        return self._call(f"read ticket #{ticket_id}", lambda: _ticket_view(self._zenpy.tickets(id=ticket_id)))

    def comments(self, ticket_id: int) -> list[CommentView]:
        def run() -> list[CommentView]:
            return [_comment_view(c) for c in self._zenpy.tickets.comments(ticket=ticket_id)]

        found = self._call(f"read the comments of ticket #{ticket_id}", run)
        return sorted(found, key=lambda c: (c.created_at, c.id))

    def user_id(self, name: str) -> int | None:
        wanted = name.strip().casefold()
        if not wanted:
            return None
        users = self._call(f"look up the Zendesk user {name!r}", lambda: list(self._zenpy.users.search(query=name)))
        exact = [u for u in users if (u.name or "").strip().casefold() == wanted and u.active is not False]
        exact.sort(key=lambda u: (u.role == "end-user", int(u.id)))
        return int(exact[0].id) if exact else None

    # --- writing ---------------------------------------------------------------------------------
    def add_internal_note(self, ticket_id: int, body: str, *, status: str | None = None,
                          add_tags: Sequence[str] = (), mention_user_ids: Sequence[int] = ()) -> int:
        if not body.strip():
            raise ValueError("an internal note needs a body")
        change = _comment_change(ticket_id, body, public=False, status=status, add_tags=add_tags)
        if mention_user_ids:
            change.additional_collaborators = [int(i) for i in mention_user_ids]
        what = f"add an internal note to ticket #{ticket_id}"
        result = self._call(what, lambda: self._zenpy.tickets.update(change))
        events = getattr(getattr(result, "audit", None), "events", None) or []
        for event in events:
            if isinstance(event, dict) and event.get("type") == "Comment" and event.get("id"):
                return int(event["id"])
        # No audit in the answer: the note is the newest private comment by us with this body.
        me = self._me_id()
        for comment in reversed(self.comments(ticket_id)):
            if not comment.public and comment.author_id == me and comment.body == body:
                return comment.id
        raise ApiError(f"Zendesk accepted the note on ticket #{ticket_id} but it is not among the ticket's "
                       "comments; look at the ticket in Zendesk before writing it again.", code="note_missing")

    def add_public_reply(self, ticket_id: int, body: str, *, status: str | None = None,
                         add_tags: Sequence[str] = ()) -> None:
        if not body.strip():
            raise ValueError("a reply needs a body")
        change = _comment_change(ticket_id, body, public=True, status=status, add_tags=add_tags)
        self._call(f"reply to ticket #{ticket_id}", lambda: self._zenpy.tickets.update(change))

    def open_internal_ticket(self, *, subject: str, body: str, external_id: str, tags: Sequence[str] = (),
                             follow_up_of: int | None = None) -> int:
        if not body.strip():
            raise ValueError("a ticket needs a first comment")
        me = self._me_id()
        values: dict[str, Any] = {"subject": subject, "requester_id": me, "submitter_id": me, "status": "open",
                                  "external_id": external_id, "tags": list(tags),
                                  "comment": ZenpyComment(body=body, public=False)}
        if follow_up_of is not None:
            values["via_followup_source_id"] = int(follow_up_of)
        result = self._call(f"open a ticket for {external_id}",
                            lambda: self._zenpy.tickets.create(ZenpyTicket(**values)))
        return int(result.ticket.id)

    def ticket_by_external_id(self, external_id: str) -> int | None:
        found = self._call(f"look up the ticket of {external_id}",
                           lambda: [int(t.id) for t in self._zenpy.tickets(external_id=external_id)])
        return max(found, default=None)

    def tickets_to(self, recipient: str) -> list[TicketView]:
        address = recipient.strip()
        if not address or '"' in address or " " in address:
            raise ValueError(f"not an e-mail address: {recipient!r}")
        found = self._search_tickets(f"search the tickets received at {address}",
                                     f"type:ticket {UNSOLVED} recipient:{address}")
        return [t for t in found if (t.recipient or "").casefold() == address.casefold()
                and t.status not in ("solved", "closed")]

    def user_email(self, user_id: int) -> str | None:
        user = self._call(f"read the Zendesk user {user_id}", lambda: self._zenpy.users(id=user_id))
        email = getattr(user, "email", None)
        return str(email) if email else None

    def set_status(self, ticket_id: int, status: str) -> None:
        change = ZenpyTicket(id=ticket_id, status=status)
        self._call(f"set ticket #{ticket_id} to {status}", lambda: self._zenpy.tickets.update(change))

    def add_tags(self, ticket_id: int, tags: Sequence[str]) -> None:
        if tags:
            self._call(f"tag ticket #{ticket_id} with {', '.join(tags)}",
                       lambda: self._zenpy.tickets.add_tags(ticket_id, list(tags)))

    def remove_tags(self, ticket_id: int, tags: Sequence[str]) -> None:
        if tags:
            self._call(f"remove the tags {', '.join(tags)} from ticket #{ticket_id}",
                       lambda: self._zenpy.tickets.delete_tags(ticket_id, list(tags)))

    def merge(self, target_id: int, source_ids: Sequence[int], *, note: str) -> None:
        sources = [int(s) for s in source_ids]
        if not sources:
            return
        what = f"merge tickets {', '.join(f'#{s}' for s in sources)} into #{target_id}"
        job = self._call(what, lambda: self._zenpy.tickets.merge(target_id, sources, target_comment=note,
                                                                 source_comment=note))
        deadline = time.monotonic() + self.merge_wait_seconds
        pause = 0.1
        status, job_id = getattr(job, "status", None), str(job.id)
        while status not in ("completed", "failed", "killed"):
            if time.monotonic() >= deadline:
                raise ApiError(f"Zendesk's job to {what} was still {status!r} after {self.merge_wait_seconds:g} s; "
                               "look at the tickets in Zendesk before merging again.", code="merge_pending")
            time.sleep(pause)
            pause = min(pause * 2, 2.0)
            job = self._call(f"follow the job to {what}", lambda: self._zenpy.job_status(id=job_id))
            status = getattr(job, "status", None)
        if status != "completed":
            raise ApiError(f"Zendesk could not {what}: {getattr(job, 'message', None) or status}. "
                           "Look at the tickets in Zendesk (a closed ticket cannot be merged).", code="merge_failed")


HELPDESK: Connection[Helpdesk] = Connection("helpdesk", open_helpdesk)
"""Zendesk, for the procedures and for hand-overs."""
