using ModelCompiler.Checkpoints;
using Xunit;
using Xunit.Abstractions;

namespace ModelCompiler.Inference.Tests;

/// <summary>
/// The inference engine on the reference checkpoints, run through ILGPU on OpenCL: logits against transformers' (float32
/// within 1e-3, bf16 within 1e-2 relative), the greedy continuation, and a prompt fed in pieces or one token at a time giving
/// the logits of one whole pass.
/// </summary>
public sealed class EngineTests(OpenClDevice fixture, ITestOutputHelper log) : IClassFixture<OpenClDevice>
{
    [Theory]
    [InlineData("tiny-v3")]
    [InlineData("tiny-v3-fp8")]
    public void Float32_logits_match_the_reference(string name)
    {
        var (inputs, expected, _, _) = Fixtures.Expected(name);
        var (max, relative) = Compare(AllLogits(name, EnginePrecision.Float32, inputs), expected);
        log.WriteLine($"{name} Float32: max |Δ| = {max:E2}, ‖Δ‖/‖ref‖ = {relative:E2}");
        Assert.True(max < 1e-3, $"max |Δlogit| = {max:E3}");
    }

    /// <summary>
    /// The bf16 mode's logits differ from the reference by what rounding the weights to bf16 does, and by little more: the
    /// same engine in FP32 on the rounded weights agrees with it within 1 % relative (0.4 % measured: the bf16 latent cache).
    /// On tiny-v3, rounding the attention weights alone moves the logits by 7.1 % relative (the TorchSharp model measures the
    /// same), so this fixture cannot hold bf16 to 1 % of the reference.
    /// </summary>
    [Fact]
    public void Bf16_logits_differ_from_the_reference_only_by_the_rounded_weights()
    {
        var (inputs, expected, _, _) = Fixtures.Expected("tiny-v3");
        var bf16 = AllLogits("tiny-v3", EnginePrecision.Bf16, inputs);
        var rounded = AllLogits("tiny-v3", EnginePrecision.Float32, inputs, roundToBf16: true);
        var (_, relative) = Compare(bf16, expected);
        var (max, ofRounding) = Compare(bf16, rounded);
        log.WriteLine($"tiny-v3 Bf16: ‖Δ‖/‖ref‖ = {relative:E2} against the reference, {ofRounding:E2} (max {max:E2}) against FP32 on bf16-rounded weights");
        Assert.True(ofRounding < 1e-2, $"‖Δ‖/‖rounded‖ = {ofRounding:E3}");
        Assert.True(relative < 0.08, $"‖Δ‖/‖ref‖ = {relative:E3}");
    }

    private float[] AllLogits(string name, EnginePrecision precision, int[][] inputs, bool roundToBf16 = false)
    {
        using var checkpoint = CheckpointFolder.Open(Fixtures.Folder(name));
        using var model = DeviceModel.Load(fixture.Device.Accelerator, checkpoint, precision, roundToBf16);
        using var engine = new InferenceEngine(fixture.Device, model, new EngineOptions(MaxSequences: 2, MaxLength: 64, MaxTokensPerStep: 80));
        var steps = inputs.Select(_ => engine.Cache.TakeSlot()).Select((slot, i) => new StepInput(slot, 0, inputs[i])).ToList();
        foreach (var step in steps) engine.Cache.Grow(step.Slot, inputs[0].Length);
        return engine.Download(engine.Forward(steps, allTokens: true), inputs.Sum(i => i.Length));
    }

    private static (double Max, double Relative) Compare(float[] actual, float[] expected)
    {
        double max = 0, errorSquares = 0, referenceSquares = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            double difference = actual[i] - expected[i];
            max = Math.Max(max, Math.Abs(difference));
            errorSquares += difference * difference;
            referenceSquares += (double)expected[i] * expected[i];
        }

        return (max, Math.Sqrt(errorSquares / referenceSquares));
    }

    [Theory]
    [InlineData("tiny-v3")]
    [InlineData("tiny-v3-fp8")]
    public void Greedy_tokens_match_the_reference(string name)
    {
        var (_, _, prompt, tokens) = Fixtures.Expected(name);
        using var checkpoint = CheckpointFolder.Open(Fixtures.Folder(name));
        using var model = DeviceModel.Load(fixture.Device.Accelerator, checkpoint, EnginePrecision.Float32);
        using var engine = new InferenceEngine(fixture.Device, model, new EngineOptions(MaxSequences: 1, MaxLength: 64, MaxTokensPerStep: 16));
        var report = new BatchGenerator(engine).Generate([new GenerationRequest(prompt, tokens.Length)]);
        Assert.Equal(tokens, report.Tokens[0]);
        Assert.Equal(engine.Cache.Pages, engine.Cache.FreePages); // every page returned
    }

    [Fact]
    public void A_prompt_fed_in_pieces_gives_the_logits_of_one_pass()
    {
        var (inputs, _, _, _) = Fixtures.Expected("tiny-v3");
        using var checkpoint = CheckpointFolder.Open(Fixtures.Folder("tiny-v3"));
        using var model = DeviceModel.Load(fixture.Device.Accelerator, checkpoint, EnginePrecision.Float32);
        using var engine = new InferenceEngine(fixture.Device, model, new EngineOptions(MaxSequences: 2, MaxLength: 64, MaxTokensPerStep: 64));
        int whole = engine.Cache.TakeSlot(), pieces = engine.Cache.TakeSlot();
        var prompt = inputs[1];
        engine.Cache.Grow(whole, prompt.Length);
        engine.Cache.Grow(pieces, prompt.Length);
        var reference = engine.Download(engine.Forward([new StepInput(whole, 0, prompt)], allTokens: true), prompt.Length);

        // 29 tokens, then 11 steps of one token: prefill, then decode, each reading the pages the earlier steps wrote.
        int vocabulary = engine.Spec.VocabularySize;
        var first = engine.Download(engine.Forward([new StepInput(pieces, 0, prompt[..29])]), 1);
        AssertClose(reference.AsSpan(28 * vocabulary, vocabulary), first, "position 28");
        for (int p = 29; p < prompt.Length; p++)
        {
            var step = engine.Download(engine.Forward([new StepInput(pieces, p, [prompt[p]])]), 1);
            AssertClose(reference.AsSpan(p * vocabulary, vocabulary), step, $"position {p}");
        }
    }

    [Fact]
    public void Sequences_joining_and_leaving_a_batch_get_their_tokens_alone()
    {
        var (inputs, _, _, _) = Fixtures.Expected("tiny-v3");
        using var checkpoint = CheckpointFolder.Open(Fixtures.Folder("tiny-v3"));
        using var model = DeviceModel.Load(fixture.Device.Accelerator, checkpoint, EnginePrecision.Float32);
        var requests = new[]
        {
            new GenerationRequest(inputs[0][..5], 9), new GenerationRequest(inputs[1][..17], 3), new GenerationRequest(inputs[0][3..30], 6),
            new GenerationRequest(inputs[1][..2], 12),
        };
        using var alone = new InferenceEngine(fixture.Device, model, new EngineOptions(MaxSequences: 1, MaxLength: 64, MaxTokensPerStep: 32));
        var expected = requests.Select(r => new BatchGenerator(alone).Generate([r]).Tokens[0]).ToList();

        // Two slots and a 20-token step: prompts are cut into chunks, the third request waits for a slot, the short one leaves early.
        using var batched = new InferenceEngine(fixture.Device, model, new EngineOptions(MaxSequences: 2, MaxLength: 64, MaxTokensPerStep: 20));
        var report = new BatchGenerator(batched).Generate(requests);
        for (int r = 0; r < requests.Length; r++) Assert.Equal(expected[r], report.Tokens[r]);
        Assert.True(report.Steps < requests.Sum(q => q.MaxNewTokens), $"{report.Steps} steps: the sequences were not batched");
        Assert.Equal(batched.Cache.Pages, batched.Cache.FreePages);
    }

    [Fact]
    public void Sampling_is_seeded_and_top_p_keeps_to_the_nucleus()
    {
        var (_, _, prompt, greedy) = Fixtures.Expected("tiny-v3");
        using var checkpoint = CheckpointFolder.Open(Fixtures.Folder("tiny-v3"));
        using var model = DeviceModel.Load(fixture.Device.Accelerator, checkpoint, EnginePrecision.Float32);
        using var engine = new InferenceEngine(fixture.Device, model, new EngineOptions(MaxSequences: 2, MaxLength: 64, MaxTokensPerStep: 16));
        var generator = new BatchGenerator(engine);
        var hot = new SamplingSettings(Temperature: 1.5f);
        var a = generator.Generate([new GenerationRequest(prompt, 12, Seed: 7)], hot).Tokens[0];
        var b = generator.Generate([new GenerationRequest(prompt, 12, Seed: 7)], hot).Tokens[0];
        var c = generator.Generate([new GenerationRequest(prompt, 12, Seed: 8)], hot).Tokens[0];
        Assert.Equal(a, b);
        Assert.NotEqual(a, c);
        Assert.NotEqual(greedy, a);

        // A nucleus of a tiny mass holds only the most likely token: greedy decoding whatever the temperature.
        var nucleus = generator.Generate([new GenerationRequest(prompt, 12, Seed: 3)], new SamplingSettings(Temperature: 2f, TopP: 1e-6f)).Tokens[0];
        Assert.Equal(greedy, nucleus);
    }

    [Fact]
    public void Bad_requests_are_refused_before_any_work()
    {
        using var checkpoint = CheckpointFolder.Open(Fixtures.Folder("tiny-v3"));
        using var model = DeviceModel.Load(fixture.Device.Accelerator, checkpoint, EnginePrecision.Float32);
        using var engine = new InferenceEngine(fixture.Device, model, new EngineOptions(MaxSequences: 1, MaxLength: 32, MaxTokensPerStep: 16));
        var generator = new BatchGenerator(engine);
        Assert.Contains("exceed the engine's 32 positions", Assert.Throws<ArgumentException>(() => generator.Generate([new GenerationRequest([1, 2, 3], 30)])).Message, StringComparison.Ordinal);
        Assert.Contains("token id 1024 lies outside the vocabulary [0, 1024)", Assert.Throws<ArgumentException>(() => generator.Generate([new GenerationRequest([1, 1024], 3)])).Message, StringComparison.Ordinal);
        Assert.Contains("top-p must lie in (0, 1]", Assert.Throws<ArgumentException>(() => generator.Generate([new GenerationRequest([1], 3)], new SamplingSettings(1, 0))).Message, StringComparison.Ordinal);
        var tooLarge = Assert.Throws<InsufficientDeviceMemoryException>(() => DeviceModel.Random(fixture.Device.Accelerator,
            checkpoint.Spec with { VocabularySize = 1 << 24, HiddenSize = 1 << 14 }, EnginePrecision.Float32, 1));
        Assert.Contains("GiB in Float32; the device", tooLarge.Message, StringComparison.Ordinal);
    }

    private static void AssertClose(ReadOnlySpan<float> expected, float[] actual, string where)
    {
        double max = 0;
        for (int i = 0; i < expected.Length; i++) max = Math.Max(max, Math.Abs(expected[i] - actual[i]));
        Assert.True(max < 1e-4, $"{where}: max |Δ| = {max:E3}");
    }
}
