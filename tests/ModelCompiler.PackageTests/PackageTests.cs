using System.IO.Compression;
using System.Xml.Linq;
using Xunit;

namespace ModelCompiler.PackageTests;

/// <summary>
/// The packages from outside the repository, with only the local feed and the configured registry: the tool from a tool
/// manifest, a project from <c>modelc new</c> and one from the <c>modelcompiler-model</c> template, each built and verified on
/// the reference checkpoint, and a bad attribute value seen as its MC diagnostic in the build output.
/// </summary>
public sealed class PackageTests(PackagedFeed feed) : IClassFixture<PackagedFeed>
{
    private const string GreedyTokens = "greedy tokens through the latent cache: 251,942,254,200,773,598,829,122,298,124,829,723 ok";

    [Fact]
    public void Every_package_carries_readme_licence_docs_and_symbols_and_the_generator_travels_in_ModelCompiler()
    {
        foreach (string id in new[] { "ModelCompiler", "ModelCompiler.Torch", "ModelCompiler.Gpu", "ModelCompiler.Distributed", "ModelCompiler.Inference" })
        {
            using var package = ZipFile.OpenRead(Path.Combine(feed.Feed, $"{id}.{feed.Version}.nupkg"));
            var entries = package.Entries.Select(e => e.FullName).ToHashSet();
            Assert.Contains("README.md", entries);
            Assert.Contains("LICENSE", entries);
            Assert.Contains($"lib/net10.0/{id}.xml", entries);
            Assert.True(File.Exists(Path.Combine(feed.Feed, $"{id}.{feed.Version}.snupkg")), $"{id} has no symbol package");
            var nuspec = Nuspec(package);
            Assert.Equal("MIT", Element(nuspec, "license").Value);
            Assert.Matches("^[0-9a-f]{40}$", Element(nuspec, "repository").Attribute("commit")!.Value);
        }

        using (var core = ZipFile.OpenRead(Path.Combine(feed.Feed, $"ModelCompiler.{feed.Version}.nupkg")))
        {
            var entries = core.Entries.Select(e => e.FullName).ToList();
            Assert.Contains("analyzers/dotnet/cs/ModelCompiler.Generators.dll", entries);
            Assert.Contains("analyzers/dotnet/cs/ModelCompiler.CodeFixes.dll", entries);
            Assert.Contains("lib/netstandard2.0/ModelCompiler.dll", entries);
        }

        using var torch = ZipFile.OpenRead(Path.Combine(feed.Feed, $"ModelCompiler.Torch.{feed.Version}.nupkg"));
        var dependencies = Nuspec(torch).Descendants().Where(e => e.Name.LocalName == "dependency").ToDictionary(e => e.Attribute("id")!.Value);
        Assert.Equal("[0.107.0, 0.108.0)", dependencies["TorchSharp-cpu"].Attribute("version")!.Value);
        Assert.Equal("All", dependencies["ModelCompiler"].Attribute("include")!.Value); // the generator reaches whoever adds Torch alone
        using var gpu = ZipFile.OpenRead(Path.Combine(feed.Feed, $"ModelCompiler.Gpu.{feed.Version}.nupkg"));
        Assert.Equal("[1.5.3, 1.6.0)", Nuspec(gpu).Descendants().Single(e => e.Name.LocalName == "dependency" && e.Attribute("id")!.Value == "ILGPU").Attribute("version")!.Value);
    }

    [Fact]
    public void The_tool_from_the_feed_prints_its_package_version()
    {
        var version = Dotnet(feed.Work, "modelc", "--version");
        version.AssertSucceeded("dotnet modelc --version");
        Assert.Equal(feed.Version, version.Output.Trim());
    }

    [Fact]
    public void A_project_from_modelc_new_builds_verifies_and_shows_a_bad_attribute_as_its_diagnostic()
    {
        string project = Path.Combine(feed.Work, "from-tool");
        Dotnet(feed.Work, "modelc", "new", project, "--from", Path.Combine(feed.Fixture("tiny-v3"), "config.json"), "--name", "TinyV3", "--feed", feed.Feed)
            .AssertSucceeded("modelc new");
        Assert.Contains($"<PackageReference Include=\"ModelCompiler\" Version=\"{feed.Version}\" />", File.ReadAllText(Path.Combine(project, "TinyV3.csproj")));
        BuildAndVerify(project);

        string declaration = Path.Combine(project, "TinyV3.cs");
        string source = File.ReadAllText(declaration);
        Assert.Contains("GroupsPerToken = 2", source);
        File.WriteAllText(declaration, source.Replace("GroupsPerToken = 2", "GroupsPerToken = 6", StringComparison.Ordinal));
        var build = Dotnet(project, "build", "-c", "Release");
        Assert.NotEqual(0, build.ExitCode);
        Assert.Contains("TinyV3.cs(11,56): error MC2005: MixtureOfExperts.GroupsPerToken = 6 exceeds ExpertGroups = 4", build.Output);
    }

    [Fact]
    public void The_template_makes_the_project_modelc_new_makes_and_it_verifies()
    {
        string hive = Path.Combine(feed.Root, "template-hive");
        Dotnet(feed.Work, "new", "install", Path.Combine(feed.Feed, $"ModelCompiler.Templates.{feed.Version}.nupkg"), "--debug:custom-hive", hive)
            .AssertSucceeded("dotnet new install");
        string config = Path.Combine(feed.Fixture("tiny-v3"), "config.json");
        string made = Path.Combine(feed.Work, "from-template");
        Dotnet(feed.Work, "new", "modelcompiler-model", "-n", "TinyV3", "-o", made, "--config", config, "--feed", feed.Feed, "--allow-scripts", "yes",
            "--debug:custom-hive", hive).AssertSucceeded("dotnet new modelcompiler-model");

        string reference = Path.Combine(feed.Work, "template-reference");
        Dotnet(feed.Work, "modelc", "new", reference, "--from", config, "--name", "TinyV3", "--feed", feed.Feed).AssertSucceeded("modelc new");
        // The same files, byte for byte; the template keeps the response file its last step ran modelc with.
        var expected = Names(reference);
        Assert.Equal(Names(reference).Append("modelc.rsp").Order(StringComparer.Ordinal), Names(made));
        foreach (string file in expected)
        {
            Assert.Equal(File.ReadAllText(Path.Combine(reference, file)), File.ReadAllText(Path.Combine(made, file)));
        }

        BuildAndVerify(made);
    }

    private void BuildAndVerify(string project)
    {
        Dotnet(project, "build", "-c", "Release").AssertSucceeded("dotnet build");
        Assert.True(File.Exists(Path.Combine(project, "obj", "Generated", "ModelCompiler.Generators", "ModelCompiler.Generators.ModelCompilerGenerator", "TinyV3.TinyV3.Module.g.cs")),
            "the generator did not run from the package");
        var verify = Dotnet(project, "run", "-c", "Release", "--no-build", "--", "verify", feed.Fixture("tiny-v3"));
        verify.AssertSucceeded("verify");
        Assert.Contains(GreedyTokens, verify.Output);
    }

    private static IEnumerable<string> Names(string folder) => Directory.GetFiles(folder).Select(f => Path.GetFileName(f)).Order(StringComparer.Ordinal);

    private static Shell.Result Dotnet(string directory, params string[] args) => Shell.Run(directory, TimeSpan.FromMinutes(8), "dotnet", args);

    private static XElement Nuspec(ZipArchive package)
    {
        using var stream = package.Entries.Single(e => e.FullName.EndsWith(".nuspec", StringComparison.Ordinal)).Open();
        return XElement.Load(stream);
    }

    private static XElement Element(XElement nuspec, string name) => nuspec.Descendants().First(e => e.Name.LocalName == name);
}
