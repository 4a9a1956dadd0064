using System.Diagnostics;
using System.Globalization;
using ModelCompiler.TestUtilities;

namespace ModelCompiler.FaultTests;

/// <summary>How a child process ended: its exit code (null when it was killed), its output, and the most memory it held.</summary>
internal sealed record ChildResult(int? ExitCode, string Stdout, string Stderr, long PeakResidentBytes, TimeSpan Elapsed)
{
    /// <summary>Whether the output carries a .NET stack trace or an unhandled-exception report: what a user must never see.</summary>
    public bool ShowsStackTrace =>
        (Stdout + Stderr).Contains("Unhandled exception", StringComparison.Ordinal) || (Stdout + Stderr).Split('\n').Any(line => line.StartsWith("   at ", StringComparison.Ordinal));
}

/// <summary>Runs the built programs (TinySeek, modelc) as a user does, watching their memory, and kills them on demand.</summary>
internal sealed class ChildProcess : IDisposable
{
    private readonly Process _process;
    private readonly Task<string> _stdout, _stderr;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly Task _watch;
    private long _peak;
    private volatile bool _ended;

    private ChildProcess(Process process)
    {
        _process = process;
        _stdout = process.StandardOutput.ReadToEndAsync();
        _stderr = process.StandardError.ReadToEndAsync();
        _watch = Task.Run(Watch);
    }

    /// <summary>TinySeek's Release build.</summary>
    public static string TinySeek { get; } = RepositoryPaths.Combine("samples", "TinySeek", "bin", "Release", "net10.0", "TinySeek.dll");

    /// <summary>modelc's Release build.</summary>
    public static string Modelc { get; } = RepositoryPaths.Combine("src", "ModelCompiler.Cli", "bin", "Release", "net10.0", "modelc.dll");

    /// <summary>Starts <c>dotnet <paramref name="program"/> <paramref name="args"/></c> in <paramref name="workingDirectory"/>.</summary>
    public static ChildProcess Start(string program, IEnumerable<string> args, string workingDirectory, IReadOnlyDictionary<string, string>? environment = null)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = workingDirectory };
        start.ArgumentList.Add(program);
        foreach (string arg in args) start.ArgumentList.Add(arg);
        start.Environment["TERM"] = "dumb";
        start.Environment["COLUMNS"] = "200";
        foreach (var (name, value) in environment ?? new Dictionary<string, string>()) start.Environment[name] = value;
        return new ChildProcess(Process.Start(start) ?? throw new InvalidOperationException("dotnet did not start"));
    }

    /// <summary>Waits up to <paramref name="timeout"/>; kills the process (SIGKILL) if it is still running then.</summary>
    public ChildResult WaitOrKill(TimeSpan timeout)
    {
        if (!_process.WaitForExit(timeout)) return Kill();
        return Result(_process.ExitCode);
    }

    /// <summary>Kills the process with SIGKILL (no handler runs, nothing is flushed) and waits for it to be gone.</summary>
    public ChildResult Kill()
    {
        if (!_process.HasExited) _process.Kill(entireProcessTree: true);
        _process.WaitForExit();
        return Result(exitCode: null);
    }

    /// <summary>The process id.</summary>
    public int Id => _process.Id;

    /// <summary>Whether the process has ended on its own.</summary>
    public bool HasExited => _process.HasExited;

    /// <inheritdoc/>
    public void Dispose()
    {
        _ended = true;
        if (!_process.HasExited) _process.Kill(entireProcessTree: true);
        _process.Dispose();
    }

    private ChildResult Result(int? exitCode)
    {
        _ended = true;
        _watch.Wait();
        return new ChildResult(exitCode, _stdout.Result, _stderr.Result, Interlocked.Read(ref _peak), _clock.Elapsed);
    }

    /// <summary>Samples the process's peak resident set (VmHWM, which the kernel keeps) until it ends.</summary>
    private async Task Watch()
    {
        string status = $"/proc/{_process.Id}/status";
        while (!_ended)
        {
            try
            {
                foreach (string line in File.ReadLines(status))
                {
                    if (!line.StartsWith("VmHWM:", StringComparison.Ordinal)) continue;
                    long kilobytes = long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
                    long bytes = kilobytes * 1024;
                    if (bytes > Interlocked.Read(ref _peak)) Interlocked.Exchange(ref _peak, bytes);
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                return; // the process is gone
            }

            await Task.Delay(25);
        }
    }
}
