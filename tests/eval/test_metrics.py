"""Scoring on hand-made predictions with known answers."""

from eval.metrics import score


def test_known_answer() -> None:
    y_true = ["Happy", "Happy", "Sad", "Sad", "Angry", "Neutral"]
    y_pred = ["Happy", "Sad", "Sad", "Sad", "Happy", "Neutral"]
    m = score("m", y_true, y_pred, results=6, enqueued=8, errors=1, versions=["v2", "v1"])
    assert m.accuracy == round(4 / 6, 4)
    # Per-class F1: Neutral 1, Happy 0.5, Sad 0.8, Angry 0 -> macro 0.575.
    assert m.macro_f1 == 0.575
    assert m.weighted_f1 == round((1 * 1 + 0.5 * 2 + 0.8 * 2 + 0 * 1) / 6, 4)
    assert m.labels == ["Neutral", "Happy", "Sad", "Angry"]  # canonical order, present labels only
    assert m.confusion_matrix == [[1, 0, 0, 0], [0, 1, 1, 0], [0, 0, 2, 0], [0, 1, 0, 0]]
    assert (m.n, m.results, m.coverage, m.errors) == (6, 6, 0.75, 1)
    assert m.model_versions == ["v1", "v2"]
    sad = next(c for c in m.per_class if c.label == "Sad")
    assert (round(sad.precision, 4), sad.recall, sad.support) == (0.6667, 1.0, 2)


def test_no_labelled_results() -> None:
    m = score("m", [], [], results=0, enqueued=3)
    assert (m.accuracy, m.macro_f1, m.n, m.coverage, m.confusion_matrix) == (0.0, 0.0, 0, 0.0, [])
