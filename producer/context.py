"""`PreviousTurns`: each message's previous turn in its conversation, as the input shows it.

The previous turn is the last clean row of the same conversation read before this one, in input order,
whether or not a sample or split later enqueues it (so a message's context does not depend on the
sample). It is truncated to `max_chars` characters (the start of the turn, cut at a word boundary when one
is near), and None when the conversation has no earlier turn here. The same object serves a file and a
stream, because both are read through `cleaning.RowRules`. Redis is never read back: the memory is a
bounded map, conversation id -> its last turn, and when it holds `max_conversations` the least recently
active conversation is forgotten (its next turn then has no previous turn: a stream that interleaves more
live conversations than the bound loses context, never memory).
"""

from __future__ import annotations

from collections import OrderedDict

DEFAULT_CHARS = 300
DEFAULT_CONVERSATIONS = 100_000


def truncate(text: str, max_chars: int) -> str:
    """The first `max_chars` characters, cut back to the last space when one lies in the last fifth."""
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    space = cut.rfind(" ")
    return cut[:space] if space >= max_chars * 4 // 5 else cut


class PreviousTurns:
    def __init__(
        self, max_chars: int = DEFAULT_CHARS, max_conversations: int = DEFAULT_CONVERSATIONS
    ) -> None:
        if max_chars < 1 or max_conversations < 1:
            raise ValueError("max_chars and max_conversations must be at least 1")
        self.max_chars, self.max_conversations = max_chars, max_conversations
        self.last: OrderedDict[str, str] = OrderedDict()
        self.forgotten = 0  # conversations evicted by the bound

    def observe(self, conversation_id: str, text: str) -> str | None:
        """The previous turn of `conversation_id` (None if none), then remember `text` as its last turn."""
        previous = self.last.pop(conversation_id, None)
        self.last[conversation_id] = truncate(text, self.max_chars)
        if len(self.last) > self.max_conversations:
            self.last.popitem(last=False)
            self.forgotten += 1
        return previous
