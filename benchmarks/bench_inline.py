"""End-to-end latency of inline completion: a real `jupyter server` with the tutor's extension,
timed from the HTTP request to the first streamed chunk and to the final one.

"cold" is the very first request (it starts the embedded model worker and loads the model);
"warm" are the next ones, each a keystroke-like edit of a notebook with a few cells. By default
it writes a tiny random model to a temporary folder; --random-shape uses a random checkpoint at
the real 2B or 7B shape (written once into .bench/), --model a real checkpoint.

    python benchmarks/bench_inline.py                          # tiny model, CPU
    python benchmarks/bench_inline.py --random-shape 2b --device cuda --requests 20 [--compile]
    python benchmarks/bench_inline.py --model google/codegemma-2b --device cuda --requests 20
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

CELLS = ["import math\nimport random", "def mean(xs):\n    return sum(xs) / len(xs)",
         "scores = [random.randint(0, 100) for _ in range(20)]"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(model: str, device: str, root: Path, compile_step: bool) -> tuple[subprocess.Popen, str, str]:
    port, token = free_port(), secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUTOR_")}
    env.update({"TUTOR_COMPLETION_MODEL": model, "TUTOR_DEVICE": device, "JUPYTER_CONFIG_DIR": str(root / "cfg"),
                "TUTOR_COMPILE": "1" if compile_step else "0",
                "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))})
    log = open(root / "jupyter.log", "w")  # noqa: SIM115 - the process owns it
    proc = subprocess.Popen([sys.executable, "-m", "jupyter_server", "--no-browser", f"--port={port}",
                             "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}",
                             f"--ServerApp.root_dir={root}", "--allow-root",
                             "--ServerApp.jpserver_extensions={'tutor.server': True}"],
                            env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{url}/api/status", params={"token": token}, timeout=2).status_code == 200:
                return proc, url, token
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"jupyter server did not start; see {root / 'jupyter.log'}")


def one(client: httpx.Client, url: str, i: int, max_tokens: int, budget: int) -> tuple[float, float, int]:
    before = f"avg = mean(scores)\nprint(avg)\nfor s in scores[:{i % 7 + 1}]:\n    "
    body = {"id": f"b{i}", "path": "bench.ipynb", "cellId": "c4", "before": before, "after": "",
            "cellsBefore": CELLS, "cellsAfter": ["print('done')"],
            "settings": {"maxTokens": max_tokens, "contextBudget": budget, "maxLines": 8}}
    t0 = time.perf_counter()
    first = None
    chunks = 0
    with client.stream("POST", f"{url}/tutor/complete", json=body) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if not line.strip():
                continue
            chunk = json.loads(line)
            if "error" in chunk:
                raise SystemExit(f"error: {chunk['error']['message']}")
            chunks += 1
            if first is None:
                first = time.perf_counter() - t0
    total = time.perf_counter() - t0
    return (first if first is not None else total), total, chunks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="a model folder or hub name (default: a tiny random model)")
    ap.add_argument("--random-shape", choices=["2b", "7b"], help="a random checkpoint at this real shape")
    ap.add_argument("--compile", action="store_true", help="TUTOR_COMPILE=1 in the worker")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--requests", type=int, default=10, help="warm requests")
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--budget", type=int, default=1024, help="context budget in tokens")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = args.model
        if args.random_shape:
            from bench_engine import ensure_checkpoint
            model = str(ensure_checkpoint(ROOT / ".bench", args.random_shape, varied=True))
        elif model is None:
            from tutor.engine.tiny import make_tiny
            model = str(make_tiny(root / "codegemma-2b", "2b"))
        proc, url, token = start(model, args.device, root, args.compile)
        try:
            with httpx.Client(headers={"Authorization": f"token {token}"}, timeout=600) as client:
                cold = one(client, url, 0, args.max_tokens, args.budget)
                warm = [one(client, url, i, args.max_tokens, args.budget) for i in range(1, args.requests + 1)]
                status = client.get(f"{url}/tutor/status").json()
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    name = args.model or (f"random {args.random_shape} (real shape)" if args.random_shape else "tiny random model")
    where = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU ({os.cpu_count()} cores)"
    print(f"inline completion, end to end through jupyter server: {name}, {where}, "
          f"{'compiled (TUTOR_COMPILE=1)' if args.compile else 'default'} decode step, max_tokens {args.max_tokens}, "
          f"context budget {args.budget}")
    print(f"{'':14}{'first chunk ms':>16}{'final chunk ms':>16}{'chunks':>8}")
    print(f"{'cold (1)':14}{cold[0] * 1000:16.0f}{cold[1] * 1000:16.0f}{cold[2]:8d}")
    for label, pick in (("warm p50", 0.5), ("warm p90", 0.9)):
        firsts = sorted(w[0] for w in warm)
        finals = sorted(w[1] for w in warm)
        k = min(len(warm) - 1, int(pick * len(warm)))
        print(f"{label:14}{firsts[k] * 1000:16.0f}{finals[k] * 1000:16.0f}"
              f"{statistics.median(w[2] for w in warm):8.0f}")
    print(f"prompt tokens (last): {status['last_prompt_tokens']}; backend: {status['backend']}")


if __name__ == "__main__":
    main()
