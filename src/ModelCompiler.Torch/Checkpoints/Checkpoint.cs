using System.Text.Json;
using ModelCompiler.HuggingFace;
using ModelCompiler.Planning;
using TorchSharp;
using static TorchSharp.torch;

namespace ModelCompiler.Torch.Checkpoints;

/// <summary>
/// A Hugging Face checkpoint folder: <c>config.json</c> and either one <c>model.safetensors</c> or shards listed in
/// <c>model.safetensors.index.json</c>. Loads its weights into a <see cref="DeepSeekCausalLM"/> by name, dequantising FP8
/// E4M3 weights with their <c>weight_scale_inv</c> block scales; a missing or unexpected tensor, or a wrong shape, is an
/// error that lists the names.
/// </summary>
public sealed class Checkpoint : IDisposable
{
    private const string ScaleSuffix = "_scale_inv";
    private readonly Dictionary<string, SafetensorsFile> _owner;
    private readonly List<SafetensorsFile> _files;

    private Checkpoint(string directory, ModelSpec spec, List<SafetensorsFile> files)
    {
        Directory = directory;
        Spec = spec;
        _files = files;
        _owner = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
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

    /// <summary>Every tensor name in the checkpoint.</summary>
    public IEnumerable<string> Names => _owner.Keys;

    /// <summary>Whether the checkpoint holds the MTP modules (<c>model.layers.{Layers}.*</c>).</summary>
    public bool HasMtp => _owner.Keys.Any(n => n.StartsWith($"model.layers.{Spec.Layers}.", StringComparison.Ordinal));

    /// <summary>Opens <paramref name="directory"/>: reads config.json and every safetensors header.</summary>
    /// <exception cref="CheckpointException">A file is missing, truncated or inconsistent.</exception>
    /// <exception cref="ConfigException">config.json cannot be read as a DeepSeek config, or declares a model that cannot be built.</exception>
    public static Checkpoint Open(string directory)
    {
        if (!System.IO.Directory.Exists(directory)) throw new CheckpointException($"{directory}: no such checkpoint folder (it holds config.json and model.safetensors)");
        string configPath = Path.Combine(directory, "config.json");
        var spec = HuggingFaceConfig.Read(configPath);
        var errors = ModelPlanner.Plan(spec).Issues.Where(i => i.Severity == RuleSeverity.Error).ToList();
        if (errors.Count > 0) throw new ConfigException($"{configPath} declares a model that cannot be built: {string.Join("; ", errors)}");
        string index = Path.Combine(directory, "model.safetensors.index.json");
        List<string> paths;
        if (File.Exists(index))
        {
            try
            {
                using var document = JsonDocument.Parse(File.ReadAllText(index));
                paths = document.RootElement.GetProperty("weight_map").EnumerateObject().Select(p => p.Value.GetString()!).Distinct().Order(StringComparer.Ordinal)
                    .Select(f => Path.Combine(directory, f)).ToList();
            }
            catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
            {
                throw new CheckpointException($"{index}: not a safetensors index (expected {{\"weight_map\": {{tensor: file}}}}): {e.Message}", e);
            }
        }
        else
        {
            paths = [Path.Combine(directory, "model.safetensors")];
        }

        var files = new List<SafetensorsFile>();
        try
        {
            foreach (string path in paths) files.Add(SafetensorsFile.Open(path));
            return new Checkpoint(directory, spec, files);
        }
        catch
        {
            foreach (var file in files) file.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Reads tensor <paramref name="name"/> as float32; an FP8 weight is dequantised with its block scales. Every value and
    /// scale must be finite.
    /// </summary>
    /// <exception cref="CheckpointException">The tensor is missing, its scales are, or a value or scale is NaN or infinite (the first one named by index).</exception>
    public Tensor ReadFloat(string name)
    {
        var file = _owner.TryGetValue(name, out var f) ? f : throw new CheckpointException($"{Directory}: no tensor named '{name}'");
        var entry = file.Tensors[name];
        var value = file.ReadFloat(name);
        try
        {
            EnsureFinite(value, entry, file);
        }
        catch
        {
            value.Dispose();
            throw;
        }

        if (entry.DType != "F8_E4M3") return value;
        if (!_owner.ContainsKey(name + ScaleSuffix))
        {
            value.Dispose();
            throw new CheckpointException($"{Directory}: FP8 tensor '{name}' has no '{name}{ScaleSuffix}' block scales");
        }

        using (value)
        using (var scale = ReadFloat(name + ScaleSuffix))
        {
            return Fp8.Dequantize(value, scale, Spec.Precision.WeightBlock, name);
        }
    }

    /// <summary>Refuses a tensor holding NaN or infinity, naming the first such element by its index.</summary>
    private void EnsureFinite(Tensor value, TensorEntry entry, SafetensorsFile file)
    {
        using var finite = isfinite(value);
        if (finite.all().item<bool>()) return;
        using var flat = finite.flatten().logical_not();
        long first = flat.nonzero()[0, 0].item<long>();
        var index = new long[entry.Shape.Length];
        long rest = first;
        for (int d = entry.Shape.Length - 1; d >= 0; d--)
        {
            index[d] = rest % entry.Shape[d];
            rest /= entry.Shape[d];
        }

        float bad = value.flatten()[first].item<float>();
        string what = entry.DType == "F8_E4M3" ? $"an E4M3 NaN byte (0x7F or 0xFF)" : float.IsNaN(bad) ? "NaN" : bad > 0 ? "+infinity" : "-infinity";
        throw new CheckpointException($"{Directory}: tensor '{entry.Name}' in {Path.GetFileName(file.Path)} holds {what} at [{string.Join(", ", index)}] (element {first}, data byte {entry.Begin + (first * (entry.End - entry.Begin) / Math.Max(1, entry.Elements))}); a checkpoint's weights must be finite");
    }

    /// <summary>
    /// Copies the checkpoint into <paramref name="model"/>. Every parameter and buffer must be present with its shape, and
    /// every tensor of the checkpoint (scales aside) must belong to the model.
    /// </summary>
    public void LoadInto(DeepSeekCausalLM model)
    {
        var targets = model.state_dict();
        var available = _owner.Keys.Where(n => !n.EndsWith(ScaleSuffix, StringComparison.Ordinal)).ToHashSet(StringComparer.Ordinal);
        var missing = targets.Keys.Where(n => !available.Contains(n)).Order(StringComparer.Ordinal).ToList();
        var unexpected = available.Where(n => !targets.ContainsKey(n)).Order(StringComparer.Ordinal).ToList();
        if (missing.Count > 0) throw new CheckpointException($"{Directory}: {missing.Count} tensor(s) of the model are missing from the checkpoint: {List(missing)}");
        if (unexpected.Count > 0) throw new CheckpointException($"{Directory}: {unexpected.Count} tensor(s) of the checkpoint do not belong to the model: {List(unexpected)}");

        using var _ = no_grad();
        foreach (var (name, target) in targets)
        {
            var entry = _owner[name].Tensors[name];
            if (!entry.Shape.SequenceEqual(target.shape))
            {
                throw new CheckpointException($"{Directory}: tensor '{name}' has shape [{string.Join(", ", entry.Shape)}] in {Path.GetFileName(_owner[name].Path)} but the model expects [{string.Join(", ", target.shape)}]");
            }

            if (target.is_floating_point() && !SafetensorsFile.IsFloatingPoint(entry.DType))
            {
                throw new CheckpointException($"{Directory}: tensor '{name}' is stored as {entry.DType} in {Path.GetFileName(_owner[name].Path)}, but the model's parameter is floating point; "
                    + "the file's dtype is wrong (its bytes would be read as integers)");
            }

            using var value = ReadFloat(name);
            target.copy_(value.to(target.dtype));
        }
    }

    /// <summary>
    /// Writes <paramref name="model"/>'s weights with their Hugging Face names and <paramref name="configJson"/> as config.json to
    /// <paramref name="directory"/>, each file atomically.
    /// </summary>
    public static void Save(DeepSeekCausalLM model, string directory, string configJson)
    {
        System.IO.Directory.CreateDirectory(directory);
        SafetensorsFile.Write(Path.Combine(directory, "model.safetensors"), model.state_dict(), new Dictionary<string, string> { ["format"] = "pt" });
        AtomicFile.WriteAllText(Path.Combine(directory, "config.json"), configJson);
    }

    /// <summary>Throws unless config.json declares the same network as <paramref name="model"/> (training-only settings aside).</summary>
    /// <exception cref="CheckpointException">The first settings that differ.</exception>
    public void EnsureDeclares(ModelSpec model, string name = "this model")
    {
        if (!SpecComparison.SameArchitecture(Spec, model, out string difference))
        {
            throw new CheckpointException($"{Directory}/config.json does not declare {name}: {difference}");
        }
    }

    /// <summary>Builds <paramref name="model"/>'s network (with its MTP modules when <paramref name="includeMtp"/>) and loads the checkpoint into it.</summary>
    /// <exception cref="CheckpointException">The checkpoint declares another model, or does not fit it.</exception>
    public DeepSeekCausalLM CreateModel(ModelSpec model, bool includeMtp)
    {
        EnsureDeclares(model);
        var result = new DeepSeekCausalLM(model, includeMtp);
        try
        {
            LoadInto(result);
            return result;
        }
        catch
        {
            result.Dispose();
            throw;
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (var file in _files) file.Dispose();
    }

    private static string List(List<string> names) => string.Join(", ", names.Take(20)) + (names.Count > 20 ? $", … ({names.Count - 20} more)" : string.Empty);
}
