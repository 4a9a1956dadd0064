using System.Buffers.Binary;
using System.Text;
using ModelCompiler.Checkpoints;
using ModelCompiler.HuggingFace;
using ModelCompiler.Planning;
using ModelCompiler.Torch.Checkpoints;
using Xunit;
using static TorchSharp.torch;

namespace ModelCompiler.Torch.Tests;

/// <summary>Each kind of broken checkpoint gives its own error, naming the tensor, the shapes or the byte offset.</summary>
public sealed class BadCheckpointTests : IDisposable
{
    private static readonly ModelSpec Spec = new()
    {
        VocabularySize = 50, HiddenSize = 32, Layers = 1, DenseLayers = 1, DenseIntermediateSize = 48, SequenceLength = 32,
        Attention = new AttentionSpec(2, 16, 0, 8, 4, 8),
    };

    private readonly string _directory = Path.Combine(Path.GetTempPath(), $"mc-bad-{Guid.NewGuid():N}");

    public BadCheckpointTests()
    {
        using var model = new DeepSeekCausalLM(Spec);
        Checkpoint.Save(model, _directory, HuggingFaceConfig.ToJson(Spec));
    }

    private string File => Path.Combine(_directory, "model.safetensors");

    [Fact]
    public void A_valid_checkpoint_loads()
    {
        using var checkpoint = Checkpoint.Open(_directory);
        using var model = new DeepSeekCausalLM(checkpoint.Spec);
        checkpoint.LoadInto(model);
    }

    [Fact]
    public void Truncated_file()
    {
        var bytes = System.IO.File.ReadAllBytes(File);
        System.IO.File.WriteAllBytes(File, bytes[..^100]);
        var error = Assert.Throws<CheckpointException>(() => Checkpoint.Open(_directory));
        Assert.Contains("the file is truncated", error.Message, StringComparison.Ordinal);
        Assert.Contains("ends at data byte", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void File_shorter_than_the_header_length_field()
    {
        System.IO.File.WriteAllBytes(File, [1, 2, 3]);
        var error = Assert.Throws<CheckpointException>(() => Checkpoint.Open(_directory));
        Assert.Contains("fewer than the 8-byte header length at offset 0", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Header_length_beyond_the_file()
    {
        var bytes = System.IO.File.ReadAllBytes(File);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)bytes.Length * 4);
        System.IO.File.WriteAllBytes(File, bytes);
        var error = Assert.Throws<CheckpointException>(() => Checkpoint.Open(_directory));
        Assert.Contains($"header length {bytes.Length * 4} (bytes 0-7) runs past the end of the file ({bytes.Length} bytes)", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Corrupt_header()
    {
        ReplaceInHeader("\"dtype\":", "\"dtype\";");
        var error = Assert.Throws<CheckpointException>(() => Checkpoint.Open(_directory));
        Assert.True(error.Message.Contains("corrupt header", StringComparison.Ordinal), error.Message);
        Assert.Contains("byte offset", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Unknown_dtype()
    {
        ReplaceInHeader("\"F32\"", "\"F31\"");
        var error = Assert.Throws<CheckpointException>(() => Checkpoint.Open(_directory));
        Assert.Contains("has unknown dtype 'F31'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Wrong_shape()
    {
        Rewrite(tensors => tensors["model.norm.weight"] = ones(31));
        using var checkpoint = Checkpoint.Open(_directory);
        using var model = new DeepSeekCausalLM(checkpoint.Spec);
        var error = Assert.Throws<CheckpointException>(() => checkpoint.LoadInto(model));
        Assert.Contains("tensor 'model.norm.weight' has shape [31] in model.safetensors but the model expects [32]", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Missing_tensor()
    {
        Rewrite(tensors => tensors.Remove("model.layers.0.self_attn.kv_b_proj.weight"));
        using var checkpoint = Checkpoint.Open(_directory);
        using var model = new DeepSeekCausalLM(checkpoint.Spec);
        var error = Assert.Throws<CheckpointException>(() => checkpoint.LoadInto(model));
        Assert.Contains("1 tensor(s) of the model are missing from the checkpoint: model.layers.0.self_attn.kv_b_proj.weight", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Unexpected_tensor()
    {
        Rewrite(tensors => tensors["model.layers.0.mlp.extra.weight"] = ones(3));
        using var checkpoint = Checkpoint.Open(_directory);
        using var model = new DeepSeekCausalLM(checkpoint.Spec);
        var error = Assert.Throws<CheckpointException>(() => checkpoint.LoadInto(model));
        Assert.Contains("do not belong to the model: model.layers.0.mlp.extra.weight", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_NaN_weight_is_named_with_its_index()
    {
        Rewrite(tensors =>
        {
            var weight = tensors["model.layers.0.self_attn.o_proj.weight"].clone();
            weight[3, 5] = tensor(float.NaN);
            tensors["model.layers.0.self_attn.o_proj.weight"] = weight;
        });
        using var checkpoint = Checkpoint.Open(_directory);
        using var model = new DeepSeekCausalLM(checkpoint.Spec);
        var error = Assert.Throws<CheckpointException>(() => checkpoint.LoadInto(model));
        Assert.Contains("tensor 'model.layers.0.self_attn.o_proj.weight' in model.safetensors holds NaN at [3, 5] (element 53", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_infinite_weight_is_named()
    {
        Rewrite(tensors => tensors["model.norm.weight"] = tensor(Enumerable.Repeat(float.NegativeInfinity, 32).ToArray()));
        using var checkpoint = Checkpoint.Open(_directory);
        using var model = new DeepSeekCausalLM(checkpoint.Spec);
        var error = Assert.Throws<CheckpointException>(() => checkpoint.LoadInto(model));
        Assert.Contains("tensor 'model.norm.weight' in model.safetensors holds -infinity at [0]", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Float_bytes_labelled_as_integers_are_refused()
    {
        Rewrite(tensors =>
        {
            var relabelled = empty(32, ScalarType.Int32);
            relabelled.bytes = tensors["model.norm.weight"].bytes; // the float bytes, labelled I32
            tensors["model.norm.weight"] = relabelled;
        });
        using var checkpoint = Checkpoint.Open(_directory);
        using var model = new DeepSeekCausalLM(checkpoint.Spec);
        var error = Assert.Throws<CheckpointException>(() => checkpoint.LoadInto(model));
        Assert.Contains("tensor 'model.norm.weight' is stored as I32 in model.safetensors, but the model's parameter is floating point", error.Message, StringComparison.Ordinal);
    }

    /// <summary>In the FP8 fixture: an E4M3 NaN byte (S.1111.111) in a weight, and a NaN block scale, each named.</summary>
    [Theory]
    [InlineData(0x7F, 1f, "holds an E4M3 NaN byte (0x7F or 0xFF) at [0, 1]")]
    [InlineData(0xFF, 1f, "holds an E4M3 NaN byte (0x7F or 0xFF) at [0, 1]")]
    [InlineData(-1, float.NaN, "'model.layers.0.self_attn.kv_b_proj.weight_scale_inv' in model.safetensors holds NaN at [0, 0]")]
    public void A_NaN_in_an_FP8_weight_or_its_scale_is_named(int code, float scale, string expected)
    {
        string fp8 = Path.Combine(_directory, "fp8");
        Directory.CreateDirectory(fp8);
        string fixture = ModelCompiler.TestUtilities.RepositoryPaths.Combine("tests", "fixtures", "tiny-v3-fp8");
        System.IO.File.Copy(Path.Combine(fixture, "config.json"), Path.Combine(fp8, "config.json"));
        Dictionary<string, Tensor> tensors;
        using (var file = SafetensorsFile.Open(Path.Combine(fixture, "model.safetensors"))) tensors = file.Tensors.Keys.ToDictionary(n => n, file.ReadRaw);
        const string Name = "model.layers.0.self_attn.kv_b_proj.weight";
        if (code >= 0)
        {
            var bytes = tensors[Name].clone();
            bytes[0, 1] = tensor((byte)code);
            tensors[Name] = bytes;
        }
        else
        {
            var scales = tensors[Name + "_scale_inv"].clone();
            scales[0, 0] = tensor(scale);
            tensors[Name + "_scale_inv"] = scales;
        }

        WriteWithDtypes(Path.Combine(fixture, "model.safetensors"), Path.Combine(fp8, "model.safetensors"), tensors);
        using var checkpoint = Checkpoint.Open(fp8);
        using var model = new DeepSeekCausalLM(checkpoint.Spec);
        var error = Assert.Throws<CheckpointException>(() => checkpoint.LoadInto(model));
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
        Assert.Contains(Name, error.Message, StringComparison.Ordinal);
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    /// <summary>
    /// Writes <paramref name="tensors"/> with the header of <paramref name="source"/> (so that F8_E4M3 bytes, which TorchSharp
    /// holds as U8, keep their dtype): the data is the same size, tensor for tensor.
    /// </summary>
    private static void WriteWithDtypes(string source, string target, Dictionary<string, Tensor> tensors)
    {
        var bytes = System.IO.File.ReadAllBytes(source);
        int length = (int)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        using (var file = SafetensorsFile.Open(source))
        {
            foreach (var (name, entry) in file.Tensors)
            {
                byte[] data = tensors[name].contiguous().bytes.ToArray();
                data.CopyTo(bytes, 8 + length + (int)entry.Begin);
            }
        }

        System.IO.File.WriteAllBytes(target, bytes);
    }

    private void Rewrite(Action<Dictionary<string, Tensor>> edit)
    {
        Dictionary<string, Tensor> tensors;
        using (var file = SafetensorsFile.Open(File)) tensors = file.Tensors.Keys.ToDictionary(n => n, file.ReadRaw);
        edit(tensors);
        SafetensorsFile.Write(File, tensors);
    }

    private void ReplaceInHeader(string from, string to)
    {
        var bytes = System.IO.File.ReadAllBytes(File);
        int length = (int)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        string header = Encoding.UTF8.GetString(bytes, 8, length);
        int at = header.IndexOf(from, StringComparison.Ordinal);
        Encoding.UTF8.GetBytes(to).CopyTo(bytes, 8 + at);
        System.IO.File.WriteAllBytes(File, bytes);
    }
}
