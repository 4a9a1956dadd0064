using ModelCompiler.Checkpoints;
using ModelCompiler.Gpu;

namespace ModelCompiler.Inference.Tests;

/// <summary>The reference checkpoints in tests/fixtures and their expected outputs, read without a tensor library.</summary>
internal static class Fixtures
{
    public static string Root { get; } = FindRoot();

    public static string Folder(string name) => Path.Combine(Root, "tests", "fixtures", name);

    /// <summary>The fixture's expected.safetensors: input_ids [2, 40], logits [2, 40, V], greedy_prompt [1, 8], greedy_tokens [1, 12].</summary>
    public static (int[][] Inputs, float[] Logits, int[] GreedyPrompt, int[] GreedyTokens) Expected(string name)
    {
        using var file = SafetensorsReader.Open(Path.Combine(Folder(name), "expected.safetensors"));
        int[] Ints(string tensor) => System.Runtime.InteropServices.MemoryMarshal.Cast<byte, long>(file.ReadBytes(tensor)).ToArray().Select(v => (int)v).ToArray();
        var ids = Ints("input_ids");
        int length = (int)file.Entry("input_ids").Shape[1];
        var inputs = Enumerable.Range(0, ids.Length / length).Select(r => ids[(r * length)..((r + 1) * length)]).ToArray();
        return (inputs, file.ReadFloats("logits"), Ints("greedy_prompt"), Ints("greedy_tokens"));
    }

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Compiler.sln"))) return dir.FullName;
        }

        throw new InvalidOperationException("Compiler.sln not found above " + AppContext.BaseDirectory);
    }
}

/// <summary>One OpenCL device (PoCL in CI) shared by a test class; build.sh installs PoCL, so its absence is a failure.</summary>
public sealed class OpenClDevice : IDisposable
{
    public OpenClDevice() => Device = GpuDevice.Create(GpuBackend.OpenCL);

    public GpuDevice Device { get; }

    public void Dispose() => Device.Dispose();
}
