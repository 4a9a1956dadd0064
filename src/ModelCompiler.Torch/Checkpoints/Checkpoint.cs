using System.Text.Json;
using ModelCompiler.Checkpoints;
using ModelCompiler.HuggingFace;
using ModelCompiler.Planning;
using TorchSharp;
using static TorchSharp.torch;

namespace ModelCompiler.Torch.Checkpoints;

/// <summary>
/// A Hugging Face checkpoint folder for TorchSharp models: <see cref="CheckpointFolder"/> (in ModelCompiler, shared with the GPU
/// inference runtime) reads config.json and the safetensors files, dequantises FP8 E4M3 weights with their
/// <c>weight_scale_inv</c> block scales and refuses non-finite values; this loads them into a <see cref="DeepSeekCausalLM"/> by
/// name. A missing or unexpected tensor, or a wrong shape, is an error that lists the names.
/// </summary>
public sealed class Checkpoint : IDisposable
{
    private readonly CheckpointFolder _folder;

    private Checkpoint(CheckpointFolder folder) => _folder = folder;

    /// <summary>The folder.</summary>
    public string Directory => _folder.Directory;

    /// <summary>The model its config.json declares.</summary>
    public ModelSpec Spec => _folder.Spec;

    /// <summary>Every tensor name in the checkpoint.</summary>
    public IEnumerable<string> Names => _folder.Names;

    /// <summary>Whether the checkpoint holds the MTP modules (<c>model.layers.{Layers}.*</c>).</summary>
    public bool HasMtp => _folder.HasMtp;

    /// <summary>Opens <paramref name="directory"/>: reads config.json and every safetensors header.</summary>
    /// <exception cref="CheckpointException">A file is missing, truncated or inconsistent.</exception>
    /// <exception cref="ConfigException">config.json cannot be read as a DeepSeek config, or declares a model that cannot be built.</exception>
    public static Checkpoint Open(string directory) => new(CheckpointFolder.Open(directory));

    /// <summary>
    /// Reads tensor <paramref name="name"/> as float32; an FP8 weight is dequantised with its block scales. Every value and
    /// scale must be finite.
    /// </summary>
    /// <exception cref="CheckpointException">The tensor is missing, its scales are, or a value or scale is NaN or infinite (the first one named by index).</exception>
    public Tensor ReadFloat(string name) => tensor(_folder.ReadFloats(name), _folder.Find(name).Entry.Shape);

    /// <summary>
    /// Copies the checkpoint into <paramref name="model"/>. Every parameter and buffer must be present with its shape, and
    /// every tensor of the checkpoint (scales aside) must belong to the model.
    /// </summary>
    public void LoadInto(DeepSeekCausalLM model)
    {
        var targets = model.state_dict();
        var available = _folder.Names.Where(n => !n.EndsWith(CheckpointFolder.ScaleSuffix, StringComparison.Ordinal)).ToHashSet(StringComparer.Ordinal);
        var missing = targets.Keys.Where(n => !available.Contains(n)).Order(StringComparer.Ordinal).ToList();
        var unexpected = available.Where(n => !targets.ContainsKey(n)).Order(StringComparer.Ordinal).ToList();
        if (missing.Count > 0) throw new CheckpointException($"{Directory}: {missing.Count} tensor(s) of the model are missing from the checkpoint: {List(missing)}");
        if (unexpected.Count > 0) throw new CheckpointException($"{Directory}: {unexpected.Count} tensor(s) of the checkpoint do not belong to the model: {List(unexpected)}");

        using var _ = no_grad();
        foreach (var (name, target) in targets)
        {
            var (entry, file) = _folder.Find(name);
            if (!entry.Shape.SequenceEqual(target.shape))
            {
                throw new CheckpointException($"{Directory}: tensor '{name}' has shape [{string.Join(", ", entry.Shape)}] in {file} but the model expects [{string.Join(", ", target.shape)}]");
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
    public void Dispose() => _folder.Dispose();

    private static string List(List<string> names) => string.Join(", ", names.Take(20)) + (names.Count > 20 ? $", … ({names.Count - 20} more)" : string.Empty);
}
