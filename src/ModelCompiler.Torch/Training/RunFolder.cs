using System.Globalization;
using System.Text;
using System.Text.Json;
using ModelCompiler.Checkpoints;
using ModelCompiler.Torch.Checkpoints;

namespace ModelCompiler.Torch.Training;

/// <summary>Another process holds the run folder; the message names it.</summary>
public sealed class RunFolderBusyException(string message) : IOException(message);

/// <summary>
/// A run's folder, held by one process at a time. It keeps three promises whatever kills the process, and at whatever
/// moment:
/// <list type="bullet">
/// <item><c>checkpoint/</c> is always whole and checked: a save is written to <c>checkpoint.tmp-PID/</c>, then its
/// <c>manifest.json</c> (each file's size and SHA-256, written last: its presence marks the save complete), then swapped in
/// by two renames; <see cref="Open"/> finishes or undoes a swap that a crash interrupted, and
/// <see cref="VerifyCheckpoint"/> names any file changed since it was written.</item>
/// <item><c>metrics.jsonl</c> loses no line that a checkpoint covers: lines are appended whole and flushed; a line torn by a
/// kill is the last one, and is dropped (with a notice) when the run resumes.</item>
/// <item>Two processes never write one folder: <c>run.lock</c> is held exclusively for the run's lifetime (the kernel lets
/// it go when the process dies), and a second writer is refused naming the holder's process id.</item>
/// </list>
/// </summary>
public sealed class RunFolder : IDisposable
{
    private static readonly JsonSerializerOptions s_manifestJson = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower, WriteIndented = true };

    /// <summary>Set to a number of milliseconds, each checkpoint save pauses that long between its two renames: the fault tests
    /// use it to kill runs inside the swap.</summary>
    public const string SavePauseVariable = "MODELCOMPILER_TEST_SAVE_PAUSE_MS";

    /// <summary>The file a save writes last: every other file's size and SHA-256.</summary>
    public const string ManifestName = "manifest.json";

    private const string LockName = "run.lock", OwnerName = "run.owner", TempTag = ".tmp-", OldTag = ".old-";
    private readonly FileStream _lock;

    private RunFolder(string directory, FileStream lockStream)
    {
        Directory = directory;
        _lock = lockStream;
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
    /// left.
    /// </summary>
    /// <param name="directory">The run folder.</param>
    /// <param name="create">Create the folder when missing.</param>
    /// <param name="notice">Told of every recovery step (an adopted or removed checkpoint).</param>
    /// <exception cref="RunFolderBusyException">Another live process holds the folder.</exception>
    /// <exception cref="IOException">The folder is missing (and not to be created) or cannot be written.</exception>
    public static RunFolder Open(string directory, bool create, Action<string> notice)
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

        var folder = new RunFolder(directory, lockStream);
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
    public static RunFolder OpenNew(string directory, Action<string> notice, string why)
    {
        var folder = Open(directory, create: true, notice);
        bool finished = folder.HasCheckpoint;
        if (finished || folder.ReadMetrics(notice).Any(line => line.Length > 0))
        {
            folder.Dispose();
            throw new IOException($"{directory} already holds a run{(finished ? string.Empty : $" that did not finish ({why})")}; choose another --out. Nothing was changed.");
        }

        return folder;
    }

    /// <summary>
    /// Saves a checkpoint: <paramref name="write"/> fills a new folder, the manifest of its files is written last, and the
    /// folder then replaces <c>checkpoint/</c> by two renames.
    /// </summary>
    public void SaveCheckpoint(Action<string> write)
    {
        string temp = CheckpointDirectory + TempTag + Environment.ProcessId, old = CheckpointDirectory + OldTag + Environment.ProcessId;
        if (System.IO.Directory.Exists(temp)) System.IO.Directory.Delete(temp, recursive: true);
        System.IO.Directory.CreateDirectory(temp);
        try
        {
            write(temp);
            var manifest = new SortedDictionary<string, ManifestEntry>(StringComparer.Ordinal);
            foreach (string file in System.IO.Directory.GetFiles(temp)) manifest[Path.GetFileName(file)] = Describe(file);
            AtomicFile.WriteAllText(Path.Combine(temp, ManifestName), JsonSerializer.Serialize(manifest, s_manifestJson));
        }
        catch
        {
            // A save that fails (a full disk) leaves nothing behind to fill the disk further; checkpoint/ is untouched.
            try
            {
                System.IO.Directory.Delete(temp, recursive: true);
            }
            catch (IOException)
            {
                // The next Open removes it.
            }

            throw;
        }

        if (System.IO.Directory.Exists(CheckpointDirectory)) System.IO.Directory.Move(CheckpointDirectory, old);
        if (Environment.GetEnvironmentVariable(SavePauseVariable) is { } pause && int.TryParse(pause, CultureInfo.InvariantCulture, out int milliseconds))
        {
            Thread.Sleep(milliseconds);
        }

        System.IO.Directory.Move(temp, CheckpointDirectory);
        if (System.IO.Directory.Exists(old)) System.IO.Directory.Delete(old, recursive: true);
    }

    /// <summary>
    /// Checks <c>checkpoint/</c> against its manifest: every file listed is there with its size and SHA-256, so that a file
    /// damaged or replaced since the save is named before anything reads it. A checkpoint saved before manifests existed (no
    /// manifest.json) is taken as it is, with a notice.
    /// </summary>
    /// <exception cref="CheckpointException">The manifest is unreadable, or a file is missing, of another size or changed.</exception>
    public void VerifyCheckpoint(Action<string> notice)
    {
        string path = Path.Combine(CheckpointDirectory, ManifestName);
        if (!File.Exists(path))
        {
            notice($"{CheckpointDirectory} has no {ManifestName} (saved by an earlier version): its files are not checked");
            return;
        }

        SortedDictionary<string, ManifestEntry> manifest;
        try
        {
            manifest = JsonSerializer.Deserialize<SortedDictionary<string, ManifestEntry>>(File.ReadAllText(path), s_manifestJson) ?? throw new JsonException("empty");
            if (manifest.Count == 0 || manifest.Values.Any(e => e is null || e.Bytes < 0 || e.Sha256 is not { Length: 64 })) throw new JsonException("an entry without a size or a SHA-256");
        }
        catch (JsonException e)
        {
            throw new CheckpointException($"{path} is damaged ({e.Message}); the checkpoint cannot be checked", e);
        }

        foreach (var (name, expected) in manifest)
        {
            string file = Path.Combine(CheckpointDirectory, name);
            if (name.Contains('/', StringComparison.Ordinal) || name.Contains('\\', StringComparison.Ordinal) || !File.Exists(file))
            {
                throw new CheckpointException($"{file}: listed in {ManifestName} but missing from the checkpoint");
            }

            var actual = Describe(file);
            if (actual.Bytes != expected.Bytes)
            {
                throw new CheckpointException($"{file} has {actual.Bytes} bytes, not the {expected.Bytes} it had when it was saved ({ManifestName}): the file was damaged or cut short");
            }

            if (!string.Equals(actual.Sha256, expected.Sha256, StringComparison.OrdinalIgnoreCase))
            {
                throw new CheckpointException($"{file}: its SHA-256 is not the one recorded when it was saved ({ManifestName}): the file was damaged or changed");
            }
        }
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

    private static ManifestEntry Describe(string file)
    {
        using var stream = File.OpenRead(file);
        return new ManifestEntry(stream.Length, Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(stream)));
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
        string? adopt = leftovers.FirstOrDefault(d => Path.GetFileName(d).Contains(TempTag, StringComparison.Ordinal) && File.Exists(Path.Combine(d, ManifestName)))
            ?? (HasCheckpoint ? null : leftovers.FirstOrDefault(d => Path.GetFileName(d).Contains(OldTag, StringComparison.Ordinal) && File.Exists(Path.Combine(d, ManifestName))));
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

    /// <summary>One file of a checkpoint as its manifest records it.</summary>
    private sealed record ManifestEntry(long Bytes, string Sha256);
}
