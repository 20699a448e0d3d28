"""Zendesk's data in the sandbox: users, tickets, comments, audits, job statuses, the search index,
and the account's API quota.

The HTTP API over it is sandbox/zendesk.py; this module knows Zendesk's rules (what an update may
change, what a merge does, what a search query means) and nothing about HTTP.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import math
import re
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sandbox.world import World

STATUSES = ("new", "open", "pending", "hold", "solved", "closed")
STATUS_RANK = {s: i for i, s in enumerate(STATUSES)}
PRIORITIES = ("low", "normal", "high", "urgent")
TICKET_TYPES = ("problem", "incident", "question", "task")
SUPPORT_ADDRESS = ("Kuroko Support", "support@kuroko.zendesk.com")


class ZendeskError(Exception):
    """A request Zendesk refuses: HTTP status and Zendesk's error body."""

    def __init__(self, status: int, error: str, description: str | None = None,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(description or error)
        self.status = status
        self.error = error
        self.description = description
        self.details = details

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.error}
        if self.description is not None:
            out["description"] = self.description
        if self.details is not None:
            out["details"] = self.details
        return out


def invalid(field_name: str, description: str) -> ZendeskError:
    """Zendesk's 422 for a record that fails validation."""
    return ZendeskError(422, "RecordInvalid", "Record validation errors",
                        {field_name: [{"description": description}]})


def not_found() -> ZendeskError:
    return ZendeskError(404, "RecordNotFound", "Not found")


def iso(moment: datetime | None) -> str | None:
    """Zendesk's timestamps: ISO-8601, UTC, whole seconds, ``Z``."""
    return None if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class User:
    id: int
    name: str
    email: str
    role: str = "end-user"
    created_at: datetime | None = None
    active: bool = True


@dataclass
class Comment:
    id: int
    author_id: int
    body: str
    public: bool
    created_at: datetime
    channel: str = "email"
    """How the comment came: ``email`` (a mail), ``api``, ``merge``."""
    audit_id: int | None = None


@dataclass
class Audit:
    id: int
    ticket_id: int
    author_id: int
    created_at: datetime
    channel: str
    events: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Ticket:
    id: int
    subject: str
    description: str
    requester_id: int
    status: str = "new"
    tags: list[str] = field(default_factory=list)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    comments: list[Comment] = field(default_factory=list)
    submitter_id: int | None = None
    assignee_id: int | None = None
    channel: str = "email"
    sender: tuple[str, str] | None = None
    """The mail's From (name, address) for tickets that came by e-mail."""
    collaborator_ids: list[int] = field(default_factory=list)
    priority: str | None = None
    type: str | None = None
    merged_into: int | None = None
    solved_at: datetime | None = None
    audits: list[Audit] = field(default_factory=list)
    external_id: str | None = None
    followup_source_id: int | None = None
    """A follow-up ticket: the closed ticket it follows (``via_followup_source_id`` at creation)."""
    followup_ids: list[int] = field(default_factory=list)
    recipient: str | None = None
    """The support address the mail was sent to (None: the desk's own ``SUPPORT_ADDRESS``)."""


@dataclass
class JobStatus:
    id: str
    job_type: str
    total: int
    outcome: str
    """What the job ends as: ``completed`` or ``failed``."""
    message: str
    results: Any
    working_polls: int = 0
    """How many more polls answer ``working`` before the outcome shows."""
    polls: int = 0
    created_at: datetime | None = None

    @property
    def status(self) -> str:
        if self.polls == 0:
            return "queued"
        if self.polls <= self.working_polls:
            return "working"
        return self.outcome


@dataclass
class ZendeskSettings:
    """Admin knobs (POST /admin/zendesk/settings)."""

    rate_limit: int = 700
    """Requests allowed per window (Zendesk Suite Professional: 700 a minute)."""
    rate_window_seconds: float = 60.0
    """The quota's window, in real (wall) seconds."""
    max_page_size: int = 100
    """Largest page a list or search returns (Zendesk: 100)."""
    merge_working_polls: int = 0
    """Job-status polls that answer ``working`` before a merge job shows its outcome."""
    close_solved_after_days: float | None = 4.0
    """Zendesk's default automation closes solved tickets after 4 days (virtual time); None: never."""


class RateLimiter:
    """A sliding window over real time: Zendesk counts API requests per minute, per account."""

    def __init__(self) -> None:
        self._hits: deque[float] = deque()

    def _trim(self, now: float, window: float) -> None:
        while self._hits and self._hits[0] <= now - window:
            self._hits.popleft()

    def hit(self, limit: int, window: float) -> tuple[bool, int, int]:
        """Count one request. Returns (allowed, remaining, retry_after_seconds)."""
        now = time.monotonic()
        self._trim(now, window)
        if len(self._hits) >= limit:
            retry = max(1, math.ceil(self._hits[0] + window - now))
            return False, 0, retry
        self._hits.append(now)
        return True, max(0, limit - len(self._hits)), 0

    def remaining(self, limit: int, window: float) -> int:
        self._trim(time.monotonic(), window)
        return max(0, limit - len(self._hits))


# --- search -------------------------------------------------------------------------------------
_TERM = re.compile(
    r'(?P<neg>-)?(?:(?P<field>[A-Za-z_]+)(?P<op><=|>=|:|<|>))?(?:"(?P<phrase>[^"]*)"?|(?P<word>\S+))'
)
TICKET_FIELDS = {"status", "subject", "description", "comment", "tags", "tag", "created", "updated", "solved",
                 "requester", "assignee", "priority", "ticket_type", "via", "id", "ticket_id", "recipient"}
USER_FIELDS = {"name", "email", "role"}
SORT_FIELDS = {"created": "created_at", "created_at": "created_at", "updated": "updated_at",
               "updated_at": "updated_at", "status": "status", "priority": "priority",
               "ticket_type": "ticket_type"}


@dataclass
class Term:
    field: str | None
    op: str
    value: str
    negate: bool = False


@dataclass
class Query:
    terms: list[Term]
    types: set[str]
    order_by: str | None = None
    sort: str | None = None


def parse_query(text: str) -> Query:
    """Zendesk's search syntax, the part the robot and a person at the desk use:
    ``type:ticket status<solved subject:"[Rakuten Marketplace]" tags:x -tags:y "a phrase" word
    created>2026-11-20 order_by:created sort:asc``."""
    terms: list[Term] = []
    types: set[str] = set()
    order_by: str | None = None
    sort: str | None = None
    for m in _TERM.finditer(text):
        value = m.group("phrase") if m.group("phrase") is not None else m.group("word")
        name = (m.group("field") or "").lower() or None
        op = m.group("op") or ":"
        if name is None and not value:
            continue
        if name == "type":
            if value.lower() not in ("ticket", "user"):
                raise ZendeskError(400, "InvalidSearch", f"the sandbox searches tickets and users, not {value!r}")
            types.add(value.lower())
            continue
        if name == "order_by":
            if value.lower() not in SORT_FIELDS:
                raise ZendeskError(400, "InvalidSearch", f"cannot order by {value!r}")
            order_by = SORT_FIELDS[value.lower()]
            continue
        if name == "sort":
            sort = value.lower()
            continue
        if name is not None and name not in TICKET_FIELDS | USER_FIELDS:
            raise ZendeskError(400, "InvalidSearch",
                               f"the sandbox does not know the search keyword {name}:; it knows "
                               f"{', '.join(sorted(TICKET_FIELDS | USER_FIELDS | {'type', 'order_by', 'sort'}))}")
        if name == "status" and value.lower() not in STATUS_RANK:
            raise ZendeskError(400, "InvalidSearch", f"unknown ticket status {value!r}")
        terms.append(Term(name, op, value, bool(m.group("neg"))))
    return Query(terms, types, order_by, sort)


def _moment(value: str) -> datetime:
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            return datetime.combine(date.fromisoformat(value), datetime.min.time(), UTC)
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ZendeskError(400, "InvalidSearch", f"not a date or time: {value!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _compare(left: Any, op: str, right: Any) -> bool:
    if op == ":":
        return bool(left == right)
    if op == "<":
        return bool(left < right)
    if op == ">":
        return bool(left > right)
    if op == "<=":
        return bool(left <= right)
    return bool(left >= right)


def _contains(haystack: str | None, needle: str) -> bool:
    return needle.casefold() in (haystack or "").casefold()


DEMO_AGENT_EMAIL = "robot@kuroko.example"
DEMO_API_TOKEN = "zendesk-demo-token"


class ZendeskStore:
    def __init__(self, world: World) -> None:
        self.world = world
        self.users: dict[int, User] = {}
        self.tickets: dict[int, Ticket] = {}
        self.jobs: dict[str, JobStatus] = {}
        self.settings = ZendeskSettings()
        self.limiter = RateLimiter()
        self.api_tokens: dict[str, str] = {DEMO_AGENT_EMAIL: DEMO_API_TOKEN}
        """Agent e-mail → API token: the sandbox's own demo agent."""
        self._user_ids = itertools.count(360_000_000_001)
        self._ticket_ids = itertools.count(10_001)
        self._comment_ids = itertools.count(900_000_000_001)
        """Comments, audits and audit events share one sequence (in Zendesk a comment's id is its
        audit event's id)."""
        self._job_ids = itertools.count(1)
        now = world.now()
        self.agent = self.add_user("Kuroko Robot", "robot@kuroko.example", role="agent", created_at=now)
        self.japan_office = self.add_user("Japan Office", "japan-office@kuroko.example", role="agent",
                                          created_at=now)

    # --- users -------------------------------------------------------------------------------
    def add_user(self, name: str, email: str, *, role: str = "end-user", created_at: datetime | None = None) -> User:
        user = User(next(self._user_ids), name, email, role, created_at or self.world.now())
        self.users[user.id] = user
        return user

    def user_by_email(self, email: str) -> User | None:
        return next((u for u in self.users.values() if u.email.casefold() == email.casefold()), None)

    def authenticate(self, email: str, token: str) -> User | None:
        """The agent behind ``email/token:TOKEN``, or None."""
        expected = self.api_tokens.get(email)
        user = self.user_by_email(email)
        if expected is None or user is None or user.role == "end-user" or not user.active:
            return None
        return user if hmac.compare_digest(expected.encode(), token.encode()) else None

    def get_user(self, user_id: int) -> User:
        user = self.users.get(user_id)
        if user is None:
            raise not_found()
        return user

    def search_users(self, text: str) -> list[User]:
        """``users/search.json?query=``: a name or address (part), or ``email:``/``name:``."""
        if ":" in text:
            key, _, value = text.partition(":")
            value = value.strip('"')
            if key == "email":
                return [u for u in self.users.values() if u.email.casefold() == value.casefold()]
            if key == "name":
                return [u for u in self.users.values() if _contains(u.name, value)]
        text = text.strip('"')
        return [u for u in self.users.values() if _contains(u.name, text) or _contains(u.email, text)]

    # --- tickets -----------------------------------------------------------------------------
    def get_ticket(self, ticket_id: int) -> Ticket:
        ticket = self.tickets.get(ticket_id)
        if ticket is None:
            raise not_found()
        return ticket

    def _new_id(self) -> int:
        return next(self._comment_ids)

    def receive_mail(self, *, subject: str, body: str, sender: tuple[str, str], recipient: str | None = None,
                     forwarded_by: tuple[str, str] | None = None) -> Ticket:
        """An e-mail arrives at a support address (``recipient``; None: the desk's own) and becomes a
        new ticket. ``forwarded_by``: an agent forwarded it (Zendesk's agent forwarding): the
        original ``sender`` becomes the requester and the agent the submitter. A mail a mailbox
        forwarded by itself (auto-forwarding) simply comes from that mailbox (``sender``)."""
        name, email = sender
        user = self.user_by_email(email) or self.add_user(name, email)
        submitter = user
        if forwarded_by is not None:
            submitter = self.user_by_email(forwarded_by[1]) or self.add_user(*forwarded_by, role="agent")
        now = self.world.now()
        ticket = Ticket(
            id=next(self._ticket_ids), subject=subject, description=body, requester_id=user.id,
            created_at=now, updated_at=now, submitter_id=submitter.id, channel="email", sender=(name, email),
            recipient=recipient,
        )
        self.tickets[ticket.id] = ticket
        audit = self._audit(ticket, user.id, "email")
        self._create_events(ticket, audit)
        self._comment(ticket, audit, author_id=user.id, body=body, public=True, channel="email", record=False)
        self.world.record("zendesk", "ticket_created", ticket_id=ticket.id, subject=subject)
        return ticket

    def add_comment(self, ticket: Ticket, *, author_id: int, body: str, public: bool) -> Comment:
        audit = self._audit(ticket, author_id, "api")
        return self._comment(ticket, audit, author_id=author_id, body=body, public=public, channel="api")

    def _audit(self, ticket: Ticket, author_id: int, channel: str) -> Audit:
        audit = Audit(self._new_id(), ticket.id, author_id, self.world.now(), channel)
        ticket.audits.append(audit)
        return audit

    def _create_events(self, ticket: Ticket, audit: Audit) -> None:
        for name, value in (("subject", ticket.subject), ("status", ticket.status),
                            ("requester_id", ticket.requester_id)):
            audit.events.append({"id": self._new_id(), "type": "Create", "field_name": name, "value": value})
        if ticket.tags:
            audit.events.append({"id": self._new_id(), "type": "Create", "field_name": "tags",
                                 "value": " ".join(ticket.tags)})

    def _comment(self, ticket: Ticket, audit: Audit, *, author_id: int, body: str, public: bool,
                 channel: str, record: bool = True) -> Comment:
        """Add a comment. ``record=False`` for a ticket's first comment and a merge's comments: the
        audit log already says ``ticket_created`` / ``tickets_merged`` for those."""
        comment = Comment(self._new_id(), author_id, body, public, audit.created_at, channel, audit.id)
        ticket.comments.append(comment)
        ticket.updated_at = comment.created_at
        audit.events.append({"id": comment.id, "type": "Comment", "author_id": author_id, "body": body,
                             "public": public, "audit_id": audit.id})
        if record:
            self.world.record("zendesk", "comment_added", ticket_id=ticket.id, comment_id=comment.id,
                              public=public)
        return comment

    def _change(self, ticket: Ticket, audit: Audit, name: str, value: Any, previous: Any) -> None:
        audit.events.append({"id": self._new_id(), "type": "Change", "field_name": name, "value": value,
                             "previous_value": previous})

    def create_ticket(self, data: dict[str, Any], author: User) -> tuple[Ticket, Audit]:
        """POST /api/v2/tickets: a ticket an agent opens through the API."""
        comment = data.get("comment") or {}
        if not isinstance(comment, dict):
            raise invalid("comment", "Comment: must be an object")
        body = _comment_body(comment) or str(data.get("description") or "")
        if not body.strip():
            raise invalid("description", "Description: cannot be blank")
        requester = self._requester(data, author)
        followed = data.get("via_followup_source_id")
        source = None
        if followed is not None:
            source = self.tickets.get(int(followed))
            if source is None:
                raise invalid("via_followup_source_id", f"Ticket #{followed} does not exist")
            if source.status != "closed":
                raise invalid("via_followup_source_id", f"Ticket #{followed} is not closed; only a closed ticket "
                                                        "can have a follow-up")
        status = str(data.get("status") or "new")
        if status not in STATUS_RANK or status == "closed":
            raise invalid("status", f"Status: {status} is not valid for a new ticket")
        now = self.world.now()
        ticket = Ticket(
            id=next(self._ticket_ids), subject=str(data.get("subject") or body.splitlines()[0][:80]),
            description=body, requester_id=requester.id, status=status, tags=_tags(data.get("tags")),
            created_at=now, updated_at=now, submitter_id=author.id, channel="api",
            priority=_choice(data, "priority", PRIORITIES), type=_choice(data, "type", TICKET_TYPES),
            external_id=str(data["external_id"]) if data.get("external_id") else None,
            followup_source_id=source.id if source is not None else None,
        )
        if source is not None:
            source.followup_ids.append(ticket.id)
        if status == "solved":
            ticket.solved_at = now
            ticket.assignee_id = author.id
        ticket.collaborator_ids = self._collaborators(data.get("collaborator_ids"), [])
        self.tickets[ticket.id] = ticket
        audit = self._audit(ticket, author.id, "api")
        self._create_events(ticket, audit)
        author_id = int(comment.get("author_id") or author.id)
        self._comment(ticket, audit, author_id=author_id, body=body, public=bool(comment.get("public", True)),
                      channel="api", record=False)
        self.world.record("zendesk", "ticket_created", ticket_id=ticket.id, subject=ticket.subject,
                          requester_id=requester.id, requester_role=requester.role,
                          first_comment_public=bool(comment.get("public", True)),
                          followup_of=ticket.followup_source_id)
        return ticket, audit

    def _requester(self, data: dict[str, Any], author: User) -> User:
        if data.get("requester_id"):
            return self.get_user(int(data["requester_id"]))
        requester = data.get("requester")
        if isinstance(requester, int):
            return self.get_user(requester)
        if isinstance(requester, str):
            return self.user_by_email(requester) or self.add_user(requester.split("@")[0], requester)
        if isinstance(requester, dict) and requester.get("email"):
            email = str(requester["email"])
            return self.user_by_email(email) or self.add_user(str(requester.get("name") or email), email)
        return author

    def _collaborators(self, given: Any, current: list[int]) -> list[int]:
        """``collaborator_ids`` / ``additional_collaborators``: ids, addresses or {name, email}."""
        out = list(current)
        for item in given or []:
            if isinstance(item, int) or (isinstance(item, str) and item.isdigit()):
                user = self.get_user(int(item))
            elif isinstance(item, str):
                user = self.user_by_email(item) or self.add_user(item.split("@")[0], item)
            elif isinstance(item, dict) and item.get("email"):
                email = str(item["email"])
                user = self.user_by_email(email) or self.add_user(str(item.get("name") or email), email)
            else:
                raise invalid("collaborators", f"Collaborators: cannot read {item!r}")
            if user.id not in out:
                out.append(user.id)
        return out

    def update_ticket(self, ticket: Ticket, data: dict[str, Any], author: User) -> Audit:
        """PUT /api/v2/tickets/{id}: status, tags, comment (public or internal), collaborators,
        priority, type, subject, assignee: all in one audit, or nothing when a rule is broken."""
        if ticket.status == "closed":
            raise invalid("status", "Status: closed prevents ticket update")
        status = data.get("status")
        if status is not None and (status not in STATUS_RANK or (status == "new" and ticket.status != "new")):
            raise invalid("status", f"Status: {status} is not a valid change from {ticket.status}")
        comment = data.get("comment")
        body = _comment_body(comment) if isinstance(comment, dict) else None
        if comment is not None and not (body or "").strip():
            raise invalid("comment", "Comment: body cannot be blank")
        tags = list(ticket.tags)
        if "tags" in data:
            tags = _tags(data["tags"])
        for tag in _tags(data.get("additional_tags")):
            if tag not in tags:
                tags.append(tag)
        removed = set(_tags(data.get("remove_tags")))
        tags = [t for t in tags if t not in removed]
        collaborators = list(ticket.collaborator_ids)
        if "collaborator_ids" in data:
            collaborators = self._collaborators(data["collaborator_ids"], [])
        collaborators = self._collaborators(data.get("additional_collaborators"), collaborators)
        priority = _choice(data, "priority", PRIORITIES) if "priority" in data else ticket.priority
        ticket_type = _choice(data, "type", TICKET_TYPES) if "type" in data else ticket.type
        if "assignee_id" in data and data["assignee_id"] is not None:
            self.get_user(int(data["assignee_id"]))

        audit = self._audit(ticket, author.id, "api")
        if isinstance(comment, dict) and body:
            public = bool(comment.get("public", True))
            author_id = int(comment.get("author_id") or author.id)
            self._comment(ticket, audit, author_id=author_id, body=body, public=public, channel="api")
        if status is None and ticket.status == "new" and author.role != "end-user":
            status = "open"  # an agent's update opens a new ticket
        if status is not None and status != ticket.status:
            self._change(ticket, audit, "status", status, ticket.status)
            self.world.record("zendesk", "status_changed", ticket_id=ticket.id, status=status,
                              previous=ticket.status)
            ticket.status = status
            if status == "solved":
                ticket.solved_at = self.world.now()
                if ticket.assignee_id is None:
                    ticket.assignee_id = author.id
        if tags != ticket.tags:
            self._change(ticket, audit, "tags", " ".join(tags), " ".join(ticket.tags))
            self.world.record("zendesk", "tags_changed", ticket_id=ticket.id, tags=list(tags))
            ticket.tags = tags
        if collaborators != ticket.collaborator_ids:
            self._change(ticket, audit, "collaborator_ids", " ".join(map(str, collaborators)),
                         " ".join(map(str, ticket.collaborator_ids)))
            ticket.collaborator_ids = collaborators
        for name, value in (("priority", priority), ("type", ticket_type),
                            ("subject", data.get("subject") or ticket.subject),
                            ("assignee_id", data.get("assignee_id", ticket.assignee_id))):
            if value != getattr(ticket, name):
                self._change(ticket, audit, name, value, getattr(ticket, name))
                setattr(ticket, name, value)
        ticket.updated_at = self.world.now()
        return audit

    def change_tags(self, ticket: Ticket, tags: Any, how: str, author: User) -> list[str]:
        """The tags endpoint: ``set`` (POST), ``add`` (PUT), ``remove`` (DELETE)."""
        key = {"set": "tags", "add": "additional_tags", "remove": "remove_tags"}[how]
        self.update_ticket(ticket, {key: tags}, author)
        return list(ticket.tags)

    # --- merge ---------------------------------------------------------------------------------
    def merge(self, target_id: int, data: dict[str, Any], author: User) -> JobStatus:
        """POST /api/v2/tickets/{id}/merge. Returns the job; the merge itself happens at once (so a
        client that never polls still finds it done), the job reports it as a background job would."""
        target = self.get_ticket(target_id)
        ids = data.get("ids")
        if not isinstance(ids, list) or not ids:
            raise ZendeskError(400, "InvalidMerge" if ids else "BadRequest", "ids: give the tickets to merge")
        try:
            source_ids = [int(i) for i in ids]
        except (TypeError, ValueError):
            raise ZendeskError(400, "BadRequest", "ids: ticket ids are integers") from None
        problems: list[dict[str, Any]] = []
        for sid in source_ids:
            reason = None
            source = self.tickets.get(sid)
            if source is None:
                reason = f"Ticket #{sid} not found"
            elif sid == target_id:
                reason = f"Ticket #{sid} cannot be merged into itself"
            elif source.status == "closed":
                reason = f"Ticket #{sid} is closed and cannot be merged"
            if reason:
                problems.append({"id": sid, "action": "merge", "success": False, "error": "MergeFailed",
                                 "details": reason})
        if target.status == "closed":
            problems.insert(0, {"id": target_id, "action": "merge", "success": False, "error": "MergeFailed",
                                "details": f"Ticket #{target_id} is closed; tickets cannot be merged into a "
                                           "closed ticket"})
        job = JobStatus(id=hashlib.md5(f"{self.world.seed}:{next(self._job_ids)}".encode()).hexdigest(),
                        job_type="MergeTicketsJob", total=len(source_ids), outcome="completed", message="",
                        results=None, working_polls=self.settings.merge_working_polls,
                        created_at=self.world.now())
        self.jobs[job.id] = job
        if problems:
            job.outcome = "failed"
            job.message = "; ".join(p["details"] for p in problems)
            job.results = problems
            self.world.record("zendesk", "merge_failed", target=target_id, sources=source_ids, reason=job.message)
            return job
        for sid in source_ids:
            self._merge_one(target, self.tickets[sid], data, author)
        job.message = f"Completed at {iso(self.world.now())}"
        job.results = {"success": True}
        self.world.record("zendesk", "tickets_merged", target=target_id, sources=source_ids)
        return job

    def _merge_one(self, target: Ticket, source: Ticket, data: dict[str, Any], author: User) -> None:
        last = source.comments[-1].body if source.comments else ""
        target_note = data.get("target_comment") or (
            f'Request #{source.id} "{source.subject}" was closed and merged into this request. '
            f"Last comment in request #{source.id}:\n\n{last}"
        )
        source_note = data.get("source_comment") or (
            f'This request was closed and merged into request #{target.id} "{target.subject}".'
        )
        audit = self._audit(target, author.id, "merge")
        self._comment(target, audit, author_id=author.id, body=str(target_note),
                      public=bool(data.get("target_comment_is_public") or False), channel="merge",
                      record=False)
        target.updated_at = self.world.now()
        audit = self._audit(source, author.id, "merge")
        self._comment(source, audit, author_id=author.id, body=str(source_note),
                      public=bool(data.get("source_comment_is_public") or False), channel="merge",
                      record=False)
        self._change(source, audit, "status", "closed", source.status)
        source.status = "closed"
        source.merged_into = target.id
        if "closed_by_merge" not in source.tags:
            source.tags.append("closed_by_merge")
        source.updated_at = self.world.now()

    def poll_job(self, job_id: str) -> JobStatus:
        job = self.jobs.get(job_id)
        if job is None:
            raise not_found()
        job.polls += 1
        return job

    # --- automations ---------------------------------------------------------------------------
    def run_automations(self) -> None:
        """Zendesk's default automation: solved tickets close a few days later (virtual time)."""
        days = self.settings.close_solved_after_days
        if days is None:
            return
        cutoff = self.world.now() - timedelta(days=days)
        for ticket in self.tickets.values():
            if ticket.status == "solved" and ticket.solved_at is not None and ticket.solved_at <= cutoff:
                audit = self._audit(ticket, -1, "rule")
                self._change(ticket, audit, "status", "closed", "solved")
                ticket.status = "closed"

    # --- search --------------------------------------------------------------------------------
    def search(self, text: str, *, sort_by: str | None = None, sort_order: str | None = None) -> list[Any]:
        """Tickets and users matching a Zendesk search query, sorted (default: oldest first)."""
        query = parse_query(text)
        found: list[Any] = []
        types = query.types or {"ticket", "user"}
        if "ticket" in types:
            found += [t for t in self.tickets.values() if all(self._ticket_matches(t, term) for term in query.terms)]
        if "user" in types:
            found += [u for u in self.users.values() if all(_user_matches(u, term) for term in query.terms)]
        key = SORT_FIELDS.get(sort_by or "") or query.order_by or "created_at"
        order = (sort_order or query.sort or ("desc" if (sort_by or query.order_by) else "asc")).lower()
        found.sort(key=lambda obj: (_sort_value(obj, key), obj.id), reverse=order == "desc")
        return found

    def _ticket_matches(self, ticket: Ticket, term: Term) -> bool:
        hit = self._ticket_hit(ticket, term)
        return not hit if term.negate else hit

    def _ticket_hit(self, ticket: Ticket, term: Term) -> bool:
        name, value, op = term.field, term.value, term.op
        if name is None:
            return (_contains(ticket.subject, value) or _contains(ticket.description, value)
                    or any(_contains(c.body, value) for c in ticket.comments))
        if name in USER_FIELDS:
            return False
        if name == "status":
            return _compare(STATUS_RANK[ticket.status], op, STATUS_RANK[value.lower()])
        if name == "subject":
            return _contains(ticket.subject, value)
        if name == "description":
            return _contains(ticket.description, value)
        if name == "comment":
            return any(_contains(c.body, value) for c in ticket.comments)
        if name in ("tags", "tag"):
            return value.lower() in ticket.tags
        if name in ("created", "updated", "solved"):
            moment = {"created": ticket.created_at, "updated": ticket.updated_at, "solved": ticket.solved_at}[name]
            if moment is None:
                return False
            bound = _moment(value)
            if op == ":" and len(value) == 10:
                return moment.astimezone(UTC).date() == bound.date()
            return _compare(moment, op, bound)
        if name in ("requester", "assignee"):
            user_id = ticket.requester_id if name == "requester" else ticket.assignee_id
            user = self.users.get(user_id) if user_id is not None else None
            if value.lower() == "none":
                return user is None
            return user is not None and (str(user.id) == value or user.email.casefold() == value.casefold()
                                         or _contains(user.name, value))
        if name == "priority":
            return (ticket.priority or "") == value.lower()
        if name == "ticket_type":
            return (ticket.type or "") == value.lower()
        if name == "via":
            return ticket.channel == value.lower()
        if name == "recipient":
            return ticket.channel == "email" and (ticket.recipient or SUPPORT_ADDRESS[1]).casefold() == value.casefold()
        # id / ticket_id
        return value.isdigit() and _compare(ticket.id, op, int(value))

    # --- the admin window --------------------------------------------------------------------------
    def snapshot(self) -> dict[str, object]:
        self.run_automations()
        return {
            "tickets": [
                {"id": t.id, "subject": t.subject, "status": t.status, "tags": list(t.tags),
                 "requester_id": t.requester_id, "created_at": iso(t.created_at), "channel": t.channel,
                 "external_id": t.external_id, "followup_source_id": t.followup_source_id,
                 "recipient": t.recipient if t.channel != "email" else (t.recipient or SUPPORT_ADDRESS[1]),
                 "submitter_id": t.submitter_id,
                 "merged_into": t.merged_into, "collaborator_ids": list(t.collaborator_ids),
                 "comments": [{"id": c.id, "public": c.public, "body": c.body, "author_id": c.author_id,
                               "created_at": iso(c.created_at), "via": c.channel} for c in t.comments]}
                for t in self.tickets.values()
            ],
            "users": [{"id": u.id, "name": u.name, "email": u.email, "role": u.role} for u in self.users.values()],
            "jobs": [{"id": j.id, "status": j.status, "outcome": j.outcome, "message": j.message}
                     for j in self.jobs.values()],
            "settings": vars(self.settings).copy(),
        }


def _user_matches(user: User, term: Term) -> bool:
    name, value = term.field, term.value
    if name is None:
        hit = _contains(user.name, value) or _contains(user.email, value)
    elif name == "name":
        hit = _contains(user.name, value)
    elif name == "email":
        hit = user.email.casefold() == value.casefold()
    elif name == "role":
        hit = user.role == value.lower()
    else:
        hit = False
    return not hit if term.negate else hit


def _sort_value(obj: Any, key: str) -> Any:
    if key == "status":
        return STATUS_RANK.get(getattr(obj, "status", ""), -1)
    if key == "priority":
        return PRIORITIES.index(obj.priority) if getattr(obj, "priority", None) else -1
    if key == "ticket_type":
        return getattr(obj, "type", None) or ""
    moment = getattr(obj, key, None) or getattr(obj, "created_at", None)
    return moment or datetime.min.replace(tzinfo=UTC)


def _comment_body(comment: dict[str, Any]) -> str | None:
    body = comment.get("body")
    if body is None and comment.get("html_body"):
        body = re.sub(r"<[^>]+>", "", str(comment["html_body"]))
    return None if body is None else str(body)


def _tags(value: Any) -> list[str]:
    """Zendesk keeps tags lower-case; a space separates two tags."""
    if value is None:
        return []
    items: Iterable[Any] = value.split() if isinstance(value, str) else value
    out: list[str] = []
    for item in items:
        for tag in str(item).lower().split():
            if tag not in out:
                out.append(tag)
    return out


def _choice(data: dict[str, Any], key: str, allowed: Sequence[str]) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if value not in allowed:
        raise invalid(key, f"{key.capitalize()}: {value!r} is not one of {', '.join(allowed)}")
    return str(value)
