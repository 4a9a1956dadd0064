using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime.Cuda;

namespace ModelCompiler.Gpu;

/// <summary>
/// BF16 as raw 16-bit values (ILGPU 1.5.3 has no bf16 type): the upper half of an FP32. Usable in kernels and on the host.
/// </summary>
public static class Bf16
{
    /// <summary>The FP32 value of a bf16 (exact).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ToFloat(ushort bits) => Interop.IntAsFloat((uint)bits << 16);

    /// <summary>The low (element 0) and high (element 1) bf16 of a packed pair, as FP32.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Low(uint pair) => Interop.IntAsFloat(pair << 16);

    /// <inheritdoc cref="Low"/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float High(uint pair) => Interop.IntAsFloat(pair & 0xFFFF0000u);

    /// <summary>FP32 → bf16, round to nearest even; NaN stays a quiet NaN.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort FromFloat(float value)
    {
        uint u = Interop.FloatAsInt(value);
        if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (ushort)((u >> 16) | 0x40u);
        u += 0x7FFFu + ((u >> 16) & 1u);
        return (ushort)(u >> 16);
    }

    /// <summary>Two FP32 values → a bf16 pair (<paramref name="low"/> is element 0), as the mma fragments want it.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint Pack(float low, float high)
    {
        if (CudaAsm.IsSupported)
        {
            CudaAsm.Emit("cvt.rn.bf16x2.f32 %0, %1, %2;", out uint packed, high, low);
            return packed;
        }

        return FromFloat(low) | ((uint)FromFloat(high) << 16);
    }
}

/// <summary>
/// FP8 E4M3 (the "fn" variant DeepSeek uses: bias 7, ±448 largest, no infinities, 0x7F/0xFF NaN). Encoding rounds to nearest
/// even and saturates at ±448 (PTX <c>cvt.rn.satfinite</c>); on CUDA it is that instruction (sm_89+), elsewhere the same rule
/// in integer arithmetic, so the CPU and OpenCL tests check the same numbers.
/// </summary>
public static class E4M3
{
    /// <summary>Largest finite value.</summary>
    public const float Max = 448f;

    /// <summary>
    /// Smallest amax a tile or block is scaled by: an all-zero tile gets scale 1e-4/448 and zero codes instead of 0/0 = NaN
    /// (DeepSeek's act_quant divides by amax unguarded).
    /// </summary>
    public const float AmaxFloor = 1e-4f;

    /// <summary>The E4M3 code of <paramref name="value"/> (round to nearest even, saturating).</summary>
    public static byte Encode(float value)
    {
        uint bits = Interop.FloatAsInt(value);
        uint sign = (bits >> 24) & 0x80u;
        uint magnitude = bits & 0x7FFFFFFFu;
        if (magnitude > 0x7F800000u) return (byte)(sign | 0x7Fu);          // NaN
        if (magnitude >= 0x43E00000u) return (byte)(sign | 0x7Eu);         // ≥ 448 (and ∞): saturate
        if (magnitude < 0x3C800000u)                                        // below 2^-6: subnormal, spacing 2^-9
        {
            float scaled = Interop.IntAsFloat(magnitude) * 512f;            // exact: a power-of-two scale
            float rounded = (scaled + 8388608f) - 8388608f;                 // round half to even in [0, 8]
            return (byte)(sign | (uint)rounded);                            // 8 is 0x08, the smallest normal: still right
        }

        // Normal: keep 3 mantissa bits, round half to even at bit 20; a carry moves into the exponent as it should.
        uint rounded3 = magnitude + 0x7FFFFu + ((magnitude >> 20) & 1u);
        uint exponent = (rounded3 >> 23) - 120u;                            // FP32 bias 127 → E4M3 bias 7
        uint mantissa = (rounded3 >> 20) & 7u;
        if (exponent > 15u || (exponent == 15u && mantissa == 7u)) return (byte)(sign | 0x7Eu);
        return (byte)(sign | (exponent << 3) | mantissa);
    }

    /// <summary>The FP32 value of an E4M3 code (exact).</summary>
    public static float Decode(byte code)
    {
        uint exponent = ((uint)code >> 3) & 15u, mantissa = code & 7u;
        float magnitude = exponent == 0
            ? mantissa * (1f / 512f)
            : (exponent == 15u && mantissa == 7u ? float.NaN : Interop.IntAsFloat(((exponent + 120u) << 23) | (mantissa << 20)));
        return (code & 0x80) != 0 ? -magnitude : magnitude;
    }

    /// <summary>Two values → two codes in one 16-bit word, <paramref name="first"/> in the low byte (memory order).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort Pack2(float first, float second)
    {
        if (CudaAsm.IsSupported)
        {
            CudaAsm.Emit("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;", out ushort packed, second, first);
            return packed;
        }

        return (ushort)(Encode(first) | (Encode(second) << 8));
    }

    /// <summary>Four values → four codes in one 32-bit word, in memory order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint Pack4(float x0, float x1, float x2, float x3) => Pack2(x0, x1) | ((uint)Pack2(x2, x3) << 16);

    /// <summary>The scale of a tile: max(amax, <see cref="AmaxFloor"/>) / 448.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ScaleOf(float amax) => MathF.Max(amax, AmaxFloor) / Max;

    /// <summary>
    /// Four values divided by <paramref name="scale"/>, then encoded: act_quant's <c>y = x / s</c> for one word. On CUDA the
    /// division is the fast-math one (within 2 ulp, as in DeepSeek's Triton act_quant): where x / s lands exactly on a rounding
    /// tie — common for bf16 inputs — the code can differ by one step from an exact division. IEEE division (div.rn) made
    /// act_quant 9 % slower on the H200 (docs/performance.md).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint Quantize4(float x0, float x1, float x2, float x3, float scale) =>
        Pack4(x0 / scale, x1 / scale, x2 / scale, x3 / scale);

    /// <summary>Byte <paramref name="index"/> (0 = lowest) of a packed word, decoded.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float DecodeByte(uint word, int index) => Decode((byte)(word >> (8 * index)));
}

/// <summary>
/// Routing keys: a score and an expert id in one 64-bit integer whose unsigned order is "higher score first, then lower id",
/// so a warp finds the best expert with one 64-bit max per shuffle step instead of comparing three values.
/// </summary>
public static class RouterKey
{
    /// <summary>The key of <paramref name="expert"/> with selection score <paramref name="score"/> (−∞ sorts below every finite score).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Make(float score, int expert)
    {
        uint bits = Interop.FloatAsInt(score);
        uint ordered = (bits & 0x80000000u) != 0 ? ~bits : bits | 0x80000000u; // IEEE order as unsigned order
        return ((ulong)ordered << 32) | (0xFFFFu - (uint)expert);
    }

    /// <summary>The expert id of a key.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Expert(ulong key) => (int)(0xFFFFu - (uint)(key & 0xFFFFu));
}

/// <summary>Tensor-core and bit-permutation instructions through inline PTX (CUDA only: callers guard with <see cref="CudaAsm.IsSupported"/>).</summary>
public static class TensorCore
{
    /// <summary>
    /// One warp: D[16×8] += A[16×16] · B[16×8], bf16 inputs, FP32 accumulators (<c>mma.sync.aligned.m16n8k16.row.col</c>).
    /// Fragments (g = lane / 4, t = lane % 4): a0 = A[g, 2t..2t+1], a1 = A[g+8, 2t..], a2 = A[g, 2t+8..], a3 = A[g+8, 2t+8..];
    /// b0 = B[2t..2t+1, g], b1 = B[2t+8..2t+9, g]; c0, c1 = D[g, 2t..2t+1], c2, c3 = D[g+8, 2t..2t+1].
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void MmaBf16(ref float c0, ref float c1, ref float c2, ref float c3, uint a0, uint a1, uint a2, uint a3, uint b0, uint b1)
    {
        Ref<float> d0 = c0, d1 = c1, d2 = c2, d3 = c3;
        Input<uint> x0 = a0, x1 = a1, x2 = a2, x3 = a3, y0 = b0, y1 = b1;
        CudaAsm.EmitRef(
            "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};",
            ref d0, ref d1, ref d2, ref d3, ref x0, ref x1, ref x2, ref x3, ref y0, ref y1);
        c0 = d0.Value;
        c1 = d1.Value;
        c2 = d2.Value;
        c3 = d3.Value;
    }

    /// <summary>
    /// Bytes of {<paramref name="high"/>:<paramref name="low"/>} picked by <paramref name="selector"/> (<c>prmt.b32</c>);
    /// 0x5410 joins the low halves, 0x7632 the high halves.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint Permute(uint low, uint high, uint selector)
    {
        CudaAsm.Emit("prmt.b32 %0, %1, %2, %3;", out uint result, low, high, selector);
        return result;
    }
}

/// <summary>Shared-memory descriptors of Hopper's warp-group MMA (<c>wgmma</c>), as its operands name their tiles.</summary>
public static class WarpGroupMma
{
    /// <summary>
    /// The descriptor of a no-swizzle operand at shared-memory <paramref name="address"/>: <paramref name="leading"/> and
    /// <paramref name="stride"/> are the byte offsets between core matrices along k and along the rows (as measured by the
    /// benchmark's <c>--probe</c>, for K-major and transposed operands alike).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Descriptor(uint address, uint leading, uint stride) =>
        ((ulong)((address & 0x3FFFFu) >> 4)) | ((ulong)(leading >> 4) << 16) | ((ulong)(stride >> 4) << 32);

    /// <summary>
    /// The descriptor of a 128-byte-swizzled operand (TMA's SWIZZLE_128B): rows of 128 bytes, 8-row groups 1024 bytes apart
    /// (K-major and transposed alike; the other offset is unused for tiles one swizzle span wide).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Swizzled(uint address) => Descriptor(address, 1024, 1024) | (1ul << 62);
}

/// <summary>Fast base-2 exponent and logarithm (<c>ex2.approx</c>, <c>lg2.approx</c> on CUDA; MathF elsewhere).</summary>
public static class FastMath
{
    /// <summary>2^x; 2^−∞ = 0.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Exp2(float x)
    {
        if (CudaAsm.IsSupported)
        {
            CudaAsm.Emit("ex2.approx.ftz.f32 %0, %1;", out float result, x);
            return result;
        }

        return MathF.Exp(x * 0.6931472f);
    }

    /// <summary>log2(x).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Log2(float x)
    {
        if (CudaAsm.IsSupported)
        {
            CudaAsm.Emit("lg2.approx.ftz.f32 %0, %1;", out float result, x);
            return result;
        }

        return MathF.Log(x) * 1.442695f;
    }
}
