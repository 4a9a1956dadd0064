using ModelCompiler.Planning;
using ModelCompiler.Torch.Training;
using Xunit;
using static TorchSharp.torch;

namespace ModelCompiler.Torch.Tests;

/// <summary>A user's text: tokenised with the gpt2 tiktoken tokenizer, packed into rows, trainable.</summary>
public sealed class PackedTextDataTests : IDisposable
{
    private readonly string _folder = Path.Combine(Path.GetTempPath(), $"mc-text-{Guid.NewGuid():N}");

    public PackedTextDataTests()
    {
        Directory.CreateDirectory(_folder);
        File.WriteAllText(Path.Combine(_folder, "a.txt"), "Multi-head latent attention compresses keys and values into one latent vector per token.");
        File.WriteAllText(Path.Combine(_folder, "b.txt"), "DeepSeekMoE routes each token to a few fine-grained experts.");
    }

    [Fact]
    public void Rows_are_the_packed_token_stream_with_end_of_text_between_documents()
    {
        var (tokenizer, end) = PackedTextData.CreateTokenizer("gpt2");
        var data = new PackedTextData(_folder, tokenizer, rowLength: 8, vocabularySize: 50304, end);
        var expected = tokenizer.EncodeToIds(File.ReadAllText(Path.Combine(_folder, "a.txt"))).Select(i => (long)i).Append(50256)
            .Concat(tokenizer.EncodeToIds(File.ReadAllText(Path.Combine(_folder, "b.txt"))).Select(i => (long)i)).Append(50256).ToArray();
        Assert.Equal(expected.Length, data.Tokens);
        using var scope = NewDisposeScope();
        var (rows, mask) = data.Batch(1, (int)data.Rows);                       // starts at row 1 and wraps to row 0
        var flat = rows.data<long>().ToArray();
        Assert.Equal(expected.Skip(8).Take(8), flat.Take(8));
        Assert.Equal(expected.Take(8), flat.Skip(((int)data.Rows - 1) * 8).Take(8));
        Assert.True(mask.all().item<bool>());
    }

    [Fact]
    public void A_vocabulary_smaller_than_the_tokenizer_is_refused()
    {
        var (tokenizer, end) = PackedTextData.CreateTokenizer("gpt2");
        var error = Assert.Throws<ArgumentException>(() => new PackedTextData(_folder, tokenizer, 8, 32, end));
        Assert.Contains("but the model's vocabulary has 32 tokens", error.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => PackedTextData.CreateTokenizer("sentencepiece"));
    }

    [Fact]
    public void A_model_trains_on_the_text()
    {
        using var scope = NewDisposeScope();
        var spec = new ModelSpec
        {
            VocabularySize = 50304, HiddenSize = 16, Layers = 1, DenseLayers = 1, DenseIntermediateSize = 32, SequenceLength = 8,
            Attention = new AttentionSpec(2, 16, 0, 8, 4, 8),
        };
        var (tokenizer, end) = PackedTextData.CreateTokenizer("gpt2");
        var data = new PackedTextData(_folder, tokenizer, 8, spec.VocabularySize, end);
        using var model = new DeepSeekCausalLM(spec, seed: 3);
        using var trainer = new Pretrainer(model, new PretrainOptions { Steps = 30, MicroBatchSize = (int)data.Rows, WarmupSteps = 2, LearningRate = 3e-2 }, data);
        var first = trainer.TrainStep();
        StepReport last = first;
        for (int i = 1; i < 30; i++) last = trainer.TrainStep();
        Assert.Equal(data.Rows * 7, first.Tokens);                              // every position predicts the next token
        Assert.True(last.Loss < 0.5 * first.Loss, $"loss {first.Loss:F2} → {last.Loss:F2}");
    }

    public void Dispose() => Directory.Delete(_folder, recursive: true);
}
