using System.CommandLine;
using System.Globalization;
using ModelCompiler.Checkpoints;
using ModelCompiler;
using ModelCompiler.HuggingFace;
using ModelCompiler.Planning;
using ModelCompiler.Torch.Checkpoints;
using ModelCompiler.Torch.Rl;
using ModelCompiler.Torch.Training;
using Samples.TinySeek;
using Spectre.Console;

// TinySeek: `plan` prints what the generator planned at build time; `pretrain` trains it on noisy arithmetic.
var root = new RootCommand("TinySeek: every DeepSeek-V3 idea at a size that trains on two CPU cores.");

var plan = new Command("plan", "Print the plan the generator computed at build time.");
plan.SetAction(_ =>
{
    var runtime = ModelPlanner.PlanOrThrow(TinySeek.Spec);
    Console.Write(PlanReport.Format(TinySeek.Spec, runtime));
    bool agrees = runtime.TotalParameters == TinySeek.Plan.TotalParameters && runtime.KvCacheBytesPerToken == TinySeek.Plan.KvCacheBytesPerToken;
    Console.WriteLine($"build-time plan == run-time plan: {(agrees ? "yes" : "NO")}");
    return agrees ? 0 : 1;
});
root.Subcommands.Add(plan);

var defaults = new PretrainOptions();
var steps = new Option<int>("--steps") { Description = "Optimizer steps.", DefaultValueFactory = _ => defaults.Steps };
var output = new Option<string>("--out") { Description = "Run folder (metrics.jsonl, checkpoint/, report.md).", DefaultValueFactory = _ => "runs/pretrain" };
var resume = new Option<bool>("--resume") { Description = "Continue the run in --out from its checkpoint." };
var extend = new Option<bool>("--extend") { Description = "With --resume: take --steps although the run was started with other steps (its learning-rate schedule changes)." };
var seed = new Option<long>("--seed") { Description = "Seed of initialisation and data.", DefaultValueFactory = _ => defaults.Seed };
var gamma = new Option<double?>("--bias-update-speed") { Description = $"γ of auxiliary-loss-free balancing (declared: {TinySeek.Config.BiasUpdateSpeed})." };
var learningRate = new Option<double>("--learning-rate") { Description = "Peak learning rate (after warm-up; cosine decay to a tenth).", DefaultValueFactory = _ => defaults.LearningRate };
var noise = new Option<double>("--noise") { Description = "Share of training answers that are systematically wrong.", DefaultValueFactory = _ => defaults.Noise };
var every = new Option<int>("--checkpoint-every") { Description = "Steps between checkpoints.", DefaultValueFactory = _ => 50 };
var precision = new Option<string?>("--precision") { Description = "GEMM input precision: fp32, bf16 or fp8 (E4M3, 1×128 / 128×128 scaling); default: the declaration's." };
precision.AcceptOnlyFromAmong("fp32", "bf16", "fp8");
var stopAfter = new Option<int?>("--stop-after") { Description = "Stop after this step (checkpointed); --resume continues, bit-exactly." };
var pipeline = new Option<string?>("--pipeline") { Description = "Run the step across MPI ranks (under mpirun): 1f1b, zbh1, dualpipe or dualpipev." };
pipeline.AcceptOnlyFromAmong([.. ModelCompiler.Pipeline.Schedules.Names]);
var microBatches = new Option<int>("--micro-batches") { Description = "Pipeline micro-batches per step (with --pipeline).", DefaultValueFactory = _ => 4 };
var expertParallel = new Option<int?>("--expert-parallel") { Description = "Spread the routed experts over this many MPI ranks (under mpirun), each with its share of the rows; with --pipeline, inside each stage (mpirun -np stages × this)." };
var pretrain = new Command("pretrain", "Pre-train TinySeek on generated arithmetic with MTP and auxiliary-loss-free balancing.") { steps, output, resume, extend, seed, gamma, learningRate, noise, every, stopAfter, precision, pipeline, microBatches, expertParallel };
pretrain.Validators.Add(result =>
{
    if (result.GetValue(expertParallel) is { } ranks && (ranks < 1 || TinySeek.Config.RoutedExperts % ranks != 0))
    {
        result.AddError($"--expert-parallel {ranks}: TinySeek's {TinySeek.Config.RoutedExperts} routed experts must divide over the ranks");
    }
});
pretrain.SetAction(result =>
{
    var distributed = defaults with
    {
        Steps = result.GetValue(steps),
        Seed = result.GetValue(seed),
        BiasUpdateSpeed = result.GetValue(gamma),
        LearningRate = result.GetValue(learningRate),
        Noise = result.GetValue(noise),
    };
    if (result.GetValue(pipeline) is { } schedule)
    {
        return DistributedPretraining.Pipeline(schedule, result.GetValue(microBatches), result.GetValue(expertParallel) ?? 1, distributed, result.GetValue(output)!);
    }

    if (result.GetValue(expertParallel) is { } ranks) return DistributedPretraining.ExpertParallel(ranks, distributed, result.GetValue(output)!);

    var options = defaults with
    {
        Steps = result.GetValue(steps),
        Seed = result.GetValue(seed),
        BiasUpdateSpeed = result.GetValue(gamma),
        LearningRate = result.GetValue(learningRate),
        Noise = result.GetValue(noise),
        StopAfter = result.GetValue(stopAfter),
        Precision = result.GetValue(precision) switch { "fp32" => NumericFormat.Fp32, "bf16" => NumericFormat.Bf16, "fp8" => NumericFormat.Fp8E4M3, _ => null },
    };
    var run = TinySeek.Training.CreateRun(options, result.GetValue(output)!, result.GetValue(every));
    try
    {
        PretrainResult? outcome = null;
        AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
            .Start(context =>
            {
                var task = context.AddTask("pre-training", maxValue: options.Steps);
                void Report(StepReport step)
                {
                    task.Value = step.Step;
                    task.Description = string.Create(CultureInfo.InvariantCulture, $"step {step.Step} loss {step.Loss:F3} mtp {step.MtpLoss:F3} maxvio {step.MaxViolation:F2}");
                }

                outcome = result.GetValue(resume) ? run.Resume(Report, extend: result.GetValue(extend)) : run.Start(Report);
            });
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"loss {outcome!.FirstLoss:F3} → {outcome.FinalLoss:F3}; greedy accuracy on clean held-out problems {outcome.EvalAccuracy:P1}; MaxVio {outcome.MaxViolation:F3}"));
        if (outcome.Speculation is { } speculation)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"MTP as a one-token draft: {speculation.AcceptanceRate:P1} accepted, greedy decoding {speculation.DecodeSpeedUp:F2}× as fast after the first token ({speculation.SpeedUp:F2}× with the prompt), same tokens: {(speculation.Identical ? "yes" : "NO")}"));
        }

        Console.WriteLine($"report: {Path.Combine(run.Directory, "report.md")}");
        return 0;
    }
    catch (Exception e) when (e is CheckpointException or ConfigException or TrainingDivergedException or IOException or InvalidDataException)
    {
        return Failed(e.Message);
    }
});
root.Subcommands.Add(pretrain);

var from = new Option<string>("--from") { Description = "A pre-training run folder (its checkpoint/ is the starting policy).", Required = true };
var grpoSteps = new Option<int>("--steps") { Description = "GRPO steps.", DefaultValueFactory = _ => new GrpoOptions().Steps };
var grpoOut = new Option<string>("--out") { Description = "Run folder.", DefaultValueFactory = _ => "runs/grpo" };
var preset = new Option<string?>("--preset") { Description = "deepseekmath, r1, dapo or dr_grpo (default: the declared [Grpo])." };
var grpoSeed = new Option<long>("--seed") { Description = "Seed of prompts and sampling.", DefaultValueFactory = _ => 1 };
var prompts = new Option<int>("--prompts") { Description = "Prompts per step (each sampled G times).", DefaultValueFactory = _ => new GrpoOptions().PromptsPerStep };
var grpoLr = new Option<double>("--lr") { Description = "Learning rate.", DefaultValueFactory = _ => new GrpoOptions().LearningRate };
var grpo = new Command("grpo", "Reinforcement learning with verifiable rewards (GRPO) from a pre-trained TinySeek.") { from, grpoSteps, grpoOut, preset, grpoSeed, prompts, grpoLr };
grpo.SetAction(result =>
{
    try
    {
        var options = new GrpoOptions { Steps = result.GetValue(grpoSteps), Seed = result.GetValue(grpoSeed), PromptsPerStep = result.GetValue(prompts), LearningRate = result.GetValue(grpoLr) };
        var run = TinySeek.Grpo.CreateRun(options, result.GetValue(grpoOut)!, result.GetValue(preset));
        GrpoResult? outcome = null;
        AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
            .Start(context =>
            {
                var task = context.AddTask("GRPO", maxValue: options.Steps);
                void Evaluated(GrpoEvaluation e, int step) => AnsiConsole.MarkupLineInterpolated(
                    $"step {step,3}: greedy accuracy {e.GreedyAccuracy.ToString("P1", CultureInfo.InvariantCulture)}, sampled {e.SampledAccuracy.ToString("P1", CultureInfo.InvariantCulture)}, pass@{TinySeek.Grpo.GroupSize} {e.PassAtG.ToString("P1", CultureInfo.InvariantCulture)}");
                void Progress(GrpoStepReport r)
                {
                    foreach (string warning in r.Warnings) AnsiConsole.MarkupLineInterpolated($"[yellow]warning (step {r.Step}): {warning}[/]");
                    task.Value = r.Step;
                    task.Description = string.Create(CultureInfo.InvariantCulture,
                        $"step {r.Step} reward {r.RewardMean:F3} ± {r.RewardStd:F3} zero-spread {r.FracRewardZeroStd:P0} KL {r.KlMean:F4} clip {r.ClipRatioLow + r.ClipRatioHigh:P1}");
                }

                outcome = run.Run(Path.Combine(result.GetValue(from)!, "checkpoint"), Progress, Evaluated);
            });
        if (outcome!.NoSignal is { } why)
        {
            return Failed(why);
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"held-out greedy accuracy {outcome.Before.GreedyAccuracy:P1} → {outcome.After.GreedyAccuracy:P1} in {outcome.Steps} GRPO steps"));
        Console.WriteLine($"report: {Path.Combine(run.Directory, "report.md")}");
        return 0;
    }
    catch (Exception e) when (e is CheckpointException or ConfigException or IOException or ArgumentException)
    {
        return Failed(e.Message);
    }
});
root.Subcommands.Add(grpo);

var precisionFrom = new Option<string>("--from") { Description = "A pre-training run folder.", Required = true };
var precisionProblems = new Option<int>("--problems") { Description = "Problems to score (drawn from the training distribution, seed 12345).", DefaultValueFactory = _ => 2048 };
var precisionNoise = new Option<double>("--noise") { Description = "Share of systematically wrong answers among them.", DefaultValueFactory = _ => defaults.Noise };
var comparePrecision = new Command("precision", "The loss of a checkpoint's weights computed in FP32, BF16 and FP8: the precision policy's own effect.") { precisionFrom, precisionProblems, precisionNoise };
comparePrecision.SetAction(result =>
{
    try
    {
        using var model = PrecisionComparison.Load(TinySeek.Spec, result.GetValue(precisionFrom)!);
        var problems = Enumerable.Range(0, result.GetValue(precisionProblems)).Select(i => ArithmeticTasks.Draw(12345, i, result.GetValue(precisionNoise))).ToList();
        var losses = PrecisionComparison.Losses(model, problems, new PretrainOptions().RowLength);
        double fp32 = losses[0].Loss;
        foreach (var (format, loss) in losses)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{format,-8} loss {loss:F5} ({(loss / fp32) - 1:+0.00%;-0.00%;0.00%} against FP32)"));
        }

        return 0;
    }
    catch (Exception e) when (e is CheckpointException or ConfigException or IOException or ArgumentException)
    {
        return Failed(e.Message);
    }
});
root.Subcommands.Add(comparePrecision);

var compareSteps = new Option<int>("--steps") { Description = "Optimizer steps of each run.", DefaultValueFactory = _ => defaults.Steps };
var compareSeed = new Option<long>("--seed") { Description = "Seed of every run.", DefaultValueFactory = _ => defaults.Seed };
var compareRate = new Option<double>("--learning-rate") { Description = "Peak learning rate of every run.", DefaultValueFactory = _ => defaults.LearningRate };
var compareFormat = new Option<string>("--precision") { Description = "The precision compared with FP32: bf16 or fp8.", DefaultValueFactory = _ => "fp8" };
compareFormat.AcceptOnlyFromAmong("bf16", "fp8");
var compareWindow = new Option<int>("--window") { Description = "Steps per row of the table.", DefaultValueFactory = _ => 100 };
var compareOut = new Option<string>("--out") { Description = "Folder: each run's folder (fp32/, fp8/ or bf16/, and the FP32 run on another number of threads), report.md, loss.png.", DefaultValueFactory = _ => "runs/compare" };
var compare = new Command("compare", "Pre-train the same seed in FP32, in BF16 or FP8, and in FP32 on another number of threads (the yardstick: only the order of sums differs); report every loss curve.")
    { compareSteps, compareSeed, compareRate, compareFormat, compareWindow, compareOut };
compare.SetAction(result =>
{
    string folder = result.GetValue(compareOut)!, other = result.GetValue(compareFormat)!;
    var options = defaults with { Steps = result.GetValue(compareSteps), Seed = result.GetValue(compareSeed), LearningRate = result.GetValue(compareRate) };
    int threads = TorchSharp.torch.get_num_threads(), reordered = threads == 1 ? 2 : 1;
    (string Folder, string Label, NumericFormat Format, int Threads)[] runs =
    [
        ("fp32", "FP32", NumericFormat.Fp32, threads),
        (other, other.ToUpperInvariant(), other == "bf16" ? NumericFormat.Bf16 : NumericFormat.Fp8E4M3, threads),
        ($"fp32-{reordered}-thread", $"FP32, {Threads(reordered)}", NumericFormat.Fp32, reordered),
    ];
    string command = string.Create(CultureInfo.InvariantCulture,
        $"dotnet run --project samples/TinySeek -c Release -- compare --steps {options.Steps} --seed {options.Seed} --learning-rate {options.LearningRate} --precision {other}");
    try
    {
        // The folder remembers the options it was made with, so that resuming never mixes two comparisons' runs.
        string made = Path.Combine(folder, "command.txt");
        if (File.Exists(made) && File.ReadAllText(made).Trim() != command)
        {
            throw new IOException($"{folder} holds the runs of `{File.ReadAllText(made).Trim()}`; give another --out, or the same options to continue it. Nothing was changed.");
        }

        Directory.CreateDirectory(folder);
        AtomicFile.WriteAllText(made, command + "\n");
        var metrics = new List<(string Label, string Metrics)>();
        AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
            .Start(context =>
            {
                foreach (var (name, label, format, count) in runs)
                {
                    var run = TinySeek.Training.CreateRun(options with { Precision = format }, Path.Combine(folder, name), 50);
                    var task = context.AddTask(name, maxValue: options.Steps);
                    void Report(StepReport step)
                    {
                        task.Value = step.Step;
                        task.Description = string.Create(CultureInfo.InvariantCulture, $"{name}: step {step.Step} loss {step.Loss:F3}");
                    }

                    // A run already in the folder is resumed, a finished one taken as it is: an interrupted comparison loses at most 50 steps.
                    if (!run.IsFinished)
                    {
                        TorchSharp.torch.set_num_threads(count);
                        try
                        {
                            run.Continue(Report);
                        }
                        finally
                        {
                            TorchSharp.torch.set_num_threads(threads);
                        }
                    }

                    task.Value = options.Steps;
                    metrics.Add((label, run.MetricsPath));
                }
            });
        string note = string.Create(CultureInfo.InvariantCulture,
            $"{metrics[0].Label} and {metrics[1].Label} ran on {Threads(threads)}; {metrics[2].Label} is the FP32 run again on {Threads(reordered)}, which changes nothing but the order of some sums. Its difference is how far this model's curve moves with no change of format: the yardstick for {metrics[1].Label}'s.");
        var windows = CurveComparison.WriteReport(folder, metrics[0], metrics[1..], result.GetValue(compareWindow), command, note);
        for (int row = 0; row < windows[0].Count; row++)
        {
            var (format, yardstick) = (windows[0][row], windows[1][row]);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"steps {format.First,5}–{format.Last,-5} FP32 {format.Baseline:F4}  {metrics[1].Label} {format.Other:F4} {format.Difference,7:+0.0%;-0.0%;0.0%}  {metrics[2].Label} {yardstick.Other:F4} {yardstick.Difference,7:+0.0%;-0.0%;0.0%}"));
        }

        Console.WriteLine($"report: {Path.Combine(folder, "report.md")}");
        return 0;
    }
    catch (Exception e) when (e is CheckpointException or TrainingDivergedException or IOException or InvalidDataException)
    {
        return Failed(e.Message);
    }
});
root.Subcommands.Add(compare);

var r1From = new Option<string>("--from") { Description = "A pre-training run folder.", Required = true };
var rounds = new Option<int>("--rounds") { Description = "Rounds of rejection sampling + SFT, then GRPO.", DefaultValueFactory = _ => 2 };
var rlSteps = new Option<int>("--rl-steps") { Description = "GRPO steps per round.", DefaultValueFactory = _ => 20 };
var r1Out = new Option<string>("--out") { Description = "Run folder.", DefaultValueFactory = _ => "runs/r1" };
var r1 = new Command("r1", "DeepSeek-R1's alternation: rejection sampling and SFT on the correct samples, then GRPO, for several rounds.") { r1From, rounds, rlSteps, r1Out };
r1.SetAction(result =>
{
    try
    {
        var recipe = TinySeek.Grpo.CreateRecipe(new GrpoOptions { Steps = result.GetValue(rlSteps) });
        int roundCount = result.GetValue(rounds);
        AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn())
            .Start(context =>
            {
                var task = context.AddTask("R1 rounds", maxValue: roundCount);
                recipe.Run(Path.Combine(result.GetValue(r1From)!, "checkpoint"), result.GetValue(r1Out)!, roundCount, progress: phase =>
                {
                    AnsiConsole.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"round {phase.Round}, {phase.Phase}: greedy {phase.Evaluation.GreedyAccuracy:P1}, sampled {phase.Evaluation.SampledAccuracy:P1}, pass@G {phase.Evaluation.PassAtG:P1} ({phase.Detail})"));
                    task.Value = Math.Max(task.Value, phase.Round - 1);
                    task.Description = $"round {phase.Round}: {phase.Phase}";
                });
                task.Value = roundCount;
            });
        Console.WriteLine($"report: {Path.Combine(result.GetValue(r1Out)!, "report.md")}");
        return 0;
    }
    catch (Exception e) when (e is CheckpointException or ConfigException or IOException or ArgumentException)
    {
        return Failed(e.Message);
    }
});
root.Subcommands.Add(r1);

// Counts (steps, rounds, problems, …) below 1, rates not above 0 and shares outside [0, 1] are refused before anything
// runs, naming the option. The validators read the option's own token: a token that is not a number at all is left to the
// parser, which names it (GetValueOrDefault would throw on it).
foreach (var count in new[] { steps, every, microBatches, grpoSteps, prompts, precisionProblems, compareSteps, compareWindow, rounds, rlSteps })
{
    count.Validators.Add(r => { if (Given(r, out int value) && value < 1) r.AddError($"{r.Option.Name} must be at least 1."); });
}

stopAfter.Validators.Add(r => { if (Given(r, out int value) && value < 1) r.AddError($"{r.Option.Name} must be at least 1."); });

foreach (var rate in new[] { learningRate, compareRate, grpoLr })
{
    rate.Validators.Add(r => { if (Given(r, out double value) && !(value > 0)) r.AddError($"{r.Option.Name} must be a positive number."); });
}

foreach (var share in new[] { noise, precisionNoise })
{
    share.Validators.Add(r => { if (Given(r, out double value) && value is not (>= 0 and <= 1)) r.AddError($"{r.Option.Name} is a share: from 0 to 1."); });
}

root.SetAction(_ => plan.Parse([]).Invoke());
return root.Parse(args).Invoke();

// The value given on the command line for an option, when it was given and parses.
static bool Given<T>(System.CommandLine.Parsing.OptionResult result, out T value)
    where T : ISpanParsable<T>
{
    value = default!;
    return result.Tokens.Count == 1 && T.TryParse(result.Tokens[0].Value, CultureInfo.InvariantCulture, out value!);
}

static string Threads(int count) => count == 1 ? "1 thread" : $"{count} threads";

// A command that cannot go on: the reason on stderr, exit code 1.
static int Failed(string reason)
{
    Console.Error.WriteLine("error: " + reason);
    return 1;
}
