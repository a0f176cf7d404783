"""The doctor against the held-out collection in ``tests/doctor/networks``.

A correct network must come back clean; a broken one flagged, each labelled bug seen by the right
check (for gradient and optimizer bugs: exactly the labelled arrays), and named by its kind.
"""

import importlib.util
from pathlib import Path

import pytest

from tests.doctor._examine import CASES, errors, examined, flagged_params, kind_named
from tests.doctor.networks import LOCALISED_CHECKS, VOCABULARY, Case

CORRECT = [case for case in CASES if not case.broken]
BROKEN = [case for case in CASES if case.broken]
BUGS = [(case, bug) for case in BROKEN for bug in case.bugs]
NAMED_BUGS = [(case, bug) for case, bug in BUGS if not bug.closest_kind]
ROOT = Path(__file__).resolve().parents[2]


def _bug_id(pair):
    case, bug = pair
    return f"{case.name}:{bug.check}:{bug.kind}"


def test_collection_size():
    assert len(BROKEN) >= 32
    assert len(CORRECT) >= 12


def test_every_kind_of_the_vocabulary_is_labelled():
    labelled = {bug.kind for case in CASES for bug in case.bugs}
    assert set(VOCABULARY) - labelled == set()


@pytest.mark.parametrize("case", CORRECT, ids=lambda case: case.name)
def test_correct_network_is_clean(case: Case):
    report, _ = examined(case.name)
    assert not errors(report), f"false alarm on {case.name}:\n{report}"
    assert report.ok


@pytest.mark.parametrize("case", BROKEN, ids=lambda case: case.name)
def test_broken_network_is_flagged(case: Case):
    report, _ = examined(case.name)
    assert not report.ok, f"{case.name} passed, expected {[bug.kind for bug in case.bugs]}:\n{report}"


@pytest.mark.parametrize("pair", BUGS, ids=_bug_id)
def test_bug_is_localised(pair):
    case, bug = pair
    report, _ = examined(case.name)
    assert errors(report, bug.check), f"no {bug.check} error for {bug.kind} in {case.name}:\n{report}"
    if bug.check in LOCALISED_CHECKS:
        assert flagged_params(report, bug.check) == case.expected_params(bug.check), str(report)


@pytest.mark.parametrize("pair", NAMED_BUGS, ids=_bug_id)
def test_bug_kind_is_named(pair):
    case, bug = pair
    report, _ = examined(case.name)
    assert kind_named(bug, report), f"{bug.kind} not named for {case.name}:\n{report}"


def test_seed_plugin_registers_both_networks():
    path = ROOT / "plugins" / "seed_network.py"
    if not path.exists():
        pytest.skip("plugins/seed_network.py not installed yet (draft in tests/doctor/networks)")
    from mlpx.doctor import Network

    spec = importlib.util.spec_from_file_location("seed_network_plugin_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    registered = {}
    module.register_networks(lambda name, factory, *args, **kwargs: registered.setdefault(name, factory))
    assert set(registered) == {"seed_question", "seed_fixed"}
    for factory in registered.values():
        network = factory()
        assert isinstance(network, Network)
        assert network.objective == "cross_entropy" and network.check_batch is None
        assert network.data is not None and len(network.data[0]) == 16
