"""Matrix-vector kernels for decoding on an x86 CPU: bfloat16 and int8 weights, one token at a time.

Decoding one token reads every weight once, so on a CPU it should run at the memory's speed. On a
CPU without AVX-512 (no native bfloat16, no VNNI) torch's kernels do not: its bfloat16 matrix-vector
product read the 2B's weights at 9-10 GB/s on the project's 2-core AVX2 machine, where a plain sum
of a float32 tensor reads 20 and llama.cpp's BF16 decoding 28 (docs/engine.md, "CPU"), and
``torch._weight_int8pack_mm`` converts every int8 weight to float before multiplying. These two
kernels do what llama.cpp does on such CPUs:

- bfloat16 weights: 16 weights a load; the even ones become float32 by a shift, the odd ones by a
  mask (bfloat16 is float32's upper half), each multiplied with the matching activations (float32,
  arranged once per call), accumulated in float32. Same products as torch's, summed in another order.
- int8 weights: the activation row is rounded once per call to int16 with one scale (15 bits,
  finer than the bfloat16 it comes in), and 16 weights at a time are multiplied in integers
  (``vpmaddwd``), accumulated in int32 over blocks of 2048 (no overflow: 2048 / 8 * 127 * 32767 <
  2^31), then in float32, and scaled per output row at the end.

Eight (bfloat16) or four (int8) weight rows share each load of the activations; rows are split over
torch's own OpenMP threads (the library links the libgomp that torch loaded, so both use one thread
pool). A third kernel computes one token's attention over the KV cache in float32 (:func:`decode_attention`).

The C source below is compiled once per machine with the system's C compiler (``cc``, as
torch.compile's CPU backend needs too) into the user's cache folder, keyed by a hash of the source
and flags, and loaded with ctypes. Without a compiler, without AVX2 and FMA, or with
``TUTOR_CPU_KERNELS=0``, :func:`kernels` returns None and the callers keep torch's kernels.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_SOURCE = r"""
#include <immintrin.h>
#include <stdint.h>
#include <stdlib.h>
#include <math.h>

static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

static inline float bf16_to_f32(uint16_t h) {
    union { uint32_t u; float f; } v = { (uint32_t)h << 16 };
    return v.f;
}

/* x as float32; x_kind 0: float32, 1: bfloat16 */
static inline float x_at(const void *x, int x_kind, int64_t i) {
    return x_kind ? bf16_to_f32(((const uint16_t *)x)[i]) : ((const float *)x)[i];
}

/* y[n] = sum_k w[n, k] x[k], w bfloat16 [n, k] row-major, k % 16 == 0. */
void gemv_bf16(const uint16_t *w, const void *x, int x_kind, float *y, int64_t n, int64_t k, int threads) {
    /* x rearranged per 16: the 8 even elements, then the 8 odd ones, as the weights unpack. */
    float *xp = (float *)aligned_alloc(32, (size_t)k * sizeof(float));
    for (int64_t c = 0; c < k; c += 16)
        for (int j = 0; j < 8; j++) {
            xp[c + j] = x_at(x, x_kind, c + 2 * j);
            xp[c + 8 + j] = x_at(x, x_kind, c + 2 * j + 1);
        }
    const __m256i high = _mm256_set1_epi32((int)0xFFFF0000u);
    /* Eight rows at a time, one accumulator each (the even and the odd products go into it in turn:
       eight chains hide the FMA's latency), no software prefetch: on the AVX2 EPYC this read a
       16384 x 2048 matrix at 32 GB/s on both cores, against 27 for four rows with the prefetch of the
       next four that gemv_int8 keeps (docs/engine.md, CPU section). */
    const int64_t groups = (n + 7) / 8;
    #pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t g = 0; g < groups; g++) {
        const int64_t r0 = g * 8;
        const int rows = n - r0 < 8 ? (int)(n - r0) : 8;
        const uint16_t *wr[8];
        for (int r = 0; r < 8; r++) wr[r] = w + (r0 + (r < rows ? r : rows - 1)) * k;  /* short group: last row again */
        __m256 a[8];
        for (int r = 0; r < 8; r++) a[r] = _mm256_setzero_ps();
        for (int64_t c = 0; c < k; c += 16) {
            const __m256 xe = _mm256_load_ps(xp + c), xo = _mm256_load_ps(xp + c + 8);
            for (int r = 0; r < 8; r++) {
                const __m256i v = _mm256_loadu_si256((const __m256i *)(wr[r] + c));
                a[r] = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(v, 16)), xe, a[r]);
                a[r] = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_and_si256(v, high)), xo, a[r]);
            }
        }
        for (int r = 0; r < rows; r++) y[r0 + r] = hsum(a[r]);
    }
    free(xp);
}

#define BLOCK 2048

/* y[n] = scales[n] * sum_k q[n, k] x[k], q int8 [n, k] row-major, k % 16 == 0; scales in x's kind. */
void gemv_int8(const int8_t *q, const void *scales, const void *x, int x_kind, float *y, int64_t n, int64_t k,
               int threads) {
    float amax = 0.0f;
    for (int64_t i = 0; i < k; i++) { float a = fabsf(x_at(x, x_kind, i)); if (a > amax) amax = a; }
    if (!(amax > 0.0f) || !isfinite(amax)) {   /* all zero (or not finite): let the float path decide */
        for (int64_t i = 0; i < n; i++) y[i] = amax == 0.0f ? 0.0f : NAN;
        return;
    }
    const float step = amax / 32767.0f;
    int16_t *xq = (int16_t *)aligned_alloc(32, (size_t)k * sizeof(int16_t));
    for (int64_t i = 0; i < k; i++) xq[i] = (int16_t)lrintf(x_at(x, x_kind, i) / step);
    /* The next four rows follow these in memory: on short rows (2 KiB: the hardware prefetcher
       restarts on each) fetching them at the rate these are read doubled the speed; on 16 KiB rows
       it costs a quarter (30 against 41 GB/s for 2048 x 16384 on both cores). */
    const int prefetch = k < 8192;
    const int64_t groups = (n + 3) / 4;
    #pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t g = 0; g < groups; g++) {
        const int64_t r0 = g * 4;
        const int rows = n - r0 < 4 ? (int)(n - r0) : 4;
        const int8_t *q0 = q + r0 * k;
        const int8_t *q1 = q + (r0 + (rows > 1 ? 1 : 0)) * k;
        const int8_t *q2 = q + (r0 + (rows > 2 ? 2 : 0)) * k;
        const int8_t *q3 = q + (r0 + (rows > 3 ? 3 : 0)) * k;
        __m256 f0 = _mm256_setzero_ps(), f1 = _mm256_setzero_ps(), f2 = _mm256_setzero_ps(), f3 = _mm256_setzero_ps();
        for (int64_t start = 0; start < k; start += BLOCK) {
            const int64_t end = start + BLOCK < k ? start + BLOCK : k;
            __m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();
            __m256i s2 = _mm256_setzero_si256(), s3 = _mm256_setzero_si256();
            for (int64_t c = start; c < end; c += 16) {
                const __m256i xv = _mm256_load_si256((const __m256i *)(xq + c));
                if (prefetch) _mm_prefetch((const char *)(q0 + 4 * k + 4 * c), _MM_HINT_T0);
#define ROW(Q, S) \
                S = _mm256_add_epi32(S, _mm256_madd_epi16( \
                        _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(Q + c))), xv));
                ROW(q0, s0) ROW(q1, s1) ROW(q2, s2) ROW(q3, s3)
#undef ROW
            }
            f0 = _mm256_add_ps(f0, _mm256_cvtepi32_ps(s0)); f1 = _mm256_add_ps(f1, _mm256_cvtepi32_ps(s1));
            f2 = _mm256_add_ps(f2, _mm256_cvtepi32_ps(s2)); f3 = _mm256_add_ps(f3, _mm256_cvtepi32_ps(s3));
        }
        const float out[4] = { hsum(f0), hsum(f1), hsum(f2), hsum(f3) };
        for (int i = 0; i < rows; i++) y[r0 + i] = out[i] * step * x_at(scales, x_kind, r0 + i);
    }
    free(xq);
}

static inline __m256 bf16x8(const uint16_t *p) {   /* 8 bfloat16 values as float32 */
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}

/* p[i * len + s] = q_i . k_s for m heads (1, 2, 4 or 8, a constant once inlined), with 4 / m partial
   sums per head (at least one): enough independent accumulators in registers to hide the FMA's latency */
static inline __attribute__((always_inline)) void scores(const float *q, const uint16_t *k, int64_t ks_s,
                                                         int64_t len, int64_t d, const int m, float *p) {
    const int R = m < 4 ? 4 / m : 1;
    for (int64_t s = 0; s < len; s++) {
        const uint16_t *ks = k + s * ks_s;
        __m256 a[8];
        for (int i = 0; i < 8; i++) a[i] = _mm256_setzero_ps();
        for (int64_t c = 0; c < d; c += 8 * R)
            for (int r = 0; r < R; r++) {
                const __m256 kf = bf16x8(ks + c + 8 * r);
                for (int i = 0; i < m; i++)
                    a[i * R + r] = _mm256_fmadd_ps(kf, _mm256_load_ps(q + i * d + c + 8 * r), a[i * R + r]);
            }
        for (int i = 0; i < m; i++) {
            __m256 t = a[i * R];
            for (int r = 1; r < R; r++) t = _mm256_add_ps(t, a[i * R + r]);
            p[i * len + s] = hsum(t);
        }
    }
}

/* acc[i * d + e] = sum_s p[i * len + s] v_s[e] for m heads, 4 / m vectors of 8 dimensions per head
   at a time (at least one): 4-8 accumulators in registers, whatever m (1, 2, 4 or 8; d % 32 == 0) */
static inline __attribute__((always_inline)) void weighted(const float *p, const uint16_t *v, int64_t vs_s,
                                                           int64_t len, int64_t d, const int m, float *acc) {
    const int J = m < 4 ? 4 / m : 1;
    for (int64_t c = 0; c < d; c += 8 * J) {
        __m256 a[8];
        for (int i = 0; i < 8; i++) a[i] = _mm256_setzero_ps();
        for (int64_t s = 0; s < len; s++) {
            const uint16_t *vs = v + s * vs_s + c;
            __m256 vf[8];
            for (int j = 0; j < J; j++) vf[j] = bf16x8(vs + 8 * j);
            for (int i = 0; i < m; i++) {
                const __m256 w = _mm256_broadcast_ss(p + i * len + s);
                for (int j = 0; j < J; j++) a[i * J + j] = _mm256_fmadd_ps(w, vf[j], a[i * J + j]);
            }
        }
        for (int i = 0; i < m; i++) for (int j = 0; j < J; j++) _mm256_storeu_ps(acc + i * d + c + 8 * j, a[i * J + j]);
    }
}

/* One query per batch row over its cache row up to its position (inclusive), in float32: scores,
   softmax, weighted sum of the values. Query heads that share a key/value head read it together (a
   group is cut in pieces only to give every thread work). q [b, heads, d] by strides, bfloat16 or
   float32 (q_kind); k, v bfloat16 by strides (cache row, head, position); positions [b] (or one for
   all: pos_stride 0); slots [b] the cache row of each batch row, or NULL (row b reads row b);
   out float32 [b, heads, d]. d % 32 == 0. */
void attend_bf16(const void *q, int q_kind, int64_t qs_b, int64_t qs_h,
                 const uint16_t *k, int64_t ks_b, int64_t ks_h, int64_t ks_s,
                 const uint16_t *v, int64_t vs_b, int64_t vs_h, int64_t vs_s,
                 const int64_t *positions, int64_t pos_stride, const int64_t *slots, int64_t cache_len,
                 float *out, int64_t b, int64_t heads, int64_t kv_heads, int64_t d, float scale, int threads) {
    const int64_t group = heads / kv_heads;
    int64_t parts = 1;
    while (b * kv_heads * parts < threads && parts < group) parts++;
    const int64_t units = b * kv_heads * parts;
    #pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t u = 0; u < units; u++) {
        const int64_t row = u / (kv_heads * parts), kvh = (u / parts) % kv_heads, part = u % parts;
        const int64_t h0 = kvh * group + part * group / parts, nh = kvh * group + (part + 1) * group / parts - h0;
        int64_t len = positions[row * pos_stride] + 1;
        if (len > cache_len) len = cache_len;
        float *acc = out + (row * heads + h0) * d;
        if (len < 1) { for (int64_t i = 0; i < nh * d; i++) acc[i] = NAN; continue; }
        const int64_t slot = slots ? slots[row] : row;
        const uint16_t *kr = k + slot * ks_b + kvh * ks_h, *vr = v + slot * vs_b + kvh * vs_h;
        float *qf = (float *)aligned_alloc(32, (size_t)(nh * d) * sizeof(float));
        float *p = (float *)malloc((size_t)(nh * len) * sizeof(float));
        for (int64_t i = 0; i < nh; i++)
            for (int64_t e = 0; e < d; e++)
                qf[i * d + e] = scale * x_at(q, q_kind, row * qs_b + (h0 + i) * qs_h + e);
        for (int64_t hb = 0; hb < nh; hb += 8) {   /* scores, up to 8 heads per read of a key */
            const int m = nh - hb < 8 ? (int)(nh - hb) : 8;
            if (m == 8) scores(qf + hb * d, kr, ks_s, len, d, 8, p + hb * len);
            else if (m == 4) scores(qf + hb * d, kr, ks_s, len, d, 4, p + hb * len);
            else if (m == 2) scores(qf + hb * d, kr, ks_s, len, d, 2, p + hb * len);
            else for (int i = 0; i < m; i++) scores(qf + (hb + i) * d, kr, ks_s, len, d, 1, p + (hb + i) * len);
        }
        for (int64_t i = 0; i < nh; i++) {   /* softmax, left unnormalised until the end */
            float *pi = p + i * len, best = pi[0], total = 0.0f;
            for (int64_t s = 1; s < len; s++) best = pi[s] > best ? pi[s] : best;
            for (int64_t s = 0; s < len; s++) { pi[s] = expf(pi[s] - best); total += pi[s]; }
            qf[i * d] = 1.0f / total;   /* qf is done with: keep each head's 1 / total there */
        }
        for (int64_t hb = 0; hb < nh; hb += 8) {   /* the weighted sums of the values */
            const int m = nh - hb < 8 ? (int)(nh - hb) : 8;
            if (m == 8) weighted(p + hb * len, vr, vs_s, len, d, 8, acc + hb * d);
            else if (m == 4) weighted(p + hb * len, vr, vs_s, len, d, 4, acc + hb * d);
            else if (m == 2) weighted(p + hb * len, vr, vs_s, len, d, 2, acc + hb * d);
            else for (int i = 0; i < m; i++) weighted(p + (hb + i) * len, vr, vs_s, len, d, 1, acc + (hb + i) * d);
        }
        for (int64_t i = 0; i < nh; i++) {
            const float norm = qf[i * d];
            for (int64_t e = 0; e < d; e++) acc[i * d + e] *= norm;
        }
        free(p);
        free(qf);
    }
}
"""

_FLAGS = ["-O3", "-mavx2", "-mfma", "-fopenmp", "-shared", "-fPIC", "-std=c11"]
_KINDS = {torch.float32: 0, torch.bfloat16: 1}
_lock = threading.Lock()
_loaded: ctypes.CDLL | None = None
_tried = False


def _cpu_has_avx2_fma() -> bool:
    try:
        flags = next((line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")), "")
    except OSError:
        return False
    return {"avx2", "fma"} <= set(flags.split(":", 1)[-1].split())


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tutor" / "kernels"


def _build() -> ctypes.CDLL:
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not compiler:
        raise RuntimeError("no C compiler (cc or gcc) on PATH")
    key = hashlib.sha256("\0".join([_SOURCE, compiler, *_FLAGS]).encode()).hexdigest()[:16]
    library = _cache_dir() / f"cpu_gemv-{key}.so"
    if not library.is_file():
        library.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=library.parent) as tmp:
            source, built = Path(tmp) / "cpu_gemv.c", Path(tmp) / "cpu_gemv.so"
            source.write_text(_SOURCE)
            done = subprocess.run([compiler, *_FLAGS, str(source), "-o", str(built), "-lm"],
                                  capture_output=True, text=True, timeout=120)
            if done.returncode:
                raise RuntimeError(f"{compiler} failed: {done.stderr.strip()[-500:]}")
            os.replace(built, library)  # atomic: another process loading at once sees all or nothing
    lib = ctypes.CDLL(str(library))
    i64, ptr = ctypes.c_int64, ctypes.c_void_p
    lib.gemv_bf16.argtypes = [ptr, ptr, ctypes.c_int, ptr, i64, i64, ctypes.c_int]
    lib.gemv_int8.argtypes = [ptr, ptr, ptr, ctypes.c_int, ptr, i64, i64, ctypes.c_int]
    lib.attend_bf16.argtypes = [ptr, ctypes.c_int, i64, i64, ptr, i64, i64, i64, ptr, i64, i64, i64, ptr, i64, ptr,
                                i64, ptr, i64, i64, i64, i64, ctypes.c_float, ctypes.c_int]
    lib.gemv_bf16.restype = lib.gemv_int8.restype = lib.attend_bf16.restype = None
    return lib


def kernels() -> ctypes.CDLL | None:
    """The compiled kernels, built on first use; None where they cannot run (the callers then use torch's)."""
    global _loaded, _tried
    if _tried:
        return _loaded
    with _lock:
        if not _tried:
            if os.environ.get("TUTOR_CPU_KERNELS", "1").strip().lower() not in ("0", "false", "no", "off") \
                    and _cpu_has_avx2_fma():
                try:
                    _loaded = _build()
                except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
                    warnings.warn(f"the CPU decoding kernels could not be built ({exc}); decoding uses torch's "
                                  "kernels, which are slower on this CPU. Set TUTOR_CPU_KERNELS=0 to skip the "
                                  "attempt.", RuntimeWarning, stacklevel=3)
            _tried = True
    return _loaded


def fits(x: Tensor, weight: Tensor) -> bool:
    """Whether a kernel takes x @ weight.T: one row of bfloat16 or float32 on the CPU, contiguous weights
    whose rows are a multiple of 16 long (every CodeGemma matrix is a multiple of 256), nothing that
    autograd would have to follow."""
    return (x.device.type == "cpu" and x.numel() == x.shape[-1] == weight.shape[1] and x.dtype in _KINDS
            and weight.shape[1] % 16 == 0 and weight.is_contiguous() and not (x.requires_grad or weight.requires_grad)
            and kernels() is not None)


def linear_bf16(x: Tensor, weight: Tensor) -> Tensor:
    """x [..., k] (one row) @ weight.T, weight bfloat16 [n, k]; in x's dtype. Check :func:`fits` first."""
    x_row = x.contiguous()
    out = torch.empty(weight.shape[0], dtype=torch.float32)
    kernels().gemv_bf16(weight.data_ptr(), x_row.data_ptr(), _KINDS[x.dtype], out.data_ptr(), weight.shape[0],
                        weight.shape[1], torch.get_num_threads())
    return out.to(x.dtype).view(*x.shape[:-1], weight.shape[0])


def linear_int8(x: Tensor, q: Tensor, scales: Tensor) -> Tensor:
    """x [..., k] (one row) @ (q * scales[:, None]).T, scales in x's dtype; in x's dtype. Check :func:`fits` first."""
    x_row, scales = x.contiguous(), scales.contiguous()
    out = torch.empty(q.shape[0], dtype=torch.float32)
    kernels().gemv_int8(q.data_ptr(), scales.data_ptr(), x_row.data_ptr(), _KINDS[x.dtype], out.data_ptr(),
                        q.shape[0], q.shape[1], torch.get_num_threads())
    return out.to(x.dtype).view(*x.shape[:-1], q.shape[0])


def attention_fits(q: Tensor, k: Tensor, v: Tensor) -> bool:
    """Whether :func:`decode_attention` runs the kernel: one query per row on the CPU, a bfloat16 cache,
    heads a multiple of 32 long and laid out with unit stride, nothing that autograd would follow."""
    return (q.device.type == "cpu" and q.dtype in _KINDS and k.dtype == v.dtype == torch.bfloat16
            and q.shape[2] == 1 and q.shape[-1] % 32 == 0 and q.shape[1] % k.shape[1] == 0
            and q.stride(-1) == k.stride(-1) == v.stride(-1) == 1
            and not (q.requires_grad or k.requires_grad or v.requires_grad) and kernels() is not None)


def decode_attention(q: Tensor, k: Tensor, v: Tensor, position: Tensor, slots: Tensor | None = None) -> Tensor:
    """One new token's attention over the KV cache up to ``position`` (inclusive), on the CPU.

    The same contract as tutor.engine.decode_attention's Triton kernel (and set on the model the same
    way): q [batch, heads, 1, head_dim]; k, v [cache_rows, kv_heads, cache_len, head_dim]; ``position``
    1 element (every row) or [batch]; ``slots`` [batch] the cache row each batch row reads. Returns
    [batch, 1, heads, head_dim] in q's dtype. The kernel computes in float32 and reads the cache only
    up to the position; where it does not fit (:func:`attention_fits`) the masked attention of the
    model computes the same.
    """
    b, heads, _, d = q.shape
    if not attention_fits(q, k, v):
        return _masked_attention(q, k, v, position, slots)
    positions = position.to(torch.int64).contiguous()
    rows = None if slots is None else slots.to(torch.int64).contiguous()
    out = torch.empty(b, 1, heads, d, dtype=torch.float32)
    kernels().attend_bf16(q.data_ptr(), _KINDS[q.dtype], q.stride(0), q.stride(1),
                          k.data_ptr(), k.stride(0), k.stride(1), k.stride(2),
                          v.data_ptr(), v.stride(0), v.stride(1), v.stride(2),
                          positions.data_ptr(), 0 if positions.numel() == 1 else 1,
                          None if rows is None else rows.data_ptr(), k.shape[2],
                          out.data_ptr(), b, heads, k.shape[1], d, d ** -0.5, torch.get_num_threads())
    return out.to(q.dtype)


def _masked_attention(q: Tensor, k: Tensor, v: Tensor, position: Tensor, slots: Tensor | None) -> Tensor:
    """What :func:`decode_attention` computes, by the model's masked attention over the whole cache, in
    float32 as the kernel computes (bfloat16 products would round the scores and the weights)."""
    from .model import grouped_attention  # model.py does not import this module

    if slots is not None:
        k, v = k[slots], v[slots]
    written = torch.arange(k.shape[2], device=q.device)[None, :] <= position.view(-1, 1)  # [1 or b, len]
    v = v.masked_fill(~written[:, None, :, None], 0)  # stale or never-written memory: never meets a 0 weight
    dtype = torch.promote_types(q.dtype, torch.float32)
    out = grouped_attention(q.to(dtype), k.to(dtype), v.to(dtype), written[:, None, None, None, :])
    return out.transpose(1, 2).to(q.dtype)


def _native_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


# Whether torch multiplies bfloat16 blocks at speed on this CPU (oneDNN, with AVX-512 or AMX). Without
# it, its bfloat16 matrix product is a plain loop: 0.77 s for 64 rows by a 16384 x 2048 matrix on the
# AVX2 machine, where converting the weights to float32 and using MKL's takes 0.15 s with the
# conversion (a 512-token prefill of the 2B took minutes, now seconds).
NATIVE_BF16 = _native_bf16()
_BLOCK_ROWS = 4096  # weight rows converted at a time: 32 MiB of float32 at hidden 2048
_FLOAT32_ROWS = 16  # up to this many rows torch's bfloat16 product is still quicker than converting


def prefill_dtype(x: Tensor) -> torch.dtype:
    """The dtype to multiply a block of ``x`` in: float32 for bfloat16 on a CPU without native bfloat16."""
    return torch.float32 if x.dtype == torch.bfloat16 and x.device.type == "cpu" and not NATIVE_BF16 else x.dtype


def linear_in_float32(x: Tensor, weight: Tensor) -> Tensor:
    """x @ weight.T with the weights converted to float32 a block of rows at a time; in x's dtype."""
    xf = x.float()
    out = torch.empty(*x.shape[:-1], weight.shape[0], dtype=x.dtype, device=x.device)
    for i in range(0, weight.shape[0], _BLOCK_ROWS):
        out[..., i:i + _BLOCK_ROWS] = F.linear(xf, weight[i:i + _BLOCK_ROWS].float())
    return out


def dense_linear(x: Tensor, weight: Tensor) -> Tensor:
    """x @ weight.T by the fastest path this CPU has: :func:`linear_bf16` for one bfloat16 row,
    :func:`linear_in_float32` for blocks of more than 16 rows in bfloat16 without native support,
    else F.linear."""
    if weight.dtype == torch.bfloat16 and fits(x, weight):
        return linear_bf16(x, weight)
    if weight.dtype == torch.bfloat16 and prefill_dtype(x) == torch.float32 and x.numel() > _FLOAT32_ROWS * x.shape[-1]:
        return linear_in_float32(x, weight)  # converting the weights pays from a few dozen rows on
    return F.linear(x, weight)


class KernelLinear(nn.Linear):
    """A bias-free nn.Linear (same weight, same state dict) whose products go by :func:`dense_linear`."""

    def forward(self, x: Tensor) -> Tensor:
        return dense_linear(x, self.weight)


class KernelEmbedding(nn.Embedding):
    """The tied embedding, whose use as the output head (a fifth of the 2B's bytes) goes by
    :func:`dense_linear` too."""

    def head(self, h: Tensor) -> Tensor:
        return dense_linear(h, self.weight)


def use_kernel_modules(model: nn.Module) -> None:
    """Swap every nn.Linear and nn.Embedding of ``model`` (built on the meta device, before its weights
    are assigned) for the kernel-backed subclasses above: same names, same weights, no copies."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Linear and child.bias is None:
                setattr(parent, name, KernelLinear(child.in_features, child.out_features, bias=False, device="meta"))
            elif type(child) is nn.Embedding:
                setattr(parent, name, KernelEmbedding(child.num_embeddings, child.embedding_dim, device="meta"))


def use_cpu_attention(model: nn.Module) -> None:
    """One-token attention of every layer by :func:`decode_attention` (bfloat16 models on the CPU, where
    the masked bfloat16 products over the whole cache took 15-22% of a decode step), if the kernels run."""
    if kernels() is None:
        return
    for module in model.modules():
        if hasattr(module, "decode_kernel"):
            module.decode_kernel = decode_attention
