using ModelCompiler.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace ModelCompiler.Torch.Checkpoints;

/// <summary>
/// One safetensors file as TorchSharp tensors: <see cref="SafetensorsReader"/> (in ModelCompiler, shared with the GPU
/// inference runtime) reads and checks the file; this turns its bytes into tensors and tensors into a file.
/// </summary>
/// <remarks>
/// Why our own reader rather than TorchSharp.PyBridge 1.4.4: its safetensors support is an internal class with no FP8
/// (<c>F8_E4M3</c> throws NotImplementedException), no sharded index, no bounds checks (a truncated file reads short without
/// an error), and a non-atomic writer. The format is small enough to read exactly, with the errors users need.
/// </remarks>
public sealed class SafetensorsFile : IDisposable
{
    private static readonly Dictionary<string, ScalarType> s_types = new(StringComparer.Ordinal)
    {
        ["F64"] = ScalarType.Float64, ["F32"] = ScalarType.Float32, ["F16"] = ScalarType.Float16, ["BF16"] = ScalarType.BFloat16,
        ["I64"] = ScalarType.Int64, ["I32"] = ScalarType.Int32, ["I16"] = ScalarType.Int16, ["I8"] = ScalarType.Int8,
        ["U8"] = ScalarType.Byte, ["BOOL"] = ScalarType.Bool, ["F8_E4M3"] = ScalarType.Byte, // E4M3 codes are held as raw bytes
    };

    private readonly SafetensorsReader _reader;

    private SafetensorsFile(SafetensorsReader reader) => _reader = reader;

    /// <summary>The file.</summary>
    public string Path => _reader.Path;

    /// <summary>The tensors by name, in header order.</summary>
    public IReadOnlyDictionary<string, TensorEntry> Tensors => _reader.Tensors;

    /// <summary>The <c>__metadata__</c> strings.</summary>
    public IReadOnlyDictionary<string, string> Metadata => _reader.Metadata;

    /// <summary>Opens and checks <paramref name="path"/>.</summary>
    /// <exception cref="CheckpointException">The file is missing, truncated or inconsistent.</exception>
    public static SafetensorsFile Open(string path) => new(SafetensorsReader.Open(path));

    /// <summary>Reads tensor <paramref name="name"/> in its stored dtype (F8_E4M3 as raw bytes, U8).</summary>
    public Tensor ReadRaw(string name)
    {
        var entry = _reader.Entry(name);
        var tensor = empty(entry.Shape, s_types[entry.DType]);
        tensor.bytes = _reader.ReadBytes(name);
        return tensor;
    }

    /// <summary>Reads tensor <paramref name="name"/> as float32 (FP8 E4M3 decoded; block scales are applied by the checkpoint loader).</summary>
    public Tensor ReadFloat(string name) => tensor(_reader.ReadFloats(name), _reader.Entry(name).Shape);

    /// <inheritdoc/>
    public void Dispose() => _reader.Dispose();

    /// <summary>Writes <paramref name="tensors"/> to <paramref name="path"/> atomically (a temporary file, then a rename).</summary>
    public static void Write(string path, IEnumerable<KeyValuePair<string, Tensor>> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var list = tensors.Select(pair =>
        {
            using var contiguous = pair.Value.detach().cpu().contiguous();
            string dtype = s_types.FirstOrDefault(t => t.Value == contiguous.dtype && t.Key != "F8_E4M3").Key
                ?? throw new CheckpointException($"tensor '{pair.Key}': dtype {contiguous.dtype} cannot be written to safetensors");
            return (pair.Key, dtype, contiguous.shape, (ReadOnlyMemory<byte>)contiguous.bytes.ToArray());
        }).ToList();
        SafetensorsReader.Write(path, list, metadata);
    }
}
