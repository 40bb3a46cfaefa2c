"""`chatlens bench --runtimes torch,onnx,onnx-int8`: each classifier's runtimes side by side, same messages.

Each runtime runs in its own process (`python -m chatlens.bench.runtimes`), so its peak RSS is its own
(an ONNX process never loads torch) and the processes do not share thread pools. All of them load their
model first; then the rounds are interleaved (round 1 of every runtime, then round 2, ...) so the drifting
load of a shared host falls on each alike, and the best round of each is reported. Labels are compared
with torch's (or the first runtime's) on every message; where the file has labels, accuracy and macro-F1
come from eval's own scoring.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from chatlens.core.errors import ChatlensError
from chatlens.core.settings import Settings
from eval.metrics import score

WARM_UP = 64  # messages classified before the first timed round: first calls allocate


def run_runtimes_bench(
    classifiers: list[str],
    runtimes: list[str],
    texts: list[str],
    truth: list[str | None],
    threads: int,
    repeat: int,
) -> dict:
    result: dict = {"messages": len(texts), "threads": threads, "repeat": repeat, "classifiers": {}}
    with tempfile.TemporaryDirectory() as tmp:
        texts_file = Path(tmp) / "texts.json"
        texts_file.write_text(json.dumps(texts), encoding="utf-8")
        for name in classifiers:
            result["classifiers"][name] = {
                "messages": len(texts),
                "runtimes": _one_classifier(name, runtimes, texts_file, truth, threads, repeat),
            }
    return result


def _one_classifier(
    name: str, runtimes: list[str], texts_file: Path, truth: list[str | None], threads: int, repeat: int
) -> dict:
    processes = {runtime: _Runner(name, runtime, texts_file, threads) for runtime in runtimes}
    try:
        for runner in processes.values():
            runner.ready()
        rates: dict[str, list[float]] = {runtime: [] for runtime in runtimes}
        labels: dict[str, list[str]] = {}
        for _ in range(repeat):
            for runtime, runner in processes.items():
                rate, labels[runtime] = runner.measure()
                rates[runtime].append(rate)
        peaks = {runtime: runner.finish() for runtime, runner in processes.items()}
    finally:
        for runner in processes.values():
            runner.kill()
    reference = labels["torch"] if "torch" in labels else labels[runtimes[0]]
    figures: dict[str, dict] = {}
    for runtime in runtimes:
        same = sum(a == b for a, b in zip(labels[runtime], reference, strict=True)) / len(reference)
        figures[runtime] = {
            "msg_per_s": round(max(rates[runtime]), 1),
            "peak_rss_mb": round(peaks[runtime], 1),
            "same_label_pct": round(100 * same, 2),
            "version": processes[runtime].version,
            "all_rounds_msg_per_s": [round(r, 1) for r in rates[runtime]],
            **_quality(name, labels[runtime], truth),
        }
    base = figures["torch"]["msg_per_s"] if "torch" in figures else None
    for runtime in runtimes:
        if base:
            figures[runtime]["over_torch"] = round(figures[runtime]["msg_per_s"] / base, 3)
    return figures


def _quality(name: str, predicted: list[str], truth: list[str | None]) -> dict:
    pairs = [(t, p) for t, p in zip(truth, predicted, strict=True) if t is not None]
    if not pairs:
        return {}
    metrics = score(name, [t for t, _ in pairs], [p for _, p in pairs], len(predicted), len(predicted))
    return {"accuracy": round(metrics.accuracy, 4), "macro_f1": round(metrics.macro_f1, 4)}


class _Runner:
    """One runtime's process: loads the classifier, then answers `measure` and `finish` on stdin."""

    def __init__(self, name: str, runtime: str, texts_file: Path, threads: int) -> None:
        command = [
            sys.executable,
            "-m",
            "chatlens.bench.runtimes",
            name,
            runtime,
            str(texts_file),
            str(threads),
        ]
        self.runtime = runtime
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.version = ""

    def _ask(self, line: str | None) -> dict:
        assert self.process.stdin is not None and self.process.stdout is not None
        if line is not None:
            self.process.stdin.write(line + "\n")
            self.process.stdin.flush()
        answer = self.process.stdout.readline()
        if not answer:
            code = self.process.wait()
            raise ChatlensError(f"the {self.runtime} runtime's bench process exited (code {code}); see above")
        return dict(json.loads(answer))

    def ready(self) -> None:
        self.version = str(self._ask(None)["version"])

    def measure(self) -> tuple[float, list[str]]:
        answer = self._ask("measure")
        return float(answer["rate"]), list(answer["labels"])

    def finish(self) -> float:
        return float(self._ask("finish")["peak_rss_mb"])

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def _serve(name: str, runtime: str, texts_file: Path, threads: int) -> None:
    """The child's side: load, then one JSON line per request."""
    from chatlens.backends.classifier import CLASSIFIERS

    if runtime.startswith("torch"):
        import importlib

        importlib.import_module("torch").set_num_threads(threads)
    settings = Settings(runtime=runtime, threads=threads)
    classifier = CLASSIFIERS.build(name, settings)
    texts = json.loads(texts_file.read_text(encoding="utf-8"))
    classifier.predict(texts[:WARM_UP])
    print(json.dumps({"version": classifier.version}), flush=True)
    for request in sys.stdin:
        if request.strip() == "measure":
            started = time.perf_counter()
            labels = [o.label for o in classifier.predict(texts)]
            rate = len(texts) / (time.perf_counter() - started)
            print(json.dumps({"rate": rate, "labels": labels}), flush=True)
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
            print(json.dumps({"peak_rss_mb": peak}), flush=True)
            return


if __name__ == "__main__":
    try:
        _serve(sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4]))
    except ChatlensError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
