using System.Globalization;
using ModelCompiler;
using ModelCompiler.Planning;
using ModelCompiler.Torch.Checkpoints;
using ModelCompiler.Torch.Layers;
using static TorchSharp.torch;

namespace ModelCompiler.Torch;

/// <summary>
/// The commands of a project made by <c>modelc new</c>: <c>plan</c>, <c>verify &lt;checkpoint-dir&gt;</c> and
/// <c>generate &lt;checkpoint-dir&gt; --prompt-ids 1,2,3 [--max-new-tokens N] [--temperature T] [--top-p P] [--seed S]
/// [--stop ID,…] [--no-cache] [--bench]</c>. The project's Program.cs hands its arguments, its generated spec and a factory of its
/// generated module to <see cref="Run"/>.
/// </summary>
public static class ModelProgram
{
    /// <summary>Largest max-abs logit difference <c>verify</c> accepts.</summary>
    public const double VerifyTolerance = 1e-4;

    /// <summary>Runs one command; returns the process exit code (0 success, 1 check failed, 2 bad usage or input).</summary>
    public static int Run(string[] args, string name, ModelSpec spec, Func<DeepSeekCausalLM> create, TextWriter? output = null, TextWriter? error = null)
    {
        output ??= Console.Out;
        error ??= Console.Error;
        try
        {
            return args.FirstOrDefault() switch
            {
                "plan" => Plan(name, spec, output),
                "verify" when args.Length >= 2 => Verify(args[1], Options(args.Skip(2)).GetValueOrDefault("--expected") ?? "expected.safetensors", spec, create, output),
                "generate" when args.Length >= 2 => GenerateCommand(args[1], Options(args.Skip(2)), spec, create, output),
                "pretrain" => PretrainCommand(Options(args.Skip(1)), spec, output),
                _ => Usage(name, error),
            };
        }
        catch (Exception e) when (e is CheckpointException or HuggingFace.ConfigException or FormatException or ArgumentException or IOException or Training.TrainingDivergedException)
        {
            error.WriteLine("error: " + e.Message);
            return 2;
        }
    }

    private static int Usage(string name, TextWriter error)
    {
        error.WriteLine($"usage: {name} plan");
        error.WriteLine($"       {name} verify <checkpoint-dir> [--expected expected.safetensors]   (config.json, model.safetensors[.index.json], input_ids + logits)");
        error.WriteLine($"       {name} generate <checkpoint-dir> --prompt-ids 1,2,3 [--max-new-tokens 12] [--temperature 0] [--top-p 1] [--seed 0] [--stop 1] [--no-cache] [--bench]");
        error.WriteLine($"       {name} pretrain --data <file-or-folder> [--tokenizer gpt2|bpe:vocab.json:merges.txt] [--row-length 512] [--steps 1000] [--batch 8] [--lr 3e-4] [--out runs/pretrain] [--resume] [--seed 1]");
        return 2;
    }

    private static int Plan(string name, ModelSpec spec, TextWriter output)
    {
        output.WriteLine(name);
        output.Write(PlanReport.Format(spec, ModelPlanner.PlanOrThrow(spec)));
        return 0;
    }

    private static DeepSeekCausalLM Load(string directory, ModelSpec spec, Func<DeepSeekCausalLM> create, out Checkpoint checkpoint)
    {
        checkpoint = Checkpoint.Open(directory);
        try
        {
            checkpoint.EnsureDeclares(spec);
        }
        catch
        {
            checkpoint.Dispose();
            throw;
        }

        var model = create();
        checkpoint.LoadInto(model);
        model.eval();
        // Inference computes with the dequantised weights in full precision (DeepSeek's default bf16 GEMM path, FP32 on
        // the CPU); the declared precision policy is a training setting.
        model.Precision.Format = NumericFormat.Fp32;
        return model;
    }

    private static int Verify(string directory, string expectedFile, ModelSpec spec, Func<DeepSeekCausalLM> create, TextWriter output)
    {
        using var scope = NewDisposeScope();
        using var model = Load(directory, spec, create, out var checkpoint);
        using var _ = checkpoint;
        using var expected = SafetensorsFile.Open(Path.Combine(directory, expectedFile));
        using var grad = no_grad();
        var ids = expected.ReadRaw("input_ids");
        var reference = expected.ReadFloat("logits");
        bool ok = true;
        foreach (var mode in new[] { AttentionMode.Naive, AttentionMode.Absorbed })
        {
            double difference = (model.Forward(ids, 0, mode, null) - reference).abs().max().item<float>();
            bool pass = difference <= VerifyTolerance;
            ok &= pass;
            output.WriteLine($"logits, {mode.ToString().ToLowerInvariant()} attention: max |Δ| = {difference.ToString("E2", CultureInfo.InvariantCulture)} {(pass ? "ok" : $"FAIL (> {VerifyTolerance:E0})")}");
        }

        if (expected.Tensors.ContainsKey("greedy_prompt") && expected.Tensors.ContainsKey("greedy_tokens"))
        {
            long[] prompt = expected.ReadRaw("greedy_prompt").data<long>().ToArray();
            long[] tokens = expected.ReadRaw("greedy_tokens").data<long>().ToArray();
            var result = Generation.Generate(model, [prompt], tokens.Length);
            bool same = result.Tokens[0].SequenceEqual(tokens);
            ok &= same;
            output.WriteLine($"greedy tokens through the latent cache: {string.Join(",", result.Tokens[0])} {(same ? "ok" : "FAIL, expected " + string.Join(",", tokens))}");
        }

        return ok ? 0 : 1;
    }

    private static int GenerateCommand(string directory, Dictionary<string, string?> options, ModelSpec spec, Func<DeepSeekCausalLM> create, TextWriter output)
    {
        string ids = options.GetValueOrDefault("--prompt-ids") ?? throw new ArgumentException("--prompt-ids is required, e.g. --prompt-ids 1,2,3 (use ';' between prompts of a batch)");
        var prompts = ids.Split(';').Select(p => Ids("--prompt-ids", p)).ToList();
        int maxNew = Count(options, "--max-new-tokens", 12);
        var sampling = new SamplingOptions(
            Number(options, "--temperature", 0, t => t >= 0, "at least 0"),
            Number(options, "--top-p", 1, p => p > 0 && p <= 1, "in (0, 1]"),
            Whole(options, "--seed", 0));
        var stops = options.GetValueOrDefault("--stop") is { Length: > 0 } stop ? Ids("--stop", stop) : [];
        using var scope = NewDisposeScope();
        using var model = Load(directory, spec, create, out var checkpoint);
        using var _ = checkpoint;
        if (prompts.Any(p => p.Any(t => t < 0 || t >= spec.VocabularySize))) throw new ArgumentException($"--prompt-ids must lie in [0, {spec.VocabularySize})");
        bool bench = options.ContainsKey("--bench");
        if (bench) Generation.Generate(model, prompts, 2, sampling, stops, useCache: !options.ContainsKey("--no-cache")); // warm-up: first-call costs stay out of the figures
        var result = Generation.Generate(model, prompts, maxNew, sampling, stops, useCache: !options.ContainsKey("--no-cache"));
        for (int i = 0; i < prompts.Count; i++) output.WriteLine(string.Join(",", result.Tokens[i]));
        if (bench)
        {
            var plan = ModelPlanner.PlanOrThrow(spec);
            output.WriteLine($"prefill {result.PrefillTokensPerSecond.ToString("F1", CultureInfo.InvariantCulture)} tokens/s, decode {result.DecodeTokensPerSecond.ToString("F1", CultureInfo.InvariantCulture)} tokens/s");
            output.WriteLine($"KV cache allocated: {result.CacheBytesPerToken} bytes per token (FP32: {plan.LatentCacheElementsPerLayer} latent values × {spec.Layers} layers × 4 B; the plan's BF16 figure is {plan.KvCacheBytesPerToken})");
        }

        return 0;
    }

    /// <summary>Pre-trains the declared model on a user's text (with the declared MTP, balancing and precision).</summary>
    private static int PretrainCommand(Dictionary<string, string?> options, ModelSpec spec, TextWriter output)
    {
        string data = options.GetValueOrDefault("--data") ?? throw new ArgumentException("--data <file-or-folder> is required");
        var recipe = new Training.PretrainOptions // every number checked before the data is read
        {
            Steps = Count(options, "--steps", 1000),
            MicroBatchSize = Count(options, "--batch", 8),
            LearningRate = Number(options, "--lr", 3e-4, r => r > 0, "positive"),
            Seed = Whole(options, "--seed", 1),
            RowLength = Count(options, "--row-length", 512, minimum: 2),
        };
        var (tokenizer, endOfText) = Training.PackedTextData.CreateTokenizer(options.GetValueOrDefault("--tokenizer") ?? "gpt2");
        var text = new Training.PackedTextData(data, tokenizer, recipe.RowLength, spec.VocabularySize, endOfText);
        output.WriteLine($"{data}: {text.Tokens} tokens, {text.Rows} rows of {recipe.RowLength}");
        var run = new Training.PretrainRun(spec, recipe, options.GetValueOrDefault("--out") ?? "runs/pretrain", data: text);
        void Progress(Training.StepReport step)
        {
            if (step.Step % 10 == 0 || step.Step == 1) output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"step {step.Step} loss {step.Loss:F4} mtp {step.MtpLoss:F4} lr {step.LearningRate:E2}"));
        }

        var result = options.ContainsKey("--resume") ? run.Resume(Progress) : run.Start(Progress);
        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"loss {result.FirstLoss:F4} → {result.FinalLoss:F4}; report: {Path.Combine(run.Directory, "report.md")}"));
        return 0;
    }

    /// <summary>The text given for option <paramref name="name"/>, null when it is absent; refused when it is present without a value.</summary>
    private static string? Given(Dictionary<string, string?> options, string name) =>
        !options.TryGetValue(name, out string? text) ? null : text ?? throw new ArgumentException($"{name} needs a value");

    /// <summary>A whole-number option (or its default), refused by name when it is not one.</summary>
    private static long Whole(Dictionary<string, string?> options, string name, long fallback)
    {
        if (Given(options, name) is not { } text) return fallback;
        return long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out long value) ? value : throw new ArgumentException($"{name}: '{text}' is not a whole number");
    }

    /// <summary>A count option (steps, rows, tokens) of at least <paramref name="minimum"/>, refused by name otherwise.</summary>
    private static int Count(Dictionary<string, string?> options, string name, int fallback, int minimum = 1)
    {
        long value = Whole(options, name, fallback);
        return value >= minimum && value <= int.MaxValue ? (int)value : throw new ArgumentException($"{name} must be a whole number from {minimum} to {int.MaxValue}, not {value}");
    }

    /// <summary>Comma-separated token ids of option <paramref name="name"/>, refused by name when one is not a whole number.</summary>
    private static List<long> Ids(string name, string text) =>
        text.Split(',').Select(t => long.TryParse(t.Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out long id) ? id : throw new ArgumentException($"{name}: '{t.Trim()}' is not a token id")).ToList();

    /// <summary>A number option (or its default), refused by name when it is not a finite number or <paramref name="valid"/> fails.</summary>
    private static double Number(Dictionary<string, string?> options, string name, double fallback, Func<double, bool> valid, string requirement)
    {
        if (Given(options, name) is not { } text) return fallback;
        if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double value) || !double.IsFinite(value))
        {
            throw new ArgumentException($"{name}: '{text}' is not a number");
        }

        return valid(value) ? value : throw new ArgumentException($"{name} must be {requirement}, not {text}");
    }

    private static Dictionary<string, string?> Options(IEnumerable<string> args)
    {
        var result = new Dictionary<string, string?>(StringComparer.Ordinal);
        string? pending = null;
        foreach (string arg in args)
        {
            if (arg.StartsWith("--", StringComparison.Ordinal))
            {
                if (pending is not null) result[pending] = null;
                pending = arg;
            }
            else if (pending is not null)
            {
                result[pending] = arg;
                pending = null;
            }
            else
            {
                throw new ArgumentException($"unexpected argument '{arg}'");
            }
        }

        if (pending is not null) result[pending] = null;
        return result;
    }

    /// <summary>Whether two specs declare the same network (training-only settings aside); the first difference otherwise.</summary>
    public static bool SameArchitecture(ModelSpec checkpoint, ModelSpec model, out string difference)
    {
        static ModelSpec Shape(ModelSpec s) => s with
        {
            SequenceLength = 0,
            Mtp = s.Mtp is null ? null : s.Mtp with { LossWeight = 0 },
            Precision = PrecisionSpec.Fp32,
            Pipeline = null,
            Grpo = null,
            Moe = s.Moe is null ? null : s.Moe with { BiasUpdateSpeed = 0, SequenceBalanceLossWeight = 0, ExpertBalanceLossWeight = 0, DeviceBalanceLossWeight = 0, CommunicationBalanceLossWeight = 0 },
        };
        var a = Shape(checkpoint);
        var b = Shape(model);
        difference = a == b ? string.Empty : $"it has {Describe(a, b)}";
        return a == b;
    }

    private static string Describe(ModelSpec a, ModelSpec b)
    {
        var differences = new List<string>();
        foreach (var property in typeof(ModelSpec).GetProperties().Where(p => p.GetIndexParameters().Length == 0))
        {
            object? x = property.GetValue(a), y = property.GetValue(b);
            if (!Equals(x, y)) differences.Add($"{property.Name} = {x?.ToString() ?? "none"} where the model has {y?.ToString() ?? "none"}");
        }

        return string.Join("; ", differences);
    }
}
