"""`ExtractiveSummariser`: the offline default summary, sentences picked from the conversation itself.

Each sentence is embedded with the bundled MiniLM (the encoder the default classifier already loads), scored
by how close it lies to the conversation's centroid plus a few priors, and the best sentences up to a word
budget are returned in conversation order. The defaults were chosen by measurement against Llama-3-8B
reference summaries (`python -m chatlens.bench.summary_methods`, figures in its docstring).

Embeddings are kept per sentence text in a bounded LRU cache: a conversation summarised again as it grows
(streaming, or a file produced again with more turns) embeds only its new sentences, and sentences that
recur across conversations ("It was nice chatting with you.") are embedded once per process.
`summarise_many` embeds the new sentences of several conversations in one length-sorted pass.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from chatlens.backends.runtime import Encoder, EncoderSpec, Runtime, open_encoder
from chatlens.backends.summariser import SummaryText, configured_model, split_sentences
from chatlens.core.settings import Settings

# First/second-person pronouns and laughter: the marks of small talk ("I know, right? lol") rather than
# of what the conversation is about. English only; other languages simply get no penalty.
_CHAT_WORDS = frozenset({
    "i", "me", "my", "mine", "i'm", "im", "i've", "i'd", "i'll", "you", "your", "yours", "you're", "you've",
    "we", "us", "our", "lol", "haha", "hahaha", "lmao",
})  # fmt: skip
_WORD = re.compile(r"[\w']+")
# Chat openers that carry no content ("Yeah, wow,") and fact introducers ("Did you know that X?") are cut
# from the front of a chosen sentence, which then reads as what it is about. Words that are also content
# ("Right now", "True love", "Well done") count as openers only when punctuation follows them. Stance
# ("I think", "No,", "not") is kept. English only.
_INTERJECTION = (
    r"(?:yes|yeah|yep|yup|oh+|wow|haha+|lol|ok|okay|hmm+|hm|ah+|aha|and|but|plus|also|anyway|"
    r"by the way|speaking of which)\b[\s,.!:;-]*"
)
_PUNCTUATED = (
    r"(?:well|so|right|sure|true|indeed|really|interesting|cool|nice|awesome|great|agreed|absolutely|"
    r"exactly|definitely|actually|honestly|i see|me too|same here|good point|i agree|"
    r"that'?s (?:cool|interesting|true|awesome|great|crazy|funny|amazing|neat|wild))\s*[,.!:;-]+\s*"
)
_OPENER = re.compile(rf"^(?:{_INTERJECTION}|{_PUNCTUATED})", re.IGNORECASE)
# "Did you know how..." asks; "Did you know (that) X" states X. "I heard the news" has an object, so
# the other introducers count only with "that".
_INTRODUCER = re.compile(
    r"^(?:did you know(?: that)?(?!\s+(?:how|what|where|when|who|why|which|if|whether)\b)|"
    r"(?:have you (?:ever )?heard|i (?:heard|read|learned|found out)) that)\s+",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Selection:
    """Knobs of the sentence choice. The defaults scored best on the reference summaries."""

    max_sentences: int = 6
    max_words: int | None = 45  # stop once the summary has this many words; None = only max_sentences
    min_sentence_words: int = 5  # shorter sentences are chat fragments ("Yes.", "lol that's cool")
    max_sentence_words: int = 40  # longer ones are run-ons from missing punctuation
    lead_weight: float = 0.4  # conversations open with their main topic
    lead_span: float = 0.1  # fraction of the conversation over which the lead bonus decays by 1/e
    chat_penalty: float = 1.0  # times the share of small-talk words in the sentence
    question_bonus: float = 0.06  # questions often introduce a topic ("Do you like fish?")
    diversity: float = 0.0  # MMR: weight of the similarity to sentences already chosen
    max_candidates: int = 4096  # sentences embedded per conversation; more are sampled evenly
    trim_openers: bool = True  # cut chat openers and fact introducers from the chosen sentences


# Sentence embeddings kept per process: 384 floats each for MiniLM, so ~30 MB when full.
CACHE_SENTENCES = 20_000


class ExtractiveSummariser:
    backend = "extractive"

    def __init__(
        self,
        encoder: Encoder | str | None = None,
        selection: Selection | None = None,
        batch_size: int = 32,
        max_length: int = 256,
        cache_sentences: int = CACHE_SENTENCES,
    ) -> None:
        # A loaded encoder may be shared (the measurement script compares settings on one model); a source
        # (HF id or dir, None = bundled MiniLM) is loaded here with torch, once, never per call.
        if encoder is None or isinstance(encoder, str):
            spec = EncoderSpec("extractive", encoder)
            encoder = open_encoder(
                spec, Runtime.TORCH, Path(), max_length=max_length, batch_size=batch_size, shared=False
            )
        self.encoder = encoder
        # The runtime is part of what a summary came from: int8 features may pick other sentences.
        self.model_id = f"{encoder.model_id}+{encoder.runtime}"
        self.selection = selection or Selection()
        self.cache_sentences = cache_sentences
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self.encoded = 0  # sentences run through the encoder (cache misses), for the speed figures

    @classmethod
    def from_settings(cls, settings: Settings) -> ExtractiveSummariser:
        # The same encoder instance as the default classifier's when the settings agree: one load.
        spec = EncoderSpec(cls.backend, configured_model(settings, cls.backend), settings.models_dir)
        encoder = open_encoder(
            spec,
            settings.runtime,
            settings.exports_path,
            max_length=settings.max_length,
            batch_size=settings.inference_batch_size,
            threads=settings.threads,
        )
        return cls(
            encoder, Selection(max_sentences=settings.summary_sentences, max_words=settings.summary_words)
        )

    def summarise(self, turns: Sequence[str]) -> SummaryText:
        return self.summarise_many([turns])[0]

    def summarise_many(self, conversations: Sequence[Sequence[str]]) -> list[SummaryText]:
        """One summary per conversation, the same as `summarise` gives; the sentences not yet cached are
        embedded together, in one length-sorted pass of full batches."""
        plans: list[tuple[list[str], list[int]]] = []
        for turns in conversations:
            sentences = [s for turn in turns for s in split_sentences(" ".join(turn.split()))]
            plans.append((sentences, self._candidates(sentences)))
        vectors = self._embed([sentences[i] for sentences, candidates in plans for i in candidates])
        return [self._summary(sentences, candidates, vectors) for sentences, candidates in plans]

    def _embed(self, texts: list[str]) -> dict[str, np.ndarray]:
        """Each distinct text's embedding, from the cache or (once) from the encoder."""
        found: dict[str, np.ndarray] = {}
        missing: list[str] = []
        for text in dict.fromkeys(texts):
            vector = self._cache.get(text)
            if vector is None:
                missing.append(text)
            else:
                self._cache.move_to_end(text)
                found[text] = vector
        if missing:
            self.encoded += len(missing)
            for text, vector in zip(missing, self.encoder.encode(missing), strict=True):
                found[text] = vector
                self._cache[text] = vector
        while len(self._cache) > self.cache_sentences:
            self._cache.popitem(last=False)
        return found

    def _summary(
        self, sentences: list[str], candidates: list[int], vectors: dict[str, np.ndarray]
    ) -> SummaryText:
        if not candidates:
            return SummaryText("", 0, 0, 1)
        texts = [sentences[i] for i in candidates]
        embeddings = np.stack([vectors[t] for t in texts])
        chosen = self._choose(texts, candidates, embeddings, len(sentences))
        picked = [sentences[candidates[i]] for i in sorted(chosen)]
        if self.selection.trim_openers:
            picked = [trim_openers(sentence) for sentence in picked]
        text = " ".join(p for p in picked if p)
        return SummaryText(text, self._tokens_read(texts), self._count(text), 1)

    def _candidates(self, sentences: list[str]) -> list[int]:
        """Indices of the sentences worth embedding: within the length limits, first of any duplicates."""
        sel = self.selection
        first: dict[str, int] = {}
        for i, sentence in enumerate(sentences):
            first.setdefault(sentence.casefold(), i)
        unique = sorted(first.values())
        fitting = [
            i for i in unique if sel.min_sentence_words <= len(sentences[i].split()) <= sel.max_sentence_words
        ]
        if not fitting:
            # Only fragments (or one run-on): one of them still says more than an empty summary.
            fitting = unique
        if len(fitting) > sel.max_candidates:
            # Even sampling keeps the cost linear and still spans every part of a huge conversation.
            picks = np.linspace(0, len(fitting) - 1, sel.max_candidates).round().astype(int)
            fitting = [fitting[i] for i in sorted(set(picks.tolist()))]
        return fitting

    def _choose(
        self, texts: list[str], positions: list[int], embeddings: np.ndarray, total: int
    ) -> list[int]:
        """Greedy choice (indices into `texts`) of the best-scoring sentences up to the budgets."""
        sel = self.selection
        centroid = embeddings.mean(axis=0)
        centroid /= max(float(np.linalg.norm(centroid)), 1e-9)
        position = np.asarray(positions, dtype=np.float64) / max(total, 1)
        score = (
            embeddings @ centroid
            + sel.lead_weight * np.exp(-position / sel.lead_span)
            - sel.chat_penalty * np.array([_chat_share(t) for t in texts])
            + sel.question_bonus * np.array([t.rstrip("\"')]").endswith(("?", "\uff1f")) for t in texts])
        )
        words = np.array([len(t.split()) for t in texts])
        # Similarity to the closest chosen sentence: one row per pick, so memory stays O(n), not O(n^2).
        redundancy = np.full(len(texts), -1.0)
        available = np.ones(len(texts), dtype=bool)
        chosen: list[int] = []
        total_words = 0
        while available.any() and len(chosen) < sel.max_sentences:
            if sel.max_words is not None and total_words >= sel.max_words:
                break
            value = score - sel.diversity * np.maximum(redundancy, 0.0)
            pick = int(np.argmax(np.where(available, value, -np.inf)))
            chosen.append(pick)
            available[pick] = False
            total_words += int(words[pick])
            redundancy = np.maximum(redundancy, embeddings @ embeddings[pick])
        return chosen

    def _tokens_read(self, texts: list[str]) -> int:
        # What the encoder read: each sentence with its special tokens, cut at the encoder's max_length.
        return sum(self.encoder.token_counts(texts))

    def _count(self, text: str) -> int:
        if not text:
            return 0
        return self.encoder.token_counts([text], special_tokens=False)[0]


def _chat_share(sentence: str) -> float:
    words = _WORD.findall(sentence.lower())
    return sum(w in _CHAT_WORDS for w in words) / len(words) if words else 0.0


def trim_openers(sentence: str) -> str:
    """ "Yeah, did you know that a seahorse has a neck?" -> "A seahorse has a neck." """
    trimmed, before = sentence, None
    while trimmed != before:
        before = trimmed
        trimmed = _OPENER.sub("", trimmed, count=1)
        introduced = _INTRODUCER.sub("", trimmed, count=1)
        if introduced != trimmed and introduced.endswith("?"):
            # What followed "Did you know" is a statement, not a question.
            introduced = introduced[:-1] + "."
        trimmed = introduced
    if not trimmed.strip(" .!?,"):
        return sentence  # all opener ("Yeah, wow!"): keep it whole rather than leave nothing
    return trimmed[0].upper() + trimmed[1:]
