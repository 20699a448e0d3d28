"""Stand-ins for the engine's own service Protocols — for the engine's unit tests only (tests of
procedures run on the sandbox with the real clients and a real browser)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta


@dataclass
class FakeTicket:
    id: int
    subject: str
    status: str = "open"
    tags: list[str] = field(default_factory=list)
    comments: list[FakeComment] = field(default_factory=list)
    external_id: str | None = None
    follow_up_of: int | None = None
    requester: str = "customer"


@dataclass
class FakeComment:
    body: str
    public: bool


class FakeDesk:
    """A helpdesk that remembers every call (like robocorp's MockAdapter)."""

    def __init__(self) -> None:
        self.tickets: dict[int, FakeTicket] = {}
        self.calls: list[tuple[str, int]] = []
        self._ids = iter(range(100, 10_000))

    def new_ticket(self, subject: str = "a customer's mail", *, status: str = "open") -> int:
        ticket = FakeTicket(next(self._ids), subject, status=status)
        self.tickets[ticket.id] = ticket
        return ticket.id

    def ticket(self, ticket_id: int) -> FakeTicket:
        return self.tickets[ticket_id]

    def comments(self, ticket_id: int) -> Sequence[FakeComment]:
        return list(self.tickets[ticket_id].comments)

    def add_internal_note(self, ticket_id: int, body: str, *, status: str | None = None,
                          add_tags: Sequence[str] = (), mention_user_ids: Sequence[int] = ()) -> int:
        ticket = self.tickets[ticket_id]
        if ticket.status == "closed":
            raise RuntimeError("a closed ticket cannot be updated")
        self.calls.append(("note", ticket_id))
        ticket.comments.append(FakeComment(body, public=False))
        if status:
            ticket.status = status
        ticket.tags += [t for t in add_tags if t not in ticket.tags]
        return len(ticket.comments)

    def add_tags(self, ticket_id: int, tags: Sequence[str]) -> None:
        self.calls.append(("tag", ticket_id))
        self.tickets[ticket_id].tags += [t for t in tags if t not in self.tickets[ticket_id].tags]

    def remove_tags(self, ticket_id: int, tags: Sequence[str]) -> None:
        self.calls.append(("untag", ticket_id))
        self.tickets[ticket_id].tags = [t for t in self.tickets[ticket_id].tags if t not in tags]

    def open_internal_ticket(self, *, subject: str, body: str, external_id: str, tags: Sequence[str] = (),
                             follow_up_of: int | None = None) -> int:
        ticket_id = self.new_ticket(subject)
        ticket = self.tickets[ticket_id]
        ticket.comments.append(FakeComment(body, public=False))
        ticket.tags = list(tags)
        ticket.external_id = external_id
        ticket.follow_up_of = follow_up_of
        ticket.requester = "robot"
        self.calls.append(("open", ticket_id))
        return ticket_id

    def ticket_by_external_id(self, external_id: str) -> int | None:
        return max((t.id for t in self.tickets.values() if t.external_id == external_id), default=None)

    def count(self, what: str) -> int:
        return sum(1 for call, _ in self.calls if call == what)


class FakeClock:
    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 11, 20, 3, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, **delta: float) -> None:
        self._now += timedelta(**delta)
