"""A bounded load test of `tutor serve` on loopback: N concurrent clients, M requests each, for each
scheduling mode side by side (continuous batching, and the one-at-a-time FIFO it replaced).

Every client sends its next request when the previous one ends (a class typing), streaming, greedy.
A request is a completion of a --prompt-token prompt (token ids, unique per request) or, for a
--chats share of them, a chat. Reports requests/s, time to the first streamed token and to the
end (p50/p90/p99), errors by kind, and the server's resident memory before and after. Clients run
in several processes, so the client side is not what is measured; they are started and imported
before the clock starts, which runs from the first request sent to the last answer read.

    python benchmarks/load_serve.py --clients 8 --requests 5 --max-tokens 32          # tiny model, CPU
    python benchmarks/load_serve.py --random-shape 2b --device cuda --clients 32 --requests 4 --peer
    python benchmarks/load_serve.py --random-shape 7b --device cuda --clients 16 --requests 4

--peer also times Hugging Face transformers' generate on a static batch of --clients requests
(static cache, compiled forward) on the same checkpoint: the easy case, where all requests start
and end together, in the same run. --engine also drives the batch scheduler in this process from
--clients threads, the same load without HTTP (completions only): the gap to the batched server
is what the server's own work costs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TOKEN = "load"


def rss_mib(pid: int, children: bool = True) -> float:
    """Resident memory of the server and its children (the batch runs in a child process), not of
    theirs: the compiler's worker processes under the batch's are not the server's memory."""
    total = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            total += int(line.split()[1]) / 1024
    if children:
        for task in Path(f"/proc/{pid}/task").iterdir():
            total += sum(rss_mib(int(child), False) for child in (task / "children").read_text().split())
    return total


def start(model: str, mode: str, args: argparse.Namespace) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "tutor.cli", "serve", "--model", model, "--chat-model", model, "--port", "0",
           "--token", TOKEN, "--max-queue", str(max(64, 2 * args.clients)), "--scheduler", mode,
           "--max-per-user", str(args.clients)]
    if args.device:
        cmd += ["--device", args.device]
    if args.stream_interval is not None:
        cmd += ["--stream-interval", str(args.stream_interval)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    deadline = time.monotonic() + args.start_timeout
    while time.monotonic() < deadline:  # compiling the decode steps takes a while on a GPU
        line = proc.stdout.readline()
        if line.startswith("tutor serve: listening on "):
            return proc, line.split()[-1]
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise SystemExit(f"the {mode} server did not start")


def body(rng: random.Random, args: argparse.Namespace) -> tuple[str, dict]:
    if rng.random() < args.chats:
        words = " ".join(f"w{rng.randrange(5000)}" for _ in range(args.prompt_tokens // 2))
        return "/v1/chat/completions", {"messages": [{"role": "user", "content": f"Explain this code: {words}"}],
                                        "max_tokens": args.max_tokens, "temperature": 0, "stream": True}
    prompt = [2, *(rng.randrange(4, 1000) for _ in range(args.prompt_tokens - 1))]
    return "/v1/completions", {"prompt": prompt, "max_tokens": args.max_tokens, "temperature": 0, "stream": True}


async def client(url: str, index: int, args: argparse.Namespace, results: list, span: list[float]) -> None:
    import httpx

    rng = random.Random(index)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    # One connection each, as each student's browser or kernel has its own.
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=600, http2=False) as http:
        for _ in range(args.requests):
            path, payload = body(rng, args)
            started = time.monotonic()  # system-wide on Linux: comparable across the client processes
            t0 = time.perf_counter()
            first = None
            try:
                async with http.stream("POST", path, json=payload) as r:
                    if r.status_code != 200:
                        await r.aread()
                        results.append((f"http {r.status_code}", None, None))
                        continue
                    async for line in r.aiter_lines():
                        if line.startswith("data:") and first is None:
                            first = time.perf_counter() - t0
                results.append(("ok", first, time.perf_counter() - t0))
                span[0], span[1] = min(span[0], started), time.monotonic()
            except httpx.HTTPError as exc:
                results.append((type(exc).__name__, None, None))


def client_process(url: str, indices: list[int], args: argparse.Namespace, out, ready, go) -> None:
    import httpx  # noqa: F401 - imported before the start, so that it is not timed

    results: list = []
    span = [float("inf"), 0.0]  # the first request's start, the last one's end

    async def run() -> None:
        await asyncio.gather(*(client(url, i, args, results, span) for i in indices))

    ready.put(True)
    go.wait()
    asyncio.run(run())
    out.put((results, span))


def load(url: str, args: argparse.Namespace) -> tuple[float, list]:
    procs = min(args.client_procs, args.clients)
    groups = [list(range(p, args.clients, procs)) for p in range(procs)]
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    ready, go = ctx.Queue(), ctx.Event()
    workers = [ctx.Process(target=client_process, args=(url, g, args, out, ready, go)) for g in groups]
    for w in workers:
        w.start()
    for _ in workers:  # started and imported: spawning processes is not the server's time
        ready.get(timeout=600)
    go.set()
    results, first, last = [], float("inf"), 0.0
    for _ in workers:
        rows, (start, end) = out.get(timeout=3600)
        results += rows
        first, last = min(first, start), max(last, end)
    wall = max(last - first, 1e-6)  # from the first request sent to the last answer read
    for w in workers:
        w.join(timeout=60)
    return wall, results


def warm(url: str, args: argparse.Namespace) -> None:
    """A few requests first, so that no one-off cost (allocations, a first chat) lands in the timing."""
    import httpx

    rng = random.Random(-1)
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=600) as http:
        for share in (0.0, 1.0):
            path, payload = body(rng, argparse.Namespace(**{**vars(args), "chats": share}))
            http.post(path, json={**payload, "stream": False}).raise_for_status()


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))] * 1e3


def measure(model: str, mode: str, args: argparse.Namespace) -> dict:
    proc, url = start(model, mode, args)
    try:
        warm(url, args)
        before = rss_mib(proc.pid)
        wall, results = load(url, args)
        after = rss_mib(proc.pid)
        import httpx

        health = httpx.get(f"{url}/health", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    ok = [r for r in results if r[0] == "ok"]
    firsts = [r[1] for r in ok if r[1] is not None]
    totals = [r[2] for r in ok]
    row = {"mode": mode, "wall_s": wall, "requests_s": len(ok) / wall, "outcomes": dict(Counter(r[0] for r in results)),
           "rss_before_mib": before, "rss_after_mib": after, "health": health}
    for name, values in (("first", firsts), ("total", totals)):
        for p in (50, 90, 99):
            row[f"{name}_p{p}_ms"] = pct(values, p) if values else float("nan")
    return row


def engine(model: str, args: argparse.Namespace) -> dict:
    """tutor.engine.batching.BatchScheduler alone: --clients threads, each sending its next request
    when the last one ends, compiled and captured as `tutor serve` is on a GPU."""
    import threading

    os.environ.setdefault("TUTOR_COMPILE", "1")
    from tutor.engine import load as load_model
    from tutor.engine.batching import BatchScheduler

    net = load_model(model, device=args.device)
    batch = BatchScheduler(net)
    batch.warm_up()
    firsts: list[float] = []
    totals: list[float] = []

    def client(index: int, n: int) -> None:
        rng = random.Random(index)
        for _ in range(n):
            prompt = [2, *(rng.randrange(4, 1000) for _ in range(args.prompt_tokens - 1))]
            t0 = time.perf_counter()
            stream = batch.generate(prompt, max_new_tokens=args.max_tokens, stop_token_ids=[], stream=True)
            first = None
            for _ in stream:
                first = first or time.perf_counter() - t0
            firsts.append(first or float("nan"))
            totals.append(time.perf_counter() - t0)

    client(-1, 2)  # warm
    firsts.clear()
    totals.clear()
    threads = [threading.Thread(target=client, args=(i, args.requests)) for i in range(args.clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=3600)
    wall = time.perf_counter() - t0
    batch.close()
    return {"requests_s": len(totals) / wall, "first_p50_ms": pct(firsts, 50), "first_p99_ms": pct(firsts, 99),
            "total_p50_ms": pct(totals, 50), "path": batch.step.path}


def peer(model: str, args: argparse.Namespace) -> dict:
    """transformers' generate on one static batch of --clients prompts (static cache, compiled)."""
    import torch
    from transformers import GemmaForCausalLM

    device = args.device or "cpu"
    net = GemmaForCausalLM.from_pretrained(model, dtype=torch.bfloat16).to(device).eval()
    net.generation_config.cache_implementation = "static"
    # transformers compiles the decoding forward of a static cache itself (reduce-overhead, CUDA graphs)
    # and keeps its outputs apart between steps; compiling net.forward once more breaks that.
    compiled_by = "transformers' own compile_config" if hasattr(net.generation_config, "compile_config") else "us"
    if compiled_by == "us":
        step = torch.compile(net.forward, mode="reduce-overhead", fullgraph=True)

        def forward(*a, **k):
            torch.compiler.cudagraph_mark_step_begin()
            out = step(*a, **k)
            out.logits = out.logits.clone()  # read after the next step replays the graph
            return out
        net.forward = forward
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(4, 1000, (args.clients, args.prompt_tokens), generator=gen).to(device)
    ids[:, 0] = 2

    def run() -> float:
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.inference_mode():
            net.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=args.max_tokens,
                         min_new_tokens=args.max_tokens, do_sample=False, pad_token_id=0)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    for _ in range(3):  # compiling and capturing
        run()
    batch_s = statistics.median(run() for _ in range(5))
    return {"batch": args.clients, "batch_ms": batch_s * 1e3, "requests_s": args.clients / batch_s,
            "compiled_by": compiled_by}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=5, help="per client")
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--prompt-tokens", type=int, default=64)
    ap.add_argument("--chats", type=float, default=0.25, help="share of requests that are chats")
    ap.add_argument("--modes", nargs="+", default=["batched", "fifo"], choices=["batched", "fifo"])
    ap.add_argument("--model", help="a checkpoint folder (default: a tiny random one)")
    ap.add_argument("--random-shape", choices=["2b", "7b"], help="a random checkpoint at a real shape")
    ap.add_argument("--device", help="for the server (default: TUTOR_DEVICE, else the GPU if any)")
    ap.add_argument("--peer", action="store_true", help="also time transformers on a static batch")
    ap.add_argument("--engine", action="store_true", help="also drive the batch scheduler without HTTP")
    ap.add_argument("--stream-interval", type=int, help="the server's --stream-interval, ms (default: its own)")
    ap.add_argument("--client-procs", type=int, default=min(8, os.cpu_count() or 1))
    ap.add_argument("--start-timeout", type=float, default=600)
    ap.add_argument("--workdir", type=Path, default=ROOT / ".bench")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if args.clients * args.requests > 10_000:
        raise SystemExit("keep it bounded: at most 10,000 requests")

    model = args.model
    if args.random_shape:
        from bench_engine import ensure_checkpoint

        model = str(ensure_checkpoint(args.workdir, args.random_shape))
    elif model is None:
        from tutor.engine.tiny import make_tiny

        model = str(make_tiny(Path(tempfile.mkdtemp()) / "codegemma-2b"))
    rows = [measure(model, mode, args) for mode in args.modes]
    reference = peer(model, args) if args.peer else None
    alone = engine(model, args) if args.engine else None

    print(f"\n{args.clients} clients x {args.requests} requests, prompt {args.prompt_tokens} tokens, "
          f"{args.max_tokens} new tokens, {args.chats:.0%} chats; model {model}")
    print("| mode | requests/s | vs fifo | first token p50 / p90 / p99 ms | whole reply p50 / p99 ms | outcomes | "
          "server RSS MiB before / after |")
    print("|---|---|---|---|---|---|---|")
    fifo = next((r for r in rows if r["mode"] == "fifo"), None)
    for r in rows:
        ratio = f"{r['requests_s'] / fifo['requests_s']:.1f}x" if fifo else "-"
        print(f"| {r['mode']} | {r['requests_s']:.1f} | {ratio} | {r['first_p50_ms']:.0f} / {r['first_p90_ms']:.0f} / "
              f"{r['first_p99_ms']:.0f} | {r['total_p50_ms']:.0f} / {r['total_p99_ms']:.0f} | {r['outcomes']} | "
              f"{r['rss_before_mib']:.0f} / {r['rss_after_mib']:.0f} |")
    batched = next((r for r in rows if r["mode"] == "batched"), None)

    def served_vs(other: dict) -> str:
        return f", batched serving {batched['requests_s'] / other['requests_s']:.2f}x of it" if batched else ""

    if reference:
        print(f"peer: transformers generate, static batch of {reference['batch']} (static cache, compiled): "
              f"{reference['batch_ms']:.0f} ms, {reference['requests_s']:.1f} requests/s{served_vs(reference)} "
              f"(compiled by {reference['compiled_by']})")
    if alone:
        print(f"engine alone (no HTTP, {args.clients} threads, completions only, {alone['path']}): "
              f"{alone['requests_s']:.1f} requests/s, first token p50 / p99 {alone['first_p50_ms']:.0f} / "
              f"{alone['first_p99_ms']:.0f} ms{served_vs(alone)}")
    for r in rows:
        print(f"{r['mode']} health after: {json.dumps(r['health'])}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "peer": reference, "engine": alone}, indent=2))


if __name__ == "__main__":
    main()
