"""PyTorch's side of the kernel benchmark: the operations ModelCompiler generates kernels for, at the same shapes,
written two ways: eager, as DeepSeek's official inference code (DeepSeek-V3 inference/model.py, kernel.py) writes them,
and under torch.compile, which fuses them into Triton kernels specialised to these shapes. Prints one JSON object:
{op: {"eager_ms": ..., "compile_ms": ...}, "copy_tbps": ..., "bf16_tflops": ..., "fp8_tflops": ...}.

The FP8 GEMM with 1x128 / 128x128 scales has no torch op (torch._scaled_mm takes per-tensor or per-row scales): its "eager"
time is DeepSeek's way, a Triton kernel that multiplies 128-deep k-blocks with tl.dot and adds each block's product times
both scales in FP32 (the algorithm of DeepSeek-V3's inference/kernel.py fp8_gemm, written here), and the FP8 ceiling is
torch._scaled_mm with per-tensor scales (cuBLAS) at the same shape.

Timing: CUDA events around bursts of 10 calls (the same bursts the C# side times), median over 30 bursts after warm-up.
Inputs are fresh random tensors (never zeros)."""
import json
import sys

import torch
import torch.nn.functional as F

torch.manual_seed(torch.seed())
dev = "cuda"
BURST, REPS, WARMUP = 10, 30, 3


def bench(fn):
    for _ in range(WARMUP):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(REPS):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(BURST):
            fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / BURST)
    times.sort()
    return times[len(times) // 2]


def both(fn, *args):
    eager = bench(lambda: fn(*args))
    compiled = torch.compile(fn, dynamic=False)
    try:
        compiled_ms = bench(lambda: compiled(*args))
    except Exception as error:  # report, do not hide
        print(f"torch.compile failed for {fn.__name__}: {error}", file=sys.stderr)
        compiled_ms = None
    return {"eager_ms": eager, "compile_ms": compiled_ms}


# --- the operations, as DeepSeek's official code writes them -------------------------------------------------------------

def rms_norm(x, weight):
    return F.rms_norm(x, (x.size(-1),), weight, 1e-6)


def act_quant(x, block_size=128):
    # kernel.py's act_quant: s = amax / 448 per 1x128 tile, y = x / s in e4m3 (written with torch ops; the Triton original
    # is what torch.compile regenerates). The amax floor keeps an all-zero tile finite, as our kernel does.
    tiles = x.float().view(-1, block_size)
    s = tiles.abs().amax(dim=-1, keepdim=True).clamp_min(1e-4) / 448.0
    y = (tiles / s).to(torch.float8_e4m3fn)
    return y.view(x.shape), s.view(*x.shape[:-1], -1)


def rms_norm_quant(x, weight):
    return act_quant(rms_norm(x, weight))


def swiglu_quant(a, b):
    return act_quant(F.silu(a) * b)


def swiglu(a, b):
    # model.py's MLP / Expert: w2(F.silu(w1(x)) * w3(x)); the elementwise part between the GEMMs.
    return F.silu(a) * b


def apply_rotary_emb(x, freqs_cis):
    # model.py's apply_rotary_emb: consecutive pairs as complex numbers times freqs_cis.
    dtype = x.dtype
    x = torch.view_as_complex(x.float().view(*x.shape[:-1], -1, 2))
    freqs_cis = freqs_cis.view(1, x.size(1), 1, x.size(-1))
    y = torch.view_as_real(x * freqs_cis).flatten(3)
    return y.to(dtype)


def rope(q, k_pe, freqs_cis, nope=128):
    # MLA.forward's two calls, written back in place as our kernel does: q [1, tokens, heads, 192], k_pe [1, tokens, 1, 64].
    q[..., nope:] = apply_rotary_emb(q[..., nope:], freqs_cis)
    k_pe.copy_(apply_rotary_emb(k_pe, freqs_cis))


def weight_dequant(w, s, block_size=128):
    # kernel.py's weight_dequant: each 128 x 128 block of e4m3 codes times its scale, FP32 out.
    m, n = w.shape
    blocks = w.float().view(m // block_size, block_size, n // block_size, block_size)
    return (blocks * s[:, None, :, None]).view(m, n)


def v3_gate(logits, bias, n_groups=8, topk_groups=4, topk=8, route_scale=2.5):
    # model.py's Gate.forward after the linear layer (sigmoid scoring, noaux_tc).
    scores = logits.sigmoid()
    original_scores = scores
    scores = scores + bias
    scores = scores.view(logits.size(0), n_groups, -1)
    group_scores = scores.topk(2, dim=-1)[0].sum(dim=-1)
    indices = group_scores.topk(topk_groups, dim=-1)[1]
    mask = scores.new_ones(logits.size(0), n_groups, dtype=torch.bool).scatter_(1, indices, False)
    scores = scores.masked_fill_(mask.unsqueeze(-1), float("-inf")).flatten(1)
    indices = torch.topk(scores, topk, dim=-1)[1]
    weights = original_scores.gather(1, indices)
    weights /= weights.sum(dim=-1, keepdim=True)
    weights *= route_scale
    return weights, indices


def fp8_gemm_triton():
    """DeepSeek's block-scaled FP8 GEMM as a Triton kernel (see the module docstring); None when Triton is missing."""
    try:
        import triton
        import triton.language as tl
    except ImportError:
        return None

    configs = [triton.Config({"BLOCK_M": bm, "BLOCK_N": bn}, num_stages=st, num_warps=8)
               for bm in (64, 128) for bn in (128, 256) for st in (3, 4)]

    @triton.autotune(configs=configs, key=["N", "K"])
    @triton.jit
    def kernel(a, b, c, a_s, b_s, M, N: tl.constexpr, K: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
        pid_m, pid_n = tl.program_id(0), tl.program_id(1)
        blocks = K // 128
        rows = (pid_m * BLOCK_M + tl.arange(0, BLOCK_M)) % M
        cols = (pid_n * BLOCK_N + tl.arange(0, BLOCK_N)) % N
        ks = tl.arange(0, 128)
        a_ptr = a + rows[:, None] * K + ks[None, :]
        b_ptr = b + cols[None, :] * K + ks[:, None]
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for i in range(blocks):
            sa = tl.load(a_s + rows * blocks + i)
            sb = tl.load(b_s + (cols // 128) * blocks + i)
            acc += tl.dot(tl.load(a_ptr), tl.load(b_ptr)) * sa[:, None] * sb[None, :]
            a_ptr += 128
            b_ptr += 128
        out_rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        out_cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        tl.store(c + out_rows[:, None] * N + out_cols[None, :], acc, mask=(out_rows[:, None] < M) & (out_cols[None, :] < N))

    def run(a, b, a_s, b_s, out):
        m, k = a.shape
        n = b.shape[0]
        grid = lambda meta: (triton.cdiv(m, meta["BLOCK_M"]), triton.cdiv(n, meta["BLOCK_N"]))
        kernel[grid](a, b, out, a_s, b_s, m, n, k)
        return out

    return run


def mla_decode(q_latent, q_pe, kv_cache, pe_cache, softmax_scale):
    # model.py's MLA.forward, attn_impl == "absorb", one new token per sequence (s = 1), all sequences full length.
    scores = (torch.einsum("bshc,btc->bsht", q_latent, kv_cache) + torch.einsum("bshr,btr->bsht", q_pe, pe_cache)) * softmax_scale
    scores = scores.softmax(dim=-1, dtype=torch.float32).type_as(q_latent)
    return torch.einsum("bsht,btc->bshc", scores, kv_cache)


def main():
    results = {}
    gib = torch.randn(1 << 28, device=dev)
    target = torch.empty_like(gib)
    copy_ms = bench(lambda: target.copy_(gib))
    results["copy_tbps"] = 2 * gib.numel() * 4 / (copy_ms * 1e-3) / 1e12
    del gib, target

    a = torch.randn(4096, 7168, device=dev, dtype=torch.bfloat16)
    b = torch.randn(16384, 7168, device=dev, dtype=torch.bfloat16)
    gemm_ms = bench(lambda: a @ b.t())
    results["bf16_gemm"] = {"eager_ms": gemm_ms, "compile_ms": None}
    results["bf16_tflops"] = 2 * 4096 * 7168 * 16384 / (gemm_ms * 1e-3) / 1e12
    del a, b

    a8 = torch.randn(4096, 7168, device=dev).to(torch.float8_e4m3fn)
    b8 = torch.randn(16384, 7168, device=dev).to(torch.float8_e4m3fn)
    one = torch.ones((), device=dev)
    scaled_ms = bench(lambda: torch._scaled_mm(a8, b8.t(), scale_a=one, scale_b=one, out_dtype=torch.float32))
    results["fp8_tflops"] = 2 * 4096 * 7168 * 16384 / (scaled_ms * 1e-3) / 1e12
    triton_gemm = fp8_gemm_triton()
    if triton_gemm is not None:
        a_s = torch.rand(4096, 56, device=dev) + 0.5
        b_s = torch.rand(128, 56, device=dev) + 0.5
        out = torch.empty(4096, 16384, device=dev)
        results["fp8_gemm"] = {"eager_ms": bench(lambda: triton_gemm(a8, b8, a_s, b_s, out)), "compile_ms": None}
    del a8, b8

    x = torch.randn(32768, 7168, device=dev) * 3
    w = torch.rand(7168, device=dev) + 0.5
    results["rmsnorm"] = both(rms_norm, x, w)
    results["rmsnorm_quant"] = both(rms_norm_quant, x, w)
    del x
    for width in (1536, 512):
        x = torch.randn(32768, width, device=dev) * 3
        w = torch.rand(width, device=dev) + 0.5
        results[f"rmsnorm_{width}"] = both(rms_norm, x, w)
        del x

    xb = (torch.randn(16384, 7168, device=dev) * 4).to(torch.bfloat16)
    results["act_quant"] = both(act_quant, xb)
    del xb

    ga = torch.randn(16384, 2048, device=dev) * 2
    gb = torch.randn(16384, 2048, device=dev)
    results["swiglu"] = both(swiglu, ga, gb)
    results["swiglu_quant"] = both(swiglu_quant, ga, gb)
    del ga, gb

    tokens = 4096
    q = torch.randn(1, tokens, 128, 192, device=dev)
    k_pe = torch.randn(1, tokens, 1, 64, device=dev)
    angles = torch.outer(torch.arange(tokens, 2 * tokens, device=dev, dtype=torch.float32),
                         10000.0 ** (-torch.arange(0, 64, 2, device=dev, dtype=torch.float32) / 64))
    results["rope"] = both(rope, q, k_pe, torch.polar(torch.ones_like(angles), angles))
    del q, k_pe

    codes = (torch.randn(7168, 18432, device=dev) * 2).to(torch.float8_e4m3fn)
    scales = torch.rand(56, 144, device=dev) * 0.001 + 0.005
    results["dequant"] = both(weight_dequant, codes, scales)
    del codes

    logits = torch.randn(16384, 256, device=dev) * 2
    bias = torch.randn(256, device=dev) * 0.3
    results["router"] = both(v3_gate, logits, bias)

    for name, heads in (("mla_decode_128h", 128), ("mla_decode_16h", 16)):
        batch, length = 64, 4096
        q = torch.randn(batch, 1, heads, 512, device=dev, dtype=torch.bfloat16)
        qp = torch.randn(batch, 1, heads, 64, device=dev, dtype=torch.bfloat16)
        kv = torch.randn(batch, length, 512, device=dev, dtype=torch.bfloat16)
        pe = torch.randn(batch, length, 64, device=dev, dtype=torch.bfloat16)
        results[name] = both(mla_decode, q, qp, kv, pe, 192 ** -0.5)
        del q, qp, kv, pe

    json.dump(results, sys.stdout, indent=1)


if __name__ == "__main__":
    main()
