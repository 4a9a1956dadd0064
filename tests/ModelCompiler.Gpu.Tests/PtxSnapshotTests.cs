using System.Reflection;
using ModelCompiler.TestUtilities;
using Samples.DeepSeekV3;
using Samples.TinySeek;
using Xunit;

namespace ModelCompiler.Gpu.Tests;

/// <summary>
/// The PTX that ILGPU compiles offline for sm_90 from the generated CUDA kernels, normalised to be byte-stable, checked as
/// snapshots (MC_UPDATE_SNAPSHOTS=1 accepts a change). No GPU needed: a reviewer sees exactly which instructions a change
/// to the generator produces — the 16-byte loads, the shuffles, the mma.sync and cvt.e4m3x2 of the inline PTX.
/// </summary>
public sealed class PtxSnapshotTests
{
    public static TheoryData<string> Models => new() { "DeepSeekV3", "TinySeek" };

    [Theory]
    [MemberData(nameof(Models))]
    public void Cuda_kernels_compile_to_the_snapshot_PTX(string model)
    {
        var kernels = model == "DeepSeekV3" ? typeof(DeepSeekV3.Kernels) : typeof(TinySeek.Kernels);
        var methods = kernels.GetNestedType("Cuda")!.GetMethods(BindingFlags.Public | BindingFlags.Static)
            .Concat(kernels.GetMethods(BindingFlags.Public | BindingFlags.Static).Where(m => m.ReturnType == typeof(void)))
            .OrderBy(m => m.Name, StringComparer.Ordinal)
            .ToList();
        Assert.NotEmpty(methods);
        var files = methods.ToDictionary(m => m.Name, m => Ptx.Compile(m));
        foreach (var (name, ptx) in files)
        {
            Assert.Contains(".target sm_90", ptx, StringComparison.Ordinal);
        }

        Snapshot.Verify("tests/ModelCompiler.Gpu.Tests", nameof(PtxSnapshotTests), $"Cuda_kernels_compile_to_the_snapshot_PTX_model={model}", files, "%NONE%", "ptx");
    }

    [Fact]
    public void The_PTX_of_a_kernel_does_not_depend_on_what_was_compiled_before()
    {
        var route = typeof(DeepSeekV3.Kernels.Cuda).GetMethod("Route")!;
        string alone = Ptx.Compile(route);
        _ = Ptx.Compile(typeof(DeepSeekV3.Kernels.Cuda).GetMethod("RmsNormHidden")!);
        Assert.Equal(alone, Ptx.Compile(route));
    }

    [Fact]
    public void The_tensor_core_and_FP8_instructions_are_in_the_PTX()
    {
        string mla = Ptx.Compile(typeof(DeepSeekV3.Kernels.Cuda).GetMethod("MlaDecode")!);
        Assert.Contains("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32", mla, StringComparison.Ordinal);
        Assert.Contains("prmt.b32", mla, StringComparison.Ordinal);
        string quant = Ptx.Compile(typeof(DeepSeekV3.Kernels.Cuda).GetMethod("ActQuantHidden")!);
        Assert.Contains("cvt.rn.satfinite.e4m3x2.f32", quant, StringComparison.Ordinal);
        Assert.Contains("shfl.sync.bfly.b32", quant, StringComparison.Ordinal);
    }

    [Fact]
    public void RMSNorm_reads_its_row_twice_keeping_it_in_L2_between_the_reads()
    {
        string norm = Ptx.Compile(typeof(DeepSeekV3.Kernels.Cuda).GetMethod("RmsNormHidden")!);
        Assert.Equal(4, CountOf(norm, "ld.global.L1::evict_last.L2::cache_hint.v4.f32")); // pass 1: the row's 4 float4s per thread
        Assert.Equal(8, CountOf(norm, "ld.global.L1::evict_first.L2::cache_hint.v4.f32")); // pass 2: the row again and the weight
        Assert.Equal(4, CountOf(norm, "st.global.cs.v4.f32"));
        Assert.Equal(0, CountOf(norm, "ld.global.v4.f32"));
        Assert.Contains("createpolicy.fractional.L2::evict_last.b64", norm, StringComparison.Ordinal);

        // The fused RMSNorm + act_quant keeps its row in registers; a one-warp row has no barrier to hint across.
        Assert.Equal(CacheHints.None, Ptx.HintsOf(typeof(DeepSeekV3.Kernels.Cuda).GetMethod("RmsNormQuantHidden")!));
        Assert.Equal(CacheHints.None, Ptx.HintsOf(typeof(TinySeek.Kernels.Cuda).GetMethod("RmsNormHidden")!));
    }

    [Fact]
    public void Read_twice_hints_are_refused_where_the_kernel_has_no_barrier_or_no_loads_on_a_side()
    {
        const string Loads = "ld.param.u64 %rd1, [p];\n\tld.global.v4.f32 {%f1, %f2, %f3, %f4}, [%rd1];\n";
        Assert.Throws<InvalidOperationException>(() => Ptx.WithCacheHints(Loads, CacheHints.ReadTwice));
        Assert.Throws<InvalidOperationException>(() => Ptx.WithCacheHints(Loads + "\tbar.sync 0;\n", CacheHints.ReadTwice));
        string hinted = Ptx.WithCacheHints(Loads + "\tbar.sync 0;\n\tld.global.f32 %f5, [%rd1];\n\tst.global.f32 [%rd1], %f5;\n", CacheHints.ReadTwice);
        Assert.Contains("ld.global.L1::evict_first.L2::cache_hint.f32 %f5, [%rd1], %rdrelease;", hinted, StringComparison.Ordinal);
        Assert.Contains("st.global.cs.f32 [%rd1], %f5;", hinted, StringComparison.Ordinal);
        Assert.Equal(Loads, Ptx.WithCacheHints(Loads, CacheHints.None));
    }

    [Fact]
    public void The_Hopper_kernel_targets_sm_90a_with_warp_group_MMA_and_bulk_tensor_copies()
    {
        string mla = Ptx.Compile(typeof(DeepSeekV3.Kernels.Cuda).GetMethod("MlaDecodeWarpGroup")!);
        Assert.Contains(".target sm_90a", mla, StringComparison.Ordinal);
        Assert.Equal(36 + (8 * 4), CountOf(mla, "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16")); // the scores; 8 column blocks × 4 k-steps of values, split 3 : 5 between the warp groups
        Assert.Contains("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes", mla, StringComparison.Ordinal);
        Assert.Contains("mbarrier.try_wait.parity.shared::cta.b64", mla, StringComparison.Ordinal);
        Assert.DoesNotContain("wgmma", Ptx.Compile(typeof(DeepSeekV3.Kernels.Cuda).GetMethod("MlaDecode")!), StringComparison.Ordinal);
        Assert.Null(typeof(TinySeek.Kernels.Cuda).GetMethod("MlaDecodeWarpGroup")); // 4 heads: not generated
    }

    [Fact]
    public void The_FP8_GEMM_targets_sm_90a_and_promotes_every_128_values_of_k()
    {
        string gemm = Ptx.Compile(typeof(DeepSeekV3.Kernels.Cuda).GetMethod("Fp8Gemm")!);
        Assert.Contains(".target sm_90a", gemm, StringComparison.Ordinal);
        Assert.Equal(4, CountOf(gemm, "wgmma.mma_async.sync.aligned.m64n128k32.f32.e4m3.e4m3")); // one k-block of 128: 4 steps of 32, then one promotion
        Assert.Equal(64, CountOf(gemm, "fma.rn.f32 mc_c")); // the promotion: every accumulator, once per k-block
        Assert.Equal(4, CountOf(gemm, "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes")); // a's rows and w's, before the loop and in it
        Assert.Null(typeof(TinySeek.Kernels.Cuda).GetMethod("Fp8Gemm")); // TinySeek computes in FP32
    }

    [Fact]
    public void Only_a_plain_sm_target_is_raised_to_sm_90a()
    {
        Assert.Equal(".version 8.8\n.target sm_90a\n", Ptx.TargetHopperSpecific(".version 8.8\n.target sm_90\n"));
        Assert.Throws<InvalidOperationException>(() => Ptx.TargetHopperSpecific(".version 8.8\n"));
    }

    private static int CountOf(string text, string value)
    {
        int count = 0;
        for (int at = text.IndexOf(value, StringComparison.Ordinal); at >= 0; at = text.IndexOf(value, at + value.Length, StringComparison.Ordinal)) count++;
        return count;
    }
}
