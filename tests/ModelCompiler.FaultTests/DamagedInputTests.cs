using System.Text.Json;
using ModelCompiler.Checkpoints;
using ModelCompiler.HuggingFace;
using ModelCompiler.Planning;
using ModelCompiler.TestUtilities;
using ModelCompiler.Torch;
using ModelCompiler.Torch.Checkpoints;
using ModelCompiler.Torch.Training;
using Xunit;
using Xunit.Abstractions;

namespace ModelCompiler.FaultTests;

/// <summary>
/// Damaged files, each a copy of a good one with random bytes flipped or its end cut off (fresh seed each run, printed):
/// a run's checkpoint is refused by name every time (its manifest records each file's SHA-256); a Hugging Face checkpoint
/// or config either loads as what it now says, finite, or is refused by name; never another exception.
/// </summary>
public sealed class DamagedInputTests(ITestOutputHelper log) : IDisposable
{
    private static readonly ModelSpec Tiny = new()
    {
        VocabularySize = ArithmeticTasks.VocabularySize, HiddenSize = 32, Layers = 2, DenseLayers = 1, DenseIntermediateSize = 64, SequenceLength = 16,
        Attention = new AttentionSpec(2, 32, 16, 8, 4, 8),
        Moe = new MoeSpec(8, 2, 16, 1, ExpertScoring.Sigmoid, 2, 1, 1.0, true, LoadBalancing.AuxiliaryLossFree, 0.001, 0, 0, 0, 0),
        Mtp = new MtpSpec(1, 0.3),
    };

    private static readonly PretrainOptions Options = new() { Steps = 4, MicroBatchSize = 8, WarmupSteps = 1, Seed = 3 };
    private readonly string _root = Directory.CreateTempSubdirectory("mc-damage-").FullName;
    private readonly int _seed = Environment.TickCount;

    /// <summary>Each file of a finished run's checkpoint, damaged 40 ways: every one refused before training, naming the file.</summary>
    [Fact]
    public void A_damaged_run_checkpoint_is_refused_naming_the_file()
    {
        var random = new Random(_seed);
        string pristine = Path.Combine(_root, "pristine");
        Run(pristine).Start();
        string[] files = Directory.GetFiles(Path.Combine(pristine, "checkpoint")).Select(Path.GetFileName).ToArray()!;
        Assert.Contains(RunFolder.ManifestName, files);
        int cases = 0;
        foreach (string file in files)
        {
            for (int i = 0; i < 40; i++)
            {
                string folder = Path.Combine(_root, $"case-{cases++}");
                CopyDirectory(pristine, folder);
                string damage = Damage(Path.Combine(folder, "checkpoint", file), random);
                var notices = new List<string>();
                var error = Record.Exception(() => Run(folder, notices.Add).Resume());
                Assert.True(error is CheckpointException, $"{file}, {damage} (seed {_seed}): {(error is null ? "resumed" : error.GetType().Name + ": " + error.Message)}");
                Assert.Contains(file == RunFolder.ManifestName ? RunFolder.ManifestName : file, error!.Message, StringComparison.Ordinal);
                Directory.Delete(folder, recursive: true);
            }
        }

        log.WriteLine($"seed {_seed}: {cases} damaged run checkpoints ({files.Length} files × 40), each refused naming its file");
    }

    /// <summary>metrics.jsonl cut at random points: the run resumes, a torn line is dropped with a notice, no step is duplicated.</summary>
    [Fact]
    public void A_cut_metrics_file_resumes_without_duplicate_steps()
    {
        var random = new Random(_seed);
        string pristine = Path.Combine(_root, "pristine");
        Run(pristine, stopAfter: 2).Start();
        for (int i = 0; i < 12; i++)
        {
            string folder = Path.Combine(_root, $"metrics-{i}");
            CopyDirectory(pristine, folder);
            string metrics = Path.Combine(folder, "metrics.jsonl");
            var bytes = File.ReadAllBytes(metrics);
            int keep = random.Next(bytes.Length);
            File.WriteAllBytes(metrics, bytes[..keep]);
            var notices = new List<string>();
            Run(folder, notices.Add).Resume();
            bool torn = keep > 0 && bytes[keep - 1] != (byte)'\n';
            Assert.Equal(torn, notices.Any(n => n.Contains("a torn last line", StringComparison.Ordinal)));
            var steps = File.ReadAllLines(metrics).Select(l => JsonDocument.Parse(l).RootElement.GetProperty("step").GetInt32()).ToList();
            Assert.Equal(steps.Distinct().Count(), steps.Count);
            Assert.Equal([3, 4], steps.TakeLast(2));
        }

        log.WriteLine($"seed {_seed}: 12 cut metrics files resumed");
    }

    /// <summary>
    /// The tiny-v3 fixture's safetensors header and config.json, damaged 150 ways: each either loads into the model it now
    /// declares with finite weights (a flip inside a number or a name may leave a valid file) or is refused by a
    /// CheckpointException or ConfigException naming the file.
    /// </summary>
    [Fact]
    public void A_damaged_hugging_face_checkpoint_loads_or_is_named()
    {
        var random = new Random(_seed);
        string fixture = RepositoryPaths.Combine("tests", "fixtures", "tiny-v3");
        int loaded = 0, refused = 0;
        for (int i = 0; i < 150; i++)
        {
            string folder = Path.Combine(_root, $"hf-{i}");
            Directory.CreateDirectory(folder);
            File.Copy(Path.Combine(fixture, "config.json"), Path.Combine(folder, "config.json"));
            File.Copy(Path.Combine(fixture, "model.safetensors"), Path.Combine(folder, "model.safetensors"));
            string file = i % 2 == 0 ? "config.json" : "model.safetensors";
            string damage = Damage(Path.Combine(folder, file), random, headerOnly: file == "model.safetensors");
            try
            {
                using var checkpoint = Checkpoint.Open(folder);
                using var model = new DeepSeekCausalLM(checkpoint.Spec);
                checkpoint.LoadInto(model);
                Assert.All(model.parameters(), p => Assert.True(TorchSharp.torch.isfinite(p).all().item<bool>()));
                loaded++;
            }
            catch (Exception e) when (e is CheckpointException or ConfigException)
            {
                Assert.True(e.Message.Contains(file, StringComparison.Ordinal) || e.Message.Contains(folder, StringComparison.Ordinal), $"{file}, {damage} (seed {_seed}): {e.Message}");
                refused++;
            }
            catch (Exception e)
            {
                Assert.Fail($"{file}, {damage} (seed {_seed}): {e.GetType().Name}: {e.Message}");
            }

            Directory.Delete(folder, recursive: true);
        }

        log.WriteLine($"seed {_seed}: 150 damaged Hugging Face checkpoints: {refused} refused by name, {loaded} loaded as what they now declare");
    }

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private static PretrainRun Run(string folder, Action<string>? notice = null, int? stopAfter = null) =>
        new(Tiny, Options with { StopAfter = stopAfter }, folder, checkpointEvery: 2, evalProblems: 2) { Notice = notice ?? (_ => { }) };

    /// <summary>Flips one to four random bytes of <paramref name="path"/> (of its safetensors header only, when asked) or cuts its end off; says which.</summary>
    private static string Damage(string path, Random random, bool headerOnly = false)
    {
        var bytes = File.ReadAllBytes(path);
        if (random.Next(3) == 0)
        {
            int keep = random.Next(bytes.Length);
            File.WriteAllBytes(path, bytes[..keep]);
            return $"cut to {keep} of {bytes.Length} bytes";
        }

        int span = headerOnly ? 8 + (int)BitConverter.ToUInt64(bytes, 0) : bytes.Length;
        var flips = new List<string>();
        for (int n = random.Next(1, 5); n > 0; n--)
        {
            int at = random.Next(span);
            byte mask = (byte)(1 << random.Next(8));
            bytes[at] ^= mask;
            flips.Add($"byte {at} ^ 0x{mask:X2}");
        }

        File.WriteAllBytes(path, bytes);
        return string.Join(", ", flips);
    }

    private static void CopyDirectory(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (string file in Directory.GetFiles(from)) File.Copy(file, Path.Combine(to, Path.GetFileName(file)));
        foreach (string folder in Directory.GetDirectories(from)) CopyDirectory(folder, Path.Combine(to, Path.GetFileName(folder)));
    }
}
