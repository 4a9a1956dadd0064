using System.Diagnostics;
using Xunit;

namespace ModelCompiler.Distributed.Tests;

/// <summary>
/// The MPI binding across real processes: <c>mpirun -np N</c> of the ranks program, each scenario under a timeout so that a
/// hang is a failure. The ranks exchange on two tags in crossed order (activations and gradients), all-reduce, broadcast;
/// a rank that throws or disagrees on the model ends the whole job quickly with a message naming it.
/// </summary>
public sealed class MpiTests
{
    private static readonly string s_ranks = Path.Combine(AppContext.BaseDirectory, "ModelCompiler.Distributed.Ranks.dll");

    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    public void Ranks_exchange_on_separate_tags_and_reduce(int ranks)
    {
        var (code, output, _) = Run(ranks, "collectives");
        Assert.True(code == 0, output);
        for (int rank = 0; rank < ranks; rank++) Assert.Contains($"rank {rank}/{ranks} ok", output, StringComparison.Ordinal);
    }

    [Fact]
    public void A_rank_that_throws_ends_the_job_within_seconds_and_is_named()
    {
        var (code, output, elapsed) = Run(2, "fail");
        Assert.NotEqual(0, code);
        Assert.Contains("rank 1 of 2 failed: InvalidOperationException: simulated failure", output, StringComparison.Ordinal);
        Assert.True(elapsed < TimeSpan.FromSeconds(30), $"the job took {elapsed.TotalSeconds:F0} s to end");
    }

    [Fact]
    public void A_rank_that_dies_ends_the_job_within_seconds()
    {
        var (code, output, elapsed) = Run(2, "die");
        Assert.NotEqual(0, code);
        // Open MPI names the process ([[job,1],rank]) and its exit code.
        Assert.Contains("exited with non-zero status", output, StringComparison.Ordinal);
        Assert.Matches(@"Process name: \[\[\d+,1\],1\]", output);
        Assert.True(elapsed < TimeSpan.FromSeconds(30), $"the job took {elapsed.TotalSeconds:F0} s to end");
    }

    [Fact]
    public void Ranks_that_disagree_on_the_model_fail_at_start_up()
    {
        var (code, output, _) = Run(2, "mismatch");
        Assert.NotEqual(0, code);
        Assert.Contains("ranks disagree on the model and schedule", output, StringComparison.Ordinal);
        Assert.Contains("rank 1 has 0000000000000bad", output, StringComparison.Ordinal);
    }

    internal static (int Code, string Output, TimeSpan Elapsed) Run(int ranks, params string[] scenario)
    {
        var start = new ProcessStartInfo("mpirun", ["-np", ranks.ToString(System.Globalization.CultureInfo.InvariantCulture), "dotnet", s_ranks, .. scenario])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        // Root in CI containers; more ranks than cores; no terminal escapes in the captured output.
        start.Environment["OMPI_ALLOW_RUN_AS_ROOT"] = "1";
        start.Environment["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1";
        start.Environment["OMPI_MCA_rmaps_base_oversubscribe"] = "1";
        start.Environment["TERM"] = "dumb";
        var watch = Stopwatch.StartNew();
        using var process = Process.Start(start) ?? throw new InvalidOperationException("mpirun did not start (is Open MPI installed? build.sh installs it)");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromSeconds(120)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"mpirun -np {ranks} {string.Join(" ", scenario)} hung for 120 s:\n{stdout.Result}\n{stderr.Result}");
        }

        return (process.ExitCode, stdout.Result + stderr.Result, watch.Elapsed);
    }
}
