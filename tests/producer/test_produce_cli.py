"""`chatlens produce`: row rejects, counts, idempotence, sampling, --out-dir and the jobs it enqueues.
(Bad input, fed both ways, is tests/producer/test_hostile_input.py's.)"""

from __future__ import annotations

import json
import time
import zlib
from pathlib import Path

import pandas as pd
import pytest
from rq import Queue
from rq.serializers import JSONSerializer
from typer.testing import CliRunner

from chatlens.cli.app import app
from chatlens.core import keys
from chatlens.core.connection import FAKE_URL, connect
from chatlens.core.settings import get_settings
from worker.starting import Starting

runner = CliRunner()


@pytest.fixture
def fake() -> str:
    connect(FAKE_URL).flushall()
    return FAKE_URL


def produce(*args: str) -> object:
    return runner.invoke(app, ["produce", *args])


def write_csv(path: Path, rows: list[tuple], header: str = "conversation_id,message,sentiment") -> Path:
    frame = pd.DataFrame(rows, columns=header.split(","))
    frame.to_csv(path, index=False)
    return path


def assert_clean_failure(result, fragment: str, fake_url: str) -> None:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert fragment in lines[0]
    assert "Traceback" not in result.output
    assert connect(fake_url).keys("*") == []  # nothing enqueued


def test_bad_run_name_is_a_user_error(tmp_path: Path, fake: str) -> None:
    path = write_csv(tmp_path / "m.csv", [("1", "hello", "Happy")])
    assert_clean_failure(produce(str(path), "--run", "a:b", "--redis-url", fake), "run name", fake)


def test_row_problems_are_rejected_counted_and_listed(
    tmp_path: Path, fake: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = (
        "conversation_id,message,sentiment\n1,hello there,Happy\n"
        "1,what do you think?,Curious to dive deeper\n"
    )
    body = (
        good.encode()
        + b"2,bad \xff byte,Sad\n"  # row 3: invalid UTF-8
        + b"2,"
        + b"x" * 60
        + b",Sad\n"  # row 4: over the size limit set below
        + b"3,fine,Joyful\n"  # row 5: unknown label
        + b",no conversation,Sad\n"  # row 6: no conversation id
        + b"4,,Neutral\n"  # row 7: missing message
        + b"1,hello there,Happy\n"  # row 8: exact duplicate of row 1
        + b"4,ok then,neutral\n"  # row 9: label case is normalised
        + b"5,too,many,fields\n"  # row 10: unquoted commas
    )
    path = tmp_path / "rows.csv"
    path.write_bytes(body)
    monkeypatch.setenv("CHATLENS_MAX_MESSAGE_CHARS", "50")
    get_settings.cache_clear()
    result = produce(str(path), "--run", "rows", "--redis-url", fake, "--out-dir", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert (
        "read 10 / dropped-missing 1 / dropped-duplicate 1 / rejected 5 / not-selected 0 / enqueued 3"
        in result.output
    )
    rejects = pd.read_csv(tmp_path / "out" / "chatlens-rejects-rows.csv")
    assert rejects["row"].tolist() == [3, 4, 5, 6, 10]
    assert rejects["field"].tolist() == ["message", "message", "sentiment", "conversation_id", "row"]
    assert "4 fields, the header has 3" in rejects["reason"][4]
    assert "over the limit of 50" in rejects["reason"][1]
    stored = connect(fake).hgetall(keys.messages("rows"))
    labels = sorted(json.loads(v)["label"] for v in stored.values())
    assert labels == ["Curious to dive deeper", "Happy", "Neutral"]


def test_jsonl_non_text_message_is_rejected(tmp_path: Path, fake: str) -> None:
    lines = [
        {"conversation_id": 7, "message": "a real message", "sentiment": "Happy"},
        {"conversation_id": 7, "message": 42, "sentiment": "Happy"},
        {"conversation_id": 7, "message": ["a", "list"], "sentiment": "Sad"},
        {"conversation_id": 8, "message": None, "sentiment": "Sad"},
    ]
    path = tmp_path / "m.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n{broken\n")
    result = produce(str(path), "--run", "j", "--redis-url", fake)
    assert result.exit_code == 0, result.output
    assert "read 5 / dropped-missing 1 / dropped-duplicate 0 / rejected 3" in result.output
    rejects = pd.read_csv(tmp_path / "chatlens-rejects-j.csv")
    assert rejects["reason"].tolist() == [
        "message is not text (got int)",
        "message is not text (got list)",
        "line 5 is not a JSON object",
    ]


def test_parquet_with_renamed_columns_and_int_ids(tmp_path: Path, fake: str) -> None:
    path = tmp_path / "m.parquet"
    pd.DataFrame(
        {"conv": [1, 1, 2], "text": ["a", "b", "c"], "emotion": ["Happy", "Sad", "Angry"]}
    ).to_parquet(path)
    result = produce(
        str(path),
        "--run",
        "p",
        "--redis-url",
        fake,
        "--id-column",
        "conv",
        "--message-column",
        "text",
        "--label-column",
        "emotion",
    )
    assert result.exit_code == 0, result.output
    stored = [json.loads(v) for v in connect(fake).hgetall(keys.messages("p")).values()]
    assert sorted((m["conversation_id"], m["position"], m["text"]) for m in stored) == [
        ("1", 0, "a"),
        ("1", 1, "b"),
        ("2", 0, "c"),
    ]


def test_reproducing_the_same_file_enqueues_nothing_new(tmp_path: Path, fake: str) -> None:
    path = write_csv(tmp_path / "m.csv", [(str(i % 3), f"message {i}", "Neutral") for i in range(10)])
    first = produce(str(path), "--run", "again", "--redis-url", fake, "--batch-size", "4")
    assert "enqueued 10 / already-present 0  (3 batches)" in first.output
    second = produce(str(path), "--run", "again", "--redis-url", fake, "--batch-size", "4")
    assert "enqueued 0 / already-present 10  (0 batches)" in second.output
    queue = Queue("classify-default", connection=connect(fake), serializer=JSONSerializer)
    assert queue.count == 3


def test_jobs_are_json_micro_batches_with_retry(tmp_path: Path, fake: str) -> None:
    path = write_csv(tmp_path / "m.csv", [("1", "x" * (i + 1), "Neutral") for i in range(7)])
    result = produce(str(path), "--run", "jobs", "--redis-url", fake, "--batch-size", "3")
    assert result.exit_code == 0, result.output
    connection = connect(fake)
    queue = Queue("classify-default", connection=connection, serializer=JSONSerializer)
    jobs = queue.get_jobs()
    assert [len(j.kwargs["batch"]["items"]) for j in jobs] == [3, 3, 1]
    # Micro-batches are cut from length-sorted messages, so each pads little.
    lengths = [[len(i["text"]) for i in j.kwargs["batch"]["items"]] for j in jobs]
    assert lengths == [[1, 2, 3], [4, 5, 6], [7]]
    assert all(j.func_name == "worker.jobs.classify_batch" and j.retries_left == 3 for j in jobs)
    raw = connection.hget(f"rq:job:{jobs[0].id}", "data")
    json.loads(zlib.decompress(raw))  # RQ compresses job data; under it is JSON, not pickle
    assert "no live worker on classify-default" in result.output


def test_stratified_sample_and_split_are_deterministic(tmp_path: Path, fake: str) -> None:
    rows = [
        (str(i // 5), f"m{i}", label)
        for i, label in enumerate(["Happy"] * 50 + ["Sad"] * 30 + ["Angry"] * 20)
    ]
    path = write_csv(tmp_path / "m.csv", rows)
    outs = []
    for attempt in range(2):
        out_dir = tmp_path / f"split{attempt}"
        result = produce(
            str(path),
            "--run",
            f"s{attempt}",
            "--redis-url",
            fake,
            "--sample-frac",
            "0.5",
            "--test-frac",
            "0.2",
            "--split",
            "test",
            "--seed",
            "3",
            "--out-dir",
            str(out_dir),
        )
        assert result.exit_code == 0, result.output
        outs.append((pd.read_csv(out_dir / "train.csv"), pd.read_csv(out_dir / "test.csv")))
    (train, test), (train2, test2) = outs
    assert train.equals(train2) and test.equals(test2)
    assert test["sentiment"].value_counts().to_dict() == {"Happy": 5, "Sad": 3, "Angry": 2}
    assert train["sentiment"].value_counts().to_dict() == {"Happy": 20, "Sad": 12, "Angry": 8}
    assert set(train["message"]).isdisjoint(test["message"])
    stored = connect(fake).hgetall(keys.messages("s0"))
    assert sorted(json.loads(v)["text"] for v in stored.values()) == sorted(test["message"])


def test_the_split_written_out_is_the_sample_and_its_test_part_is_what_was_enqueued(
    tmp_path: Path, fake: str
) -> None:
    rows = [(str(i // 4), f"m{i}", ["Happy", "Sad", ""][i % 3]) for i in range(90)]
    path = write_csv(tmp_path / "m.csv", rows)
    out_dir = tmp_path / "split"
    args = ["--sample-frac", "0.5", "--split", "train", "--seed", "1", "--out-dir", str(out_dir)]
    result = produce(str(path), "--run", "t", "--redis-url", fake, *args)
    assert result.exit_code == 0, result.output
    train = pd.read_csv(out_dir / "train.csv", keep_default_na=False, dtype=str)
    test = pd.read_csv(out_dir / "test.csv", keep_default_na=False, dtype=str)
    assert list(train.columns) == ["conversation_id", "message", "sentiment"]
    assert len(train) + len(test) == 45 and set(train["message"]).isdisjoint(test["message"])
    # 15 rows of each of the 3 strata sampled; round(0.3 * 15) = 4 of each held out for test.
    assert "not-selected 57 / enqueued 33" in result.output
    stored = connect(fake).hgetall(keys.messages("t"))
    assert sorted(json.loads(v)["text"] for v in stored.values()) == sorted(train["message"])
    assert (train["sentiment"] == "").sum() == 11  # the unlabelled rows are a stratum of their own


def test_nothing_is_written_when_redis_is_unreachable(tmp_path: Path, fake: str) -> None:
    path = write_csv(
        tmp_path / "m.csv", [("1", f"hello {i}", "Happy") for i in range(10)] + [("1", "x", "Bad")]
    )
    out_dir = tmp_path / "out"
    args = ["--split", "test", "--out-dir", str(out_dir), "--redis-url", "redis://127.0.0.1:1/0"]
    result = produce(str(path), "--run", "down", *args)
    assert result.exit_code == 3 and "Traceback" not in result.output, result.output
    assert not out_dir.exists()


def test_a_starting_worker_counts_as_live_and_the_warning_serves_every_idle_queue(
    tmp_path: Path, fake: str
) -> None:
    path = write_csv(tmp_path / "m.csv", [("1", "hello there", "Happy"), ("2", "and you?", "Neutral")])
    alone = produce(str(path), "--run", "alone", "--redis-url", fake)
    assert alone.exit_code == 0, alone.output
    command = "`chatlens worker --queue classify-default --queue summarise-extractive`"
    assert "no live worker on classify-default, summarise-extractive; start one with " + command in " ".join(
        alone.output.split()
    )
    connection = connect(fake)
    marker = Starting(connection, ["classify-default", "summarise-extractive"])  # a worker loading models
    marker.start()
    try:
        deadline = time.monotonic() + 10
        while not connection.keys(keys.WORKER_STARTING_PREFIX + "*"):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        path = write_csv(tmp_path / "n.csv", [("3", "something new", "Happy")])
        starting = produce(str(path), "--run", "starting", "--redis-url", fake)
        assert starting.exit_code == 0 and "no live worker" not in starting.output, starting.output
    finally:
        marker.done()
    assert connection.keys(keys.WORKER_STARTING_PREFIX + "*") == []  # it serves now: the marker is gone
