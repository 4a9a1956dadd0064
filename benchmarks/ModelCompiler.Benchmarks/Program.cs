extern alias gen;
using System.Diagnostics;
using System.Globalization;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.Text;
using ModelCompiler.TestUtilities;
using Generator = gen::ModelCompiler.Generators.ModelCompilerGenerator;

// Generator timing for the DeepSeekV3 declaration, the way an IDE sees it:
//   cold        the first run in a fresh process (includes JIT of the generator and of Roslyn's driver);
//   warm        a full run of a new driver over the same compilation, after warm-up (median of N);
//   keystroke   an incremental rerun after an edit that moves the declaration (median of N): parse re-runs, the
//               plan and the emitted file stay cached.
// Usage: dotnet run --project benchmarks/ModelCompiler.Benchmarks -c Release [-- iterations]
int iterations = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 200;
string source = File.ReadAllText(RepositoryPaths.Combine("samples", "DeepSeekV3", "DeepSeekV3.cs"));
var compilation = CompilationFactory.Create(source);
GeneratorDriver NewDriver() => CSharpGeneratorDriver.Create([new Generator().AsSourceGenerator()], parseOptions: CompilationFactory.ParseOptions);

var clock = Stopwatch.StartNew();
var first = NewDriver().RunGenerators(compilation).GetRunResult();
double cold = clock.Elapsed.TotalMilliseconds;
if (first.GeneratedTrees.Length != 2 || first.Diagnostics.Length != 0) throw new InvalidOperationException("the DeepSeekV3 declaration did not generate its Config and Pipeline files cleanly");

double Median(Func<double> measure)
{
    for (int i = 0; i < 20; i++) measure();
    var samples = Enumerable.Range(0, iterations).Select(_ => measure()).OrderBy(x => x).ToArray();
    return samples[samples.Length / 2];
}

double warm = Median(() =>
{
    var driver = NewDriver();
    var watch = Stopwatch.StartNew();
    driver.RunGenerators(compilation);
    return watch.Elapsed.TotalMilliseconds;
});

var tree = compilation.SyntaxTrees.Single();
int edit = 0;
var baseline = NewDriver().RunGenerators(compilation);
double keystroke = Median(() =>
{
    var moved = compilation.ReplaceSyntaxTree(tree, tree.WithChangedText(tree.GetText().Replace(0, 0, new string(' ', ++edit % 7) + "\n")));
    var watch = Stopwatch.StartNew();
    baseline.RunGenerators(moved);
    return watch.Elapsed.TotalMilliseconds;
});

Console.WriteLine($"ModelCompiler generator on samples/DeepSeekV3 ({iterations} iterations, {Environment.ProcessorCount} cores, .NET {Environment.Version})");
Console.WriteLine();
Console.WriteLine("| run | time (ms) |");
Console.WriteLine("|---|---:|");
Console.WriteLine($"| cold (first run in the process) | {cold:F1} |");
Console.WriteLine($"| warm (new driver, median) | {warm:F2} |");
Console.WriteLine($"| keystroke (incremental rerun after an edit, median) | {keystroke:F2} |");
