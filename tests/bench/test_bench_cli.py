"""`chatlens bench` as a user runs it, on the embedded example file and private redis-servers: its figures,
their JSON, and one-line refusals of bad arguments."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis
from typer.testing import CliRunner

from chatlens.bench.producer import produce_rate, run_producer_bench, write_stream_file
from chatlens.bench.redis_server import RedisServer
from chatlens.cli.app import app
from chatlens.core.settings import Settings
from tests.helpers import ROOT, run_chatlens, subprocess_env

EXAMPLE = ROOT / "chatlens" / "data" / "messages.csv"
TEXTS = ["hello there", "how are you?", "fine, thanks", "what a game last night"]
PRODUCER_FIGURES = {
    "producer_messages",
    "producer_msgs_per_s",
    "producer_msgs_per_s_summaries_on",
    "producer_msgs_per_cpu_s",
    "producer_peak_rss_mb",
    "producer_all_rounds_msgs_per_s",
}


def bench(*args: str, timeout: float = 600) -> tuple[int, str, str]:
    done = run_chatlens("bench", "--file", str(EXAMPLE), *args, env=subprocess_env(), timeout=timeout)
    return done.returncode, done.stdout, done.stderr


def test_the_default_bench_measures_three_ways_that_agree(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    args = ["--messages", "32", "--repeat", "1", "--threads", "1", "--no-scaling"]
    code, stdout, stderr = bench(*args, "--producer-messages", "1000", "--json", str(out))
    assert code == 0, stderr[-3000:]
    figures = json.loads(out.read_text())
    assert (figures["messages"], figures["threads"], figures["repeat"]) == (32, 1, 1)
    for name in ("bare", "pipeline", "seed_style"):
        assert figures[f"{name}_msgs_per_s"] > 0
        assert figures["all_rounds_msgs_per_s"][name] == [figures[f"{name}_msgs_per_s"]]
    assert figures["pipeline_over_bare"] == pytest.approx(
        figures["pipeline_msgs_per_s"] / figures["bare_msgs_per_s"], abs=2e-3
    )
    # The same model three ways: the same label for every message, from a worker that loaded it once.
    assert figures["agreement_pipeline_vs_bare"] == figures["agreement_seed_style_vs_bare"] == 1.0
    assert figures["model_loads"] == 1 and figures["worker_rss_mb"] > 0
    assert "two_workers_over_one" not in figures  # --no-scaling
    assert set(figures) >= PRODUCER_FIGURES and figures["producer_messages"] == 1000
    assert out.with_suffix(".png").read_bytes().startswith(b"\x89PNG")
    printed = dict(line.split(None, 1) for line in stdout.splitlines() if line.strip())
    assert printed["pipeline_msgs_per_s"] == str(figures["pipeline_msgs_per_s"])


def test_the_producer_bench_writes_its_figures_alone(tmp_path: Path) -> None:
    out = tmp_path / "producer.json"
    code, stdout, stderr = bench(
        "--backend", "producer", "--producer-messages", "1000", "--repeat", "1", "--json", str(out)
    )
    assert code == 0, stderr[-3000:]
    figures = json.loads(out.read_text())
    assert set(figures) == PRODUCER_FIGURES
    assert figures["producer_messages"] == 1000
    assert figures["producer_msgs_per_s"] > 0 and figures["producer_msgs_per_s_summaries_on"] > 0
    assert 20 < figures["producer_peak_rss_mb"] < 2000
    rounds = figures["producer_all_rounds_msgs_per_s"]
    assert rounds["summaries_off"] == [figures["producer_msgs_per_s"]]
    assert rounds["summaries_on"] == [figures["producer_msgs_per_s_summaries_on"]]
    assert not out.with_suffix(".png").exists()  # one figure per setting: nothing to plot
    assert "producer_msgs_per_s" in stdout


@pytest.mark.parametrize("summarise", [False, True])
def test_a_producer_round_enqueues_every_message_and_empties_its_redis(
    tmp_path: Path, summarise: bool
) -> None:
    path = write_stream_file(TEXTS, 200, tmp_path / "m.jsonl", turns=20)
    with RedisServer() as server, redis.Redis.from_url(server.url) as connection:
        figure = produce_rate(Settings(), connection, server.url, path, summarise=summarise)
        assert figure["messages"] == 200
        assert figure["seconds"] > 0 and figure["msgs_per_s"] > 0 and figure["producer_cpu_s"] > 0
        assert connection.dbsize() == 0  # the next round starts from an empty Redis


def test_the_stream_file_holds_distinct_rows_in_conversations(tmp_path: Path) -> None:
    path = write_stream_file(TEXTS, 45, tmp_path / "m.jsonl", turns=20)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == len({r["message"] for r in rows}) == 45
    assert [sum(r["conversation_id"] == c for r in rows) for c in ("c0", "c1", "c2")] == [20, 20, 5]


def test_a_round_that_enqueues_fewer_messages_than_asked_gives_no_figures(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import chatlens.bench.producer as producer_bench
    from chatlens.core.errors import ChatlensError

    real = producer_bench.write_stream_file

    def with_duplicates(texts: list[str], count: int, path: Path, turns: int = 20) -> Path:
        real(texts, count, path, turns)
        lines = path.read_text().splitlines()
        path.write_text("\n".join(lines[:-1] + lines[:1]) + "\n")  # the last row a copy of the first
        return path

    monkeypatch.setattr(producer_bench, "write_stream_file", with_duplicates)
    with RedisServer() as server, pytest.raises(ChatlensError, match=r"enqueued 999 of 1000 messages"):
        run_producer_bench(Settings(), server.url, TEXTS, 1000, repeat=1)


def test_an_unknown_backend_is_one_line_before_any_work() -> None:
    code, stdout, stderr = bench("--backend", "nope", timeout=120)
    lines = [line for line in (stdout + stderr).splitlines() if line.strip()]
    assert (code, lines) == (2, ["error: --backend 'nope': use default, zeroshot, emotion or producer"])


def invoke(*args: str) -> tuple[int, list[str]]:
    """`chatlens bench ARGS` in this process: the refusals come before any model or worker starts."""
    result = CliRunner().invoke(app, ["bench", *args])
    return result.exit_code, [line for line in result.output.splitlines() if line.strip()]


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (["--redis-url", "http://x:1/0"], 2, "is not a Redis URL"),
        (["--redis-url", "redis://:secret-pw@127.0.0.1:1/0"], 3, "cannot reach Redis at redis://:***@"),
    ],
)
def test_a_bad_redis_url_is_one_line(args: list[str], code: int, fragment: str) -> None:
    returned, lines = invoke("--file", str(EXAMPLE), *args)
    assert (returned, len(lines)) == (code, 1), lines
    assert fragment in lines[0] and "secret-pw" not in lines[0]


@pytest.mark.parametrize(
    ("content", "fragment"),
    [(None, "no such file"), ("conversation_id,message\n", "no rows"), ("", "empty")],
)
@pytest.mark.parametrize("backend", ["default", "producer"])
def test_a_bad_file_is_one_line(tmp_path: Path, backend: str, content: str | None, fragment: str) -> None:
    path = tmp_path / "m.csv"
    if content is not None:
        path.write_text(content)
    returned, lines = invoke("--file", str(path), "--backend", backend)
    assert (returned, len(lines)) == (2, 1), lines
    assert fragment in lines[0]


def test_a_messages_count_below_the_minimum_is_refused() -> None:
    returned, lines = invoke("--file", str(EXAMPLE), "--messages", "5")
    assert returned == 2 and "Invalid value for '--messages'" in " ".join(lines)
