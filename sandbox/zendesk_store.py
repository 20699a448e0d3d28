"""Zendesk's data in the sandbox: users, tickets, comments, job statuses.

The HTTP API over it is sandbox/zendesk.py.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sandbox.world import World


@dataclass
class User:
    id: int
    name: str
    email: str
    role: str = "end-user"
    created_at: datetime | None = None


@dataclass
class Comment:
    id: int
    author_id: int
    body: str
    public: bool
    created_at: datetime


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


class ZendeskStore:
    def __init__(self, world: World) -> None:
        self.world = world
        self.users: dict[int, User] = {}
        self.tickets: dict[int, Ticket] = {}
        self._user_ids = itertools.count(360_000_000_001)
        self._ticket_ids = itertools.count(10_001)
        self._comment_ids = itertools.count(900_000_000_001)
        now = world.now()
        self.agent = self.add_user("Kuroko Robot", "robot@kuroko.example", role="agent", created_at=now)
        self.japan_office = self.add_user("Japan Office", "japan-office@kuroko.example", role="agent",
                                          created_at=now)

    def add_user(self, name: str, email: str, *, role: str = "end-user", created_at: datetime | None = None) -> User:
        user = User(next(self._user_ids), name, email, role, created_at or self.world.now())
        self.users[user.id] = user
        return user

    def user_by_email(self, email: str) -> User | None:
        return next((u for u in self.users.values() if u.email == email), None)

    def receive_mail(self, *, subject: str, body: str, sender: tuple[str, str]) -> Ticket:
        """An e-mail arrives at the support address and becomes a new ticket."""
        name, email = sender
        user = self.user_by_email(email) or self.add_user(name, email)
        now = self.world.now()
        ticket = Ticket(
            id=next(self._ticket_ids), subject=subject, description=body, requester_id=user.id,
            created_at=now, updated_at=now,
        )
        ticket.comments.append(Comment(next(self._comment_ids), user.id, body, True, now))
        self.tickets[ticket.id] = ticket
        self.world.record("zendesk", "ticket_created", ticket_id=ticket.id, subject=subject)
        return ticket

    def add_comment(self, ticket: Ticket, *, author_id: int, body: str, public: bool) -> Comment:
        comment = Comment(next(self._comment_ids), author_id, body, public, self.world.now())
        ticket.comments.append(comment)
        ticket.updated_at = comment.created_at
        self.world.record("zendesk", "comment_added", ticket_id=ticket.id, comment_id=comment.id, public=public)
        return comment

    def snapshot(self) -> dict[str, object]:
        return {
            "tickets": [
                {"id": t.id, "subject": t.subject, "status": t.status, "tags": list(t.tags),
                 "comments": [{"id": c.id, "public": c.public, "body": c.body} for c in t.comments]}
                for t in self.tickets.values()
            ]
        }
