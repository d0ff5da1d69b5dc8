"""The ``tutor`` command line. Errors print one line to stderr and exit with status 2."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .engine.errors import TutorError


def _read_text(value: str | None, file: str | None, what: str) -> str:
    if file is None:
        return value or ""
    try:
        return Path(file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TutorError(f"{file}: cannot read the {what} file ({exc.__class__.__name__}: {exc}).") from exc


def _load(args: argparse.Namespace):
    from .backends.progress import Loading, TextBar
    from .engine import load

    bar = TextBar()  # on a terminal only: stderr piped elsewhere gets no carriage-return noise
    try:
        return load(args.model, device=args.device, dtype=args.dtype, quantize=args.quantize,
                    progress=lambda p: bar(Loading("completion" if args.command == "complete" else "chat", p)))
    finally:
        bar.close()


def _print_stream(stream) -> None:
    text = ""
    for piece in stream:
        sys.stdout.write(piece)
        sys.stdout.flush()
        text += piece
    if sys.stdout.isatty() and not text.endswith("\n"):
        sys.stdout.write("\n")


def cmd_complete(args: argparse.Namespace) -> None:
    from .prompts import fim_prompt, fim_stop_ids

    prefix = _read_text(args.prefix, args.prefix_file, "prefix")
    suffix = _read_text(args.suffix, args.suffix_file, "suffix")
    model = _load(args)
    if model.config.instruction_tuned:
        print(f"note: {args.model} is instruction-tuned; the pretrained codegemma-2b/7b complete "
              "code better.", file=sys.stderr)
    ids = fim_prompt(model.tokenizer, prefix, suffix, mode=args.fim_mode)
    _print_stream(model.generate(ids, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                                 seed=args.seed, stop_token_ids=fim_stop_ids(model.tokenizer), stream=True))


def cmd_chat(args: argparse.Namespace) -> None:
    from .prompts import chat_prompt, chat_stop_ids

    question = _read_text(args.question, args.question_file, "question")
    if not question.strip():
        raise TutorError("the question is empty: pass it as an argument or with --question-file.")
    model = _load(args)
    if not model.config.instruction_tuned:
        print(f"note: {args.model} is not instruction-tuned; use codegemma-7b-it for chat.", file=sys.stderr)
    ids = chat_prompt(model.tokenizer, [{"role": "user", "content": question}])
    _print_stream(model.generate(ids, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                                 seed=args.seed, stop_token_ids=chat_stop_ids(model.tokenizer), stream=True))


def cmd_make_tiny(args: argparse.Namespace) -> None:
    from .engine.tiny import make_tiny

    folder = Path(args.dir)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())) and not args.force:
        raise TutorError(f"{folder}: already exists and is not empty; choose a new folder or pass --force.")
    make_tiny(folder, args.variant, seed=args.seed, shards=args.shards, dialect=args.dialect)
    print(f"wrote a tiny codegemma-{args.variant} checkpoint (random weights) to {folder}")


def cmd_serve(args: argparse.Namespace) -> None:
    from .backends.local import LocalBackend
    from .serving import serve
    from .serving.access import TOKEN_ENV
    from .settings import resolve_settings

    settings = resolve_settings({"completion_model": args.model, "chat_model": args.chat_model,
                                 "token": args.token or os.environ.get(TOKEN_ENV) or None, "device": args.device})
    if not (settings.completion_model or settings.chat_model or args.problems):
        raise TutorError("nothing to serve: pass --model (completion) and/or --chat-model (chat), "
                         "or set TUTOR_COMPLETION_MODEL / TUTOR_CHAT_MODEL, or --problems DIR to grade.")
    grading = None
    if args.problems:
        from .serving.grading import GradingService

        grading = GradingService(args.problems)
    host, port = args.host or "127.0.0.1", 8000 if args.port is None else args.port
    token, hub, prefix = settings.token, None, "/"
    if args.hub:
        from .serving.hub import HubGate, service_from_env

        if args.token:
            raise TutorError("--hub and --token exclude each other: under JupyterHub each student's own Hub token "
                             "is the key.")
        service = service_from_env()
        hub, prefix, token = HubGate(), service.prefix, None
        host, port = args.host or service.host, service.port if args.port is None else args.port
    from .backends.progress import TextBar, line_reporter

    progress = {"bar": TextBar(), "lines": line_reporter(), "none": None}[args.progress]
    backend = LocalBackend(settings.completion_model, settings.chat_model, device=settings.device, dtype=args.dtype,
                           on_progress=progress)
    serve(backend, host=host, port=port, token=token, max_queue=args.max_queue,
          parent_pid=args.parent_pid, grading=grading, scheduler=args.scheduler, max_per_user=args.max_per_user,
          slots=args.slots, slot_tokens=args.slot_tokens, hub=hub, prefix=prefix, allow_hosts=args.allow_host or (),
          in_process=args.in_process, progress=args.progress, stream_interval=args.stream_interval / 1000)


def _positive(text: str) -> int:
    value = _non_negative(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
    return value


def _model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="model folder, or a hub name found in the local Hugging Face cache")
    p.add_argument("--device", help="cpu, cuda, cuda:1... (default: TUTOR_DEVICE, else CUDA if present)")
    p.add_argument("--dtype", choices=["bfloat16", "float16", "float32"], help="default: the checkpoint's")
    p.add_argument("--quantize", choices=["int8", "none"],
                   help="int8 weights for faster CPU decoding (default: TUTOR_QUANTIZE, else none)")
    p.add_argument("--max-new-tokens", type=int, default=None)
    p.add_argument("--temperature", type=float, default=0.0, help="0 means greedy (default)")
    p.add_argument("--seed", type=int, default=None)


def cmd_policy_check(args: argparse.Namespace) -> int:
    from .tutoring.policy import check_report

    ok, text = check_report(args.file)
    print(text, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tutor", description="An interactive code tutor on CodeGemma.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("complete", help="fill in the middle between a prefix and a suffix (pretrained model)")
    _model_options(p)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--prefix", help="code before the cursor")
    g.add_argument("--prefix-file", help="file with the code before the cursor")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--suffix", help="code after the cursor")
    g.add_argument("--suffix-file", help="file with the code after the cursor")
    p.add_argument("--fim-mode", choices=["psm", "spm"], default="psm", help="prompt layout (default psm)")
    p.set_defaults(func=cmd_complete, default_max_new_tokens=128)

    p = sub.add_parser("chat", help="ask the instruction-tuned model a question; the reply streams")
    _model_options(p)
    p.add_argument("question", nargs="?", help="the question")
    p.add_argument("--question-file", help="read the question from a file")
    p.set_defaults(func=cmd_chat, default_max_new_tokens=512)

    p = sub.add_parser("serve", help="serve the models over an OpenAI-compatible HTTP API")
    p.add_argument("--model", help="completion model (default: TUTOR_COMPLETION_MODEL)")
    p.add_argument("--chat-model", help="instruction-tuned model for chat (default: TUTOR_CHAT_MODEL)")
    p.add_argument("--host", help="address to listen on (default: loopback only; with --hub, the Hub's)")
    p.add_argument("--port", type=int, help="default 8000 (with --hub, the Hub's); 0 picks a free port (printed)")
    p.add_argument("--token", help="require 'Authorization: Bearer TOKEN' (default: TUTOR_SERVE_TOKEN, else "
                                   "TUTOR_TOKEN); needed to listen beyond loopback")
    p.add_argument("--allow-host", action="append", metavar="NAME",
                   help="a further name students reach the server by (Host/Origin header; repeatable; '*': any). "
                        "Loopback names, the --host address and this machine's name are always allowed")
    p.add_argument("--hub", action="store_true",
                   help="run as a JupyterHub managed service: each request needs the student's own Hub token, "
                        "the Hub's user is the requester; address and prefix from the Hub (needs jupyterhub)")
    p.add_argument("--device", help="cpu, cuda... (default: TUTOR_DEVICE, else CUDA if present)")
    p.add_argument("--dtype", choices=["bfloat16", "float16", "float32"], help="default: the checkpoint's")
    p.add_argument("--max-queue", type=_positive, default=64,
                   help="requests waiting to start, per model, before answering 503 (default 64)")
    p.add_argument("--scheduler", choices=["auto", "batched", "fifo"], default="auto",
                   help="batched: continuous batching, every request advances each step (a class on a GPU); "
                        "fifo: one request at a time (fastest for one user on a CPU); auto (default): "
                        "batched on a GPU, fifo on a CPU and for a user's own model worker")
    p.add_argument("--max-per-user", type=_non_negative, default=4,
                   help="requests one student may have running at once before answering 429 (default 4; 0: "
                        "no cap). Students are told apart by the Hub, else by address and the 'user' field")
    p.add_argument("--slots", type=_positive, help="batched: sequences at once (default: what fits in half the "
                                                   "free GPU memory, at most 64; 4 on a CPU)")
    p.add_argument("--slot-tokens", type=_positive,
                   help="batched: tokens (prompt + answer) one slot holds (default: the model's context); longer "
                        "requests run on their own cache. Fewer tokens a slot, more slots fit")
    p.add_argument("--stream-interval", type=_non_negative, default=10, metavar="MS",
                   help="milliseconds at least between two streamed events of one answer after its first: the "
                        "pieces that come meanwhile go out as one (default 10; 0: every piece at once). Fewer writes "
                        "let one server stream to a whole class; a reader sees no difference")
    p.add_argument("--in-process", action="store_true",
                   help="batched: run the models in the server's own process (by default the batch has a process "
                        "of its own, so that answering HTTP and decoding each have a core)")
    p.add_argument("--problems", help="grade students' code against the problems and lessons in this folder "
                                       "(hidden tests stay on the server)")
    p.add_argument("--progress", choices=["bar", "lines", "none"], default="bar",
                   help="how loading the models shows: bar (default; a progress bar on a terminal's stderr), lines "
                        "(one JSON event a line on stdout, read by the model worker's parent), none")
    p.add_argument("--parent-pid", type=int, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("make-tiny", help="write a tiny checkpoint in the real layout (random weights)")
    p.add_argument("dir")
    p.add_argument("--variant", choices=["2b", "7b", "7b-it"], default="2b")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shards", type=int, default=1, help="split the weights into N files with an index")
    p.add_argument("--dialect", choices=["old", "new"], default="old", help="config.json dialect")
    p.add_argument("--force", action="store_true", help="write into a folder that is not empty")
    p.set_defaults(func=cmd_make_tiny)

    p = sub.add_parser("policy", help="the teacher's policy file: check it before students use it")
    policy = p.add_subparsers(dest="policy_command", required=True)
    c = policy.add_parser("check", help="print OK and what the policy allows, or every mistake with its line")
    c.add_argument("file", help="the policy file (.json), as TUTOR_POLICY or c.Tutor.policy name it")
    c.set_defaults(func=cmd_policy_check)

    from .eval.cli import add_parser as add_eval_parser
    from .lessons import add_parser as add_lesson_parser

    add_lesson_parser(sub)
    add_eval_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "max_new_tokens", 0) is None:
        args.max_new_tokens = args.default_max_new_tokens
    if getattr(args, "max_new_tokens", 1) < 1:
        parser.error("--max-new-tokens must be at least 1")
    if getattr(args, "shards", 1) < 1:
        parser.error("--shards must be at least 1")
    try:
        status = args.func(args)
    except (TutorError, ValueError) as exc:
        print(f"tutor: error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:  # an install that lacks a dependency: say which, not a traceback
        print(f"tutor: error: the Python module {exc.name!r} is not installed ({exc}); install it "
              f"(pip install {(exc.name or '').split('.')[0]}) or reinstall the tutor with its dependencies.",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `tutor complete ... | head`
        return 0
    return status if isinstance(status, int) else 0


if __name__ == "__main__":
    sys.exit(main())
