using ModelCompiler.Checkpoints;
using ModelCompiler.Planning;
using ModelCompiler.Torch.Checkpoints;
using ModelCompiler.Torch.Training;
using Xunit;

namespace ModelCompiler.Torch.Tests;

/// <summary>
/// What a crash or a second process leaves in a run folder: each case made by hand the way the crash leaves it, then the run
/// resumed (or refused) as a user would, ending bit for bit where an uninterrupted run ends.
/// </summary>
public sealed class RunFolderTests : IDisposable
{
    private static readonly ModelSpec Tiny = TestModels.Tiny(mtp: true);
    private static readonly PretrainOptions Options = new() { Steps = 6, MicroBatchSize = 16, WarmupSteps = 2, LearningRate = 1e-2, Seed = 5 };
    private static readonly Lazy<(string[] Losses, byte[] Weights)> s_straight = new(() =>
    {
        string folder = Path.Combine(Path.GetTempPath(), $"mc-straight-{Guid.NewGuid():N}");
        try
        {
            Run(folder).Start();
            return (Losses(folder), File.ReadAllBytes(Path.Combine(folder, "checkpoint", "model.safetensors")));
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    });

    private readonly string _root = Path.Combine(Path.GetTempPath(), $"mc-folder-{Guid.NewGuid():N}");
    private readonly List<string> _notices = [];

    private string Folder => Path.Combine(_root, "run");

    [Fact]
    public void A_torn_last_metrics_line_is_dropped_with_a_notice_and_rewritten()
    {
        Run(Folder, stopAfter: 4).Start();
        File.AppendAllText(Path.Combine(Folder, "metrics.jsonl"), "{\"step\": 5, \"loss\": 2.3"); // killed mid-line
        Run(Folder, notice: _notices.Add).Resume();

        Assert.Contains(_notices, n => n.Contains("a torn last line", StringComparison.Ordinal) && n.Contains("line 5", StringComparison.Ordinal));
        AssertEndsAsStraight();
    }

    [Fact]
    public void A_crash_between_the_renames_is_finished_by_adopting_the_complete_new_checkpoint()
    {
        var (older, newer) = TwoCheckpoints();
        Directory.Move(older, Path.Combine(Folder, "checkpoint.old-99999"));         // the first rename happened,
        Directory.Move(newer, Path.Combine(Folder, "checkpoint.tmp-99999"));         // the second did not
        Assert.False(Directory.Exists(Path.Combine(Folder, "checkpoint")));

        var refused = Assert.Throws<IOException>(() => Run(Folder, notice: _notices.Add).Start()); // a rerun without --resume
        Assert.Contains("already holds a run", refused.Message, StringComparison.Ordinal);
        Assert.Contains(_notices, n => n.Contains("adopted the complete checkpoint.tmp-99999/", StringComparison.Ordinal));
        Assert.Contains(_notices, n => n.Contains("removed checkpoint.old-99999/", StringComparison.Ordinal));
        Assert.Equal(4, Losses(Folder).Length); // nothing emptied

        Run(Folder).Resume();
        Assert.Equal(["checkpoint"], Directory.GetDirectories(Folder).Select(d => Path.GetFileName(d)!).ToArray()); // nothing left behind
        AssertEndsAsStraight();
    }

    [Fact]
    public void A_crash_while_the_new_checkpoint_was_written_falls_back_to_the_old_one()
    {
        var (older, newer) = TwoCheckpoints();
        Directory.Move(older, Path.Combine(Folder, "checkpoint.old-99999"));
        Directory.Move(newer, Path.Combine(Folder, "checkpoint.tmp-99999"));
        File.Delete(Path.Combine(Folder, "checkpoint.tmp-99999", RunFolder.ManifestName)); // not complete: its manifest was never written

        Run(Folder, notice: _notices.Add).Resume();
        Assert.Contains(_notices, n => n.Contains("adopted the complete checkpoint.old-99999/", StringComparison.Ordinal));
        Assert.Contains(_notices, n => n.Contains("removed checkpoint.tmp-99999/", StringComparison.Ordinal));
        AssertEndsAsStraight();
    }

    [Fact]
    public void A_second_writer_is_refused_naming_the_holder()
    {
        Directory.CreateDirectory(Folder);
        using (RunFolder.Open(Folder, create: false, _notices.Add))
        {
            var error = Assert.Throws<RunFolderBusyException>(() => Run(Folder).Start());
            Assert.Contains($"is in use by another run (process {Environment.ProcessId} on {Environment.MachineName}", error.Message, StringComparison.Ordinal);
        }

        Run(Folder).Start(); // the lock goes with its holder
        AssertEndsAsStraight();
    }

    [Fact]
    public void Resuming_with_other_steps_is_refused_unless_extended()
    {
        Run(Folder, stopAfter: 2).Start();
        var error = Assert.Throws<CheckpointException>(() => new PretrainRun(Tiny, Options with { Steps = 9 }, Folder, checkpointEvery: 2, evalProblems: 4).Resume());
        Assert.Contains("is a run of 6 steps, not 9", error.Message, StringComparison.Ordinal);
        Assert.Contains("--extend", error.Message, StringComparison.Ordinal);

        var extended = new PretrainRun(Tiny, Options with { Steps = 9 }, Folder, checkpointEvery: 2, evalProblems: 4).Resume(extend: true);
        Assert.Equal(9, extended.Steps);
    }

    [Fact]
    public void A_run_killed_before_its_first_checkpoint_starts_over_on_resume()
    {
        Run(Folder, stopAfter: 1, checkpointEvery: 4).Start();
        Directory.Delete(Path.Combine(Folder, "checkpoint"), recursive: true); // as if killed after a step, before any checkpoint
        Assert.Throws<IOException>(() => Run(Folder).Start()); // its metrics are not thrown away silently

        Run(Folder, notice: _notices.Add).Resume();
        Assert.Contains(_notices, n => n.Contains("has no checkpoint yet: the run starts over", StringComparison.Ordinal));
        AssertEndsAsStraight();
    }

    [Fact]
    public void Unwritable_folders_and_a_damaged_checkpoint_config_are_one_line_errors()
    {
        Directory.CreateDirectory(_root);
        string file = Path.Combine(_root, "a-file");
        File.WriteAllText(file, "not a folder");
        var error = Assert.Throws<IOException>(() => Run(Path.Combine(file, "run")).Start());
        Assert.Contains("cannot write there", error.Message, StringComparison.Ordinal);

        Run(Folder, stopAfter: 2).Start();
        string config = Path.Combine(Folder, "checkpoint", "config.json");
        File.WriteAllText(config, "{\"model_type\": \"deepseek_v3\", \"hidden_si");
        var damaged = Assert.Throws<CheckpointException>(() => Run(Folder).Resume());
        Assert.Contains($"{config} has 40 bytes, not the", damaged.Message, StringComparison.Ordinal);

        // Without the manifest (a checkpoint of an earlier version) the damaged file is still named, by the config reader.
        File.Delete(Path.Combine(Folder, "checkpoint", RunFolder.ManifestName));
        damaged = Assert.Throws<CheckpointException>(() => Run(Folder, notice: _notices.Add).Resume());
        Assert.Contains("config.json: not valid JSON", damaged.Message, StringComparison.Ordinal);
        Assert.Contains(_notices, n => n.Contains("has no manifest.json", StringComparison.Ordinal));
    }

    [Fact]
    public void A_byte_changed_in_a_checkpoint_file_is_named_before_it_is_read()
    {
        Run(Folder, stopAfter: 2).Start();
        string weights = Path.Combine(Folder, "checkpoint", "model.safetensors");
        var bytes = File.ReadAllBytes(weights);
        bytes[^7] ^= 0x10; // one bit of one weight: a finite value still, undetectable without the manifest
        File.WriteAllBytes(weights, bytes);
        var error = Assert.Throws<CheckpointException>(() => Run(Folder).Resume());
        Assert.Contains($"{weights}: its SHA-256 is not the one recorded when it was saved", error.Message, StringComparison.Ordinal);
    }

    public void Dispose()
    {
        if (Directory.Exists(_root)) Directory.Delete(_root, recursive: true);
    }

    private static PretrainRun Run(string folder, int? stopAfter = null, int checkpointEvery = 2, Action<string>? notice = null) =>
        new(Tiny, Options with { StopAfter = stopAfter }, folder, checkpointEvery, evalProblems: 4) { Notice = notice ?? (_ => { }) };

    private static string[] Losses(string folder) => File.ReadAllLines(Path.Combine(folder, "metrics.jsonl"))
        .Select(l => System.Text.Json.JsonDocument.Parse(l).RootElement)
        .Select(e => $"{e.GetProperty("step").GetInt32()}:{e.GetProperty("loss").GetDouble():R}:{e.GetProperty("grad_norm").GetDouble():R}").ToArray();

    /// <summary>The run checkpointed at step 2 (returned as a copy) and at step 4 (its checkpoint/), metrics to step 4.</summary>
    private (string Older, string Newer) TwoCheckpoints()
    {
        Run(Folder, stopAfter: 2).Start();
        string older = Path.Combine(_root, "step-2");
        CopyDirectory(Path.Combine(Folder, "checkpoint"), older);
        Run(Folder, stopAfter: 4).Resume();
        return (older, Path.Combine(Folder, "checkpoint"));
    }

    private void AssertEndsAsStraight()
    {
        var (losses, weights) = s_straight.Value;
        Assert.Equal(losses, Losses(Folder));
        Assert.Equal(weights, File.ReadAllBytes(Path.Combine(Folder, "checkpoint", "model.safetensors")));
    }

    private static void CopyDirectory(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (string file in Directory.GetFiles(from)) File.Copy(file, Path.Combine(to, Path.GetFileName(file)));
    }
}
