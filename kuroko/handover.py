"""Handing a work item to a person, on a helpdesk ticket.

The note goes on the item's own ticket while the helpdesk still takes changes there. An item with
no ticket of its own (a たまご order, a Bカート order, an MCF parcel), or whose ticket the helpdesk
has closed (Zendesk closes solved tickets after some days and refuses every change), gets a ticket
the robot opens: requested by the robot's own agent, its first comment private — so the helpdesk
never mails a customer — a follow-up of the closed ticket where there is one, tagged with the
hold tag. One such ticket per item: it is recorded on the item and reused by every later
hand-over; it carries an external id derived from the item, so a robot stopped between opening it
and recording it finds it again instead of opening a second one.

The helpdesk is whatever the procedure names as its ``desk`` connection; it must speak ``Desk``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from kuroko.ledger import Ledger, WorkItem
    from kuroko.procedure import Effects

CLOSED = "closed"


class DeskTicket(Protocol):
    status: str
    tags: list[str]


class DeskComment(Protocol):
    body: str


class Desk(Protocol):
    """The helpdesk as the engine needs it for hand-overs."""

    def ticket(self, ticket_id: int) -> DeskTicket: ...

    def comments(self, ticket_id: int) -> Sequence[DeskComment]: ...

    def add_internal_note(self, ticket_id: int, body: str, *, status: str | None = None,
                          add_tags: Sequence[str] = (), mention_user_ids: Sequence[int] = ()) -> int: ...

    def add_tags(self, ticket_id: int, tags: Sequence[str]) -> None: ...

    def remove_tags(self, ticket_id: int, tags: Sequence[str]) -> None: ...

    def open_internal_ticket(self, *, subject: str, body: str, external_id: str, tags: Sequence[str] = (),
                             follow_up_of: int | None = None) -> int:
        """A ticket requested by the robot's own agent with a private first comment, status Open."""
        ...

    def ticket_by_external_id(self, external_id: str) -> int | None:
        """The newest ticket carrying this external id, if any."""
        ...


def marker(key: str, what: str) -> str:
    """The small tag at the end of each robot note: how a later run recognises its own note."""
    return f"[kuroko:{key}:{what}]"


def handover_external_id(item: WorkItem) -> str:
    return f"kuroko:{item.procedure}:{item.key}"


class HandOver:
    """Where a person hears of an item, and the notes written there."""

    def __init__(self, desk: Desk, ledger: Ledger, effects: Effects, *, hold_tag: str, title: str) -> None:
        self.desk = desk
        self.ledger = ledger
        self.effects = effects
        self.hold_tag = hold_tag
        self.title = title
        """What the item is, for the subject of a ticket the robot opens ("Rakuten order 123…")."""

    def usable(self, ticket_id: int | None) -> bool:
        return ticket_id is not None and self.desk.ticket(ticket_id).status != CLOSED

    def ticket_for(self, item: WorkItem, now: datetime, *, first_note: str, tags: Sequence[str] = ()) -> tuple[int,
                                                                                                                bool]:
        """The ticket to write to for ``item``, and whether ``first_note`` was written already as
        the first comment of a ticket opened now. Opens (or finds again) the robot's ticket when
        the item has none it can use."""
        if self.usable(item.handover_ticket_id):
            assert item.handover_ticket_id is not None
            return item.handover_ticket_id, False
        if item.handover_ticket_id is None and self.usable(item.ticket_id):
            assert item.ticket_id is not None
            return item.ticket_id, False
        external_id = handover_external_id(item)
        found = self.desk.ticket_by_external_id(external_id)
        if found is not None and found != item.handover_ticket_id and self.usable(found):
            ticket_id, opened = found, False  # opened by a run that stopped before recording it
        else:
            follow_up = item.handover_ticket_id or item.ticket_id  # closed, or it would have been used above
            opened_id = self.effects.do(
                "zendesk", "open_handover_ticket",
                lambda: self.desk.open_internal_ticket(subject=f"Kuroko: {self.title} {item.key} needs a person",
                                                       body=first_note, external_id=external_id,
                                                       tags=list(tags), follow_up_of=follow_up),
                item_id=item.id, what=item.key, follow_up_of=follow_up)
            if opened_id is None:  # dry run
                return 0, True
            ticket_id, opened = opened_id, True
        self.ledger.update_item(item.id, now, handover_ticket_id=ticket_id)
        self.ledger.add_ticket(ticket_id, item.id, "handover", now)
        item.handover_ticket_id = ticket_id
        return ticket_id, opened

    def note(self, item: WorkItem, now: datetime, body: str, tag: str, *, action: str = "hand_to_person",
             status: str | None = "open", hold: bool = True, **detail: str) -> int:
        """Write ``body`` (ending with its marker ``tag``) once, with the hold tag when ``hold``:
        a run stopped after writing it finds the marker and writes nothing (only a missing tag is
        put right). Returns the ticket written to."""
        text = f"{body}\n\n{tag}"
        tags = [self.hold_tag] if hold else []
        ticket_id, written = self.ticket_for(item, now, first_note=text, tags=tags)
        if written:
            return ticket_id
        if not any(tag in c.body for c in self.desk.comments(ticket_id)):
            self.effects.do("zendesk", action,
                            lambda: self.desk.add_internal_note(ticket_id, text, status=status, add_tags=tags),
                            item_id=item.id, what=item.key, ticket=str(ticket_id), note=tag, **detail)
        elif hold and self.hold_tag not in self.desk.ticket(ticket_id).tags:
            self.effects.do("zendesk", "tag_hold", lambda: self.desk.add_tags(ticket_id, tags),
                            item_id=item.id, what=item.key, ticket=str(ticket_id))
        return ticket_id
