using System.Buffers.Binary;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.Json;

namespace ModelCompiler.Checkpoints
{
    /// <summary>A checkpoint that cannot be read or does not fit the model; the message names the file, tensor or byte offset.</summary>
    public sealed class CheckpointException : System.Exception
    {
        /// <summary>Creates the exception.</summary>
        public CheckpointException(string message, System.Exception? inner = null)
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

        /// <summary>Bytes per element.</summary>
        public int ElementSize => SafetensorsReader.ElementSize(DType);
    }

    /// <summary>
    /// One safetensors file (8-byte little-endian header length, JSON header, data), with no tensor library: the header is read
    /// and checked on open, tensors' bytes on demand. Every inconsistency is a <see cref="CheckpointException"/> naming the file
    /// and the tensor or byte offset: a file too short for its header length, a header that is not JSON, an unknown dtype, a
    /// tensor whose bytes do not match its shape or lie past the end of the file. The TorchSharp side
    /// (<c>ModelCompiler.Torch.Checkpoints.SafetensorsFile</c>) and the GPU inference runtime both read through it.
    /// </summary>
    public sealed class SafetensorsReader : System.IDisposable
    {
        private static readonly Dictionary<string, int> s_sizes = new(System.StringComparer.Ordinal)
        {
            ["F64"] = 8, ["F32"] = 4, ["F16"] = 2, ["BF16"] = 2, ["I64"] = 8, ["I32"] = 4, ["I16"] = 2, ["I8"] = 1, ["U8"] = 1, ["BOOL"] = 1, ["F8_E4M3"] = 1,
        };

        private readonly FileStream _stream;
        private readonly long _dataStart;

        private SafetensorsReader(string path, FileStream stream, long dataStart, Dictionary<string, TensorEntry> tensors, Dictionary<string, string> metadata)
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

        /// <summary>The dtypes this reader knows.</summary>
        public static IEnumerable<string> DTypes => s_sizes.Keys;

        /// <summary>Bytes per element of a safetensors dtype; false when the dtype is unknown.</summary>
        public static bool TryGetElementSize(string dtype, out int size) => s_sizes.TryGetValue(dtype, out size);

        /// <summary>Bytes per element of a known safetensors dtype.</summary>
        public static int ElementSize(string dtype) => s_sizes.TryGetValue(dtype, out int size) ? size : throw new CheckpointException($"unknown safetensors dtype '{dtype}'");

        /// <summary>Whether a safetensors dtype holds real numbers (F64, F32, F16, BF16, F8_E4M3), not integers or booleans.</summary>
        public static bool IsFloatingPoint(string dtype) => dtype is "F64" or "F32" or "F16" or "BF16" or "F8_E4M3";

        /// <summary>Opens and checks <paramref name="path"/>.</summary>
        /// <exception cref="CheckpointException">The file is missing, truncated or inconsistent.</exception>
        public static SafetensorsReader Open(string path)
        {
            FileStream stream;
            try
            {
                stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
            }
            catch (System.Exception e) when (e is IOException or System.UnauthorizedAccessException)
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

        /// <summary>The entry of tensor <paramref name="name"/>.</summary>
        /// <exception cref="CheckpointException">No tensor has that name.</exception>
        public TensorEntry Entry(string name) => Tensors.TryGetValue(name, out var entry) ? entry : throw new CheckpointException($"{Path}: no tensor named '{name}'");

        /// <summary>The stored bytes of tensor <paramref name="name"/>.</summary>
        public byte[] ReadBytes(string name)
        {
            var entry = Entry(name);
            var buffer = new byte[entry.End - entry.Begin];
            Read(entry, buffer);
            return buffer;
        }

        /// <summary>Reads the stored bytes of <paramref name="entry"/> (one of this file's) into <paramref name="destination"/>.</summary>
        public void Read(TensorEntry entry, System.Span<byte> destination)
        {
            if (destination.Length != entry.End - entry.Begin) throw new System.ArgumentException($"tensor '{entry.Name}' has {entry.End - entry.Begin} bytes, not {destination.Length}", nameof(destination));
            lock (_stream)
            {
                _stream.Position = _dataStart + entry.Begin;
                _stream.ReadExactly(destination);
            }
        }

        /// <summary>
        /// Tensor <paramref name="name"/> as float32 values, converted from F64, F32, F16, BF16 or F8_E4M3 (decoded exactly; an FP8
        /// weight's block scales are applied by <see cref="CheckpointFolder"/>).
        /// </summary>
        /// <exception cref="CheckpointException">The tensor holds integers or booleans.</exception>
        public float[] ReadFloats(string name)
        {
            var entry = Entry(name);
            if (!IsFloatingPoint(entry.DType)) throw new CheckpointException($"{Path}: tensor '{name}' is stored as {entry.DType}, not as real numbers");
            return Decode(entry.DType, ReadBytes(name));
        }

        /// <summary>Stored bytes of <paramref name="dtype"/> as float32 values.</summary>
        public static float[] Decode(string dtype, System.ReadOnlySpan<byte> bytes)
        {
            int size = ElementSize(dtype);
            var values = new float[bytes.Length / size];
            switch (dtype)
            {
                case "F32":
                    System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(bytes).CopyTo(values);
                    break;
                case "F64":
                    for (int i = 0; i < values.Length; i++) values[i] = (float)BinaryPrimitives.ReadDoubleLittleEndian(bytes.Slice(i * 8));
                    break;
                case "F16":
                    for (int i = 0; i < values.Length; i++) values[i] = (float)BinaryPrimitives.ReadHalfLittleEndian(bytes.Slice(i * 2));
                    break;
                case "BF16":
                    for (int i = 0; i < values.Length; i++) values[i] = System.BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(bytes.Slice(i * 2)) << 16);
                    break;
                case "F8_E4M3":
                    for (int i = 0; i < values.Length; i++) values[i] = Fp8E4M3.Decode(bytes[i]);
                    break;
                default:
                    throw new CheckpointException($"dtype {dtype} does not hold real numbers");
            }

            return values;
        }

        /// <summary>
        /// Writes <paramref name="tensors"/> (name, dtype, shape, bytes) to <paramref name="path"/> atomically: a temporary file
        /// beside it, flushed to disk, then renamed over it. The header is padded to 8 bytes with spaces.
        /// </summary>
        public static void Write(string path, IEnumerable<(string Name, string DType, long[] Shape, System.ReadOnlyMemory<byte> Bytes)> tensors, IReadOnlyDictionary<string, string>? metadata = null)
        {
            var list = tensors.ToList();
            var header = new Dictionary<string, object>(System.StringComparer.Ordinal);
            if (metadata is not null) header["__metadata__"] = metadata;
            long offset = 0;
            foreach (var (name, dtype, shape, bytes) in list)
            {
                long expected = shape.Aggregate(1L, (a, b) => a * b) * ElementSize(dtype);
                if (bytes.Length != expected) throw new System.ArgumentException($"tensor '{name}' of shape [{string.Join(", ", shape)}] and dtype {dtype} needs {expected} bytes, not {bytes.Length}");
                header[name] = new Dictionary<string, object> { ["dtype"] = dtype, ["shape"] = shape, ["data_offsets"] = new[] { offset, offset + bytes.Length } };
                offset += bytes.Length;
            }

            byte[] json = JsonSerializer.SerializeToUtf8Bytes(header);
            int padding = (8 - (json.Length % 8)) % 8;
            string temp = path + ".tmp-" + System.Environment.ProcessId;
            try
            {
                using (var stream = new FileStream(temp, FileMode.Create, FileAccess.Write))
                {
                    System.Span<byte> prefix = stackalloc byte[8];
                    BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)(json.Length + padding));
                    stream.Write(prefix);
                    stream.Write(json);
                    for (int i = 0; i < padding; i++) stream.WriteByte((byte)' ');
                    foreach (var tensor in list) stream.Write(tensor.Bytes.Span);
                    stream.Flush(flushToDisk: true);
                }

                File.Move(temp, path, overwrite: true);
            }
            finally
            {
                if (File.Exists(temp)) File.Delete(temp);
            }
        }

        /// <inheritdoc/>
        public void Dispose() => _stream.Dispose();

        private static SafetensorsReader ReadHeader(string path, FileStream stream)
        {
            long fileLength = stream.Length;
            if (fileLength < 8) throw new CheckpointException($"{path}: truncated: {fileLength} bytes, fewer than the 8-byte header length at offset 0");
            System.Span<byte> prefix = stackalloc byte[8];
            stream.ReadExactly(prefix);
            ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
            if (headerLength > (ulong)(fileLength - 8))
            {
                throw new CheckpointException($"{path}: header length {headerLength} (bytes 0-7) runs past the end of the file ({fileLength} bytes): the file is truncated or not safetensors");
            }

            var header = new byte[headerLength];
            stream.ReadExactly(header);
            long dataStart = 8 + (long)headerLength, dataLength = fileLength - dataStart;
            var tensors = new Dictionary<string, TensorEntry>(System.StringComparer.Ordinal);
            var metadata = new Dictionary<string, string>(System.StringComparer.Ordinal);
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
                catch (System.InvalidOperationException e)
                {
                    // JsonDocument checks a name's UTF-8 only when it is read; __metadata__ must be an object of strings.
                    throw new CheckpointException($"{path}: corrupt header (bytes 8-{dataStart - 1}): {e.Message}", e);
                }
            }

            return new SafetensorsReader(path, stream, dataStart, tensors, metadata);
        }

        private static TensorEntry ParseEntry(string path, JsonProperty property, long dataLength)
        {
            string name = property.Name;
            try
            {
                var value = property.Value;
                string dtype = value.GetProperty("dtype").GetString() ?? string.Empty;
                if (!s_sizes.TryGetValue(dtype, out int size))
                {
                    throw new CheckpointException($"{path}: tensor '{name}' has unknown dtype '{dtype}' (known: {string.Join(", ", s_sizes.Keys)})");
                }

                long[] shape = value.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()).ToArray();
                long[] offsets = value.GetProperty("data_offsets").EnumerateArray().Select(d => d.GetInt64()).ToArray();
                if (offsets.Length != 2 || offsets[0] < 0 || offsets[1] < offsets[0] || shape.Any(d => d < 0))
                {
                    throw new CheckpointException($"{path}: tensor '{name}' has invalid data_offsets [{string.Join(", ", offsets)}] or shape [{string.Join(", ", shape)}]");
                }

                var entry = new TensorEntry(name, dtype, shape, offsets[0], offsets[1]);
                long expected;
                try
                {
                    expected = checked(entry.Elements * size);
                }
                catch (System.OverflowException)
                {
                    throw new CheckpointException($"{path}: tensor '{name}' has a shape [{string.Join(", ", shape)}] too large to hold");
                }

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
            catch (System.Exception e) when (e is KeyNotFoundException or System.InvalidOperationException or System.FormatException)
            {
                throw new CheckpointException($"{path}: tensor '{name}' has a malformed header entry: {e.Message}", e);
            }
        }
    }

    /// <summary>
    /// FP8 E4M3 ("fn": bias 7, max 448, no infinities, S.1111.111 is NaN) decoding, and DeepSeek's block-scaled dequantisation:
    /// weight = fp8 · weight_scale_inv[⌊r/b⌋, ⌊c/b⌋].
    /// </summary>
    public static class Fp8E4M3
    {
        private static readonly float[] s_values = Enumerable.Range(0, 256).Select(DecodeBits).ToArray();

        /// <summary>The value of one E4M3 byte.</summary>
        public static float Decode(byte bits) => s_values[bits];

        /// <summary>Whether an E4M3 byte is NaN (0x7F or 0xFF).</summary>
        public static bool IsNaN(byte bits) => (bits & 0x7F) == 0x7F;

        /// <summary>
        /// Multiplies a decoded [rows, columns] weight in place by its [⌈rows/b⌉, ⌈columns/b⌉] block scales.
        /// </summary>
        public static void ApplyBlockScales(float[] weight, long rows, long columns, float[] scales, int block)
        {
            long blockColumns = (columns + block - 1) / block;
            for (long r = 0; r < rows; r++)
            {
                long scaleRow = r / block * blockColumns;
                for (long c = 0; c < columns; c++) weight[(r * columns) + c] *= scales[scaleRow + (c / block)];
            }
        }

        private static float DecodeBits(int bits)
        {
            int sign = (bits >> 7) & 1, exponent = (bits >> 3) & 0xF, mantissa = bits & 0x7;
            float magnitude = exponent == 0xF && mantissa == 0x7 ? float.NaN
                : exponent == 0 ? mantissa / 8f * System.MathF.Pow(2, -6)
                : (1 + (mantissa / 8f)) * System.MathF.Pow(2, exponent - 7);
            return sign == 1 ? -magnitude : magnitude;
        }
    }
}
