"""The extractive summariser on the real bundled all-MiniLM-L6-v2 weights."""

from __future__ import annotations

import csv
import json
from dataclasses import replace

import pytest
import torch

import chatlens.backends.encoder
from chatlens.backends.classifiers.minilm import MiniLMClassifier
from chatlens.backends.encoder import BUNDLED_ENCODER_ID, SentenceEncoder
from chatlens.backends.summariser import split_sentences
from chatlens.backends.summarisers.extractive import ExtractiveSummariser, Selection, trim_openers
from chatlens.core.settings import Settings
from eval.summaries import load_references
from eval.summary_metrics import paired_difference, rouge_l_per_summary, score_summaries
from tests.helpers import ROOT, SEED_RESULTS

pytestmark = pytest.mark.slow

EXAMPLE = ROOT / "chatlens" / "data" / "messages.csv"
REFERENCES = ROOT / "tests" / "data" / "reference_summaries.json"

TURNS = [
    "Are you a fan of Google or Microsoft? Both make software that millions of people use every day.",
    "Yes. I'm not a huge fan of Google, but I use it a lot because I have to.",
    "Google provides online services and products, including online ads, search and cloud computing.",
    "lol. By the way, do you like fish? Fish are a big part of the ocean's ecosystem.",
    "Did you know that a seahorse is the only fish to have a neck? Freshwater fish drink through their skin.",
    "Well, it was nice chatting with you. Have a good day.",
]


@pytest.fixture(scope="module")
def encoder() -> SentenceEncoder:
    torch.set_num_threads(2)
    return SentenceEncoder(batch_size=16)


def summariser(encoder: SentenceEncoder, **knobs: object) -> ExtractiveSummariser:
    return ExtractiveSummariser(encoder, replace(Selection(), **knobs))  # type: ignore[arg-type]


def test_picks_whole_sentences_verbatim_and_in_conversation_order(encoder: SentenceEncoder) -> None:
    result = summariser(encoder, trim_openers=False).summarise(TURNS)
    sentences = [s for turn in TURNS for s in split_sentences(turn)]
    picked = split_sentences(result.text)
    assert 2 <= len(picked) <= Selection().max_sentences
    positions = [sentences.index(s) for s in picked]  # ValueError if a sentence was altered
    assert positions == sorted(positions)
    assert "Yes." not in picked and "lol." not in picked  # fragments are never chosen over sentences
    assert (result.calls, result.input_tokens > 0) == (1, True)
    assert result.output_tokens == len(encoder.tokenizer(result.text, add_special_tokens=False)["input_ids"])


def test_trimmed_sentences_are_the_tails_of_source_sentences(encoder: SentenceEncoder) -> None:
    sentences = [s for turn in TURNS for s in split_sentences(turn)]
    for picked in split_sentences(summariser(encoder).summarise(TURNS).text):
        core = picked.rstrip(".?!").lower()
        assert any(core and core in sentence.lower() for sentence in sentences), picked


@pytest.mark.parametrize(
    ("sentence", "trimmed"),
    [
        ("Yeah, did you know that a seahorse has a neck?", "A seahorse has a neck."),
        ("Interesting, they also have gills.", "They also have gills."),
        ("I heard that the arena holds 20,000 people.", "The arena holds 20,000 people."),
        ("I heard the news.", "I heard the news."),  # an object, not an introducer
        ("Do you know how tall he is?", "Do you know how tall he is?"),  # a question stays one
        ("Well, it was nice.", "It was nice."),
        ("Right now I am busy.", "Right now I am busy."),  # content words need punctuation to go
        ("That's amazing for a feature film.", "That's amazing for a feature film."),
        ("No, I do not like it.", "No, I do not like it."),  # stance and negation stay
        ("I think he is tall.", "I think he is tall."),
        ("Yeah, wow!", "Yeah, wow!"),  # nothing but openers: kept whole
    ],
)
def test_trim_openers(sentence: str, trimmed: str) -> None:
    assert trim_openers(sentence) == trimmed


@pytest.mark.parametrize("count", [1, 2, 3])
def test_the_number_of_sentences_is_honoured(encoder: SentenceEncoder, count: int) -> None:
    result = summariser(encoder, max_sentences=count, max_words=None).summarise(TURNS)
    assert len(split_sentences(result.text)) == count


def test_the_word_budget_stops_the_summary(encoder: SentenceEncoder) -> None:
    long = summariser(encoder, max_words=None).summarise(TURNS).text
    short = summariser(encoder, max_words=10).summarise(TURNS).text
    picked = split_sentences(short)
    # It stops at the first sentence that reaches the budget, not before.
    assert len(picked) < len(split_sentences(long))
    assert len(" ".join(picked[:-1]).split()) < 10 <= len(short.split())


@pytest.mark.parametrize("turns", [[], [""], ["   ", "\n"]])
def test_an_empty_conversation_gives_an_empty_summary(encoder: SentenceEncoder, turns: list[str]) -> None:
    result = summariser(encoder).summarise(turns)
    assert (result.text, result.input_tokens, result.output_tokens, result.calls) == ("", 0, 0, 1)


@pytest.mark.parametrize("text", ["Yes.", "I think the new library downtown is the best place to study."])
def test_a_one_sentence_conversation_is_its_own_summary(encoder: SentenceEncoder, text: str) -> None:
    assert summariser(encoder).summarise([text]).text == text


def test_repeated_sentences_are_not_repeated_in_the_summary(encoder: SentenceEncoder) -> None:
    line = "The museum downtown has a new exhibit about ancient Egypt."
    result = summariser(encoder, max_words=None).summarise([line, line.upper(), line, "Great, thanks a lot."])
    assert result.text.casefold().count(line.casefold()) == 1


def test_non_english_and_odd_unicode_do_not_fail(encoder: SentenceEncoder) -> None:
    turns = [
        "日本語の文です。これは二番目の文です！",  # noqa: RUF001 (full-width punctuation on purpose)
        "Ça va? Très bien, merci beaucoup pour la question, mon ami.",
        "🙂🙂🙂 \u200b\u0000 ☃",
        "Привет, как дела у тебя сегодня, мой дорогой друг?",  # noqa: RUF001 (Cyrillic on purpose)
    ]
    result = summariser(encoder).summarise(turns)
    assert result.text
    assert all(any(s in " ".join(t.split()) for t in turns) for s in split_sentences(result.text))


def test_a_huge_conversation_embeds_a_bounded_sample(
    encoder: SentenceEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes: list[int] = []
    real_encode = encoder.encode

    def counting_encode(texts: list[str]) -> object:
        sizes.append(len(texts))
        return real_encode(texts)

    monkeypatch.setattr(encoder, "encode", counting_encode)
    turns = [f"Message number {i} is about topic {i % 13} and nothing else." for i in range(3000)]
    result = summariser(encoder, max_candidates=300).summarise(turns)
    assert sizes == [300]
    assert 1 <= len(split_sentences(result.text)) <= Selection().max_sentences
    assert all(s in turns for s in split_sentences(result.text))


def test_the_model_is_loaded_once_in_the_constructor(monkeypatch: pytest.MonkeyPatch) -> None:
    loads: list[str] = []
    real_load = chatlens.backends.encoder.load_pretrained

    def counting_load(source: str, loader: type, **kwargs: object) -> object:
        loads.append(loader.__name__)
        return real_load(source, loader, **kwargs)

    monkeypatch.setattr(chatlens.backends.encoder, "load_pretrained", counting_load)
    chatlens.backends.encoder._cached_encoder.cache_clear()
    settings = Settings(summary_sentences=2, summary_words=30)
    built = ExtractiveSummariser.from_settings(settings)
    assert sorted(loads) == ["AutoModel", "AutoTokenizer"]
    for _ in range(3):
        assert len(split_sentences(built.summarise(TURNS).text)) <= 2
    assert len(loads) == 2
    # No ONNX export in this test's models dir: auto serves torch, and says so.
    assert (built.backend, built.model_id) == ("extractive", f"{BUNDLED_ENCODER_ID}+torch")
    assert (built.selection.max_sentences, built.selection.max_words) == (2, 30)
    # A worker that also serves the default classifier reads the same encoder: no second load.
    classifier = MiniLMClassifier(max_length=256, models_dir=settings.models_dir)
    assert classifier.encoder is built.encoder and len(loads) == 2


def example_conversations() -> dict[str, list[str]]:
    """The embedded example's conversations as a worker gets them: turns in order, without the empty and
    repeated messages the producer drops."""
    turns: dict[str, list[str]] = {}
    with EXAMPLE.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            text, conversation = row["message"].strip(), turns.setdefault(row["conversation_id"], [])
            if text and text not in conversation:
                conversation.append(text)
    return turns


def lead(sentences: list[str], words: int) -> str:
    """The opening sentences, up to the first that reaches `words`: the default's budget, without choosing."""
    kept: list[str] = []
    for sentence in sentences:
        kept.append(sentence)
        if len(" ".join(kept).split()) >= words:
            break
    return " ".join(kept)


def test_the_reference_summaries_are_two_sentences_on_the_example_conversations() -> None:
    references = load_references(REFERENCES)
    conversations = example_conversations()
    assert [r.conversation_id for r in references] == list(conversations)
    for reference in references:
        assert reference.message == " ".join(conversations[reference.conversation_id])
        assert len(split_sentences(reference.summary)) == 2, reference.summary


def test_the_default_scores_well_against_our_reference_summaries(encoder: SentenceEncoder) -> None:
    """The CI gate: tests/data/reference_summaries.json, two-sentence references hand-written for the
    embedded example's twelve conversations (tests/data/README.md)."""
    references = load_references(REFERENCES)
    conversations = example_conversations()
    turns = [conversations[r.conversation_id] for r in references]
    targets = [r.summary for r in references]
    sources = [r.message for r in references]
    outputs = [ExtractiveSummariser(encoder).summarise(t).text for t in turns]
    scores = score_summaries(outputs, targets, sources)
    # Measured 0.522 (95% interval 0.468-0.572); the bound leaves room for numeric drift across torch
    # builds, not for a worse method.
    assert scores["rougeL"] >= 0.50, scores
    # Choosing must beat taking the opening sentences up to the same word budget, by more than the noise
    # of twelve conversations (measured +0.072, 95% interval +0.028 to +0.116).
    budget = Selection().max_words or 45
    baseline = [lead([s for turn in t for s in split_sentences(turn)], budget) for t in turns]
    gain, low, _ = paired_difference(
        rouge_l_per_summary(outputs, targets), rouge_l_per_summary(baseline, targets)
    )
    assert low > 0, (gain, low)


@pytest.mark.skipif(
    not (SEED_RESULTS / "llama-summary.json").exists(), reason="../shared/data is not present"
)
def test_the_default_scores_well_against_llama_references(encoder: SentenceEncoder) -> None:
    """An extra where ../shared/data is present: the 100 Llama-3-8B references of the seed results,
    beside the seed's BART-large-cnn outputs."""
    references = load_references(SEED_RESULTS / "llama-summary.json")
    bart_by_id = {
        str(row["conversation_id"]): row["summary"]
        for row in json.loads((SEED_RESULTS / "bart-summary.json").read_text(encoding="utf-8"))
    }
    sources = [r.message for r in references]
    targets = [r.summary for r in references]
    bart = [bart_by_id[r.conversation_id] for r in references]
    default = ExtractiveSummariser(encoder)
    # The whole joined conversation as one turn, as `chatlens eval-summaries` passes it.
    outputs = [default.summarise([source]).text for source in sources]
    scores = score_summaries(outputs, targets, sources)
    # Measured 0.1965 on the 100 (BART-large-cnn 0.1829, lead-3 0.1323): it must stay ahead of the seed's
    # BART; the bound leaves room for numeric drift across torch builds, not for a worse method.
    assert scores["rougeL"] > score_summaries(bart, targets, sources)["rougeL"] + 0.01
    assert scores["rougeL"] >= 0.195


def test_summarise_many_gives_what_summarise_gives(encoder: SentenceEncoder) -> None:
    conversations = [TURNS, TURNS[:3], [], TURNS[2:]]
    one_by_one = [summariser(encoder).summarise(turns) for turns in conversations]
    assert summariser(encoder).summarise_many(conversations) == one_by_one


def test_a_grown_conversation_embeds_only_its_new_sentences(encoder: SentenceEncoder) -> None:
    cached = summariser(encoder)
    first = cached.summarise(TURNS[:4])
    after_first = cached.encoded
    assert after_first > 0
    grown = cached.summarise(TURNS)
    new = [s for s in cached._candidates([s for t in TURNS for s in split_sentences(t)])]
    assert cached.encoded - after_first < len(new)  # the first four turns' sentences came from the cache
    assert grown == summariser(encoder).summarise(TURNS)  # and the summary is what a fresh one writes
    assert first == summariser(encoder).summarise(TURNS[:4])


def test_the_cache_is_bounded(encoder: SentenceEncoder) -> None:
    small = ExtractiveSummariser(encoder, cache_sentences=3)
    small.summarise(TURNS)
    assert len(small._cache) == 3
    uncached = ExtractiveSummariser(encoder, cache_sentences=0)
    uncached.summarise(TURNS)
    uncached.summarise(TURNS)
    assert len(uncached._cache) == 0 and uncached.encoded == 2 * small.encoded
