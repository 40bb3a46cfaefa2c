"""The imbalance remedy on hand-made numbers: the class weights and the logit adjustment's tau."""

from __future__ import annotations

import numpy as np

from chatlens.training.imbalance import class_weights, tune_adjustment


def test_logit_adjustment_known_answer() -> None:
    prior = np.array([0.9, 0.1])
    # Raw logits that always favour the majority: only a positive tau recovers the minority.
    logits = np.array([[2.0, 0.5], [2.0, 0.5], [2.0, 1.0], [2.0, 1.0]])
    y = np.array([0, 0, 1, 1])
    tau, adjustment = tune_adjustment(logits, y, prior)
    predicted = (logits + adjustment).argmax(1)
    assert predicted.tolist() == [0, 0, 1, 1]
    assert tau > 0.0 and np.allclose(adjustment, -tau * np.log(prior))
    # Margins 1.5 and 1.0 in logit space, log-prior gap 2.197: tau must fall between 0.46 and 0.68.
    assert 1.0 / np.log(9) < tau < 1.5 / np.log(9)


def test_class_weights_average_one_per_row() -> None:
    y = np.array([0] * 90 + [1] * 10)
    weights = class_weights(y, 0.5)
    assert abs(float(weights[0]) * 90 + float(weights[1]) * 10 - 100) < 1e-3
    assert abs(float(weights[1] / weights[0]) - 3.0) < 1e-5  # sqrt(90/10)
