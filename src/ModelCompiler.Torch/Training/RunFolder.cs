using System.Globalization;
using System.Text;
using System.Text.Json;
using ModelCompiler.Torch.Checkpoints;

namespace ModelCompiler.Torch.Training;

/// <summary>Another process holds the run folder; the message names it.</summary>
public sealed class RunFolderBusyException(string message) : IOException(message);

/// <summary>
/// A run's folder, held by one process at a time. It keeps three promises whatever kills the process, and at whatever
/// moment:
/// <list type="bullet">
/// <item><c>checkpoint/</c> is always whole: a save is written to <c>checkpoint.tmp-PID/</c> (its completion marker last),
/// then swapped in by two renames; <see cref="Open"/> finishes or undoes a swap that a crash interrupted.</item>
/// <item><c>metrics.jsonl</c> loses no line that a checkpoint covers: lines are appended whole and flushed; a line torn by a
/// kill is the last one, and is dropped (with a notice) when the run resumes.</item>
/// <item>Two processes never write one folder: <c>run.lock</c> is held exclusively for the run's lifetime (the kernel lets
/// it go when the process dies), and a second writer is refused naming the holder's process id.</item>
/// </list>
/// </summary>
public sealed class RunFolder : IDisposable
{
    /// <summary>Set to a number of milliseconds, each checkpoint save pauses that long between its two renames: the fault tests
    /// use it to kill runs inside the swap.</summary>
    public const string SavePauseVariable = "MODELCOMPILER_TEST_SAVE_PAUSE_MS";

    private const string LockName = "run.lock", OwnerName = "run.owner", TempTag = ".tmp-", OldTag = ".old-";
    private readonly FileStream _lock;
    private readonly string _completeMarker;

    private RunFolder(string directory, FileStream lockStream, string completeMarker)
    {
        Directory = directory;
        _lock = lockStream;
        _completeMarker = completeMarker;
    }

    /// <summary>The folder.</summary>
    public string Directory { get; }

    /// <summary>The run's checkpoint folder.</summary>
    public string CheckpointDirectory => Path.Combine(Directory, "checkpoint");

    /// <summary>The run's metrics, one JSON object per line.</summary>
    public string MetricsPath => Path.Combine(Directory, "metrics.jsonl");

    /// <summary>Whether the folder holds a checkpoint.</summary>
    public bool HasCheckpoint => System.IO.Directory.Exists(CheckpointDirectory);

    /// <summary>
    /// Takes the folder (created when <paramref name="create"/>; refused when it is missing otherwise) and recovers what a crash
    /// left. <paramref name="completeMarker"/> names the file a save writes last, whose presence shows the save complete.
    /// </summary>
    /// <param name="directory">The run folder.</param>
    /// <param name="completeMarker">The checkpoint file written last.</param>
    /// <param name="create">Create the folder when missing.</param>
    /// <param name="notice">Told of every recovery step (an adopted or removed checkpoint).</param>
    /// <exception cref="RunFolderBusyException">Another live process holds the folder.</exception>
    /// <exception cref="IOException">The folder is missing (and not to be created) or cannot be written.</exception>
    public static RunFolder Open(string directory, string completeMarker, bool create, Action<string> notice)
    {
        if (!create && !System.IO.Directory.Exists(directory)) throw new IOException($"{directory}: no such run folder");
        FileStream lockStream;
        try
        {
            System.IO.Directory.CreateDirectory(directory);
            lockStream = new FileStream(Path.Combine(directory, LockName), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (UnauthorizedAccessException e)
        {
            throw new IOException($"{directory}: cannot write there ({e.Message})", e);
        }
        catch (IOException e) when (e is not (DirectoryNotFoundException or PathTooLongException) && File.Exists(Path.Combine(directory, LockName)))
        {
            throw new RunFolderBusyException($"{directory} is in use by another run ({Owner(directory)}); wait for it to end, or give another --out. Nothing was changed.");
        }
        catch (IOException e)
        {
            throw new IOException($"{directory}: cannot write there ({e.Message})", e);
        }

        var folder = new RunFolder(directory, lockStream, completeMarker);
        try
        {
            AtomicFile.WriteAllText(Path.Combine(directory, OwnerName), string.Create(CultureInfo.InvariantCulture, $"{Environment.ProcessId} {Environment.MachineName} {DateTime.UtcNow:O}\n"));
            folder.Recover(notice);
            return folder;
        }
        catch (UnauthorizedAccessException e)
        {
            folder.Dispose();
            throw new IOException($"{directory}: cannot write there ({e.Message})", e);
        }
        catch
        {
            folder.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Takes a folder for a run that cannot resume (created when missing): refused, besides when another process holds it,
    /// when it holds a run, finished (a checkpoint, perhaps recovered from an interrupted save) or not (metrics without one),
    /// so that nothing a user has is overwritten. <paramref name="why"/> says why such a run cannot be continued.
    /// </summary>
    public static RunFolder OpenNew(string directory, string completeMarker, Action<string> notice, string why)
    {
        var folder = Open(directory, completeMarker, create: true, notice);
        bool finished = folder.HasCheckpoint;
        if (finished || folder.ReadMetrics(notice).Any(line => line.Length > 0))
        {
            folder.Dispose();
            throw new IOException($"{directory} already holds a run{(finished ? string.Empty : $" that did not finish ({why})")}; choose another --out. Nothing was changed.");
        }

        return folder;
    }

    /// <summary>
    /// Saves a checkpoint: <paramref name="write"/> fills a new folder (the completion marker last), which then replaces
    /// <c>checkpoint/</c> by two renames.
    /// </summary>
    public void SaveCheckpoint(Action<string> write)
    {
        string temp = CheckpointDirectory + TempTag + Environment.ProcessId, old = CheckpointDirectory + OldTag + Environment.ProcessId;
        if (System.IO.Directory.Exists(temp)) System.IO.Directory.Delete(temp, recursive: true);
        System.IO.Directory.CreateDirectory(temp);
        write(temp);
        if (!File.Exists(Path.Combine(temp, _completeMarker))) throw new InvalidOperationException($"the checkpoint writer did not write its completion marker {_completeMarker}");
        if (System.IO.Directory.Exists(CheckpointDirectory)) System.IO.Directory.Move(CheckpointDirectory, old);
        if (Environment.GetEnvironmentVariable(SavePauseVariable) is { } pause && int.TryParse(pause, CultureInfo.InvariantCulture, out int milliseconds))
        {
            Thread.Sleep(milliseconds);
        }

        System.IO.Directory.Move(temp, CheckpointDirectory);
        if (System.IO.Directory.Exists(old)) System.IO.Directory.Delete(old, recursive: true);
    }

    /// <summary>
    /// The complete lines of <see cref="MetricsPath"/> (none when it is missing). A torn last line (no line end: the writer was
    /// killed mid-line) is dropped and reported to <paramref name="notice"/>.
    /// </summary>
    public List<string> ReadMetrics(Action<string> notice) => ReadMetricsLines(MetricsPath, notice);

    /// <summary>Rewrites <see cref="MetricsPath"/> with the lines of steps up to <paramref name="step"/> (atomically).</summary>
    /// <exception cref="InvalidDataException">A complete line that is not a metrics object with a step, named by line.</exception>
    public void TruncateMetrics(int step, Action<string> notice)
    {
        var kept = new StringBuilder();
        int number = 0;
        foreach (string line in ReadMetrics(notice))
        {
            number++;
            if (line.Length == 0) continue;
            if (StepOf(MetricsPath, number, line) <= step) kept.Append(line).Append('\n');
        }

        AtomicFile.WriteAllText(MetricsPath, kept.ToString());
    }

    /// <summary>Opens <see cref="MetricsPath"/> for appending whole lines.</summary>
    public StreamWriter AppendMetrics() => new(MetricsPath, append: true) { NewLine = "\n" };

    /// <inheritdoc/>
    public void Dispose() => _lock.Dispose();

    /// <summary>
    /// The complete lines of a metrics file (none when it is missing); a torn last line (no line end) is dropped and reported
    /// to <paramref name="notice"/>.
    /// </summary>
    public static List<string> ReadMetricsLines(string path, Action<string>? notice)
    {
        if (!File.Exists(path)) return [];
        string text = File.ReadAllText(path);
        var lines = text.Split('\n').Select(line => line.TrimEnd('\r')).ToList();
        string last = lines[^1];
        lines.RemoveAt(lines.Count - 1); // the text after the last line end: empty, or a torn line
        if (last.Length > 0)
        {
            notice?.Invoke($"{path}, line {lines.Count + 1}: a torn last line ({last.Length} characters, no line end: the run was killed while writing it) was dropped");
        }

        return lines;
    }

    private static int StepOf(string path, int number, string line)
    {
        try
        {
            using var document = JsonDocument.Parse(line);
            return document.RootElement.GetProperty("step").GetInt32();
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw new InvalidDataException($"{path}, line {number}: not a metrics line with a step ({e.Message}); the file was changed by hand or by another program", e);
        }
    }

    private static string Owner(string directory)
    {
        try
        {
            string[] owner = File.ReadAllText(Path.Combine(directory, OwnerName)).Split(' ', 3);
            return $"process {owner[0]} on {owner[1]}, since {owner[2].Trim()}";
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or IndexOutOfRangeException)
        {
            return "its process id is not recorded";
        }
    }

    /// <summary>
    /// Finishes or undoes a checkpoint swap that a crash interrupted. The newest complete save wins: a complete
    /// <c>checkpoint.tmp-*</c> (its marker written) is newer than <c>checkpoint/</c>, which is newer than a
    /// <c>checkpoint.old-*</c>; everything else left by a dead save is removed.
    /// </summary>
    private void Recover(Action<string> notice)
    {
        string name = Path.GetFileName(CheckpointDirectory);
        var leftovers = System.IO.Directory.GetDirectories(Directory, name + ".*")
            .Where(d => Path.GetFileName(d).StartsWith(name + TempTag, StringComparison.Ordinal) || Path.GetFileName(d).StartsWith(name + OldTag, StringComparison.Ordinal))
            .Order(StringComparer.Ordinal)
            .ToList();
        if (leftovers.Count == 0) return;
        string? adopt = leftovers.FirstOrDefault(d => Path.GetFileName(d).Contains(TempTag, StringComparison.Ordinal) && File.Exists(Path.Combine(d, _completeMarker)))
            ?? (HasCheckpoint ? null : leftovers.FirstOrDefault(d => Path.GetFileName(d).Contains(OldTag, StringComparison.Ordinal) && File.Exists(Path.Combine(d, _completeMarker))));
        if (adopt is not null)
        {
            // The same two renames as a save, so that a crash here too leaves something the next recovery takes.
            string superseded = CheckpointDirectory + OldTag + Environment.ProcessId + "-superseded";
            if (HasCheckpoint)
            {
                if (System.IO.Directory.Exists(superseded)) System.IO.Directory.Delete(superseded, recursive: true);
                System.IO.Directory.Move(CheckpointDirectory, superseded);
                leftovers.Add(superseded);
            }

            System.IO.Directory.Move(adopt, CheckpointDirectory);
            notice($"{Directory}: a checkpoint save was interrupted; adopted the complete {Path.GetFileName(adopt)}/ as checkpoint/");
        }

        foreach (string leftover in leftovers.Where(d => d != adopt && System.IO.Directory.Exists(d)))
        {
            System.IO.Directory.Delete(leftover, recursive: true);
            notice($"{Directory}: removed {Path.GetFileName(leftover)}/, left by an interrupted checkpoint save");
        }
    }
}
