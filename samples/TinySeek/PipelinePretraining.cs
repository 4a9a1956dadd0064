using System.Globalization;
using ModelCompiler;
using ModelCompiler.Distributed;
using ModelCompiler.Pipeline;
using ModelCompiler.Torch;
using ModelCompiler.Torch.Training;

namespace Samples.TinySeek;

/// <summary>
/// <c>mpirun -np 2 dotnet TinySeek.dll pretrain --pipeline dualpipe</c>: the pre-training step across MPI ranks. Every rank
/// computes the same report; rank 0 prints it and writes <c>metrics.jsonl</c> in the run folder. A rank that fails ends the
/// job, naming itself. Checkpoints and resume are those of the single-process run only, for now.
/// </summary>
internal static class PipelinePretraining
{
    public static int Run(string schedule, int microBatches, PretrainOptions options, string directory)
    {
        var kind = Schedules.Parse(schedule);
        using var mpi = Mpi.Initialize();
        return mpi.RunOrAbort(() =>
        {
            using var model = new DeepSeekCausalLM(TinySeek.Spec, includeMtp: true, seed: options.Seed);
            using var trainer = new PipelineTrainer(model, options, mpi, kind, microBatches);
            StreamWriter? metrics = null;
            using var folder = mpi.Rank == 0 ? RunFolder.OpenNew(directory, message => Console.Error.WriteLine("note: " + message), "pipelined runs do not checkpoint yet") : null;
            if (folder is not null)
            {
                metrics = folder.AppendMetrics();
                Console.WriteLine($"{schedule} over {mpi.Size} ranks ({mpi.LibraryVersion()}), {microBatches} micro-batches; stages hold layers "
                    + string.Join(", ", trainer.StageLayers.Select(l => $"[{l.First}, {l.End})")));
            }

            using (metrics)
            {
                var clock = System.Diagnostics.Stopwatch.StartNew();
                while (trainer.Step < options.Steps)
                {
                    var started = clock.Elapsed;
                    var report = trainer.TrainStep();
                    if (!double.IsFinite(report.Loss)) throw new TrainingDivergedException($"step {report.Step}: the loss is not finite ({report.Loss})");
                    if (metrics is null) continue;
                    double seconds = (clock.Elapsed - started).TotalSeconds;
                    metrics.WriteLine(PretrainRun.MetricsLine(report, seconds));
                    metrics.Flush();
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"step {report.Step} loss {report.Loss:F4} mtp {report.MtpLoss:F4} maxvio {report.MaxViolation:F2} ({seconds * 1000:F0} ms)"));
                }
            }

            return 0;
        });
    }
}
