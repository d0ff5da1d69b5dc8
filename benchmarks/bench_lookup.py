"""Prompt-lookup decoding on a model that copies: acceptance, forward passes and speed-up.

No real CodeGemma weights can be had here, and a random model never copies its prompt, so this
trains a small Gemma-shaped model (the engine's own Transformer, multi-query attention like the
2B) for a few minutes on the CPU to copy: <bos> x <sep> x, x random token sequences. It is saved
as a checkpoint in the released layout and loaded back with tutor.engine.load. Then each prompt
<bos> x <sep>, x a real code snippet tokenized, is decoded greedily with and without
``draft_tokens``: the tokens must be identical; the table gives forward passes, accepted drafts
and time.

    python benchmarks/bench_lookup.py                       # trains (about 2-4 minutes), then runs
    python benchmarks/bench_lookup.py --drafts 4 8 --steps 1500
    python benchmarks/bench_lookup.py --block-cost 2b --device cuda   # what a block costs at a real shape

--block-cost times one decode step against blocks of 1 + k tokens (what verifying k drafts costs)
at the real 2B or 7B shape with random weights: the speed-up a copying model of that size would
see is about tokens-per-pass times step-time over block-time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tutor.engine import load  # noqa: E402
from tutor.engine.config import ModelConfig  # noqa: E402
from tutor.engine.model import Transformer  # noqa: E402
from tutor.engine.tiny import TINY, train_tokenizer  # noqa: E402
from tutor.engine.tokenizer import Tokenizer  # noqa: E402

SNIPPETS = [
    "def mean(xs):\n    total = 0\n    for x in xs:\n        total += x\n    return total / len(xs)\n",
    "for i in range(10):\n    if i % 2 == 0:\n        print(i, 'is even')\n",
    "names = ['ada', 'grace', 'alan']\nfor name in names:\n    print(name.title())\n",
    "try:\n    value = int(text)\nexcept ValueError as error:\n    print(error)\n",
    "class Counter:\n    def __init__(self):\n        self.count = 0\n    def add(self):\n        self.count += 1\n",
    "while True:\n    line = input()\n    if not line:\n        break\n    print(line.upper())\n",
]


def copy_batch(batch: int, vocab: range, sep: int, bos: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """<bos> x <sep> x for random x of 16-64 tokens, padded; targets only on the copy."""
    length = int(torch.randint(16, 65, (1,), generator=gen))
    x = torch.randint(vocab.start, vocab.stop, (batch, length), generator=gen)
    ids = torch.cat([torch.full((batch, 1), bos), x, torch.full((batch, 1), sep), x], dim=1)
    targets = torch.full_like(ids, -100)
    targets[:, length + 1:-1] = ids[:, length + 2:]  # predict each copied token from the one before
    return ids, targets


def train_copier(folder: Path, steps: int, seed: int = 0) -> Path:
    tokenizer_model = train_tokenizer()
    (folder).mkdir(parents=True, exist_ok=True)
    (folder / "tokenizer.model").write_bytes(tokenizer_model)
    tok = Tokenizer(folder / "tokenizer.model")
    config: ModelConfig = replace(TINY["2b"], vocab_size=tok.vocab_size, hidden_size=128, intermediate_size=256,
                                  num_layers=2, num_heads=4, num_kv_heads=1, head_dim=32,
                                  max_position_embeddings=512, dtype=torch.float32, name="tutor/copier")
    torch.manual_seed(seed)
    model = Transformer(config)
    for name, p in model.named_parameters():
        if name.endswith("norm.weight"):
            torch.nn.init.zeros_(p)
        else:
            torch.nn.init.normal_(p, std=0.02)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps, pct_start=0.1)
    gen = torch.Generator().manual_seed(seed)
    sep = tok.encode("\n")[-1]
    start = time.perf_counter()
    for step in range(steps):
        ids, targets = copy_batch(32, range(10, tok.vocab_size), sep, tok.bos_id, gen)
        logits = model.head(model(ids))
        loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 250 == 0 or step == steps - 1:
            print(f"step {step:5d} loss {loss.item():.3f} ({time.perf_counter() - start:.0f} s)", file=sys.stderr)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps(config.to_json_dict("old"), indent=2) + "\n")
    return folder


def block_cost(shape: str, device: str, drafts: list[int], repeats: int = 5) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_engine import ensure_checkpoint

    model = load(ensure_checkpoint(ROOT / ".bench", shape), device=device, dtype="bfloat16", quantize="none")
    cache = model.model.new_cache(1, 1280)
    rows = []
    for t in (1, *[1 + k for k in drafts]):
        if device.startswith("cuda"):
            captured = model._captured_step(cache, t)  # noqa: SLF001 - the engine's own captured block
            captured.position.fill_(1000)

            def once(captured=captured) -> None:
                captured.graph.replay()
                torch.cuda.synchronize()
        else:
            ids = torch.zeros((1, t), dtype=torch.long)

            def once(ids=ids) -> None:
                with torch.inference_mode():
                    model.model.decode_block(ids, torch.tensor([1000]), cache)
        once()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            once()
            times.append(time.perf_counter() - t0)
        rows.append((t, statistics.median(times)))
    print(f"\n{shape} (random weights), bfloat16, {device}, cache of 1280 positions")
    print("| tokens in the block | ms | vs one token |")
    print("|---|---|---|")
    for t, seconds in rows:
        print(f"| {t} | {seconds * 1e3:.2f} | {seconds / rows[0][1]:.2f}x |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=1500, help="training steps of the copier")
    ap.add_argument("--drafts", type=int, nargs="+", default=[4, 8])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=ROOT / ".bench")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--block-cost", choices=["2b", "7b"], help="time blocks at this real shape instead")
    args = ap.parse_args()
    if args.block_cost:
        block_cost(args.block_cost, args.device, args.drafts)
        return
    folder = args.workdir / f"copier-{args.steps}"
    if not (folder / "config.json").is_file():
        train_copier(folder, args.steps)
    model = load(folder, device=args.device, dtype=args.dtype)
    tok = model.tokenizer
    sep = tok.encode("\n")[-1]
    prompts = [[tok.bos_id, *tok.encode(s), sep] for s in SNIPPETS]

    def run(k: int) -> tuple[list, float]:
        results, times = [], []
        for prompt in prompts:
            best = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                r = model.generate(prompt, max_new_tokens=len(prompt) - 2, stop_token_ids=[], draft_tokens=k)
                best.append(time.perf_counter() - t0)
            results.append(r)
            times.append(statistics.median(best))
        return results, sum(times)

    for k in (0, *args.drafts):  # warm-up: allocator, caches, captured graphs on a GPU
        model.generate(prompts[0], max_new_tokens=8, stop_token_ids=[], draft_tokens=k)
    plain, plain_s = run(0)
    copied = sum(r.token_ids == p[1:-1] for r, p in zip(plain, prompts, strict=True))
    print(f"\nprompt lookup on a {sum(p.numel() for p in model.model.parameters()) / 1e6:.1f}M-parameter copier "
          f"trained {args.steps} steps; {len(prompts)} code snippets of "
          f"{min(len(p) for p in prompts) - 2}-{max(len(p) for p in prompts) - 2} tokens, greedy, {args.dtype}, "
          f"{args.device}; the plain run copied {copied}/{len(prompts)} snippets exactly")
    print("| draft tokens | identical to plain greedy | tokens | forward passes | tokens per pass | "
          "drafted | accepted | acceptance | time s | speed-up |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    tokens = sum(len(r.token_ids) for r in plain)
    passes = sum(r.forward_passes for r in plain) + len(plain)  # + the prefill, which gives the first token
    print(f"| 0 (plain) | - | {tokens} | {passes} | {tokens / passes:.2f} | - | - | - | {plain_s:.3f} | 1.00x |")
    for k in args.drafts:
        results, seconds = run(k)
        same = all(a.token_ids == b.token_ids for a, b in zip(plain, results, strict=True))
        passes = sum(r.forward_passes for r in results) + len(results)
        drafted = sum(r.drafted_tokens for r in results)
        accepted = sum(r.accepted_tokens for r in results)
        print(f"| {k} | {'yes' if same else 'NO'} | {tokens} | {passes} | {tokens / passes:.2f} | {drafted} | "
              f"{accepted} | {accepted / max(drafted, 1):.0%} | {seconds:.3f} | {plain_s / seconds:.2f}x |")


if __name__ == "__main__":
    main()
