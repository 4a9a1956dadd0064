using Microsoft.ML.Tokenizers;
using static TorchSharp.torch;

namespace ModelCompiler.Torch.Training;

/// <summary>
/// A training data stream: batch number n of a stream is a pure function of its position, so a checkpoint records the
/// data position as one number and a resumed run sees exactly the data it would have seen.
/// </summary>
public interface IPretrainData
{
    /// <summary>Rows [count, length] starting at <paramref name="position"/>, and a mask of the positions whose token is a target.</summary>
    (Tensor Tokens, Tensor TargetMask) Batch(long position, int count);
}

/// <summary>TinySeek's arithmetic problems (<see cref="ArithmeticTasks"/>); only the answers are targets.</summary>
/// <param name="Seed">The stream.</param>
/// <param name="Noise">Share of systematically wrong answers.</param>
/// <param name="RowLength">Tokens per row.</param>
public sealed record ArithmeticData(long Seed, double Noise, int RowLength) : IPretrainData
{
    /// <inheritdoc/>
    public (Tensor Tokens, Tensor TargetMask) Batch(long position, int count) =>
        Pretrainer.Layout(Enumerable.Range(0, count).Select(i => ArithmeticTasks.Draw(Seed, position + i, Noise)).ToList(), RowLength);
}

/// <summary>
/// A user's text, tokenised with Microsoft.ML.Tokenizers and packed: every file (a file, or the *.txt files of a folder in
/// name order) is encoded, documents are joined with the end-of-text token, and the stream is cut into consecutive rows of
/// fixed length; every token is a target. Positions past the last row wrap around (epochs).
/// </summary>
public sealed class PackedTextData : IPretrainData
{
    private readonly long[] _stream;

    /// <summary>Tokenises <paramref name="path"/> with <paramref name="tokenizer"/>.</summary>
    /// <exception cref="ArgumentException">No text, too little text for one row, or a token id the model's vocabulary does not have.</exception>
    public PackedTextData(string path, Tokenizer tokenizer, int rowLength, int vocabularySize, int? endOfText = null)
    {
        var files = Directory.Exists(path) ? Directory.GetFiles(path, "*.txt").Order(StringComparer.Ordinal).ToArray()
            : File.Exists(path) ? [path] : throw new ArgumentException($"{path}: no such file or folder");
        if (files.Length == 0) throw new ArgumentException($"{path}: the folder has no *.txt files");
        var stream = new List<long>();
        foreach (string file in files)
        {
            foreach (int id in tokenizer.EncodeToIds(File.ReadAllText(file)))
            {
                if (id >= vocabularySize) throw new ArgumentException($"{file}: the tokenizer produced id {id}, but the model's vocabulary has {vocabularySize} tokens; declare a vocabulary of at least the tokenizer's size");
                stream.Add(id);
            }

            if (endOfText is { } end) stream.Add(end);
        }

        if (stream.Count < rowLength + 1) throw new ArgumentException($"{path}: {stream.Count} tokens, fewer than one row of {rowLength + 1}");
        _stream = stream.ToArray();
        RowLength = rowLength;
        Rows = _stream.Length / rowLength;
    }

    /// <summary>Tokens per row.</summary>
    public int RowLength { get; }

    /// <summary>Rows in one epoch.</summary>
    public long Rows { get; }

    /// <summary>Tokens in the stream.</summary>
    public long Tokens => _stream.LongLength;

    /// <summary>The tokenizer named by <paramref name="name"/>: <c>gpt2</c> (tiktoken r50k, shipped), or <c>bpe:vocab.json:merges.txt</c>.</summary>
    /// <exception cref="ArgumentException">An unknown name or unreadable files.</exception>
    public static (Tokenizer Tokenizer, int? EndOfText) CreateTokenizer(string name)
    {
        if (name == "gpt2") return (TiktokenTokenizer.CreateForModel("gpt2"), 50256);
        if (name.StartsWith("bpe:", StringComparison.Ordinal) && name.Split(':') is [_, var vocab, var merges])
        {
            try
            {
                return (BpeTokenizer.Create(vocab, merges), null);
            }
            catch (Exception e) when (e is IOException or ArgumentException or InvalidOperationException or System.Text.Json.JsonException)
            {
                throw new ArgumentException($"tokenizer '{name}': {e.Message}", e);
            }
        }

        throw new ArgumentException($"unknown tokenizer '{name}': use gpt2 or bpe:<vocab.json>:<merges.txt>");
    }

    /// <inheritdoc/>
    public (Tensor Tokens, Tensor TargetMask) Batch(long position, int count)
    {
        var ids = new long[count * RowLength];
        for (int r = 0; r < count; r++)
        {
            long row = (position + r) % Rows;
            Array.Copy(_stream, row * RowLength, ids, r * RowLength, RowLength);
        }

        return (tensor(ids, [count, RowLength]), ones(count, RowLength, ScalarType.Bool));
    }
}
