using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using ModelCompiler.Checkpoints;
using ModelCompiler;
using ModelCompiler.HuggingFace;
using ModelCompiler.Planning;
using ModelCompiler.Torch.Checkpoints;
using ModelCompiler.Torch.Layers;
using ModelCompiler.Torch.Training;
using static TorchSharp.torch;

namespace ModelCompiler.Torch;

/// <summary>
/// The commands of a project made by <c>modelc new</c>: <c>plan</c>, <c>verify &lt;checkpoint-dir&gt;</c>,
/// <c>generate &lt;checkpoint-dir&gt; --prompt-ids 1,2,3 …</c> and <c>pretrain --data …</c>. The project's Program.cs hands its
/// arguments, its generated spec and a factory of its generated module to <see cref="Run"/>. Every option is checked by name
/// before any work (an unknown option too); every failure is one line on standard error.
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
        var root = new RootCommand($"{name}: the commands of a model declared with ModelCompiler.")
        {
            PlanCommand(name, spec, output),
            VerifyCommand(spec, create, output),
            GenerateCommand(spec, create, output),
            PretrainCommand(spec, output),
        };
        var parsed = root.Parse(args);
        if (parsed.Errors.Count > 0)
        {
            foreach (var problem in parsed.Errors) error.WriteLine("error: " + problem.Message);
            error.WriteLine($"Run '{name} --help' for the commands and their options.");
            return 2;
        }

        try
        {
            return parsed.Invoke(new InvocationConfiguration { Output = output, Error = error, EnableDefaultExceptionHandler = false });
        }
        catch (Exception e) when (e is CheckpointException or ConfigException or ArgumentException or IOException or InvalidDataException or TrainingDivergedException)
        {
            error.WriteLine("error: " + e.Message);
            return 2;
        }
        catch (NonFiniteLogitsException e)
        {
            error.WriteLine("error: " + e.Message);
            return 1;
        }
    }

    private static Command PlanCommand(string name, ModelSpec spec, TextWriter output)
    {
        var command = new Command("plan", "Print the plan: parameters, KV cache, FLOPs, memory.");
        command.SetAction(_ =>
        {
            output.WriteLine(name);
            output.Write(PlanReport.Format(spec, ModelPlanner.PlanOrThrow(spec)));
            return 0;
        });
        return command;
    }

    private static Command VerifyCommand(ModelSpec spec, Func<DeepSeekCausalLM> create, TextWriter output)
    {
        var directory = new Argument<string>("checkpoint-dir") { Description = "A Hugging Face checkpoint folder: config.json, model.safetensors[.index.json]." };
        var expectedFile = new Option<string>("--expected") { Description = "The file in the folder holding input_ids and logits (and greedy_prompt, greedy_tokens).", DefaultValueFactory = _ => "expected.safetensors" };
        var command = new Command("verify", "Compare the model's logits (both attention modes) and greedy tokens with a reference file.") { directory, expectedFile };
        command.SetAction(result => Verify(result.GetValue(directory)!, result.GetValue(expectedFile)!, spec, create, output));
        return command;
    }

    private static Command GenerateCommand(ModelSpec spec, Func<DeepSeekCausalLM> create, TextWriter output)
    {
        var directory = new Argument<string>("checkpoint-dir") { Description = "A Hugging Face checkpoint folder." };
        var promptIds = new Option<List<List<long>>>("--prompt-ids")
        {
            Description = "Token ids, comma-separated; ';' between the prompts of a batch.",
            Required = true,
            CustomParser = r => r.Tokens.Count == 0 ? [] : r.Tokens[0].Value.Split(';').Select(p => Ids(r, p)).ToList(),
        };
        var maxNew = Count("--max-new-tokens", "Tokens to generate per prompt.", 12);
        var temperature = Number("--temperature", "0 for greedy; otherwise the logits are divided by it before sampling.", 0, t => t >= 0, "at least 0");
        var topP = Number("--top-p", "Nucleus sampling: the smallest set of tokens whose probability reaches p.", 1, p => p > 0 && p <= 1, "in (0, 1]");
        var seed = Whole("--seed", "Seed of sampling.", 0);
        var stop = new Option<List<long>>("--stop") { Description = "Token ids that end a sequence, comma-separated.", CustomParser = r => r.Tokens.Count == 0 ? [] : Ids(r, r.Tokens[0].Value) };
        var noCache = new Option<bool>("--no-cache") { Description = "Recompute every position each step (naive attention) instead of using the latent cache." };
        var bench = new Option<bool>("--bench") { Description = "Print prefill and decode tokens/s (after an untimed warm-up) and the cache size." };
        var command = new Command("generate", "Generate tokens from prompts of token ids.") { directory, promptIds, maxNew, temperature, topP, seed, stop, noCache, bench };
        command.SetAction(result =>
        {
            var prompts = result.GetValue(promptIds)!;
            int maxNewTokens = result.GetValue(maxNew);
            if (prompts.Any(p => p.Any(t => t < 0 || t >= spec.VocabularySize))) throw new ArgumentException($"--prompt-ids must lie in [0, {spec.VocabularySize})");
            string folder = result.GetValue(directory)!;
            if (Directory.Exists(folder) && HuggingFaceConfig.ReadContextLength(Path.Combine(folder, "config.json")) is { } context && prompts.Max(p => p.Count) + (long)maxNewTokens > context)
            {
                throw new ArgumentException($"the longest prompt ({prompts.Max(p => p.Count)} tokens) and --max-new-tokens {maxNewTokens} run past the model's context of {context} positions (max_position_embeddings)");
            }

            var sampling = new SamplingOptions(result.GetValue(temperature), result.GetValue(topP), result.GetValue(seed));
            var stops = result.GetValue(stop) ?? [];
            bool useCache = !result.GetValue(noCache);
            using var scope = NewDisposeScope();
            using var model = Load(folder, spec, create, out var checkpoint);
            using var _ = checkpoint;
            var inputs = prompts.Select(p => (IReadOnlyList<long>)p).ToList();
            if (result.GetValue(bench)) Generation.Generate(model, inputs, 2, sampling, stops, useCache); // warm-up: first-call costs stay out of the figures
            var generated = Generation.Generate(model, inputs, maxNewTokens, sampling, stops, useCache);
            foreach (var tokens in generated.Tokens) output.WriteLine(string.Join(",", tokens));
            if (result.GetValue(bench))
            {
                var plan = ModelPlanner.PlanOrThrow(spec);
                output.WriteLine($"prefill {generated.PrefillTokensPerSecond.ToString("F1", CultureInfo.InvariantCulture)} tokens/s, decode {generated.DecodeTokensPerSecond.ToString("F1", CultureInfo.InvariantCulture)} tokens/s");
                output.WriteLine($"KV cache allocated: {generated.CacheBytesPerToken} bytes per token (FP32: {plan.LatentCacheElementsPerLayer} latent values × {spec.Layers} layers × 4 B; the plan's BF16 figure is {plan.KvCacheBytesPerToken})");
            }

            return 0;
        });
        return command;
    }

    /// <summary>Pre-trains the declared model on a user's text (with the declared MTP, balancing and precision).</summary>
    private static Command PretrainCommand(ModelSpec spec, TextWriter output)
    {
        var data = new Option<string>("--data") { Description = "A text file, or a folder of them.", Required = true };
        var tokenizerName = new Option<string>("--tokenizer") { Description = "gpt2, or bpe:vocab.json:merges.txt.", DefaultValueFactory = _ => "gpt2" };
        var rowLength = Count("--row-length", "Tokens per training row.", 512, minimum: 2);
        var steps = Count("--steps", "Optimizer steps.", 1000);
        var batch = Count("--batch", "Rows per step.", 8);
        var rate = Number("--lr", "Peak learning rate.", 3e-4, r => r > 0, "positive");
        var outFolder = new Option<string>("--out") { Description = "Run folder (metrics.jsonl, checkpoint/, report.md).", DefaultValueFactory = _ => "runs/pretrain" };
        var resume = new Option<bool>("--resume") { Description = "Continue the run in --out from its checkpoint." };
        var extend = new Option<bool>("--extend") { Description = "With --resume: take --steps although the run was started with other steps (its learning-rate schedule changes)." };
        var seed = Whole("--seed", "Seed of initialisation and data order.", 1);
        var command = new Command("pretrain", "Pre-train the model on text.") { data, tokenizerName, rowLength, steps, batch, rate, outFolder, resume, extend, seed };
        command.SetAction(result =>
        {
            var recipe = new PretrainOptions
            {
                Steps = result.GetValue(steps),
                MicroBatchSize = result.GetValue(batch),
                LearningRate = result.GetValue(rate),
                Seed = result.GetValue(seed),
                RowLength = result.GetValue(rowLength),
            };
            string path = result.GetValue(data)!;
            var (tokenizer, endOfText) = PackedTextData.CreateTokenizer(result.GetValue(tokenizerName)!);
            var text = new PackedTextData(path, tokenizer, recipe.RowLength, spec.VocabularySize, endOfText);
            output.WriteLine($"{path}: {text.Tokens} tokens, {text.Rows} rows of {recipe.RowLength}");
            var run = new PretrainRun(spec, recipe, result.GetValue(outFolder)!, data: text);
            void Progress(StepReport step)
            {
                if (step.Step % 10 == 0 || step.Step == 1) output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"step {step.Step} loss {step.Loss:F4} mtp {step.MtpLoss:F4} lr {step.LearningRate:E2}"));
            }

            var outcome = result.GetValue(resume) ? run.Resume(Progress, extend: result.GetValue(extend)) : run.Start(Progress);
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"loss {outcome.FirstLoss:F4} → {outcome.FinalLoss:F4}; report: {Path.Combine(run.Directory, "report.md")}"));
            return 0;
        });
        return command;
    }

    private static DeepSeekCausalLM Load(string directory, ModelSpec spec, Func<DeepSeekCausalLM> create, out Checkpoint checkpoint)
    {
        checkpoint = Checkpoint.Open(directory);
        try
        {
            checkpoint.EnsureDeclares(spec);
            var model = create();
            try
            {
                checkpoint.LoadInto(model);
            }
            catch
            {
                model.Dispose();
                throw;
            }

            model.eval();
            // Inference computes with the dequantised weights in full precision (DeepSeek's default bf16 GEMM path, FP32 on
            // the CPU); the declared precision policy is a training setting.
            model.Precision.Format = NumericFormat.Fp32;
            return model;
        }
        catch
        {
            checkpoint.Dispose();
            throw;
        }
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
            bool pass = difference <= VerifyTolerance; // false for NaN
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

    /// <summary>A whole-number option refused by name when it is not one.</summary>
    private static Option<long> Whole(string name, string description, long fallback) => new(name)
    {
        Description = description,
        DefaultValueFactory = _ => fallback,
        CustomParser = r => long.TryParse(r.Tokens.Single().Value, NumberStyles.Integer, CultureInfo.InvariantCulture, out long value) ? value
            : Refuse<long>(r, $"{name}: '{r.Tokens.Single().Value}' is not a whole number"),
    };

    /// <summary>A count option (steps, rows, tokens) of at least <paramref name="minimum"/>, refused by name otherwise.</summary>
    private static Option<int> Count(string name, string description, int fallback, int minimum = 1) => new(name)
    {
        Description = description,
        DefaultValueFactory = _ => fallback,
        CustomParser = r =>
        {
            string text = r.Tokens.Single().Value;
            if (!long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out long value)) return Refuse<int>(r, $"{name}: '{text}' is not a whole number");
            return value >= minimum && value <= int.MaxValue ? (int)value : Refuse<int>(r, $"{name} must be a whole number from {minimum} to {int.MaxValue}, not {value}");
        },
    };

    /// <summary>A number option, refused by name when it is not a finite number or <paramref name="valid"/> fails.</summary>
    private static Option<double> Number(string name, string description, double fallback, Func<double, bool> valid, string requirement) => new(name)
    {
        Description = description,
        DefaultValueFactory = _ => fallback,
        CustomParser = r =>
        {
            string text = r.Tokens.Single().Value;
            if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double value) || !double.IsFinite(value)) return Refuse<double>(r, $"{name}: '{text}' is not a number");
            return valid(value) ? value : Refuse<double>(r, $"{name} must be {requirement}, not {text}");
        },
    };

    /// <summary>Comma-separated token ids, refused by option name when one is not a whole number.</summary>
    private static List<long> Ids(ArgumentResult result, string text)
    {
        var ids = new List<long>();
        foreach (string part in text.Split(','))
        {
            if (!long.TryParse(part.Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out long id))
            {
                result.AddError($"{((OptionResult)result.Parent!).Option.Name}: '{part.Trim()}' is not a token id");
                return [];
            }

            ids.Add(id);
        }

        return ids;
    }

    private static T Refuse<T>(ArgumentResult result, string message)
    {
        result.AddError(message);
        return default!;
    }
}
