using ILGPU;
using ILGPU.Runtime;
using ModelCompiler.Gpu;
using ModelCompiler.Planning;
using static ModelCompiler.Inference.EngineKernels;

namespace ModelCompiler.Inference;

/// <summary>
/// <see cref="EngineKernels"/> loaded on one device (once each) and launched on its default stream with the geometry each
/// expects: one group per row or output element, or one thread per element in groups of <see cref="EngineKernels.Threads"/>.
/// </summary>
internal sealed class Launchers(GpuDevice device, AcceleratorStream stream)
{

    private readonly Dictionary<string, (double Seconds, int Launches)> _profile = new(StringComparer.Ordinal);

    /// <summary>
    /// When set, each launch waits for the device and adds its time to <see cref="Profile"/> (for finding where a step's
    /// time goes; it removes all overlap between launches, so the step is slower).
    /// </summary>
    public bool Profiling { get; set; }

    /// <summary>Seconds and launches per kernel since the last <see cref="ResetProfile"/>.</summary>
    public IReadOnlyDictionary<string, (double Seconds, int Launches)> Profile => _profile;

    /// <summary>Forgets the profile so far.</summary>
    public void ResetProfile() => _profile.Clear();

    /// <summary>Whether the warp-per-row kernels run: the backend has warp shuffles and every width they read is a multiple of 8.</summary>
    public bool Warps { get; init; } = device.HasWarpShuffles;

    private AcceleratorStream Stream => stream;

    /// <summary>Runs <paramref name="launch"/>, timing it under <paramref name="name"/> when profiling.</summary>
    public void Timed(string name, Action launch)
    {
        if (!Profiling)
        {
            launch();
            return;
        }

        Stream.Synchronize();
        long start = System.Diagnostics.Stopwatch.GetTimestamp();
        launch();
        Stream.Synchronize();
        var (seconds, launches) = _profile.GetValueOrDefault(name);
        _profile[name] = (seconds + System.Diagnostics.Stopwatch.GetElapsedTime(start).TotalSeconds, launches + 1);
    }

    private static KernelConfig Warp(long rows) => new(BufferChecks.Groups(rows, WarpsPerGroup), Threads);

    private static KernelConfig Items(long items) => new(BufferChecks.Groups(items, Threads), Threads);

    private static KernelConfig Rows(long rows) => new(checked((int)rows), Threads);

    public void Embed(ArrayView<int> ids, DeviceWeight table, ArrayView<float> output, int width, int tokens)
    {
        Timed("Embed", () =>
        {
            long items = (long)tokens * width;
            device.Load<Action<AcceleratorStream, KernelConfig, ArrayView<int>, ArrayView<float>, ArrayView<ushort>, int, ArrayView<float>, int, long>>(
                new Action<ArrayView<int>, ArrayView<float>, ArrayView<ushort>, int, ArrayView<float>, int, long>(EngineKernels.Embed))
                (Stream, Items(items), ids, table.F32, table.Bf16, table.Bf16Flag, output, width, items);
        });
    }

    public void RmsNorm(ArrayView<float> x, DeviceWeight weight, ArrayView<float> y, int rows, int width, int xStride, int yStride, float epsilon) => Timed("RmsNorm", () =>
        device.Load<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, float>>(
            new Action<ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, float>(EngineKernels.RmsNorm))
            (Stream, Rows(rows), x, weight.F32, y, width, xStride, yStride, epsilon));

    public void Linear(ArrayView<float> x, DeviceWeight w, ArrayView<float> y, int m, int n, int k) => Timed("Linear", () =>
        device.Load<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<ushort>, int, ArrayView<float>, int, int, int, int>>(
            new Action<ArrayView<float>, ArrayView<float>, ArrayView<ushort>, int, ArrayView<float>, int, int, int, int>(EngineKernels.Linear))
            (Stream, Rows((long)m * n), x, w.F32, w.Bf16, w.Bf16Flag, y, n, k, k, n));

    public void Add(ArrayView<float> x, ArrayView<float> y, long items) => Timed("Add", () =>
        device.Load<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, long>>(
            new Action<ArrayView<float>, ArrayView<float>, long>(EngineKernels.Add))(Stream, Items(items), x, y, items));

    public void ToBf16(ArrayView<float> x, ArrayView<ushort> y, long items) => Timed("ToBf16", () =>
        device.Load<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<ushort>, long>>(
            new Action<ArrayView<float>, ArrayView<ushort>, long>(EngineKernels.ToBf16))(Stream, Items(items), x, y, items));

    public void SiluMul(ArrayView<float> gate, ArrayView<float> up, ArrayView<float> output, long items) => Timed("SiluMul", () =>
        device.Load<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, long>>(
            new Action<ArrayView<float>, ArrayView<float>, ArrayView<float>, long>(EngineKernels.SiluMul))(Stream, Items(items), gate, up, output, items));

    public void Gather(ArrayView<float> x, ArrayView<int> index, ArrayView<float> output, int rows, int width)
    {
        Timed("Gather", () =>
        {
            long items = (long)rows * width;
            device.Load<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<int>, ArrayView<float>, int, long>>(
                new Action<ArrayView<float>, ArrayView<int>, ArrayView<float>, int, long>(EngineKernels.Gather))(Stream, Items(items), x, index, output, width, items);
        });
    }

    public void Rope(ArrayView<float> x, ArrayView<int> positions, ArrayView<float> cos, ArrayView<float> sin, int tokens, int heads, int rowWidth, int offset, int pairs)
    {
        Timed("Rope", () =>
        {
            long items = (long)tokens * heads * pairs;
            device.Load<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>, int, int, int, int, long>>(
                new Action<ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>, int, int, int, int, long>(EngineKernels.Rope))
                (Stream, Items(items), x, positions, cos, sin, heads, rowWidth, offset, pairs, items);
        });
    }

    public void CacheWrite(ArrayView<float> kv, ArrayView<int> sequences, ArrayView<int> positions, ArrayView<int> pages, ArrayView<float> c32, ArrayView<ushort> c16,
        AttentionDims dims, int tokens)
    {
        Timed("CacheWrite", () =>
        {
            long items = (long)tokens * dims.Width;
            device.Load<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<int>, ArrayView<int>, ArrayView<int>, ArrayView<float>, ArrayView<ushort>, AttentionDims, long>>(
                new Action<ArrayView<float>, ArrayView<int>, ArrayView<int>, ArrayView<int>, ArrayView<float>, ArrayView<ushort>, AttentionDims, long>(EngineKernels.CacheWrite))
                (Stream, Items(items), kv, sequences, positions, pages, c32, c16, dims, items);
        });
    }

    public void AbsorbQuery(ArrayView<float> q, DeviceWeight kvB, ArrayView<float> absorbed, int tokens, int heads, int nope, int queryWidth, int value, int latent)
    {
        Timed("AbsorbQuery", () =>
        {
            long items = (long)tokens * heads * latent;
            device.Load<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<ushort>, int, ArrayView<float>, int, int, int, int, int, long>>(
                new Action<ArrayView<float>, ArrayView<float>, ArrayView<ushort>, int, ArrayView<float>, int, int, int, int, int, long>(EngineKernels.AbsorbQuery))
                (Stream, Items(items), q, kvB.F32, kvB.Bf16, kvB.Bf16Flag, absorbed, heads, nope, queryWidth, value, latent, items);
        });
    }

    public void Scores(ArrayView<float> absorbed, ArrayView<float> q, ArrayView<int> sequences, ArrayView<int> positions, ArrayView<int> pages, ArrayView<float> c32,
        ArrayView<ushort> c16, ArrayView<float> scores, AttentionDims dims, int tokens)
    {
        Timed("Scores", () =>
        {
            long items = (long)tokens * dims.Heads * dims.Context;
            bool warps = Warps && dims.Latent % 8 == 0 && dims.Rope % 8 == 0 && dims.QueryWidth % 8 == 0;
            var kernel = warps
                ? new Action<ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<int>, ArrayView<int>, ArrayView<float>, ArrayView<ushort>, ArrayView<float>,
                    AttentionDims, long>(EngineKernels.ScoresWarp)
                : EngineKernels.Scores;
            device.Load<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<int>, ArrayView<int>, ArrayView<float>,
                ArrayView<ushort>, ArrayView<float>, AttentionDims, long>>(kernel)
                (Stream, warps ? Warp(items) : Items(items), absorbed, q, sequences, positions, pages, c32, c16, scores, dims, items);
        });
    }

    public void Softmax(ArrayView<float> scores, int rows, int context) => Timed("Softmax", () =>
        device.Load<Action<AcceleratorStream, KernelConfig, ArrayView<float>, int>>(new Action<ArrayView<float>, int>(EngineKernels.Softmax))(Stream, Rows(rows), scores, context));

    public void AttendLatent(ArrayView<float> probabilities, ArrayView<int> sequences, ArrayView<int> positions, ArrayView<int> pages, ArrayView<float> c32,
        ArrayView<ushort> c16, ArrayView<float> output, AttentionDims dims, int tokens)
    {
        Timed("AttendLatent", () =>
        {
            long items = (long)tokens * dims.Heads * dims.Latent;
            device.Load<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<int>, ArrayView<int>, ArrayView<int>, ArrayView<float>, ArrayView<ushort>,
                ArrayView<float>, AttentionDims, long>>(
                new Action<ArrayView<float>, ArrayView<int>, ArrayView<int>, ArrayView<int>, ArrayView<float>, ArrayView<ushort>, ArrayView<float>, AttentionDims, long>(
                    EngineKernels.AttendLatent))
                (Stream, Items(items), probabilities, sequences, positions, pages, c32, c16, output, dims, items);
        });
    }

    public void ApplyValue(ArrayView<float> attended, DeviceWeight kvB, ArrayView<float> output, int tokens, int heads, int nope, int value, int latent)
    {
        Timed("ApplyValue", () =>
        {
            long items = (long)tokens * heads * value;
            if (Warps && latent % 8 == 0)
            {
                device.Load<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<ushort>, int, ArrayView<float>, int, int, int, int, long>>(
                    new Action<ArrayView<float>, ArrayView<float>, ArrayView<ushort>, int, ArrayView<float>, int, int, int, int, long>(EngineKernels.ApplyValueWarp))
                    (Stream, Warp(items), attended, kvB.F32, kvB.Bf16, kvB.Bf16Flag, output, heads, nope, value, latent, items);
                return;
            }

            device.Load<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<ushort>, int, ArrayView<float>, int, int, int, int, long>>(
                new Action<ArrayView<float>, ArrayView<float>, ArrayView<ushort>, int, ArrayView<float>, int, int, int, int, long>(EngineKernels.ApplyValue))
                (Stream, Items(items), attended, kvB.F32, kvB.Bf16, kvB.Bf16Flag, output, heads, nope, value, latent, items);
        });
    }

    public void Route(ArrayView<float> logits, DeviceWeight? bias, EmptyViews empty, ArrayView<float> scratch, ArrayView<int> experts, ArrayView<float> weights, int tokens, MoeSpec moe) => Timed("Route", () =>
        device.Load<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, int, ArrayView<float>, ArrayView<int>, ArrayView<float>, int, int, int, int,
            int, int, float, long>>(
            new Action<ArrayView<float>, ArrayView<float>, int, ArrayView<float>, ArrayView<int>, ArrayView<float>, int, int, int, int, int, int, float, long>(EngineKernels.Route))
            (Stream, Items(tokens), logits, bias?.F32 ?? empty.F32, bias is null ? 0 : 1, scratch, experts, weights, moe.RoutedExperts, moe.ActivatedExperts,
                Math.Max(1, moe.ExpertGroups), Math.Max(1, moe.GroupsPerToken), moe.Scoring == ExpertScoring.Sigmoid ? 1 : 0, moe.NormalizeTopK ? 1 : 0,
                (float)moe.RoutedScalingFactor, tokens));

    public void ExpertGateUp(ArrayView<float> x, ArrayView<int> experts, DeviceWeight gate, DeviceWeight up, ArrayView<float> hidden, int tokens, int topK, int width, int d)
    {
        Timed("ExpertGateUp", () =>
        {
            if (Warps && width % 8 == 0 && d % 8 == 0)
            {
                long rows = (long)tokens * topK * width;
                device.Load<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<ushort>, ArrayView<float>, ArrayView<ushort>, int,
                    ArrayView<float>, int, int, int, long>>(
                    new Action<ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<ushort>, ArrayView<float>, ArrayView<ushort>, int, ArrayView<float>, int, int, int,
                        long>(EngineKernels.ExpertGateUpWarp))
                    (Stream, Warp(rows), x, experts, gate.F32, gate.Bf16, up.F32, up.Bf16, gate.Bf16Flag, hidden, topK, width, d, rows);
                return;
            }

            device.Load<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<ushort>, ArrayView<float>, ArrayView<ushort>, int,
                ArrayView<float>, int, int, int>>(
                new Action<ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<ushort>, ArrayView<float>, ArrayView<ushort>, int, ArrayView<float>, int, int, int>(
                    EngineKernels.ExpertGateUp))
                (Stream, Rows((long)tokens * topK * width), x, experts, gate.F32, gate.Bf16, up.F32, up.Bf16, gate.Bf16Flag, hidden, topK, width, d);
        });
    }

    /// <summary>The routed experts' down projections, weighted and added into <paramref name="output"/>; <paramref name="scratch"/> holds [pairs, d] on the warp path.</summary>
    public void ExpertDownCombine(ArrayView<float> hidden, ArrayView<int> experts, ArrayView<float> weights, DeviceWeight down, ArrayView<float> output, ArrayView<float> scratch,
        int tokens, int topK, int width, int d)
    {
        Timed("ExpertDownCombine", () =>
        {
            if (Warps && width % 8 == 0 && d % 8 == 0)
            {
                long rows = (long)tokens * topK * d;
                device.Load<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<ushort>, int, ArrayView<float>, int, int, long>>(
                    new Action<ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<ushort>, int, ArrayView<float>, int, int, long>(EngineKernels.ExpertDownWarp))
                    (Stream, Warp(rows), hidden, experts, down.F32, down.Bf16, down.Bf16Flag, scratch, width, d, rows);
                long items = (long)tokens * d;
                device.Load<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, long>>(
                    new Action<ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, long>(EngineKernels.CombineExperts))
                    (Stream, Items(items), scratch, weights, output, topK, d, items);
                return;
            }

            device.Load<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<ushort>, int, ArrayView<float>,
                int, int, int>>(
                new Action<ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<ushort>, int, ArrayView<float>, int, int, int>(EngineKernels.ExpertDownCombine))
                (Stream, Rows((long)tokens * d), hidden, experts, weights, down.F32, down.Bf16, down.Bf16Flag, output, topK, width, d);
        });
    }

    public void Argmax(ArrayView<float> logits, ArrayView<int> chosen, int rows, int vocabulary) => Timed("Argmax", () =>
        device.Load<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<int>, int>>(
            new Action<ArrayView<float>, ArrayView<int>, int>(EngineKernels.Argmax))(Stream, Rows(rows), logits, chosen, vocabulary));

    public void Sample(ArrayView<float> logits, ArrayView<int> chosen, ArrayView<int> seeds, int rows, int vocabulary, float temperature, float topP, int step) => Timed("Sample", () =>
        device.Load<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<int>, ArrayView<int>, int, float, float, int>>(
            new Action<ArrayView<float>, ArrayView<int>, ArrayView<int>, int, float, float, int>(EngineKernels.Sample))
            (Stream, Rows(rows), logits, chosen, seeds, vocabulary, temperature, topP, step));
}
