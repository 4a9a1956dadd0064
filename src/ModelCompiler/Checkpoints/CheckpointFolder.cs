using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.Json;
using ModelCompiler.HuggingFace;
using ModelCompiler.Planning;

namespace ModelCompiler.Checkpoints
{
    /// <summary>
    /// A Hugging Face checkpoint folder, read with no tensor library: <c>config.json</c> (planned: a config that declares a
    /// model that cannot be built is refused) and either one <c>model.safetensors</c> or shards listed in
    /// <c>model.safetensors.index.json</c>. Reads any weight as float32 values, dequantising FP8 E4M3 weights with their
    /// <c>weight_scale_inv</c> block scales, and refuses NaN or infinity naming the tensor and the first bad index.
    /// </summary>
    public sealed class CheckpointFolder : System.IDisposable
    {
        /// <summary>The suffix of an FP8 weight's block-scale tensor.</summary>
        public const string ScaleSuffix = "_scale_inv";

        private readonly Dictionary<string, SafetensorsReader> _owner;
        private readonly List<SafetensorsReader> _files;

        private CheckpointFolder(string directory, ModelSpec spec, int? contextLength, List<SafetensorsReader> files)
        {
            Directory = directory;
            Spec = spec;
            ContextLength = contextLength;
            _files = files;
            _owner = new Dictionary<string, SafetensorsReader>(System.StringComparer.Ordinal);
            foreach (var file in files)
            {
                foreach (string name in file.Tensors.Keys)
                {
                    if (!_owner.TryAdd(name, file)) throw new CheckpointException($"{directory}: tensor '{name}' appears in both {_owner[name].Path} and {file.Path}");
                }
            }
        }

        /// <summary>The folder.</summary>
        public string Directory { get; }

        /// <summary>The model its config.json declares.</summary>
        public ModelSpec Spec { get; }

        /// <summary>config.json's <c>max_position_embeddings</c>, which generation may not run past; null when it has none.</summary>
        public int? ContextLength { get; }

        /// <summary>Every tensor name in the checkpoint, scales included.</summary>
        public IEnumerable<string> Names => _owner.Keys;

        /// <summary>Whether the checkpoint holds the MTP modules (<c>model.layers.{Layers}.*</c>).</summary>
        public bool HasMtp => _owner.Keys.Any(n => n.StartsWith($"model.layers.{Spec.Layers}.", System.StringComparison.Ordinal));

        /// <summary>Opens <paramref name="directory"/>: reads config.json and every safetensors header.</summary>
        /// <exception cref="CheckpointException">A file is missing, truncated or inconsistent.</exception>
        /// <exception cref="ConfigException">config.json cannot be read as a DeepSeek config, or declares a model that cannot be built.</exception>
        public static CheckpointFolder Open(string directory)
        {
            if (!System.IO.Directory.Exists(directory)) throw new CheckpointException($"{directory}: no such checkpoint folder (it holds config.json and model.safetensors)");
            string configPath = Path.Combine(directory, "config.json");
            var spec = HuggingFaceConfig.Read(configPath);
            var errors = ModelPlanner.Plan(spec).Issues.Where(i => i.Severity == RuleSeverity.Error).ToList();
            if (errors.Count > 0) throw new ConfigException($"{configPath} declares a model that cannot be built: {string.Join("; ", errors)}");
            int? contextLength = HuggingFaceConfig.ReadContextLength(configPath);
            string index = Path.Combine(directory, "model.safetensors.index.json");
            List<string> paths;
            if (File.Exists(index))
            {
                try
                {
                    using var document = JsonDocument.Parse(File.ReadAllText(index));
                    paths = document.RootElement.GetProperty("weight_map").EnumerateObject().Select(p => p.Value.GetString()!).Distinct().OrderBy(f => f, System.StringComparer.Ordinal)
                        .Select(f => Path.Combine(directory, f)).ToList();
                }
                catch (System.Exception e) when (e is JsonException or KeyNotFoundException or System.InvalidOperationException)
                {
                    throw new CheckpointException($"{index}: not a safetensors index (expected {{\"weight_map\": {{tensor: file}}}}): {e.Message}", e);
                }
            }
            else
            {
                paths = [Path.Combine(directory, "model.safetensors")];
            }

            var files = new List<SafetensorsReader>();
            try
            {
                foreach (string path in paths) files.Add(SafetensorsReader.Open(path));
                return new CheckpointFolder(directory, spec, contextLength, files);
            }
            catch
            {
                foreach (var file in files) file.Dispose();
                throw;
            }
        }

        /// <summary>Whether the checkpoint has a tensor named <paramref name="name"/>.</summary>
        public bool Contains(string name) => _owner.ContainsKey(name);

        /// <summary>The header entry of tensor <paramref name="name"/>, and the file that holds it.</summary>
        /// <exception cref="CheckpointException">No tensor has that name.</exception>
        public (TensorEntry Entry, string File) Find(string name)
        {
            var file = _owner.TryGetValue(name, out var f) ? f : throw new CheckpointException($"{Directory}: no tensor named '{name}'");
            return (file.Tensors[name], Path.GetFileName(file.Path));
        }

        /// <summary>
        /// Tensor <paramref name="name"/> as float32 values in row-major order; an FP8 weight is dequantised with its
        /// <c>weight_scale_inv</c> blocks (of <see cref="PrecisionSpec.WeightBlock"/>). Every value and scale must be finite.
        /// </summary>
        /// <exception cref="CheckpointException">
        /// The tensor is missing or holds integers, its scales are missing or mis-shaped, or a value or scale is NaN or infinite
        /// (the first one named by index).
        /// </exception>
        public float[] ReadFloats(string name)
        {
            var file = _owner.TryGetValue(name, out var f) ? f : throw new CheckpointException($"{Directory}: no tensor named '{name}'");
            var entry = file.Tensors[name];
            if (!SafetensorsReader.IsFloatingPoint(entry.DType))
            {
                throw new CheckpointException($"{Directory}: tensor '{name}' is stored as {entry.DType} in {Path.GetFileName(file.Path)}, but the model's parameter is floating point; "
                    + "the file's dtype is wrong (its bytes would be read as integers)");
            }

            var values = SafetensorsReader.Decode(entry.DType, file.ReadBytes(name));
            EnsureFinite(values, entry, file);
            if (entry.DType != "F8_E4M3") return values;
            if (!_owner.ContainsKey(name + ScaleSuffix)) throw new CheckpointException($"{Directory}: FP8 tensor '{name}' has no '{name}{ScaleSuffix}' block scales");
            if (entry.Shape.Length != 2) throw new CheckpointException($"{Directory}: FP8 tensor '{name}' has shape [{string.Join(", ", entry.Shape)}]; block scaling needs a matrix");
            int block = Spec.Precision.WeightBlock;
            long rows = entry.Shape[0], columns = entry.Shape[1];
            var (scaleEntry, _) = Find(name + ScaleSuffix);
            long[] expected = [(rows + block - 1) / block, (columns + block - 1) / block];
            if (!scaleEntry.Shape.SequenceEqual(expected))
            {
                throw new CheckpointException($"tensor '{name}{ScaleSuffix}' has shape [{string.Join(", ", scaleEntry.Shape)}] but a [{rows}, {columns}] weight in {block}×{block} blocks needs [{expected[0]}, {expected[1]}]");
            }

            Fp8E4M3.ApplyBlockScales(values, rows, columns, ReadFloats(name + ScaleSuffix), block);
            return values;
        }

        /// <inheritdoc/>
        public void Dispose()
        {
            foreach (var file in _files) file.Dispose();
        }

        /// <summary>Refuses values holding NaN or infinity, naming the first such element by its index.</summary>
        private void EnsureFinite(float[] values, TensorEntry entry, SafetensorsReader file)
        {
            int first = System.Array.FindIndex(values, v => !float.IsFinite(v));
            if (first < 0) return;
            var index = new long[entry.Shape.Length];
            long rest = first;
            for (int d = entry.Shape.Length - 1; d >= 0; d--)
            {
                index[d] = rest % entry.Shape[d];
                rest /= entry.Shape[d];
            }

            float bad = values[first];
            string what = entry.DType == "F8_E4M3" ? "an E4M3 NaN byte (0x7F or 0xFF)" : float.IsNaN(bad) ? "NaN" : bad > 0 ? "+infinity" : "-infinity";
            throw new CheckpointException($"{Directory}: tensor '{entry.Name}' in {Path.GetFileName(file.Path)} holds {what} at [{string.Join(", ", index)}] "
                + $"(element {first}, data byte {entry.Begin + ((long)first * entry.ElementSize)}); a checkpoint's weights must be finite");
        }
    }
}
