using System.CommandLine;
using System.Globalization;
using ModelCompiler;
using ModelCompiler.Planning;
using ModelCompiler.Torch.Checkpoints;
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
var seed = new Option<long>("--seed") { Description = "Seed of initialisation and data.", DefaultValueFactory = _ => defaults.Seed };
var gamma = new Option<double?>("--bias-update-speed") { Description = $"γ of auxiliary-loss-free balancing (declared: {TinySeek.Config.BiasUpdateSpeed})." };
var noise = new Option<double>("--noise") { Description = "Share of training answers that are systematically wrong.", DefaultValueFactory = _ => defaults.Noise };
var every = new Option<int>("--checkpoint-every") { Description = "Steps between checkpoints.", DefaultValueFactory = _ => 50 };
var precision = new Option<string?>("--precision") { Description = "GEMM input precision: fp32, bf16 or fp8 (E4M3, 1×128 / 128×128 scaling); default: the declaration's." };
precision.AcceptOnlyFromAmong("fp32", "bf16", "fp8");
var stopAfter = new Option<int?>("--stop-after") { Description = "Stop after this step (checkpointed); --resume continues, bit-exactly." };
var pretrain = new Command("pretrain", "Pre-train TinySeek on generated arithmetic with MTP and auxiliary-loss-free balancing.") { steps, output, resume, seed, gamma, noise, every, stopAfter, precision };
pretrain.SetAction(result =>
{
    var options = defaults with
    {
        Steps = result.GetValue(steps),
        Seed = result.GetValue(seed),
        BiasUpdateSpeed = result.GetValue(gamma),
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

                outcome = result.GetValue(resume) ? run.Resume(Report) : run.Start(Report);
            });
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"loss {outcome!.FirstLoss:F3} → {outcome.FinalLoss:F3}; greedy accuracy on clean held-out problems {outcome.EvalAccuracy:P1}; MaxVio {outcome.MaxViolation:F3}"));
        if (outcome.Speculation is { } speculation)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"MTP as a one-token draft: {speculation.AcceptanceRate:P1} accepted, {speculation.SpeedUp:F2}× faster greedy decoding, same tokens: {(speculation.Identical ? "yes" : "NO")}"));
        }

        Console.WriteLine($"report: {Path.Combine(run.Directory, "report.md")}");
        return 0;
    }
    catch (Exception e) when (e is CheckpointException or TrainingDivergedException or IOException)
    {
        Console.Error.WriteLine("error: " + e.Message);
        return 1;
    }
});
root.Subcommands.Add(pretrain);
root.SetAction(_ => plan.Parse([]).Invoke());
return root.Parse(args).Invoke();
