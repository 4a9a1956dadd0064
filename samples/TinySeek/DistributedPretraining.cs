using System.Globalization;
using ModelCompiler;
using ModelCompiler.Distributed;
using ModelCompiler.Pipeline;
using ModelCompiler.Torch;
using ModelCompiler.Torch.Parallel;
using ModelCompiler.Torch.Training;

namespace Samples.TinySeek;

/// <summary>
/// The pre-training step across MPI ranks: <c>mpirun -np 2 dotnet TinySeek.dll pretrain --pipeline dualpipe</c> cuts the layers
/// into pipeline stages, <c>mpirun -np 2 dotnet TinySeek.dll pretrain --expert-parallel 2</c> spreads the routed experts over
/// the ranks (each its share of the rows), and both together (<c>-np 4 … --expert-parallel 2 --pipeline dualpipe</c>) spread
/// each stage's experts over a group of ranks. Every rank computes the same report; rank 0 prints it and writes
/// <c>metrics.jsonl</c> in the run folder. A rank that fails ends the job, naming itself. Checkpoints and resume are those of
/// the single-process run only, for now.
/// </summary>
internal static class DistributedPretraining
{
    public static int Pipeline(string schedule, int microBatches, int expertRanks, PretrainOptions options, string directory)
    {
        var kind = Schedules.Parse(schedule);
        if (!UnderMpirun($"--pipeline {schedule}", expected: null)) return 2;
        using var world = Mpi.Initialize();
        return world.RunOrAbort(() =>
        {
            using var model = new DeepSeekCausalLM(TinySeek.Spec, includeMtp: true, seed: options.Seed);
            // With experts spread too, the world is a grid: pipelines of stage ranks × expert groups of consecutive ranks.
            var (pipeline, experts) = expertRanks > 1 ? ExpertParallelGroup.SplitGrid(world, expertRanks, TinySeek.Spec.Moe!.RoutedExperts) : (world, null);
            using var ownedGroup = experts;
            using var trainer = new PipelineTrainer(model, options, pipeline, kind, microBatches, expertParallel: experts);
            string layout = $"{schedule} over {pipeline.Size} ranks ({world.LibraryVersion()}), {microBatches} micro-batches; stages hold layers "
                + string.Join(", ", trainer.StageLayers.Select(l => $"[{l.First}, {l.End})"))
                + (experts is null ? string.Empty : $"; each stage's routed experts over {experts.Size} ranks ({world.Size} ranks in all)");
            return Train(world, () => trainer.Step, trainer.TrainStep, options.Steps, layout, directory);
        });
    }

    public static int ExpertParallel(int ranks, PretrainOptions options, string directory)
    {
        if (!UnderMpirun($"--expert-parallel {ranks}", expected: ranks)) return 2;
        using var mpi = Mpi.Initialize();
        return mpi.RunOrAbort(() =>
        {
            using var model = new DeepSeekCausalLM(TinySeek.Spec, includeMtp: true, seed: options.Seed);
            using var group = new ExpertParallelGroup(mpi, TinySeek.Spec.Moe!.RoutedExperts);
            using var trainer = new Pretrainer(model, options, expertParallel: group);
            string layout = $"routed experts over {ranks} ranks ({mpi.LibraryVersion()}), {group.ExpertsPerRank} per rank, "
                + $"{options.MicroBatchSize / ranks} of {options.MicroBatchSize} rows each";
            return Train(mpi, () => trainer.Step, trainer.TrainStep, options.Steps, layout, directory);
        });
    }

    /// <summary>
    /// Whether mpirun started this process (Open MPI's OMPI_COMM_WORLD_SIZE, MPICH's PMI_SIZE), with <paramref name="expected"/>
    /// ranks when given; if not, says how to start it, before MPI is touched.
    /// </summary>
    private static bool UnderMpirun(string option, int? expected)
    {
        string? size = Environment.GetEnvironmentVariable("OMPI_COMM_WORLD_SIZE") ?? Environment.GetEnvironmentVariable("PMI_SIZE");
        if (size is null)
        {
            Console.Error.WriteLine($"error: {option} runs one process per rank: start it with mpirun -np {expected?.ToString(CultureInfo.InvariantCulture) ?? "N"} dotnet TinySeek.dll pretrain …");
            return false;
        }

        if (expected is { } ranks && size != ranks.ToString(CultureInfo.InvariantCulture))
        {
            Console.Error.WriteLine($"error: {option} needs mpirun -np {ranks}; it started {size} ranks");
            return false;
        }

        return true;
    }

    private static int Train(Mpi mpi, Func<int> taken, Func<StepReport> step, int steps, string layout, string directory)
    {
        StreamWriter? metrics = null;
        using var folder = mpi.Rank == 0 ? RunFolder.OpenNew(directory, message => Console.Error.WriteLine("note: " + message), "distributed runs do not checkpoint yet") : null;
        if (folder is not null)
        {
            metrics = folder.AppendMetrics();
            Console.WriteLine(layout);
        }

        using (metrics)
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            while (taken() < steps)
            {
                var started = clock.Elapsed;
                var report = step();
                if (!double.IsFinite(report.Loss)) throw new TrainingDivergedException($"step {report.Step}: the loss is not finite ({report.Loss})");
                if (metrics is null) continue;
                double seconds = (clock.Elapsed - started).TotalSeconds;
                metrics.WriteLine(PretrainRun.MetricsLine(report, seconds));
                metrics.Flush();
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"step {report.Step} loss {report.Loss:F4} mtp {report.MtpLoss:F4} maxvio {report.MaxViolation:F2} ({seconds * 1000:F0} ms)"));
            }
        }

        return 0;
    }
}
