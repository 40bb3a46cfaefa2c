"""`GenerativeSummariser`: what the LLM summary backends (llama.cpp, mlx-lm, transformers) share.

The base owns the prompt (the instruction and the conversation as one user message), the budget of
conversation tokens one call may read, and map-reduce over chunks of turns, so that a conversation
longer than a model's context is summarised whole instead of being cut or refused. A backend supplies
only its tokenisation (`_text_ids`), its chat template (`_chat_ids`) and generation (`_complete`), and
calls `_set_budget` once its tokenizer is loaded.

Its public surface is the `Summariser`'s `summarise`, with `count`, `prompt_ids` and `generate`: what
map-reduce calls, and what tests and scripts call.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

from chatlens.backends.summariser import SummaryText, conversation_text, split_sentences
from chatlens.core.errors import ChatlensError

# Chosen by measurement: scripts/summary_prompts.py scored wordings against reference summaries of
# validation conversations, and this one beat the earlier "2-3 sentences, topics and stance", a length bound
# alone and a "use only stated facts" clause (the figures: docs/models/llamacpp.md, "Data and prompt").
INSTRUCTION = (
    'Summarise the following conversation in two sentences, in the third person ("The speakers '
    'discuss ..."). Name the main topics in the order they come up and any opinion a speaker states. '
    "Reply with the summary only."
)
PART_INSTRUCTION = (
    "The following is one part of a longer conversation. Summarise it in two sentences, in the third "
    "person: the topics in the order they come up and any opinion a speaker states. Reply with the "
    "summary only."
)
COMBINE_INSTRUCTION = (
    "The following are summaries of consecutive parts of one conversation. Combine them into one "
    'summary of two sentences, in the third person ("The speakers discuss ..."): the main topics in '
    "order and any opinion a speaker states. Reply with the summary only."
)
INSTRUCTIONS = (INSTRUCTION, PART_INSTRUCTION, COMBINE_INSTRUCTION)


CountTokens = Callable[[str], int]
# generate(instruction, text) -> (summary, input tokens, output tokens)
Generate = Callable[[str, str], tuple[str, int, int]]


def _pieces(turns: Sequence[str], count: CountTokens, budget: int) -> list[str]:
    """Turns, with any turn over the budget split by sentences, and any sentence over it by words."""
    pieces: list[str] = []
    for turn in turns:
        turn = " ".join(turn.split())
        if not turn:
            continue
        if count(turn) <= budget:
            pieces.append(turn)
            continue
        for sentence in split_sentences(turn):
            if count(sentence) <= budget:
                pieces.append(sentence)
                continue
            pieces.extend(_word_windows(sentence, count, budget))
    return pieces


def _word_windows(text: str, count: CountTokens, budget: int) -> list[str]:
    windows: list[str] = []
    current: list[str] = []
    for word in text.split():
        if current and count(" ".join([*current, word])) > budget:
            windows.append(" ".join(current))
            current = []
        if count(word) > budget:  # a pasted blob with no spaces: cut it by characters
            windows.extend(_character_windows(word, count, budget))
            continue
        current.append(word)
    if current:
        windows.append(" ".join(current))
    return windows


def _character_windows(word: str, count: CountTokens, budget: int) -> list[str]:
    windows: list[str] = []
    while word:
        # The longest prefix within the budget, by bisection: a few tokenizer calls per window.
        low, high = 1, len(word)
        while low < high:
            middle = (low + high + 1) // 2
            if count(word[:middle]) <= budget:
                low = middle
            else:
                high = middle - 1
        windows.append(word[:low])
        word = word[low:]
    return windows


def chunk_turns(turns: Sequence[str], count: CountTokens, budget: int) -> list[list[str]]:
    """Consecutive turns packed greedily into chunks of at most `budget` tokens (as joined by
    `conversation_text`). Turn order is kept and no text is dropped."""
    if budget < 8:
        raise ValueError(f"a chunk budget of {budget} tokens is too small to summarise anything")
    chunks: list[list[str]] = []
    current: list[str] = []
    for piece in _pieces(turns, count, budget):
        if current and count(conversation_text([*current, piece])) > budget:
            chunks.append(current)
            current = []
        current.append(piece)
    if current:
        chunks.append(current)
    return chunks


def _clip(text: str, count: CountTokens, limit: int) -> str:
    """The leading sentences (or words) of `text` that fit in `limit` tokens."""
    if count(text) <= limit:
        return text
    kept: list[str] = []
    for sentence in split_sentences(text):
        if count(" ".join([*kept, sentence])) > limit:
            break
        kept.append(sentence)
    if kept:
        return " ".join(kept)
    return _word_windows(text, count, limit)[0]


def map_reduce(turns: Sequence[str], count: CountTokens, budget: int, generate: Generate) -> SummaryText:
    """One call when the conversation fits in `budget` tokens; otherwise summarise chunks of turns, then
    combine the partial summaries (recursively, if they do not fit together either)."""
    chunks = chunk_turns(turns, count, budget)
    if len(chunks) <= 1:
        text, read, written = generate(INSTRUCTION, conversation_text(chunks[0] if chunks else []))
        return SummaryText(text.strip(), read, written, 1)
    read = written = calls = 0
    partials: list[str] = []
    for chunk in chunks:
        text, r, w = generate(PART_INSTRUCTION, conversation_text(chunk))
        partials.append(text.strip())
        read, written, calls = read + r, written + w, calls + 1
    while True:
        # A partial summary may use at most half the budget, so every round at least halves the number
        # of chunks and the recursion ends.
        partials = [_clip(p, count, (budget - 4) // 2) for p in partials if p]
        groups = chunk_turns(partials, count, budget)
        if 1 < len(partials) <= len(groups):
            raise RuntimeError(f"map-reduce made no progress with a budget of {budget} tokens")
        if len(groups) <= 1:
            text, r, w = generate(COMBINE_INSTRUCTION, conversation_text(groups[0] if groups else []))
            return SummaryText(text.strip(), read + r, written + w, calls + 1)
        combined: list[str] = []
        for group in groups:
            text, r, w = generate(COMBINE_INSTRUCTION, conversation_text(group))
            combined.append(text.strip())
            read, written, calls = read + r, written + w, calls + 1
        partials = combined


# Below this many tokens of conversation per call a summary is mostly instruction; refuse at start.
MIN_BUDGET = 32


class GenerativeSummariser(ABC):
    backend: str  # its name in SUMMARISERS
    model_id: str  # what the summary came from (HF id or local path, with its revision where known)
    max_new_tokens: int  # bound on a summary's tokens (CHATLENS_SUMMARY_MAX_NEW_TOKENS)
    budget: int  # tokens of conversation text one call may read: set by `_set_budget`
    positions: int | None  # the model's positions, when the prompt and the reply share them
    # Tokens a text can gain when it is tokenised inside the prompt rather than alone (a BPE merge across
    # the boundary with the template or the instruction): the budget keeps this many spare.
    boundary_margin = 4

    # --- what a backend supplies -------------------------------------------------------------------

    @abstractmethod
    def _text_ids(self, text: str) -> list[int]:
        """`text` as token ids, as the prompt holds it: chat text is user input, so a control token
        typed in it ("<|eot_id|>") is tokenised as text and cannot end the turn."""

    @abstractmethod
    def _chat_ids(self, message: str) -> list[int]:
        """The prompt's ids: `message` as the one user message of the model's chat template, with the
        generation prompt (one user message: every template accepts it; some reject a system one)."""

    @abstractmethod
    def _complete(self, prompt: list[int], max_new_tokens: int) -> tuple[str, int]:
        """Generate from `prompt`, at most `max_new_tokens`: (the text, the tokens written)."""

    # --- the shared surface --------------------------------------------------------------------------

    def count(self, text: str) -> int:
        return len(self._text_ids(text))

    def prompt_ids(self, instruction: str, text: str) -> list[int]:
        """The ids one call reads: the instruction, a blank line and the text, as the user's message."""
        return self._chat_ids(f"{instruction}\n\n{text}")

    def generate(self, instruction: str, text: str) -> tuple[str, int, int]:
        """One generation call: (the summary on one line, tokens read, tokens written)."""
        prompt = self.prompt_ids(instruction, text)
        summary, written = self._complete(prompt, self._room(len(prompt)))
        return " ".join(summary.split()), len(prompt), written

    def summarise(self, turns: Sequence[str]) -> SummaryText:
        return map_reduce(turns, self.count, self.budget, self.generate)

    # --- the budget ------------------------------------------------------------------------------------

    def _set_budget(self, positions: int | None, context_tokens: int | None) -> None:
        """Set `positions` and `budget`, or refuse in one line. The model's positions hold the prompt and
        the reply; CHATLENS_SUMMARY_CONTEXT_TOKENS may lower the prompt's share, never raise it (positions
        past the trained ones are an index error in learned embeddings, nonsense with RoPE)."""
        if positions is None and context_tokens is None:
            raise ChatlensError(
                f"{self.backend} model {self.model_id!r} does not say how long its context is; "
                "set CHATLENS_SUMMARY_CONTEXT_TOKENS"
            )
        self.positions = positions
        reply = self.max_new_tokens if self._reply_shares_positions() else 0
        limits = [x for x in (positions and positions - reply, context_tokens) if x is not None]
        overhead = max(len(self.prompt_ids(instruction, "")) for instruction in INSTRUCTIONS)
        self.budget = min(limits) - overhead - self.boundary_margin
        if self.budget < MIN_BUDGET:
            raise ChatlensError(
                f"{self.backend} model {self.model_id!r} leaves {self.budget} tokens of conversation per "
                f"call (input limit {min(limits)}, prompt {overhead}, summary {self.max_new_tokens}): lower "
                "CHATLENS_SUMMARY_MAX_NEW_TOKENS, raise CHATLENS_SUMMARY_CONTEXT_TOKENS up to the model's "
                "context, or use a model with a longer context"
            )

    def _reply_shares_positions(self) -> bool:
        """A decoder-only model writes its reply after the prompt, in the same positions."""
        return True

    def _room(self, prompt_tokens: int) -> int:
        """New tokens a call may write: the setting, within the positions the prompt leaves."""
        if self.positions is None or not self._reply_shares_positions():
            return self.max_new_tokens
        return max(1, min(self.max_new_tokens, self.positions - prompt_tokens))
