using ILGPU;
using ILGPU.Runtime;
using ModelCompiler.Gpu;
using Xunit;

namespace ModelCompiler.Inference.Tests;

/// <summary>ILGPU's CPU simulator (warp 32): runs the warp-shuffle variants, slowly, so on small shapes only.</summary>
public sealed class SimulatorDevice : IDisposable
{
    public SimulatorDevice() => Device = GpuDevice.Create(GpuBackend.Cpu);

    public GpuDevice Device { get; }

    public void Dispose() => Device.Dispose();
}

/// <summary>
/// The warp-per-row kernels (what CUDA runs) against the general ones on ILGPU's CPU simulator, on fresh random inputs each
/// run (seed in the message), in FP32 and bf16 weights: the routed experts with some experts chosen by several tokens and some
/// by none, the value projection, and the scores over a paged cache.
/// </summary>
public sealed class WarpKernelTests(SimulatorDevice fixture) : IClassFixture<SimulatorDevice>
{
    private readonly int _seed = Environment.TickCount;

    [Theory]
    [InlineData(EnginePrecision.Float32)]
    [InlineData(EnginePrecision.Bf16)]
    public void Routed_experts_match(EnginePrecision precision)
    {
        const int Tokens = 3, TopK = 2, Experts = 4, Width = 24, D = 40;
        var accelerator = fixture.Device.Accelerator;
        var random = new Random(_seed);
        using var empty = new EmptyViews(accelerator);
        using var gate = Weight(empty, precision, random, Experts, Width, D);
        using var up = Weight(empty, precision, random, Experts, Width, D);
        using var down = Weight(empty, precision, random, Experts, D, Width);
        using var x = accelerator.Allocate1D(Values(random, Tokens * D));
        using var experts = accelerator.Allocate1D(new[] { 2, 0, 2, 3, 0, 2 }); // expert 1 chosen by none, expert 2 by all
        using var weights = accelerator.Allocate1D(Values(random, Tokens * TopK));
        var shared = Values(random, Tokens * D); // what the shared experts put in the output first
        float[] Run(bool warps)
        {
            var k = new Launchers(fixture.Device, accelerator.DefaultStream) { Warps = warps };
            using var hidden = accelerator.Allocate1D(Enumerable.Repeat(float.NaN, Tokens * TopK * Width).ToArray());
            using var output = accelerator.Allocate1D(shared);
            using var scratch = accelerator.Allocate1D<float>(Tokens * TopK * D);
            k.ExpertGateUp(x.View, experts.View, gate, up, hidden.View, Tokens, TopK, Width, D);
            k.ExpertDownCombine(hidden.View, experts.View, weights.View, down, output.View, scratch.View, Tokens, TopK, Width, D);
            accelerator.Synchronize();
            return output.GetAsArray1D();
        }

        AssertClose(Run(warps: false), Run(warps: true));
    }

    [Theory]
    [InlineData(EnginePrecision.Float32)]
    [InlineData(EnginePrecision.Bf16)]
    public void Value_projection_and_scores_match(EnginePrecision precision)
    {
        const int Tokens = 2, Heads = 2, Nope = 8, Value = 8, Latent = 32, Rope = 8, Context = 70;
        var accelerator = fixture.Device.Accelerator;
        var random = new Random(_seed);
        using var empty = new EmptyViews(accelerator);
        using var kvB = Weight(empty, precision, random, Heads * (Nope + Value), Latent);
        using var attended = accelerator.Allocate1D(Values(random, Tokens * Heads * Latent));
        using var absorbed = accelerator.Allocate1D(Values(random, Tokens * Heads * Latent));
        using var q = accelerator.Allocate1D(Values(random, Tokens * Heads * (Nope + Rope)));
        using var sequences = accelerator.Allocate1D(new[] { 1, 0 });
        using var positions = accelerator.Allocate1D(new[] { 69, 3 });                     // a second page for the first token
        using var pages = accelerator.Allocate1D(new[] { 2, 1, 0, 3 });                     // two slots of two pages
        int width = Latent + Rope;
        using var c32 = accelerator.Allocate1D(precision == EnginePrecision.Float32 ? Values(random, 4 * PagedLatentCache.PageSize * width) : [0f]);
        using var c16 = accelerator.Allocate1D(precision == EnginePrecision.Bf16 ? Values(random, 4 * PagedLatentCache.PageSize * width).Select(DeviceWeight.ToBf16).ToArray() : new ushort[1]);
        var dims = new AttentionDims(Heads, Latent, Rope, Nope + Rope, 2, Context, precision == EnginePrecision.Bf16 ? 1 : 0, 0.37f);
        (float[] Values, float[] Scores) Run(bool warps)
        {
            var k = new Launchers(fixture.Device, accelerator.DefaultStream) { Warps = warps };
            using var output = accelerator.Allocate1D(Enumerable.Repeat(float.NaN, Tokens * Heads * Value).ToArray());
            using var scores = accelerator.Allocate1D(Enumerable.Repeat(float.NaN, Tokens * Heads * Context).ToArray());
            k.ApplyValue(attended.View, kvB, output.View, Tokens, Heads, Nope, Value, Latent);
            ArrayView<float> cacheF32 = precision == EnginePrecision.Float32 ? c32.View.BaseView : empty.F32;
            ArrayView<ushort> cacheBf16 = precision == EnginePrecision.Bf16 ? c16.View.BaseView : empty.Bf16;
            k.Scores(absorbed.View, q.View, sequences.View, positions.View, pages.View, cacheF32, cacheBf16, scores.View, dims, Tokens);
            accelerator.Synchronize();
            return (output.GetAsArray1D(), scores.GetAsArray1D());
        }

        var (valuesA, scoresA) = Run(warps: false);
        var (valuesB, scoresB) = Run(warps: true);
        AssertClose(valuesA, valuesB);
        AssertClose(scoresA, scoresB);
        Assert.Equal(Tokens * Heads * (Context - 70) + (Heads * (Context - 4)), scoresB.Count(float.IsNegativeInfinity)); // only past each position
    }

    private DeviceWeight Weight(EmptyViews empty, EnginePrecision precision, Random random, params long[] shape)
    {
        var weight = DeviceWeight.Allocate(fixture.Device.Accelerator, empty, shape, precision);
        weight.CopyFrom(0, Values(random, (int)weight.Length));
        return weight;
    }

    private static float[] Values(Random random, int count) => Enumerable.Range(0, count).Select(_ => (float)((random.NextDouble() * 2) - 1)).ToArray();

    private void AssertClose(float[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            if (float.IsNegativeInfinity(expected[i])) Assert.True(float.IsNegativeInfinity(actual[i]), $"element {i} (seed {_seed})");
            else Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-4 * Math.Max(1, Math.Abs(expected[i])), $"element {i}: {actual[i]} against {expected[i]} (seed {_seed})");
        }
    }
}
