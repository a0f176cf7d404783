"""mlpx doctor against the held-out collection of hand-written networks (tests/doctor/networks).

Runs ``examine`` on every case and prints: broken networks flagged, labelled bugs localised (the
right check; for gradient and optimizer bugs exactly the labelled arrays), kinds named, correct
networks flagged (false alarms), each case's time, and a table of misses.

    python bench/doctor_collection.py [NAME_SUBSTRING ...]
"""

import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.doctor._examine import CASES, describe, errors, kind_named, localised  # noqa: E402


def main(selected):
    from mlpx.doctor import examine

    cases = [case for case in CASES if not selected or any(s in case.name for s in selected)]
    rows, misses = [], []
    flagged = broken = localised_count = named = n_bugs = false_alarms = correct = 0
    for case in cases:
        start = time.perf_counter()
        try:
            report = examine(**case.keywords)
        except Exception as exc:  # a crash is a miss of every label (or a false alarm)
            seconds = time.perf_counter() - start
            message = f"examine raised {type(exc).__name__}: {exc}"
            traceback.print_exc(limit=3, file=sys.stderr)
            rows.append((case.name, seconds, "CRASH"))
            if case.broken:
                broken += 1
                n_bugs += len(case.bugs)
                for bug in case.bugs:
                    misses.append((case.name, f"{bug.check}/{bug.kind} {list(bug.params)}", message))
            else:
                correct += 1
                false_alarms += 1
                misses.append((case.name, "clean", message))
            continue
        seconds = time.perf_counter() - start
        if case.broken:
            broken += 1
            is_flagged = not report.ok
            flagged += is_flagged
            if not is_flagged:
                misses.append((case.name, "flagged", "report.ok"))
            for bug in case.bugs:
                n_bugs += 1
                where, what = localised(case, bug, report), kind_named(bug, report)
                localised_count += where
                named += what
                if not where:
                    expected = f"{bug.check} {sorted(case.expected_params(bug.check))}"
                    misses.append(
                        (case.name, f"localise {bug.kind}: {expected}", describe(report, bug.check))
                    )
                if not what:
                    misses.append((case.name, f"kind {bug.kind}", describe(report)))
            rows.append((case.name, seconds, "flagged" if is_flagged else "MISSED"))
        else:
            correct += 1
            alarms = errors(report)
            false_alarms += bool(alarms)
            if alarms:
                misses.append((case.name, "clean", describe(report)))
            rows.append((case.name, seconds, "FALSE ALARM" if alarms else "clean"))

    width = max(len(name) for name, _, _ in rows)
    print(f"{'case':{width}}  {'time':>7}  result")
    for name, seconds, result in rows:
        print(f"{name:{width}}  {seconds:6.2f}s  {result}")
    print()
    print(f"broken networks flagged:  {flagged}/{broken}")
    print(f"labelled bugs localised:  {localised_count}/{n_bugs}")
    closest = sum(bug.closest_kind for case in cases for bug in case.bugs)
    print(f"kinds named:              {named}/{n_bugs} ({closest} labelled with only the closest kind)")
    print(f"correct networks flagged: {false_alarms}/{correct} (false alarms)")
    print(f"total time:               {sum(seconds for _, seconds, _ in rows):.1f} s")
    if misses:
        print()
        print("misses:")
        for name, expected, got in misses:
            print(f"  {name}\n      expected: {expected}\n      got:      {got}")


if __name__ == "__main__":
    main(sys.argv[1:])
