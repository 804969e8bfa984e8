"""A conversation's versions: its turns as the tree their parents make.

Each turn names its parent: an answer its question, a question the answer it
follows. Versions of a turn (an edited question, a regenerated answer) share
a parent, and the conversation shows one branch, from its first turn to its
`leaf`. An answer still streaming has no row yet: a question after it, or a
leaf naming it, goes on at the question it answers (`reply_id`).
"""

import uuid

from .models import Turn


class Branches:
    """A conversation's turns as the tree their parents make."""

    def __init__(self, turns: list[Turn]) -> None:
        self.turns = turns
        self.by_id = {turn.pk: turn for turn in turns}
        self.asking = {turn.reply_id: turn for turn in turns if turn.reply_id is not None}
        self.children: dict[uuid.UUID | None, list[Turn]] = {}
        for turn in turns:  # in position order, so each list is oldest first
            self.children.setdefault(self._parent_of(turn), []).append(turn)

    def _parent_of(self, turn: Turn) -> uuid.UUID | None:
        """Its parent's id; for a question after an answer with no row (still
        streaming, or lost), the question that answer replies to."""
        parent = turn.parent
        if parent is not None and parent not in self.by_id and parent in self.asking:
            return self.asking[parent].pk
        return parent

    def ending_at(self, leaf: uuid.UUID | None) -> list[Turn]:
        last = (self.by_id.get(leaf) or self.asking.get(leaf)) if leaf is not None else None
        if last is None and self.turns:  # a leaf deleted from the admin: the newest turn
            last = self.turns[-1]
        branch: list[Turn] = []
        while last is not None:
            branch.append(last)
            parent = self._parent_of(last)
            last = self.by_id.get(parent) if parent is not None else None
        branch.reverse()
        for turn in branch:
            versions = self.children[self._parent_of(turn)]
            turn.siblings = [version.pk for version in versions if version.role == turn.role]
        return branch

    def newest_leaf_under(self, turn: Turn) -> uuid.UUID:
        """The end of the newest branch through `turn`: what showing it shows.
        A question's answer may have no row yet: the leaf is then its id."""
        while children := self.children.get(turn.pk):
            turn = children[-1]
        return turn.reply_id if turn.role == Turn.Role.USER and turn.reply_id else turn.pk
