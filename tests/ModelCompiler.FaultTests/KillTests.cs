using System.Globalization;
using System.Text.Json;
using ModelCompiler.Torch.Training;
using Xunit;
using Xunit.Abstractions;

namespace ModelCompiler.FaultTests;

/// <summary>
/// TinySeek's own <c>pretrain</c>, killed with SIGKILL at random moments (fresh seed each run, printed) and resumed with
/// <c>--resume</c> each time, ends exactly where an uninterrupted run ends: the same metrics line for every step, each step
/// once, and the same weights bit for bit. Each save pauses between its two renames (<see cref="RunFolder.SavePauseVariable"/>)
/// so that many kills land inside a checkpoint swap. Kills are timed by the run's progress, not the clock (1 to 6 new metrics
/// lines, then up to 300 ms), so that a machine slowed by other work (CI runs every test assembly at once) changes nothing.
/// </summary>
public sealed class KillTests(ITestOutputHelper log) : IDisposable
{
    private const int Kills = 55, Steps = 300, CheckpointEvery = 3;
    private static readonly string[] s_timings = ["tokens_per_second", "forward_seconds", "backward_seconds", "optimizer_seconds", "moe_dispatch_seconds"];
    private readonly string _root = Directory.CreateTempSubdirectory("mc-kills-").FullName;

    [Fact]
    public void A_run_killed_at_random_moments_resumes_to_the_uninterrupted_result()
    {
        int seed = Environment.TickCount;
        var random = new Random(seed);
        string straight = Path.Combine(_root, "straight"), killed = Path.Combine(_root, "killed");
        var pause = new Dictionary<string, string> { [RunFolder.SavePauseVariable] = "150" };

        // Generous limits: in CI every test assembly runs at once on two cores, and this run competes with all of them.
        var reference = ChildProcess.Start(ChildProcess.TinySeek, Pretrain(straight), _root).WaitOrKill(TimeSpan.FromMinutes(20));
        Assert.True(reference.ExitCode == 0, $"the uninterrupted run {(reference.ExitCode is null ? "did not finish in 20 minutes" : "failed")}:\n{reference.Stderr}");

        int kills = 0, insideSave = 0, betweenRenames = 0, runs = 0, endedOnTheirOwn = 0;
        while (true)
        {
            var args = Pretrain(killed).Concat(Directory.Exists(killed) ? ["--resume"] : []).ToList();
            using var child = ChildProcess.Start(ChildProcess.TinySeek, args, _root, pause);
            runs++;
            ChildResult result;
            if (kills < Kills)
            {
                // A checkpoint follows every third metrics line; the save's pause between its renames is 150 ms.
                int target = MetricsLines(killed) + random.Next(1, 7);
                var waited = System.Diagnostics.Stopwatch.StartNew();
                while (MetricsLines(killed) < target && !child.HasExited && waited.Elapsed < TimeSpan.FromMinutes(5)) Thread.Sleep(10);
                if (!child.HasExited) Thread.Sleep(random.Next(0, 300));
                if (child.HasExited)
                {
                    result = child.WaitOrKill(TimeSpan.FromSeconds(10));
                    Assert.True(result.ExitCode == 0, $"run {runs} (seed {seed}) failed on its own:\n{result.Stdout}\n{result.Stderr}");
                    endedOnTheirOwn++;
                    break;
                }

                result = child.Kill();
                kills++;
                // What this process's save left (its folders carry its process id): it was killed inside a save.
                if (Directory.Exists(killed) && Directory.GetDirectories(killed, $"checkpoint.*-{child.Id}").Length > 0) insideSave++;
                if (Directory.Exists(Path.Combine(killed, $"checkpoint.old-{child.Id}")) && !Directory.Exists(Path.Combine(killed, "checkpoint"))) betweenRenames++;
                continue;
            }

            result = child.WaitOrKill(TimeSpan.FromMinutes(20));
            Assert.True(result.ExitCode == 0, $"the last run (seed {seed}) failed:\n{result.Stdout}\n{result.Stderr}");
            Assert.False(result.ShowsStackTrace, result.Stderr);
            break;
        }

        log.WriteLine($"seed {seed}: {kills} kills, {insideSave} of them inside a checkpoint save and {betweenRenames} between its two renames; {runs} runs, {endedOnTheirOwn} ended before their kill");
        Assert.True(kills >= 50, $"only {kills} kills before the run finished (seed {seed}): give it more steps");
        Assert.True(betweenRenames > 0, $"no kill of {kills} landed between a save's two renames (seed {seed})");

        var expected = Lines(straight);
        var actual = Lines(killed);
        Assert.Equal(Enumerable.Range(1, Steps), actual.Select(l => l.Step)); // every step once, in order
        for (int i = 0; i < Steps; i++) Assert.True(expected[i].Values == actual[i].Values, $"step {i + 1} differs (seed {seed}):\n{expected[i].Values}\n{actual[i].Values}");
        Assert.Equal(File.ReadAllBytes(Path.Combine(straight, "checkpoint", "model.safetensors")), File.ReadAllBytes(Path.Combine(killed, "checkpoint", "model.safetensors")));
        Assert.Equal(["checkpoint"], Directory.GetDirectories(killed).Select(d => Path.GetFileName(d)!).ToArray());
    }

    public void Dispose() => Directory.Delete(_root, recursive: true);

    /// <summary>Complete lines in the run's metrics.jsonl so far (a line being written is not counted).</summary>
    private static int MetricsLines(string folder)
    {
        string path = Path.Combine(folder, "metrics.jsonl");
        if (!File.Exists(path)) return 0;
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        int lines = 0, b;
        while ((b = stream.ReadByte()) >= 0) lines += b == '\n' ? 1 : 0;
        return lines;
    }

    private static string[] Pretrain(string folder) =>
        ["pretrain", "--steps", Steps.ToString(CultureInfo.InvariantCulture), "--checkpoint-every", CheckpointEvery.ToString(CultureInfo.InvariantCulture), "--out", folder];

    /// <summary>Each metrics line's step and every value but the timings, as canonical text.</summary>
    private static List<(int Step, string Values)> Lines(string folder) => File.ReadAllLines(Path.Combine(folder, "metrics.jsonl"))
        .Select(line =>
        {
            using var document = JsonDocument.Parse(line);
            var values = document.RootElement.EnumerateObject().Where(p => !s_timings.Contains(p.Name)).Select(p => $"{p.Name}={p.Value.GetRawText()}");
            return (document.RootElement.GetProperty("step").GetInt32(), string.Join(" ", values));
        })
        .ToList();
}
