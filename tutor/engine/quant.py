"""Int8 weight-only quantization: half the bytes read per decoded token on the CPU.

Decoding one token reads every weight once, so on a CPU it is bound by memory bandwidth. Storing
the weights as int8 with one scale per output channel (symmetric, w ~= q * scale, |q| <= 127)
halves what is read; activations stay bfloat16 (or float32). The matmul uses torch's CPU kernel
``torch._weight_int8pack_mm(x, q, scales)`` (as gpt-fast does), which dequantizes inside the
kernel; elsewhere it falls back to a plain dequantize-then-matmul.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor, nn

from . import cpu_kernels
from .errors import SettingError

QUANTIZE_MODES = ("int8", "none")
# Rows quantized at a time: the float32 copy of a 256000-row embedding would otherwise be 2 GiB.
_CHUNK_ROWS = 4096


def quantize_int8(weight: Tensor) -> tuple[Tensor, Tensor]:
    """Per-row symmetric int8: returns (q int8 [out, in], scales float32 [out]) with weight ~= q * scales[:, None]."""
    q = torch.empty(weight.shape, dtype=torch.int8, device=weight.device)
    scales = torch.empty(weight.shape[0], dtype=torch.float32, device=weight.device)
    for start in range(0, weight.shape[0], _CHUNK_ROWS):
        rows = weight[start:start + _CHUNK_ROWS].float()
        scale = rows.abs().amax(dim=1).clamp(min=1e-12) / 127.0  # an all-zero row keeps a usable scale
        q[start:start + _CHUNK_ROWS] = (rows / scale[:, None]).round().clamp(-127, 127).to(torch.int8)
        scales[start:start + _CHUNK_ROWS] = scale
    return q, scales


def int8_linear(x: Tensor, q: Tensor, scales: Tensor) -> Tensor:
    """x [..., in] @ (q * scales).T in x's dtype. ``scales`` must already be in x's dtype."""
    rows, k = x.numel() // x.shape[-1], x.shape[-1]
    # One token in bfloat16 (decoding): integer products, 2x torch's kernel on AVX2 (tutor.engine.cpu_kernels).
    # float32 keeps torch's kernel, and with it the exact products the tests compare.
    if rows == 1 and x.dtype == torch.bfloat16 and scales.dtype == torch.bfloat16 and cpu_kernels.fits(x, q):
        return cpu_kernels.linear_int8(x, q, scales)
    # torch 2.13's bfloat16 CPU kernel reads out of bounds unless in_features is a multiple of 16
    # (wrong results or a crash); every CodeGemma matrix is a multiple of 256.
    if x.device.type == "cpu" and rows <= _KERNEL_MAX_ROWS.get(x.dtype, 0) and k % 16 == 0:
        out = torch._weight_int8pack_mm(x.reshape(rows, k).contiguous(), q, scales)
        return out.view(*x.shape[:-1], q.shape[0])
    # Long blocks (prefill) and other devices: dequantize a slice of rows at a time and use the
    # dense matmul, so the temporary copy stays small even for the 256000-row output head.
    # In float32 where torch has no fast bfloat16 matmul on this CPU (tutor.engine.cpu_kernels.prefill_dtype).
    step, dtype = 4 * _CHUNK_ROWS, cpu_kernels.prefill_dtype(x)
    xd = x.to(dtype)
    parts = [F.linear(xd, q[i:i + step].to(dtype)) * scales[i:i + step].to(dtype) for i in range(0, q.shape[0], step)]
    out = parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)
    return out.to(x.dtype)


def _kernel_max_rows() -> dict[torch.dtype, int]:
    """Up to how many rows torch's fused CPU kernel beats dequantize-then-matmul, per activation dtype.

    Measured on a 2-core AVX-512 CPU, torch 2.13: in bfloat16 the kernel wins up to about 32-48
    rows (decode, short prefills); in float16/float32 only for a handful. A dtype for which this
    torch build lacks the kernel, or gives a wrong answer on a small exact case, is left out.
    """
    limits = {torch.bfloat16: 32, torch.float16: 4, torch.float32: 4}
    usable = {}
    q = (torch.arange(8 * 64) % 7 - 3).to(torch.int8).view(8, 64)  # |sums| <= 192: exact in bfloat16
    x = (torch.arange(2 * 64) % 3 - 1).view(2, 64)
    for dtype, limit in limits.items():
        try:
            out = torch._weight_int8pack_mm(x.to(dtype), q, torch.full((8,), 0.5, dtype=dtype))
        except (AttributeError, RuntimeError, NotImplementedError):
            continue
        if out.dtype == dtype and torch.equal(out.float(), (x.float() @ q.float().T) * 0.5):  # small ints: exact
            usable[dtype] = limit
    return usable


_KERNEL_MAX_ROWS = _kernel_max_rows()


class Int8Linear(nn.Module):
    """A bias-free nn.Linear whose weight is int8 with one scale per output channel."""

    def __init__(self, in_features: int, out_features: int, dtype: torch.dtype = torch.bfloat16):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.register_buffer("weight", torch.empty(out_features, in_features, dtype=torch.int8))
        self.register_buffer("scales", torch.empty(out_features, dtype=dtype))

    def forward(self, x: Tensor) -> Tensor:
        return int8_linear(x, self.weight, self.scales)


class Int8Embedding(nn.Module):
    """The tied embedding in int8: looked-up rows are dequantized; as the output head it is an int8 matmul."""

    def __init__(self, num_embeddings: int, embedding_dim: int, dtype: torch.dtype = torch.bfloat16):
        super().__init__()
        self.register_buffer("weight", torch.empty(num_embeddings, embedding_dim, dtype=torch.int8))
        self.register_buffer("scales", torch.empty(num_embeddings, dtype=dtype))

    def forward(self, ids: Tensor) -> Tensor:
        return F.embedding(ids, self.weight).to(self.scales.dtype) * self.scales[ids][..., None]

    def head(self, h: Tensor) -> Tensor:
        return int8_linear(h, self.weight, self.scales)


def quantize_modules(model: nn.Module, dtype: torch.dtype) -> None:
    """Swap every nn.Linear and nn.Embedding of ``model`` (built on the meta device) for its int8 form."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Linear):
                setattr(parent, name, Int8Linear(child.in_features, child.out_features, dtype))
            elif isinstance(child, nn.Embedding):
                setattr(parent, name, Int8Embedding(child.num_embeddings, child.embedding_dim, dtype))


def weight_bytes(model: nn.Module) -> int:
    """Bytes of the weights (parameters and persistent buffers): what decoding one token reads."""
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux's MemAvailable), or None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def choose_mode(dense_bytes: int, int8_bytes: int, available: int | None) -> tuple[str, str | None]:
    """The CPU default when nothing was asked: int8 only when the dense weights would not fit in
    the available memory and int8 ones would. Returns (mode, a warning to show or None)."""
    if available is None or dense_bytes <= 0.9 * available or int8_bytes > 0.9 * available:
        return "none", None
    gib = 2**30
    return "int8", (f"the weights need {dense_bytes / gib:.1f} GiB but {available / gib:.1f} GiB of memory is "
                    f"available: loading them as int8 ({int8_bytes / gib:.1f} GiB) instead. "
                    "Set TUTOR_QUANTIZE=none to load them unquantized anyway.")


def check_mode(value: str | None, source: str = "quantize") -> str:
    """'int8' or 'none' (None means 'none'); anything else raises SettingError naming the choices."""
    mode = "none" if value is None else str(value).strip().lower()
    if mode not in QUANTIZE_MODES:
        raise SettingError(f"unknown {source} value {value!r}: use one of {', '.join(QUANTIZE_MODES)}.")
    return mode


# ------------------------------------------------------------------ the quantized weights, cached on disk

_CACHE_FORMAT = "int8-per-row-v1"  # change it when quantize_int8 or the stored names change
# Smaller checkpoints quantize in well under a second: caching them would only fill the cache folder.
CACHE_MIN_BYTES = 256 * 2**20


def int8_cache_path(files: list[Path], dtype: torch.dtype) -> Path | None:
    """Where the int8 weights of the checkpoint made of ``files`` are cached, or None with
    TUTOR_INT8_CACHE=0. The name holds a hash of the folder and one of every file's identity
    (path, size, modification time) and the activation dtype, so a changed checkpoint never
    reads a stale cache."""
    if os.environ.get("TUTOR_INT8_CACHE", "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    if sum(f.stat().st_size for f in files) < CACHE_MIN_BYTES:
        return None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    identity = [_CACHE_FORMAT, str(dtype)]
    for f in files:
        stat = f.stat()
        identity.append(f"{f.resolve()}:{stat.st_size}:{stat.st_mtime_ns}")
    folder = hashlib.sha256(str(files[0].resolve().parent).encode()).hexdigest()[:12]
    key = hashlib.sha256("\n".join(identity).encode()).hexdigest()[:16]
    return Path(base) / "tutor" / "int8" / f"{folder}-{key}.safetensors"


def read_int8_cache(path: Path | None) -> dict[str, Tensor] | None:
    """The cached state dict, memory-mapped (int8 tensors used in place), or None if there is none
    or it cannot be read (then the caller quantizes again and rewrites it)."""
    if path is None or not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            if (f.metadata() or {}).get("format") != _CACHE_FORMAT:
                return None
            return {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118 - safe_open has no iterator
    except (OSError, SafetensorError):
        return None


def write_int8_cache(path: Path | None, state: dict[str, Tensor]) -> None:
    """Save ``state`` at ``path`` (atomically: a reader sees the whole file or none) and remove the
    caches of earlier versions of the same folder. A cache that cannot be written is only a warning."""
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as tmp:
            pass
        try:
            save_file({k: v.contiguous() for k, v in state.items()}, tmp.name, metadata={"format": _CACHE_FORMAT})
            os.replace(tmp.name, path)
        finally:
            if os.path.exists(tmp.name):
                os.unlink(tmp.name)
        for old in path.parent.glob(path.name.split("-")[0] + "-*.safetensors"):
            if old != path:
                old.unlink(missing_ok=True)
    except OSError as exc:
        warnings.warn(f"could not cache the int8 weights in {path.parent} ({exc}); the next load quantizes "
                      "again. Set TUTOR_INT8_CACHE=0 to stop trying.", RuntimeWarning, stacklevel=3)
