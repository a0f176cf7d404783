"""``examine``'s contract around the probes: the report's forms, misuse, discovery, user errors."""

import json

import numpy as np
import pytest

from mlpx.doctor import KINDS, DoctorError, Network, Objective, examine
from tests.doctor.networks import VOCABULARY


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


class TwoLayer:
    """12-10-3, ReLU, softmax; gradients as a dict; ``bug`` picks one mistake."""

    def __init__(self, bug=None, seed=0):
        rng = np.random.default_rng(seed)
        self.W1 = rng.normal(0, np.sqrt(2 / 12), (12, 10))
        self.b1 = np.zeros(10)
        self.W2 = rng.normal(0, np.sqrt(2 / 10), (10, 3))
        self.b2 = np.zeros(3)
        self.bug = bug

    def forward(self, X):
        self.X, self.z1 = X, X @ self.W1 + self.b1
        self.a1 = np.maximum(self.z1, 0)
        self.p = _softmax(self.a1 @ self.W2 + self.b2)
        return self.p

    def gradients(self, X, Y):
        p = self.forward(X)
        d2 = (p - Y) / len(X)
        d1 = (d2 @ self.W2.T) * (self.z1 > 0)
        if self.bug == "missing-derivative":
            d1 = d2 @ self.W2.T
        return {"W1": X.T @ d1, "b1": d1.sum(0), "W2": self.a1.T @ d2, "b2": d2.sum(0)}


def _examine(bug=None, **extra):
    keywords = dict(gradients=lambda net, X, Y: net.gradients(X, Y))
    keywords.update(extra)
    return examine(lambda: TwoLayer(bug), lambda net, X: net.forward(X), "cross_entropy", **keywords)


def test_report_has_the_contracts_fields_text_and_json():
    report = _examine("missing-derivative")
    assert not report.ok
    wrong = [f for f in report.findings if f.check == "gradient" and f.severity == "error"]
    assert {name for f in wrong for name in f.params} == {"W1", "b1"}
    assert wrong[0].kind == "missing-activation-derivative"
    assert "W1" in wrong[0].message and "relative error" in wrong[0].message
    text = str(report)
    assert text.startswith("mlpx doctor:") and "missing-activation-derivative" in text and "fix:" in text
    parsed = json.loads(report.to_json())
    assert parsed["ok"] is False
    assert {"check", "severity", "params", "kind", "message", "fix"} <= set(parsed["findings"][0])


def test_a_correct_network_passes_and_the_discovered_arrays_are_listed():
    report = _examine()
    assert report.ok, str(report)
    assert "gradient" in report.passed
    assert any("W1, b1, W2, b2" in note for note in report.notes), report.notes


def test_discovery_names_list_entries_and_nested_attributes():
    class Layer:
        def __init__(self, w):
            self.w = w

    def build():
        rng = np.random.default_rng(1)
        return {"layers": [Layer(rng.normal(size=(6, 5))), Layer(rng.normal(size=(5, 3)))], "cache": None}

    def forward(net, X):
        net["cache"] = np.maximum(X @ net["layers"][0].w, 0)  # a cache is not a trainable array
        return _softmax(net["cache"] @ net["layers"][1].w)

    report = examine(build, forward, "cross_entropy")
    assert any("layers[0].w, layers[1].w" in note for note in report.notes), report.notes


def test_misuse_is_a_doctor_error_that_says_what_to_pass():
    with pytest.raises(DoctorError, match="lr="):
        _examine(update=lambda net, X, Y: None)
    with pytest.raises(DoctorError, match="unknown"):
        examine(lambda: TwoLayer(), lambda net, X: net.forward(X), "hinge")


def test_objective_forms():
    assert Objective.parse("ce").loss == "cross_entropy"
    o = Objective.parse(
        {"loss": "mse", "reduction": "sum", "scale": 1.0, "l2": {"coef": 0.1, "params": ["W1"]}}
    )
    assert (o.loss, o.reduction, o.scale, o.l2.params, o.l2.scale) == ("mse", "sum", 1.0, ("W1",), 0.5)


def test_user_code_that_raises_is_a_finding_naming_its_line():
    def forward(net, X):
        return net.forward(X) @ np.ones((4, 4))  # shape error in the user's code

    report = examine(lambda: TwoLayer(), forward, "cross_entropy")
    assert not report.ok
    raised = [f for f in report.findings if f.kind == "code-raised"]
    assert raised and "test_examine.py" in raised[0].where, [str(f) for f in report.findings]


def test_network_holds_the_keywords():
    network = Network(
        build=lambda: TwoLayer(),
        forward=lambda net, X: net.forward(X),
        gradients=lambda n, X, Y: n.gradients(X, Y),
    )
    assert network.examine().ok
    assert not network.examine(build=lambda: TwoLayer("missing-derivative")).ok


def test_every_kind_of_the_issue_has_an_explanation_and_a_fix():
    for slug in VOCABULARY:
        assert slug in KINDS, slug
        assert KINDS[slug].explanation and KINDS[slug].fix
