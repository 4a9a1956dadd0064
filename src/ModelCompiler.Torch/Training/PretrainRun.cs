using System.Globalization;
using System.Text.Json;
using ModelCompiler.Checkpoints;
using ModelCompiler;
using ModelCompiler.HuggingFace;
using ModelCompiler.Planning;
using ModelCompiler.Torch.Checkpoints;
using static TorchSharp.torch;

namespace ModelCompiler.Torch.Training;

/// <summary>A run that stopped on a non-finite loss; the message names the step and the last good checkpoint.</summary>
public sealed class TrainingDivergedException(string message) : Exception(message);

/// <summary>The outcome of a run.</summary>
/// <param name="Steps">Steps taken in total (resumed runs included).</param>
/// <param name="FirstLoss">Loss of the first step of this run (of the whole run when a resume had no step left).</param>
/// <param name="FinalLoss">Loss of the last step.</param>
/// <param name="EvalAccuracy">Greedy exact-match accuracy on the clean held-out problems.</param>
/// <param name="MaxViolation">MaxVio of the last step.</param>
/// <param name="Directory">Where metrics, checkpoint and report are.</param>
/// <param name="Speculation">Self-speculative decoding with the MTP module on held-out prompts.</param>
public sealed record PretrainResult(int Steps, double FirstLoss, double FinalLoss, double EvalAccuracy, double MaxViolation, string Directory, SpeculationReport? Speculation = null);

/// <summary>How the MTP module did as a one-token draft for greedy decoding.</summary>
/// <param name="AcceptanceRate">Accepted drafts / drafts.</param>
/// <param name="SpeedUp">Plain greedy decoding time / self-speculative decoding time, same prompts, one at a time, whole calls.</param>
/// <param name="Identical">Whether every prompt's tokens equalled plain greedy decoding's.</param>
/// <param name="Prompts">Prompts measured.</param>
/// <param name="DecodeSpeedUp">
/// The same ratio over the tokens after the first: the prompt's pass, shared by both but for the MTP module's own pass over
/// the prompt, left out.
/// </param>
public sealed record SpeculationReport(double AcceptanceRate, double SpeedUp, bool Identical, int Prompts, double DecodeSpeedUp);

/// <summary>
/// A pre-training run in a folder (a <see cref="RunFolder"/>: one process at a time, crash-safe checkpoints and metrics):
/// <c>metrics.jsonl</c> (one object per step), <c>checkpoint/</c> (weights with Hugging Face names, config.json, AdamW state,
/// and <c>trainer.json</c> with the step and data position, written last), and at the end an evaluation on clean held-out
/// problems and <c>report.md</c>. A killed run loses at most the steps since its last checkpoint, and <see cref="Resume"/>
/// continues bit-exactly: the data stream is a function of (seed, position).
/// </summary>
public sealed class PretrainRun
{
    /// <summary>Seed of the held-out evaluation stream (never used for training data).</summary>
    public const long EvalSeed = -7;

    private const string TrainerStateName = "trainer.json";
    private static readonly JsonSerializerOptions s_json = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };
    private readonly ModelSpec _spec;
    private readonly PretrainOptions _options;
    private readonly IPretrainData? _data;

    /// <summary>Prepares a run of <paramref name="spec"/> into <paramref name="directory"/>.</summary>
    /// <param name="spec">The model.</param>
    /// <param name="options">The recipe.</param>
    /// <param name="directory">The run folder.</param>
    /// <param name="checkpointEvery">Steps between checkpoints.</param>
    /// <param name="evalProblems">Held-out arithmetic problems evaluated at the end (arithmetic data only).</param>
    /// <param name="data">The data stream; TinySeek's arithmetic problems when null.</param>
    public PretrainRun(ModelSpec spec, PretrainOptions options, string directory, int checkpointEvery = 50, int evalProblems = 200, IPretrainData? data = null)
    {
        _spec = spec;
        _options = options;
        _data = data;
        Directory = directory;
        CheckpointEvery = checkpointEvery;
        EvalProblems = evalProblems;
    }

    /// <summary>The run's folder.</summary>
    public string Directory { get; }

    /// <summary>Steps between checkpoints.</summary>
    public int CheckpointEvery { get; }

    /// <summary>Held-out problems evaluated at the end.</summary>
    public int EvalProblems { get; }

    /// <summary>Where a crash recovery or a dropped metrics line is reported; standard error by default.</summary>
    public Action<string> Notice { get; init; } = message => Console.Error.WriteLine("note: " + message);

    /// <summary>Whether the folder holds a checkpoint, so that <see cref="Resume"/> applies rather than <see cref="Start"/>.</summary>
    public bool HasCheckpoint => System.IO.Directory.Exists(CheckpointDirectory);

    /// <summary>The run's metrics.jsonl: one line per step.</summary>
    public string MetricsPath => Path.Combine(Directory, "metrics.jsonl");

    /// <summary>Whether the folder's checkpoint is at the run's last step: nothing is left to train.</summary>
    /// <exception cref="CheckpointException">The checkpoint's state is corrupted or belongs to another seed or precision.</exception>
    public bool IsFinished => HasCheckpoint && ReadState().Step >= _options.Steps;

    private string CheckpointDirectory => Path.Combine(Directory, "checkpoint");

    /// <summary>One line of <c>metrics.jsonl</c> for a step that took <paramref name="seconds"/> (also written by pipelined runs).</summary>
    public static string MetricsLine(StepReport report, double seconds) => JsonSerializer.Serialize(new
    {
        step = report.Step,
        loss = report.Loss,
        mtp_loss = report.MtpLoss,
        lr = report.LearningRate,
        grad_norm = report.GradientNorm,
        tokens_per_second = report.ProcessedTokens / Math.Max(seconds, 1e-9),
        forward_seconds = report.Timings.Forward,
        backward_seconds = report.Timings.Backward,
        optimizer_seconds = report.Timings.Optimizer,
        moe_dispatch_seconds = report.Timings.MoeDispatch,
        max_vio = report.MaxViolation,
        balance_loss = report.BalanceLoss,
        loads = report.Loads,
    });

    /// <summary>
    /// Starts a new run; refuses a folder that already holds a run (a checkpoint, or metrics of steps not yet checkpointed),
    /// or that another process is using.
    /// </summary>
    public PretrainResult Start(Action<StepReport>? progress = null, CancellationToken cancellation = default)
    {
        using var folder = OpenFolder(create: true);
        if (folder.HasCheckpoint)
        {
            throw new IOException($"{Directory} already holds a run (checkpoint/); pass --resume to continue it or --out for a new folder. Nothing was changed.");
        }

        if (folder.ReadMetrics(Notice).Any(line => line.Length > 0))
        {
            throw new IOException($"{Directory} holds the metrics of a run that stopped before its first checkpoint; pass --resume to start it over or --out for a new folder. Nothing was changed.");
        }

        File.WriteAllText(MetricsPath, string.Empty);
        using var model = new DeepSeekCausalLM(_spec, includeMtp: true, seed: _options.Seed);
        using var trainer = new Pretrainer(model, _options, _data);
        return Train(folder, model, trainer, progress, cancellation);
    }

    /// <summary>
    /// Continues the run in the folder from its checkpoint (a run that stopped before its first checkpoint starts over).
    /// Refuses a corrupted or foreign checkpoint with the reason, and a different <see cref="PretrainOptions.Steps"/> unless
    /// <paramref name="extend"/>: the learning-rate schedule spans the steps, so changing them changes the rates of the steps
    /// still to come.
    /// </summary>
    public PretrainResult Resume(Action<StepReport>? progress = null, CancellationToken cancellation = default, bool extend = false)
    {
        using var folder = OpenFolder(create: false);
        if (!folder.HasCheckpoint)
        {
            Notice($"{Directory} has no checkpoint yet: the run starts over from step 1");
            folder.TruncateMetrics(0, Notice);
            using var fresh = new DeepSeekCausalLM(_spec, includeMtp: true, seed: _options.Seed);
            using var freshTrainer = new Pretrainer(fresh, _options, _data);
            return Train(folder, fresh, freshTrainer, progress, cancellation);
        }

        folder.VerifyCheckpoint(Notice);
        var state = ReadState();
        if (state.Steps > 0 && state.Steps != _options.Steps && !extend)
        {
            throw new CheckpointException($"{Directory} is a run of {state.Steps} steps, not {_options.Steps}: its learning rate follows a schedule over {state.Steps} steps. "
                + $"Resume with --steps {state.Steps}, or add --extend to continue on a schedule over {_options.Steps} steps. Nothing was changed.");
        }

        using var checkpoint = OpenCheckpoint();
        using var model = checkpoint.CreateModel(_spec, includeMtp: true);
        using var trainer = new Pretrainer(model, _options, _data);
        try
        {
            trainer.Optimizer.Load(Path.Combine(CheckpointDirectory, "optimizer.safetensors"));
        }
        catch (CheckpointException e)
        {
            throw new CheckpointException($"{CheckpointDirectory}/optimizer.safetensors cannot be read: {e.Message}", e);
        }

        trainer.Restore(state.Step, state.DataPosition);
        folder.TruncateMetrics(state.Step, Notice);
        return Train(folder, model, trainer, progress, cancellation);
    }

    /// <summary>Resumes the run in the folder when it holds one, starts it otherwise.</summary>
    public PretrainResult Continue(Action<StepReport>? progress = null, CancellationToken cancellation = default)
    {
        bool exists;
        using (var folder = OpenFolder(create: true))
        {
            exists = folder.HasCheckpoint || folder.ReadMetrics(Notice).Any(line => line.Length > 0);
        }

        return exists ? Resume(progress, cancellation) : Start(progress, cancellation);
    }

    private RunFolder OpenFolder(bool create) => RunFolder.Open(Directory, create, Notice);

    private Checkpoint OpenCheckpoint()
    {
        try
        {
            return Checkpoint.Open(CheckpointDirectory);
        }
        catch (ConfigException e)
        {
            throw new CheckpointException($"{CheckpointDirectory}: {e.Message}", e);
        }
    }

    private PretrainResult Train(RunFolder folder, DeepSeekCausalLM model, Pretrainer trainer, Action<StepReport>? progress, CancellationToken cancellation)
    {
        double? firstLoss = null;
        StepReport? last = null;
        int lastCheckpoint = trainer.Step;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        using (var metrics = folder.AppendMetrics())
        {
            int stop = Math.Min(_options.Steps, _options.StopAfter ?? _options.Steps);
            while (trainer.Step < stop)
            {
                cancellation.ThrowIfCancellationRequested();
                var started = clock.Elapsed;
                var report = trainer.TrainStep();
                double seconds = (clock.Elapsed - started).TotalSeconds;
                if (!double.IsFinite(report.Loss) || !double.IsFinite(report.MtpLoss) || !double.IsFinite(report.GradientNorm))
                {
                    throw new TrainingDivergedException($"step {report.Step}: the loss is not finite (loss {report.Loss}, MTP loss {report.MtpLoss}, gradient norm {report.GradientNorm}); "
                        + (lastCheckpoint > 0 ? $"the last good checkpoint is step {lastCheckpoint} in {CheckpointDirectory}" : "no checkpoint was written yet"));
                }

                firstLoss ??= report.Loss;
                last = report;
                metrics.WriteLine(MetricsLine(report, seconds));
                metrics.Flush();
                progress?.Invoke(report);
                if (report.Step % CheckpointEvery == 0 || report.Step == stop)
                {
                    SaveCheckpoint(folder, model, trainer);
                    lastCheckpoint = report.Step;
                }
            }
        }

        // The arithmetic evaluation applies to the arithmetic corpus only; a user's text gets its losses and charts.
        bool arithmetic = _data is null or ArithmeticData;
        var evalProblems = Enumerable.Range(0, arithmetic ? EvalProblems : 0).Select(i => ArithmeticTasks.Draw(EvalSeed, i, 0)).ToList();
        double accuracy = arithmetic ? Evaluate(model, evalProblems) : double.NaN;
        var speculation = arithmetic && model.MtpModules.Count > 0 ? MeasureSpeculation(model, evalProblems.Take(50).ToList()) : null;
        // A resumed run with no step left reports the run's own first and last steps from its metrics.
        var (runFirst, runLast, runMaxViolation) = firstLoss is null ? RecordedLosses() : (double.NaN, double.NaN, double.NaN);
        var result = new PretrainResult(trainer.Step, firstLoss ?? runFirst, last?.Loss ?? runLast, accuracy, last?.MaxViolation ?? runMaxViolation, Directory, speculation);
        WriteReport(result);
        return result;
    }

    /// <summary>Greedy exact-match accuracy: the completion up to the first end token must be the correct answer and the end.</summary>
    public static double Evaluate(DeepSeekCausalLM model, IReadOnlyList<Problem> problems, int batch = 100)
    {
        model.eval();
        int correct = 0;
        for (int start = 0; start < problems.Count; start += batch)
        {
            var slice = problems.Skip(start).Take(batch).ToList();
            var prompts = slice.Select(p => (IReadOnlyList<long>)ArithmeticTasks.Encode(p.Prompt)).ToList();
            var result = Generation.Generate(model, prompts, maxNewTokens: 9, stopTokens: [ArithmeticTasks.End]);
            correct += slice.Where((p, i) => ArithmeticTasks.IsCorrect(p, result.Tokens[i])).Count();
        }

        return (double)correct / problems.Count;
    }

    /// <summary>
    /// Decodes each prompt greedily, one at a time, plainly and with the MTP module's drafts; the second pass must give the
    /// same tokens. Each is run once untimed first so that first-call costs stay out of the ratio, then three times in turn.
    /// </summary>
    public static SpeculationReport MeasureSpeculation(DeepSeekCausalLM model, IReadOnlyList<Problem> problems, int maxNewTokens = 9)
    {
        model.eval();
        var prompts = problems.Select(p => (IReadOnlyList<long>)ArithmeticTasks.Encode(p.Prompt)).ToList();
        long[] stop = [ArithmeticTasks.End];
        // Training leaves thousands of tensors for the finalizer thread, which would free them beside the timed loops.
        GC.Collect();
        GC.WaitForPendingFinalizers();
        Generation.Generate(model, [prompts[0]], maxNewTokens, stopTokens: stop);
        SpeculativeDecoding.Generate(model, prompts[0], maxNewTokens, stop);
        List<GenerationResult> plain = [];
        List<SpeculativeResult> speculative = [];
        double plainSeconds = double.MaxValue, speculativeSeconds = double.MaxValue, plainDecode = double.MaxValue, speculativeDecode = double.MaxValue;
        for (int round = 0; round < 5; round++) // the fastest of five alternating rounds: less sensitive to what else the machine does
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            plain = prompts.Select(p => Generation.Generate(model, [p], maxNewTokens, stopTokens: stop)).ToList();
            plainSeconds = Math.Min(plainSeconds, clock.Elapsed.TotalSeconds);
            clock.Restart();
            speculative = prompts.Select(p => SpeculativeDecoding.Generate(model, p, maxNewTokens, stop)).ToList();
            speculativeSeconds = Math.Min(speculativeSeconds, clock.Elapsed.TotalSeconds);
            plainDecode = Math.Min(plainDecode, plain.Sum(p => p.DecodeSeconds));
            speculativeDecode = Math.Min(speculativeDecode, speculative.Sum(s => s.DecodeSeconds));
        }

        bool identical = plain.Zip(speculative).All(pair => pair.First.Tokens[0].SequenceEqual(pair.Second.Tokens));
        double acceptance = (double)speculative.Sum(s => s.Accepted) / Math.Max(1, speculative.Sum(s => s.Drafts));
        return new SpeculationReport(acceptance, plainSeconds / speculativeSeconds, identical, prompts.Count, plainDecode / Math.Max(speculativeDecode, 1e-9));
    }

    private void SaveCheckpoint(RunFolder folder, DeepSeekCausalLM model, Pretrainer trainer) => folder.SaveCheckpoint(temp =>
    {
        Checkpoint.Save(model, temp, HuggingFaceConfig.ToJson(_spec));
        trainer.Optimizer.Save(Path.Combine(temp, "optimizer.safetensors"));
        var state = new TrainerState(trainer.Step, trainer.DataPosition, _options.Seed, _options.Steps, model.Precision.Format);
        AtomicFile.WriteAllText(Path.Combine(temp, TrainerStateName), JsonSerializer.Serialize(state, s_json));
    });

    private TrainerState ReadState()
    {
        string path = Path.Combine(CheckpointDirectory, TrainerStateName);
        if (!File.Exists(path)) throw new CheckpointException($"{Directory} has no checkpoint to resume ({path} is missing)");
        try
        {
            var state = JsonSerializer.Deserialize<TrainerState>(File.ReadAllText(path), s_json) ?? throw new JsonException("empty");
            if (state.Step < 0 || state.DataPosition < 0) throw new JsonException($"negative step {state.Step} or data position {state.DataPosition}");
            if (state.Seed != _options.Seed) throw new CheckpointException($"{path}: the run was seeded with {state.Seed}, not {_options.Seed}; resume with --seed {state.Seed}");
            var precision = _options.Precision ?? _spec.Precision.Compute;
            if (state.Precision != precision) throw new CheckpointException($"{path}: the run computes in {state.Precision}, not {precision}; resume with --precision {state.Precision.ToString().ToLowerInvariant()}");
            return state;
        }
        catch (JsonException e)
        {
            throw new CheckpointException($"{path} is corrupted: {e.Message}", e);
        }
    }

    /// <summary>Loss of the first and the last step recorded in metrics.jsonl, and the last step's MaxVio (NaN when none is).</summary>
    private (double First, double Last, double MaxViolation) RecordedLosses()
    {
        var lines = RunFolder.ReadMetricsLines(MetricsPath, Notice).Where(line => line.Length > 0).ToList();
        if (lines.Count == 0) return (double.NaN, double.NaN, double.NaN);
        using var first = JsonDocument.Parse(lines[0]);
        using var final = JsonDocument.Parse(lines[^1]);
        return (first.RootElement.GetProperty("loss").GetDouble(), final.RootElement.GetProperty("loss").GetDouble(), final.RootElement.GetProperty("max_vio").GetDouble());
    }

    private void WriteReport(PretrainResult result)
    {
        var rows = new List<string>
        {
            $"| steps | {result.Steps} |",
            string.Create(CultureInfo.InvariantCulture, $"| loss, first step of this run → last | {result.FirstLoss:F4} → {result.FinalLoss:F4} ({result.FinalLoss / result.FirstLoss:P0} of the start) |"),
            string.Create(CultureInfo.InvariantCulture, $"| MaxVio, last step | {result.MaxViolation:F3} |"),
            $"| GEMM input precision | {_options.Precision ?? _spec.Precision.Compute} |",
        };
        if (!double.IsNaN(result.EvalAccuracy))
        {
            rows.Add(string.Create(CultureInfo.InvariantCulture, $"| greedy accuracy on {EvalProblems} clean held-out problems | {result.EvalAccuracy:P1} |"));
            rows.Add(string.Create(CultureInfo.InvariantCulture, $"| training answers systematically wrong | {_options.Noise:P0} |"));
        }

        if (result.Speculation is { } s)
        {
            rows.Add(string.Create(CultureInfo.InvariantCulture,
                $"| MTP as a draft for greedy decoding ({s.Prompts} prompts) | acceptance {s.AcceptanceRate:P1}, speed-up {s.DecodeSpeedUp:F2}× after the first token, {s.SpeedUp:F2}× with the prompt, tokens identical to greedy: {(s.Identical ? "yes" : "NO")} |"));
        }

        string text = "# Pre-training report\n\n| | |\n|---|---|\n" + string.Join("\n", rows) + "\n\n"
            + "![loss](loss.png)\n![MaxVio](max_vio.png)\n![learning rate](lr.png)\n\n"
            + "Metrics per step: metrics.jsonl. Checkpoint: checkpoint/ (Hugging Face names, loadable by Checkpoint.Open).\n";
        Charts.Draw(MetricsPath, Directory,
        [
            ("loss.png", "Loss", ["loss", "mtp_loss"]),
            ("max_vio.png", "MaxVio (expert load imbalance)", ["max_vio"]),
            ("lr.png", "Learning rate", ["lr"]),
        ]);
        AtomicFile.WriteAllText(Path.Combine(Directory, "report.md"), text);
    }

    private sealed record TrainerState(int Step, long DataPosition, long Seed, int Steps, NumericFormat Precision);
}
