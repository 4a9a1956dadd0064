using System.Diagnostics;
using System.Text.Json;
using ModelCompiler.TestUtilities;
using Xunit;

namespace ModelCompiler.Tests;

/// <summary>The modelc executable, run as a user runs it.</summary>
public sealed class CliTests
{
    private static readonly string Modelc = Path.Combine(AppContext.BaseDirectory, "modelc.dll");

    [Theory]
    [InlineData("deepseek-v3.json", 671_026_419_200, 37_552_297_472, 11_610_068_224, 70_272, 3_997_696)]
    [InlineData("deepseek-v2.json", 235_741_434_880, 21_375_800_320, 0, 69_120, 3_932_160)]
    [InlineData("deepseek-v2-lite.json", 15_706_484_224, 2_661_150_208, 0, 31_104, 221_184)]
    public void Plan_json_gives_the_published_numbers(string config, long total, long activated, long mtp, long kv, long mha)
    {
        var (code, stdout, _) = Run("plan", Fixture(config), "--json");
        Assert.Equal(0, code);
        using var json = JsonDocument.Parse(stdout);
        var root = json.RootElement;
        Assert.Equal(total, root.GetProperty("totalParameters").GetInt64());
        Assert.Equal(activated, root.GetProperty("activatedParameters").GetInt64());
        Assert.Equal(mtp, root.GetProperty("mtpParameters").GetInt64());
        Assert.Equal(kv, root.GetProperty("kvCacheBytesPerToken").GetInt64());
        Assert.Equal(mha, root.GetProperty("mhaKvCacheBytesPerToken").GetInt64());
    }

    [Fact]
    public void Plan_kernels_prints_the_kernel_plan_and_says_what_is_left_out()
    {
        var (code, table, stderr) = Run("plan", Fixture("deepseek-v2-lite.json"), "--kernels");
        Assert.Equal(0, code);
        Assert.Contains("MlaDecodeMma", table, StringComparison.Ordinal);
        Assert.Contains("MlaDecodeWarpGroup    │ not generated: 16 heads are not a", table, StringComparison.Ordinal); // the cell wraps at 80 columns
        Assert.Contains("info MC4001: MlaDecodeWarpGroup is not generated for this declaration", stderr, StringComparison.Ordinal);

        (code, string json, _) = Run("plan", Fixture("deepseek-v3.json"), "--kernels", "--json");
        Assert.Equal(0, code);
        using var document = JsonDocument.Parse(json);
        var kernels = document.RootElement.GetProperty("kernels").EnumerateArray().ToList();
        Assert.Equal(14, kernels.Count);
        Assert.All(kernels, k => Assert.Equal(JsonValueKind.Null, k.GetProperty("limit").ValueKind));
        Assert.Equal(512, document.RootElement.GetProperty("hidden").GetProperty("group").GetInt32());
    }

    [Fact]
    public void Plan_table_and_scaffold_print_what_a_user_reads()
    {
        var (code, table, _) = Run("plan", Fixture("deepseek-v3.json"));
        Assert.Equal(0, code);
        Assert.Contains("671,026,419,200", table, StringComparison.Ordinal);
        Assert.Contains("70,272 B", table, StringComparison.Ordinal);

        var (scaffoldCode, source, _) = Run("scaffold", Fixture("deepseek-v2-lite.json"), "--name", "DeepSeekV2Lite", "--namespace", "My.Models");
        Assert.Equal(0, scaffoldCode);
        Assert.Contains("namespace My.Models;", source, StringComparison.Ordinal);
        Assert.Contains("[MultiHeadLatentAttention(heads: 16, keyValueLoraRank: 512,", source, StringComparison.Ordinal);
        Assert.Contains("public partial class DeepSeekV2Lite;", source, StringComparison.Ordinal);
    }

    [Fact]
    public void Bad_input_exits_non_zero_with_a_message()
    {
        string path = Path.Combine(Path.GetTempPath(), $"modelc-bad-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, "{\"model_type\": \"deepseek_v3\", \"hidden_size\": 64}");
        try
        {
            var (code, _, stderr) = Run("plan", path);
            Assert.Equal(2, code);
            Assert.Contains("\"vocab_size\" is missing", stderr, StringComparison.Ordinal);

            File.WriteAllText(path, File.ReadAllText(Fixture("deepseek-v3.json")).Replace("\"num_experts_per_tok\": 8", "\"num_experts_per_tok\": 300", StringComparison.Ordinal));
            (code, _, stderr) = Run("plan", path, "--json");
            Assert.Equal(1, code);
            Assert.Contains("error MC2003: MixtureOfExperts.ActivatedExperts = 300 exceeds RoutedExperts = 256", stderr, StringComparison.Ordinal);

            foreach (string block in new[] { "[100, 100]", "[0, 0]" })
            {
                File.WriteAllText(path, File.ReadAllText(Fixture("deepseek-v3.json")).Replace("\"weight_block_size\": [128, 128]", $"\"weight_block_size\": {block}", StringComparison.Ordinal));
                (code, _, stderr) = Run("plan", path);
                Assert.Equal(1, code);
                Assert.Contains($"error MC3002: PrecisionPolicy.WeightBlock = {block[1..block.IndexOf(',')]} is not valid", stderr, StringComparison.Ordinal);
            }
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Theory]
    [InlineData("1f1b", 21.0)]
    [InlineData("zbh1", 7.0)]
    [InlineData("dualpipe", 6.0)]
    [InlineData("dualpipev", 6.0)]
    public void Schedule_prints_the_bubble(string kind, double bubble)
    {
        string png = Path.Combine(Path.GetTempPath(), $"modelc-{kind}-{Guid.NewGuid():N}.png");
        try
        {
            var (code, stdout, stderr) = Run("schedule", "--kind", kind, "--stages", "8", "--microbatches", "20", "--forward", "1", "--backward", "2", "--weight", "1", "--overlapped", "3", "--json", "--png", png);
            Assert.True(code == 0, stderr);
            using var json = JsonDocument.Parse(stdout);
            Assert.Equal(bubble, json.RootElement.GetProperty("maxBubble").GetDouble(), 9);
            Assert.True(new FileInfo(png).Length > 1000, "the timeline PNG was not drawn");
        }
        finally
        {
            File.Delete(png);
        }

        Assert.Equal(2, Run("schedule", "--kind", "dualpipe", "--stages", "7", "--microbatches", "20").Code);
    }

    [Theory]
    [InlineData("100000", "100000", "stages = 100000: at most 1024 are supported")]
    [InlineData("1000", "100000", "micro-batches = 100000: at most 65536 are supported")]
    [InlineData("1024", "65536", "stages × micro-batches = 67108864: at most 262144 are supported")]
    public void Schedule_refuses_sizes_beyond_its_limits_before_building(string stages, string microBatches, string expected)
    {
        var clock = Stopwatch.StartNew();
        var (code, _, stderr) = Run("schedule", "--kind", "1f1b", "--stages", stages, "--microbatches", microBatches);
        Assert.Equal(2, code);
        Assert.Contains(expected, stderr, StringComparison.Ordinal);
        Assert.True(clock.Elapsed.TotalSeconds < 60, $"took {clock.Elapsed.TotalSeconds:F0} s");
    }

    [Fact]
    public void New_onto_a_file_is_refused_in_one_line()
    {
        string file = Path.Combine(Path.GetTempPath(), $"modelc-file-{Guid.NewGuid():N}");
        File.WriteAllText(file, "mine");
        try
        {
            var (code, _, stderr) = Run("new", file, "--from", Fixture("tiny-v3.json"));
            Assert.Equal(2, code);
            Assert.Contains("is a file; give a folder to create", stderr, StringComparison.Ordinal);
            Assert.DoesNotContain("   at ", stderr, StringComparison.Ordinal);
            Assert.Equal("mine", File.ReadAllText(file));
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public void New_refuses_a_feed_without_the_packages_and_scaffold_never_overwrites()
    {
        string root = Path.Combine(Path.GetTempPath(), $"modelc-feed-{Guid.NewGuid():N}");
        Directory.CreateDirectory(root);
        try
        {
            string project = Path.Combine(root, "tiny");
            var (code, _, stderr) = Run("new", project, "--from", Fixture("tiny-v3.json"), "--feed", root);
            Assert.Equal(2, code);
            Assert.Contains($"--feed {root} has no ModelCompiler.", stderr, StringComparison.Ordinal);
            Assert.False(Directory.Exists(project));

            (code, _, stderr) = Run("new", project, "--from", Fixture("tiny-v3.json"), "--feed", root, "--repository", root);
            Assert.Equal(1, code); // a usage error, as System.CommandLine reports every one
            Assert.Contains("--feed and --repository exclude each other", stderr, StringComparison.Ordinal);

            string output = Path.Combine(root, "Tiny.cs");
            (code, _, stderr) = Run("scaffold", Fixture("tiny-v3.json"), "--name", "Tiny", "--namespace", "My", "--out", output);
            Assert.True(code == 0, stderr);
            Assert.Contains("public partial class Tiny;", File.ReadAllText(output), StringComparison.Ordinal);
            File.WriteAllText(output, "mine");
            (code, _, stderr) = Run("scaffold", Fixture("tiny-v3.json"), "--name", "Tiny", "--namespace", "My", "--out", output);
            Assert.Equal(2, code);
            Assert.Contains("exists; nothing was written over it", stderr, StringComparison.Ordinal);
            Assert.Equal("mine", File.ReadAllText(output));
            Assert.Single(Directory.GetFiles(root)); // no temporary left behind
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [Fact]
    public void New_project_verifies_and_runs_the_reference_checkpoint()
    {
        string root = Path.Combine(Path.GetTempPath(), $"modelc-new-{Guid.NewGuid():N}");
        string project = Path.Combine(root, "tiny-v3");
        string checkpoint = RepositoryPaths.Combine("tests", "fixtures", "tiny-v3");
        try
        {
            // The packaged way (a feed, the tool from it) is PackageTests'; this is the checkout's projects, built in place.
            string repository = RepositoryPaths.Root;
            var (code, stdout, stderr) = Run("new", project, "--from", Path.Combine(checkpoint, "config.json"), "--repository", repository);
            Assert.True(code == 0, stderr);
            Assert.Contains("TinyV3.csproj", stdout, StringComparison.Ordinal);
            Assert.Equal(2, Run("new", project, "--from", Path.Combine(checkpoint, "config.json"), "--repository", repository).Code); // never overwrites

            var verify = RunDotnet("run", "--project", project, "-c", "Release", "--", "verify", checkpoint);
            Assert.True(verify.Code == 0, verify.Stdout + verify.Stderr);
            Assert.Contains("naive attention: max |Δ|", verify.Stdout, StringComparison.Ordinal);
            Assert.Contains("greedy tokens through the latent cache: 251,942,254,200,773,598,829,122,298,124,829,723 ok", verify.Stdout, StringComparison.Ordinal);

            var generate = RunDotnet("run", "--project", project, "-c", "Release", "--no-build", "--", "generate", checkpoint, "--prompt-ids", "5,6,7", "--max-new-tokens", "4", "--bench");
            Assert.True(generate.Code == 0, generate.Stdout + generate.Stderr);
            Assert.Matches(@"^\d+,\d+,\d+,\d+\n", generate.Stdout);
            Assert.Contains("KV cache allocated: 1728 bytes per token", generate.Stdout, StringComparison.Ordinal); // (128 + 16) × 3 layers × 4 B

            // The FP8 fixture: its logits (transformers on the dequantised weights) and its greedy tokens, with no option.
            string fp8 = RepositoryPaths.Combine("tests", "fixtures", "tiny-v3-fp8");
            var fp8Verify = RunDotnet("run", "--project", project, "-c", "Release", "--no-build", "--", "verify", fp8);
            Assert.True(fp8Verify.Code == 0, fp8Verify.Stdout + fp8Verify.Stderr);
            Assert.Contains("absorbed attention: max |Δ|", fp8Verify.Stdout, StringComparison.Ordinal);
            Assert.Contains("greedy tokens through the latent cache:", fp8Verify.Stdout, StringComparison.Ordinal);
            Assert.DoesNotContain("FAIL", fp8Verify.Stdout, StringComparison.Ordinal);
            foreach (string[] cache in new[] { Array.Empty<string>(), ["--no-cache"] })
            {
                var greedy = RunDotnet(["run", "--project", project, "-c", "Release", "--no-build", "--", "generate", fp8, "--prompt-ids", "203,802,2,239,451,327,163,54", .. cache]);
                Assert.True(greedy.Code == 0, greedy.Stdout + greedy.Stderr);
                Assert.Equal("728,177,803,407,869,345,282,196,407,598,382,897\n", greedy.Stdout); // the fixture's greedy_tokens
            }

            var wrong = RunDotnet("run", "--project", project, "-c", "Release", "--no-build", "--", "verify", RepositoryPaths.Combine("tests", "fixtures", "configs"));
            Assert.Equal(2, wrong.Code);

            string text = Path.Combine(root, "corpus.txt");
            File.WriteAllText(text, "A user's text, tokenised with the gpt2 tokenizer, whose ids do not fit a 1024-token vocabulary.");
            var pretrain = RunDotnet("run", "--project", project, "-c", "Release", "--no-build", "--", "pretrain", "--data", text, "--steps", "2");
            Assert.Equal(2, pretrain.Code);
            Assert.Contains("but the model's vocabulary has 1024 tokens", pretrain.Stderr, StringComparison.Ordinal);
        }
        finally
        {
            if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
        }
    }

    private static string Fixture(string name) => RepositoryPaths.Combine("tests", "fixtures", "configs", name);

    private static (int Code, string Stdout, string Stderr) Run(params string[] args) => RunDotnet([Modelc, .. args]);

    private static (int Code, string Stdout, string Stderr) RunDotnet(params string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string arg in args) start.ArgumentList.Add(arg);
        start.Environment["COLUMNS"] = "200";
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        Assert.True(process.WaitForExit(300_000), "the command did not finish in 300 s");
        return (process.ExitCode, stdout.Result, stderr.Result);
    }
}
