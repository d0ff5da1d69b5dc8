"""What the sandbox costs per grade: bubblewrap, our own namespaces, and a bare subprocess, side by side.

Each mode grades the same bank problems with their reference solutions (public and hidden runs);
the reference is a bare `python -I -S -c` of the same code with no sandbox at all.

    python benchmarks/bench_grading.py --problems 10
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tutor.grading import grade, load_bank  # noqa: E402
from tutor.grading.sandbox import _bwrap  # noqa: E402


def time_mode(mode: str | None, problems) -> list[float]:
    times = []
    for p in problems:
        start = time.perf_counter()
        if mode is None:
            subprocess.run([sys.executable, "-I", "-S", "-c", p.solution], check=True)
            subprocess.run([sys.executable, "-I", "-S", "-c", p.solution], check=True)  # two runs, as grade() does
        else:
            os.environ["TUTOR_SANDBOX"] = mode
            report = grade(p, p.solution)
            assert report.passed, (p.id, report.feedback())
        times.append(time.perf_counter() - start)
    os.environ.pop("TUTOR_SANDBOX", None)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--problems", type=int, default=10)
    args = parser.parse_args()
    problems = list(load_bank())[: args.problems]
    modes = [("bare subprocess (reference)", None), ("native namespaces", "native")]
    if _bwrap():
        modes.append(("bubblewrap", "bwrap"))
    results = {}
    for name, mode in modes:
        time_mode(mode, problems[:1])  # warm
        results[name] = statistics.median(time_mode(mode, problems))
    reference = results["bare subprocess (reference)"]
    print(f"{'mode':32} {'median ms per grade':>20} {'x reference':>12}")
    for name, seconds in results.items():
        print(f"{name:32} {seconds * 1000:20.1f} {seconds / reference:12.2f}")


if __name__ == "__main__":
    main()
