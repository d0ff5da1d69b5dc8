"""Coverage and speed of the model-free diagnoses (tutor.tutoring.diagnose) on the beginner error corpus.

Coverage: every program of tests/diagnose_corpus/ is run for real and diagnosed; the table gives, per
exception type, how many programs there are, how many get the expected diagnosis ("explained"), how many
get a wrong one (must be 0), and how many none. ``--python`` runs the corpus in another interpreter
(3.10-3.13, no project dependencies needed) and prints its table instead.

Speed: the median time to diagnose one error, side by side with the time Python's own
``traceback.format_exception`` takes to format it (the reference: what every notebook does anyway for a
failing cell), for a plain error, an error in a notebook with 20,000 variables, and a 1,000-frame
recursion.

    python benchmarks/bench_diagnose.py
    python benchmarks/bench_diagnose.py --python ~/.pyenv/versions/3.13.0/bin/python
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "diagnose_corpus"))

import corpus  # noqa: E402


def coverage_rows(python: str | None) -> list[dict]:
    if python:
        out = subprocess.run([python, "-W", "ignore", corpus.__file__, "--standalone"], capture_output=True,
                             text=True, check=True, timeout=900)
        return [json.loads(line) for line in out.stdout.splitlines()]
    from tutor.tutoring.diagnose import diagnose

    rows = []
    for outcome in corpus.diagnose_all(diagnose):
        rows.append({"id": outcome.program.id, "expected": outcome.program.kind, "error": outcome.error_type,
                     "found": outcome.found.kind if outcome.found else None, "verdict": outcome.verdict})
    return rows


def print_coverage(rows: list[dict], version: str) -> None:
    by_type: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for row in rows:
        if row["expected"] != corpus.UNEXPLAINED:
            by_type[row["error"]][row["verdict"]] += 1
    unclaimed = [r for r in rows if r["expected"] == corpus.UNEXPLAINED]
    print(f"corpus: {len(rows)} programs, Python {version}")
    print(f"{'exception':<22}{'programs':>9}{'explained':>10}{'wrong':>7}{'none':>6}{'share':>8}")
    total = collections.Counter()
    def line(name: str, c: collections.Counter) -> str:
        n = sum(c.values())
        return f"{name:<22}{n:>9}{c['right']:>10}{c['wrong']:>7}{c['unexplained']:>6}{c['right'] / n:>8.0%}"

    for name in sorted(by_type, key=lambda n: (-sum(by_type[n].values()), n)):
        total.update(by_type[name])
        print(line(name, by_type[name]))
    print(line("all", total))
    kept = sum(r["verdict"] == "right" for r in unclaimed)
    print(f"errors raised on purpose (no rule may claim them): {kept} of {len(unclaimed)} left alone")


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def failing(source: str, namespace: dict) -> BaseException:
    try:
        exec(compile(source, "<cell>", "exec"), namespace)
    except Exception as exc:  # noqa: BLE001 - the error is what is measured
        return exc
    raise AssertionError(source)


def print_speed(repeats: int) -> None:
    from tutor.tutoring.diagnose import diagnose

    big = {f"variable_{i}": i for i in range(20_000)}
    cases = [
        ("plain NameError", "total = 1\nprint(totl)\n", {}),
        ("20,000 variables", "print(variabel_7)\n", big),
        ("1,000-frame recursion", "def down(n):\n    return down(n - 1)\ndown(3)\n", {}),
        ("syntax error", "for i in range 3:\n    print(i)\n", {}),
    ]
    print(f"\n{'case':<24}{'diagnose':>12}{'traceback':>12}{'ratio':>8}")
    for name, source, namespace in cases:
        ns = dict(namespace)
        error = failing(source, ns)
        t_diag = median_time(lambda e=error, s=source, n=ns: diagnose(s, e, n), repeats)
        t_tb = median_time(lambda e=error: traceback.format_exception(type(e), e, e.__traceback__), repeats)
        print(f"{name:<24}{t_diag * 1e3:>10.2f}ms{t_tb * 1e3:>10.2f}ms{t_diag / t_tb:>8.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--python", help="run the corpus in this interpreter instead (coverage only)")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    if args.python:
        version = subprocess.run([args.python, "-c", "import sys; print(sys.version.split()[0])"],
                                 capture_output=True, text=True, check=True).stdout.strip()
        print_coverage(coverage_rows(args.python), version)
        return
    print_coverage(coverage_rows(None), sys.version.split()[0])
    print_speed(args.repeats)


if __name__ == "__main__":
    main()
