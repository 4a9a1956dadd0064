using System.Globalization;
using ModelCompiler.Planning;
using ModelCompiler.TestUtilities;
using ModelCompiler.Torch;
using Xunit;
using Xunit.Abstractions;

namespace ModelCompiler.FaultTests;

/// <summary>
/// The command-line programs on random argument sets (fresh seed each run, printed), built from their real commands and
/// options with values good and bad: each ends with an exit code of 0, 1 or 2 and no stack trace, within a memory bound.
/// A command that is still working after a few seconds (a valid training run) is stopped there: it was accepted.
/// </summary>
public sealed class CliFuzzTests(ITestOutputHelper log) : IDisposable
{
    private const long MemoryBound = 3L << 30;
    private static readonly string[] s_values = ["0", "1", "-1", "3", "7", "1e-3", "0.5", "2", "NaN", "-inf", "99999999999", "abc", "", "1,2,3", "5;6", "fp8", "dualpipe", "1f1b", "x.json"];
    private readonly string _root = Directory.CreateTempSubdirectory("mc-fuzz-").FullName;
    private readonly int _seed = Environment.TickCount;

    public static TheoryData<string> Programs() => ["TinySeek", "modelc"];

    [Theory]
    [MemberData(nameof(Programs))]
    public void Random_arguments_end_without_a_stack_trace(string program)
    {
        var random = new Random(_seed + program.Length);
        var commands = program == "TinySeek"
            ? new Dictionary<string, string[]>
            {
                ["plan"] = [],
                ["pretrain"] = ["--steps", "--out", "--resume", "--extend", "--seed", "--bias-update-speed", "--learning-rate", "--noise", "--checkpoint-every", "--stop-after", "--precision", "--pipeline", "--micro-batches", "--expert-parallel"],
                ["grpo"] = ["--from", "--steps", "--out", "--preset", "--seed", "--prompts", "--lr"],
                ["precision"] = ["--from", "--problems", "--noise"],
                ["compare"] = ["--steps", "--seed", "--learning-rate", "--precision", "--window", "--out"],
                ["r1"] = ["--from", "--rounds", "--rl-steps", "--out"],
            }
            : new Dictionary<string, string[]>
            {
                ["plan"] = ["--json"],
                ["scaffold"] = ["--name", "--namespace", "--out"],
                ["new"] = ["--from", "--name", "--feed", "--repository"],
                ["schedule"] = ["--kind", "--stages", "--microbatches", "--forward", "--backward", "--weight", "--overlapped", "--all-to-all", "--json", "--png"],
            };
        string config = RepositoryPaths.Combine("tests", "fixtures", "configs", "tiny-v3.json");
        string dll = program == "TinySeek" ? ChildProcess.TinySeek : ChildProcess.Modelc;
        int exited = 0, stopped = 0;
        for (int i = 0; i < 18; i++)
        {
            var (name, options) = commands.ElementAt(random.Next(commands.Count));
            var args = new List<string> { name };
            if (name is "plan" or "scaffold" && program == "modelc") args.Add(random.Next(3) == 0 ? "missing.json" : config);
            if (name == "new") args.Add(Path.Combine(_root, $"project-{i}"));
            for (int n = random.Next(0, 5); n > 0; n--)
            {
                args.Add(random.Next(12) == 0 ? "--bogus" : options.Length > 0 ? options[random.Next(options.Length)] : "--bogus");
                if (random.Next(6) != 0) args.Add(Value(random, config, i));
            }

            using var child = ChildProcess.Start(dll, args, _root);
            var result = child.WaitOrKill(TimeSpan.FromSeconds(6));
            string shown = $"{program} {string.Join(" ", args)} (seed {_seed})";
            Assert.False(result.ShowsStackTrace, $"{shown} printed a stack trace:\n{result.Stdout}\n{result.Stderr}");
            Assert.True(result.PeakResidentBytes < MemoryBound, $"{shown} held {result.PeakResidentBytes >> 20} MiB");
            if (result.ExitCode is { } code)
            {
                Assert.True(code is 0 or 1 or 2, $"{shown} exited with {code}:\n{result.Stderr}");
                exited++;
            }
            else
            {
                stopped++;
            }
        }

        log.WriteLine($"seed {_seed}: {program}: {exited} ended on their own, {stopped} still working after 6 s (stopped)");
    }

    /// <summary>A modelc-new project's commands (<see cref="ModelProgram"/>), in this process: 300 random argument sets, none throws.</summary>
    [Fact]
    public void A_model_projects_commands_never_throw()
    {
        var random = new Random(_seed);
        var spec = new ModelSpec
        {
            VocabularySize = 1024, HiddenSize = 256, Layers = 3, DenseLayers = 1, DenseIntermediateSize = 512, SequenceLength = 512,
            Attention = new AttentionSpec(4, 128, 192, 32, 16, 32),
        };
        string[] commands = ["plan", "verify", "generate", "pretrain", "nonsense"];
        string[] options = ["--expected", "--prompt-ids", "--max-new-tokens", "--temperature", "--top-p", "--seed", "--stop", "--no-cache", "--bench", "--data", "--tokenizer", "--row-length", "--steps", "--batch", "--lr", "--out", "--resume", "--extend", "--bogus"];
        var codes = new int[3];
        for (int i = 0; i < 300; i++)
        {
            var args = new List<string> { commands[random.Next(commands.Length)] };
            if (args[0] is "verify" or "generate" && random.Next(4) != 0) args.Add(random.Next(3) == 0 ? "no-such-folder" : _root);
            for (int n = random.Next(0, 5); n > 0; n--)
            {
                args.Add(options[random.Next(options.Length)]);
                if (random.Next(5) != 0) args.Add(Value(random, "missing.json", i));
            }

            // Valid training or generation on the fixture is cut short: the test is about the arguments, not the work.
            if (args.Contains("--data")) args.AddRange(["--steps", "1"]);
            var output = new StringWriter();
            var error = new StringWriter();
            int code = ModelProgram.Run([.. args], "Fuzz", spec, () => new DeepSeekCausalLM(spec), output, error);
            Assert.True(code is 0 or 1 or 2, $"{string.Join(" ", args)} (seed {_seed}) returned {code}");
            codes[code]++;
        }

        log.WriteLine($"seed {_seed}: 300 argument sets: {codes[0]} ran, {codes[1]} failed a check, {codes[2]} refused");
        Assert.True(codes[2] > 0);
    }

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private string Value(Random random, string config, int i) => random.Next(8) switch
    {
        0 => config,
        1 => Path.Combine(_root, $"out-{i}"),
        _ => s_values[random.Next(s_values.Length)],
    };
}
