"""A bounded load test of `tutor serve` on loopback: N concurrent clients, M requests each.

Reports errors by kind, latency percentiles (time to the first streamed token and to the end),
and the server's resident memory before and after. By default it starts its own server on a
tiny model (written to a temporary folder); --model points it at a real checkpoint instead.

    python benchmarks/load_serve.py --clients 8 --requests 5 --max-tokens 32
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start(model: str, max_queue: int) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "tutor.cli", "serve", "--model", model, "--port", "0", "--token", "load",
           "--max-queue", str(max_queue)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    line = proc.stdout.readline()
    if not line.startswith("tutor serve: listening on "):
        proc.kill()
        raise SystemExit(f"server did not start: {line!r}")
    return proc, line.split()[-1]


def client(url: str, requests: int, max_tokens: int, results: list, seed: int) -> None:
    headers = {"Authorization": "Bearer load"}
    with httpx.Client(timeout=600, headers=headers) as http:
        for i in range(requests):
            body = {"prompt": f"def function_{seed}_{i}(x):\n    return", "max_tokens": max_tokens,
                    "temperature": 0, "stream": True}
            t0 = time.perf_counter()
            first = None
            try:
                with http.stream("POST", f"{url}/v1/completions", json=body) as r:
                    if r.status_code != 200:
                        r.read()
                        results.append((f"http {r.status_code} {r.json()['error']['type']}", None, None))
                        continue
                    for line in r.iter_lines():
                        if line.startswith("data:") and first is None:
                            first = time.perf_counter() - t0
                results.append(("ok", first, time.perf_counter() - t0))
            except httpx.HTTPError as exc:
                results.append((exc.__class__.__name__, None, None))


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))] * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=5)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--max-queue", type=int, default=64)
    ap.add_argument("--model", help="a checkpoint folder (default: a tiny random one)")
    args = ap.parse_args()
    if args.clients * args.requests > 10_000:
        raise SystemExit("keep it bounded: at most 10,000 requests")

    model = args.model
    if model is None:
        from tutor.engine.tiny import make_tiny

        model = str(make_tiny(Path(tempfile.mkdtemp()) / "codegemma-2b"))
    proc, url = start(model, args.max_queue)
    try:
        before = rss_mib(proc.pid)
        results: list = []
        threads = [threading.Thread(target=client, args=(url, args.requests, args.max_tokens, results, i))
                   for i in range(args.clients)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        after = rss_mib(proc.pid)
        health = httpx.get(f"{url}/health").json()
    finally:
        proc.terminate()
        proc.wait()

    outcomes = Counter(r[0] for r in results)
    ok = [r for r in results if r[0] == "ok"]
    print(f"{args.clients} clients x {args.requests} requests, {args.max_tokens} tokens each, model {model}")
    print(f"wall {wall:.1f} s, {len(ok) / wall:.2f} requests/s; outcomes: {dict(outcomes)}")
    if ok:
        firsts, totals = [r[1] for r in ok if r[1] is not None], [r[2] for r in ok]
        print("| latency ms | p50 | p90 | p99 | max |\n|---|---|---|---|---|")
        for name, values in (("first token", firsts), ("whole reply", totals)):
            print(f"| {name} | {pct(values, 50):.0f} | {pct(values, 90):.0f} | {pct(values, 99):.0f} | "
                  f"{max(values) * 1e3:.0f} |")
        print(f"mean reply {statistics.mean(totals) * 1e3:.0f} ms")
    print(f"server RSS: {before:.0f} MiB before, {after:.0f} MiB after; health after: {health}")


if __name__ == "__main__":
    main()
