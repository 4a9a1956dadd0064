using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace ModelCompiler.Torch.Checkpoints;

/// <summary>A checkpoint that cannot be read or does not fit the model; the message names the file, tensor or byte offset.</summary>
public sealed class CheckpointException : Exception
{
    /// <summary>Creates the exception.</summary>
    public CheckpointException(string message, Exception? inner = null)
        : base(message, inner)
    {
    }
}

/// <summary>One tensor's entry in a safetensors header.</summary>
/// <param name="Name">The tensor name.</param>
/// <param name="DType">The safetensors dtype string (F32, BF16, F16, F8_E4M3, I64, …).</param>
/// <param name="Shape">The shape.</param>
/// <param name="Begin">Start of its bytes, relative to the data section.</param>
/// <param name="End">End (exclusive) of its bytes.</param>
public sealed record TensorEntry(string Name, string DType, long[] Shape, long Begin, long End)
{
    /// <summary>Number of elements.</summary>
    public long Elements => Shape.Aggregate(1L, (a, b) => a * b);
}

/// <summary>
/// One safetensors file (8-byte little-endian header length, JSON header, data): the header is read and checked on open,
/// tensors on demand. Every inconsistency is a <see cref="CheckpointException"/> naming the file and the tensor or byte
/// offset: a file too short for its header length, a header that is not JSON, an unknown dtype, a tensor whose bytes do not
/// match its shape or lie past the end of the file.
/// </summary>
/// <remarks>
/// Why our own reader rather than TorchSharp.PyBridge 1.4.4: its safetensors support is an internal class with no FP8
/// (<c>F8_E4M3</c> throws NotImplementedException), no sharded index, no bounds checks (a truncated file reads short without
/// an error), and a non-atomic writer. The format is small enough to read exactly, with the errors users need.
/// </remarks>
public sealed class SafetensorsFile : IDisposable
{
    private static readonly Dictionary<string, (int Size, ScalarType? Type)> s_dtypes = new(StringComparer.Ordinal)
    {
        ["F64"] = (8, ScalarType.Float64), ["F32"] = (4, ScalarType.Float32), ["F16"] = (2, ScalarType.Float16), ["BF16"] = (2, ScalarType.BFloat16),
        ["I64"] = (8, ScalarType.Int64), ["I32"] = (4, ScalarType.Int32), ["I16"] = (2, ScalarType.Int16), ["I8"] = (1, ScalarType.Int8),
        ["U8"] = (1, ScalarType.Byte), ["BOOL"] = (1, ScalarType.Bool), ["F8_E4M3"] = (1, null),
    };

    private readonly FileStream _stream;
    private readonly long _dataStart;

    private SafetensorsFile(string path, FileStream stream, long dataStart, Dictionary<string, TensorEntry> tensors, Dictionary<string, string> metadata)
    {
        Path = path;
        _stream = stream;
        _dataStart = dataStart;
        Tensors = tensors;
        Metadata = metadata;
    }

    /// <summary>The file.</summary>
    public string Path { get; }

    /// <summary>The tensors by name, in header order.</summary>
    public IReadOnlyDictionary<string, TensorEntry> Tensors { get; }

    /// <summary>The <c>__metadata__</c> strings.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Bytes per element of a safetensors dtype; false when the dtype is unknown.</summary>
    public static bool TryGetElementSize(string dtype, out int size)
    {
        bool known = s_dtypes.TryGetValue(dtype, out var entry);
        size = entry.Size;
        return known;
    }

    /// <summary>Whether a safetensors dtype holds real numbers (F64, F32, F16, BF16, F8_E4M3), not integers or booleans.</summary>
    public static bool IsFloatingPoint(string dtype) => dtype is "F64" or "F32" or "F16" or "BF16" or "F8_E4M3";

    /// <summary>Opens and checks <paramref name="path"/>.</summary>
    /// <exception cref="CheckpointException">The file is missing, truncated or inconsistent.</exception>
    public static SafetensorsFile Open(string path)
    {
        FileStream stream;
        try
        {
            stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CheckpointException($"{path}: cannot open: {e.Message}", e);
        }

        try
        {
            return ReadHeader(path, stream);
        }
        catch
        {
            stream.Dispose();
            throw;
        }
    }

    /// <summary>Reads tensor <paramref name="name"/> in its stored dtype (F8_E4M3 as raw bytes, U8).</summary>
    public Tensor ReadRaw(string name)
    {
        var entry = Tensors.TryGetValue(name, out var e) ? e : throw new CheckpointException($"{Path}: no tensor named '{name}'");
        var buffer = new byte[entry.End - entry.Begin];
        _stream.Position = _dataStart + entry.Begin;
        _stream.ReadExactly(buffer);
        var type = s_dtypes[entry.DType].Type ?? ScalarType.Byte;
        var tensor = empty(entry.Shape, type);
        tensor.bytes = buffer;
        return tensor;
    }

    /// <summary>Reads tensor <paramref name="name"/> as float32 (FP8 E4M3 decoded; block scales are applied by the loader).</summary>
    public Tensor ReadFloat(string name)
    {
        var entry = Tensors[name];
        using var raw = ReadRaw(name);
        return entry.DType == "F8_E4M3" ? Fp8.DecodeE4M3(raw) : raw.to(ScalarType.Float32);
    }

    /// <inheritdoc/>
    public void Dispose() => _stream.Dispose();

    private static SafetensorsFile ReadHeader(string path, FileStream stream)
    {
        long fileLength = stream.Length;
        if (fileLength < 8) throw new CheckpointException($"{path}: truncated: {fileLength} bytes, fewer than the 8-byte header length at offset 0");
        Span<byte> prefix = stackalloc byte[8];
        stream.ReadExactly(prefix);
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
        if (headerLength > (ulong)(fileLength - 8))
        {
            throw new CheckpointException($"{path}: header length {headerLength} (bytes 0-7) runs past the end of the file ({fileLength} bytes): the file is truncated or not safetensors");
        }

        var header = new byte[headerLength];
        stream.ReadExactly(header);
        long dataStart = 8 + (long)headerLength, dataLength = fileLength - dataStart;
        var tensors = new Dictionary<string, TensorEntry>(StringComparer.Ordinal);
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(header);
        }
        catch (JsonException e)
        {
            throw new CheckpointException($"{path}: corrupt header: not JSON at byte offset {8 + (e.BytePositionInLine ?? 0)} (line {(e.LineNumber ?? 0) + 1} of the header): {e.Message}", e);
        }

        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object) throw new CheckpointException($"{path}: corrupt header at byte offset 8: not a JSON object");
            try
            {
                foreach (var property in document.RootElement.EnumerateObject())
                {
                    if (property.Name == "__metadata__")
                    {
                        foreach (var item in property.Value.EnumerateObject()) metadata[item.Name] = item.Value.ToString();
                        continue;
                    }

                    tensors[property.Name] = ParseEntry(path, property, dataLength);
                }
            }
            catch (InvalidOperationException e)
            {
                // JsonDocument checks a name's UTF-8 only when it is read; __metadata__ must be an object of strings.
                throw new CheckpointException($"{path}: corrupt header (bytes 8-{dataStart - 1}): {e.Message}", e);
            }
        }

        return new SafetensorsFile(path, stream, dataStart, tensors, metadata);
    }

    private static TensorEntry ParseEntry(string path, JsonProperty property, long dataLength)
    {
        string name = property.Name;
        try
        {
            var value = property.Value;
            string dtype = value.GetProperty("dtype").GetString() ?? string.Empty;
            if (!s_dtypes.TryGetValue(dtype, out var type))
            {
                throw new CheckpointException($"{path}: tensor '{name}' has unknown dtype '{dtype}' (known: {string.Join(", ", s_dtypes.Keys)})");
            }

            long[] shape = value.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()).ToArray();
            long[] offsets = value.GetProperty("data_offsets").EnumerateArray().Select(d => d.GetInt64()).ToArray();
            if (offsets.Length != 2 || offsets[0] < 0 || offsets[1] < offsets[0] || shape.Any(d => d < 0))
            {
                throw new CheckpointException($"{path}: tensor '{name}' has invalid data_offsets [{string.Join(", ", offsets)}] or shape [{string.Join(", ", shape)}]");
            }

            var entry = new TensorEntry(name, dtype, shape, offsets[0], offsets[1]);
            long expected = entry.Elements * type.Size;
            if (offsets[1] - offsets[0] != expected)
            {
                throw new CheckpointException($"{path}: tensor '{name}' of shape [{string.Join(", ", shape)}] and dtype {dtype} needs {expected} bytes but its data_offsets span {offsets[1] - offsets[0]}");
            }

            if (offsets[1] > dataLength)
            {
                throw new CheckpointException($"{path}: tensor '{name}' ends at data byte {offsets[1]} but the data section has {dataLength} bytes: the file is truncated");
            }

            return entry;
        }
        catch (Exception e) when (e is KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw new CheckpointException($"{path}: tensor '{name}' has a malformed header entry: {e.Message}", e);
        }
    }

    /// <summary>Writes <paramref name="tensors"/> to <paramref name="path"/> atomically (a temporary file, then a rename).</summary>
    public static void Write(string path, IEnumerable<KeyValuePair<string, Tensor>> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var list = tensors.ToList();
        var header = new Dictionary<string, object>(StringComparer.Ordinal);
        if (metadata is not null) header["__metadata__"] = metadata;
        long offset = 0;
        foreach (var (name, tensor) in list)
        {
            long length = tensor.NumberOfElements * tensor.ElementSize;
            header[name] = new Dictionary<string, object>
            {
                ["dtype"] = DTypeName(tensor.dtype, name),
                ["shape"] = tensor.shape,
                ["data_offsets"] = new[] { offset, offset + length },
            };
            offset += length;
        }

        byte[] json = JsonSerializer.SerializeToUtf8Bytes(header);
        int padding = (8 - (json.Length % 8)) % 8;
        string temp = path + ".tmp-" + Environment.ProcessId;
        try
        {
            using (var stream = new FileStream(temp, FileMode.Create, FileAccess.Write))
            {
                Span<byte> prefix = stackalloc byte[8];
                BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)(json.Length + padding));
                stream.Write(prefix);
                stream.Write(json);
                for (int i = 0; i < padding; i++) stream.WriteByte((byte)' ');
                foreach (var (_, tensor) in list)
                {
                    using var contiguous = tensor.detach().cpu().contiguous();
                    stream.Write(contiguous.bytes);
                }

                stream.Flush(flushToDisk: true);
            }

            File.Move(temp, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }

    private static string DTypeName(ScalarType type, string name) =>
        s_dtypes.FirstOrDefault(d => d.Value.Type == type).Key ?? throw new CheckpointException($"tensor '{name}': dtype {type} cannot be written to safetensors");
}
