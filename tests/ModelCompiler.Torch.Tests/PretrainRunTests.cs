using ModelCompiler.Checkpoints;
using ModelCompiler.Planning;
using ModelCompiler.Torch.Checkpoints;
using ModelCompiler.Torch.Training;
using Xunit;

namespace ModelCompiler.Torch.Tests;

/// <summary>Runs on disk: resume is bit-exact, a non-finite loss stops cleanly, a corrupted checkpoint is refused.</summary>
public sealed class PretrainRunTests : IDisposable
{
    private static readonly ModelSpec Tiny = TestModels.Tiny(mtp: true);

    private static readonly PretrainOptions Options = new() { Steps = 8, MicroBatchSize = 16, WarmupSteps = 2, LearningRate = 1e-2, Seed = 11 };

    private readonly string _root = Path.Combine(Path.GetTempPath(), $"mc-run-{Guid.NewGuid():N}");

    [Fact]
    public void Resume_continues_bit_exactly()
    {
        string straight = Path.Combine(_root, "straight"), split = Path.Combine(_root, "split");
        new PretrainRun(Tiny, Options, straight, checkpointEvery: 4, evalProblems: 10).Start();
        new PretrainRun(Tiny, Options with { StopAfter = 3 }, split, checkpointEvery: 4, evalProblems: 10).Start(); // "killed" after step 3
        Assert.False(new PretrainRun(Tiny, Options, split).IsFinished);
        new PretrainRun(Tiny, Options, split, checkpointEvery: 4, evalProblems: 10).Resume();

        string[] Losses(string run) => File.ReadAllLines(Path.Combine(run, "metrics.jsonl"))
            .Select(l => System.Text.Json.JsonDocument.Parse(l).RootElement)
            .Select(e => $"{e.GetProperty("step").GetInt32()}:{e.GetProperty("loss").GetDouble():R}:{e.GetProperty("mtp_loss").GetDouble():R}:{e.GetProperty("grad_norm").GetDouble():R}").ToArray();
        Assert.True(new PretrainRun(Tiny, Options, straight).IsFinished);
        Assert.Equal(8, Losses(straight).Length);
        Assert.Equal(Losses(straight), Losses(split));
        Assert.Equal(File.ReadAllBytes(Path.Combine(straight, "checkpoint", "model.safetensors")), File.ReadAllBytes(Path.Combine(split, "checkpoint", "model.safetensors")));
    }

    [Fact]
    public void Resuming_a_finished_run_reports_its_recorded_losses()
    {
        string run = Path.Combine(_root, "finished");
        var trained = new PretrainRun(Tiny, Options with { Steps = 3 }, run, checkpointEvery: 3, evalProblems: 5).Start();
        var again = new PretrainRun(Tiny, Options with { Steps = 3 }, run, checkpointEvery: 3, evalProblems: 5).Resume(); // no step left

        Assert.Equal(3, again.Steps);
        Assert.Equal(trained.FirstLoss, again.FirstLoss);
        Assert.Equal(trained.FinalLoss, again.FinalLoss);
        Assert.Equal(trained.MaxViolation, again.MaxViolation, 6);
        Assert.DoesNotContain("NaN", File.ReadAllText(Path.Combine(run, "report.md")), StringComparison.Ordinal);
    }

    [Fact]
    public void A_run_folder_is_never_overwritten()
    {
        string run = Path.Combine(_root, "once");
        new PretrainRun(Tiny, Options with { Steps = 2 }, run, checkpointEvery: 2, evalProblems: 5).Start();
        var error = Assert.Throws<IOException>(() => new PretrainRun(Tiny, Options with { Steps = 2 }, run).Start());
        Assert.Contains("pass --resume", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_non_finite_loss_stops_at_the_step_and_names_the_intact_checkpoint()
    {
        string run = Path.Combine(_root, "diverge");
        new PretrainRun(Tiny, Options with { Steps = 3 }, run, checkpointEvery: 3, evalProblems: 5).Start();
        var error = Assert.Throws<TrainingDivergedException>(() =>
            new PretrainRun(Tiny, Options with { Steps = 40, LearningRate = 1e30, WarmupSteps = 1 }, run, checkpointEvery: 100).Resume(extend: true));
        Assert.Matches(@"^step \d+: the loss is not finite", error.Message);
        Assert.Contains("the last good checkpoint is step 3", error.Message, StringComparison.Ordinal);

        using var checkpoint = Checkpoint.Open(Path.Combine(run, "checkpoint"));
        using var model = new DeepSeekCausalLM(Tiny, includeMtp: true);
        checkpoint.LoadInto(model);
        Assert.All(model.parameters(), p => Assert.True(TorchSharp.torch.isfinite(p).all().item<bool>()));
    }

    [Theory]
    [InlineData("trainer.json", "is corrupted")]
    [InlineData("model.safetensors", "the file is truncated")]
    [InlineData("optimizer.safetensors", "optimizer.safetensors cannot be read")]
    public void A_corrupted_checkpoint_is_refused(string file, string expected)
    {
        string run = Path.Combine(_root, "corrupt");
        new PretrainRun(Tiny, Options with { Steps = 2 }, run, checkpointEvery: 2, evalProblems: 5).Start();
        string path = Path.Combine(run, "checkpoint", file);
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
        var error = Assert.Throws<CheckpointException>(() => new PretrainRun(Tiny, Options with { Steps = 2 }, run).Resume());
        Assert.Contains($"{path} has {bytes.Length / 2} bytes, not the {bytes.Length} it had when it was saved", error.Message, StringComparison.Ordinal);

        // A checkpoint without its manifest (saved by an earlier version): each file's own reader names the damage.
        File.Delete(Path.Combine(run, "checkpoint", RunFolder.ManifestName));
        error = Assert.Throws<CheckpointException>(() => new PretrainRun(Tiny, Options with { Steps = 2 }, run) { Notice = _ => { } }.Resume());
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    public void Dispose()
    {
        if (Directory.Exists(_root)) Directory.Delete(_root, recursive: true);
    }
}
