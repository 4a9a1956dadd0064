using System.Buffers.Binary;
using System.Text;
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

    public void Dispose() => Directory.Delete(_directory, recursive: true);

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
