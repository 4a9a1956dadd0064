using System.Collections.Generic;
using System.Linq;
using ModelCompiler.Generators.Model;
using ModelCompiler.Planning;
using static ModelCompiler.Generators.Emit.Literals;

namespace ModelCompiler.Generators.Emit
{
    /// <summary>
    /// Emits <c>{Model}.Module.g.cs</c> when the project references ModelCompiler.Torch: the nested <c>Module</c>, a TorchSharp
    /// module of exactly the declared architecture whose parameters carry the Hugging Face tensor names, its checkpoint loader
    /// and the <c>plan</c> / <c>verify</c> / <c>generate</c> commands. Its remarks list the state dict, name by name with shapes.
    /// </summary>
    internal static class ModuleEmitter
    {
        public static GeneratedFile Emit(ModelGeneration g)
        {
            var h = g.Hierarchy;
            var s = g.Spec;
            string text = Headers.ModelClassFile(h, w =>
            {
                w.WriteLine($"/// <summary>{Xml.Escape(h.Name)} as a TorchSharp module: {s.Layers} decoder blocks ({s.DenseLayerCount} dense, {s.MoeLayers} MoE) of Multi-Head Latent Attention, composed from ModelCompiler.Torch's layers.</summary>");
                w.WriteLine("/// <remarks>");
                w.WriteLine("/// <para>Every parameter carries its Hugging Face name, so a checkpoint's state dict maps one to one:</para>");
                w.WriteLine("/// <code>");
                w.WriteDocLines(Xml.Escape(StateDict(s)));
                w.WriteLine("/// </code>");
                w.WriteLine("/// <para>Attention runs naive (full K/V, training and prefill) or absorbed (W_UK folded into the query, W_UV after attention) over a latent cache of");
                w.WriteLine($"/// {Int(g.Plan.LatentCacheElementsPerLayer)} values per token and layer ({Grouped(g.Plan.KvCacheBytesPerToken)} bytes per token in BF16).</para>");
                w.WriteLine("/// </remarks>");
                w.WriteLine(Headers.GeneratedCode);
                using (w.WriteBlock("public sealed class Module : global::ModelCompiler.Torch.DeepSeekCausalLM"))
                {
                    w.WriteSummary($"Builds {h.Name} with freshly initialised weights; with includeMtp, also its {s.Mtp?.Depth ?? 0} MTP module(s).");
                    w.WriteLine("public Module(bool includeMtp = false)");
                    w.WriteLine($"    : base({h.GlobalName}.Spec, includeMtp)");
                    w.WriteLine("{");
                    w.WriteLine("}");
                    w.WriteLine();
                    w.WriteSummary($"Loads a Hugging Face checkpoint folder (config.json + safetensors, FP8 block-scaled weights dequantised) whose config.json declares {h.Name}; the MTP modules are loaded when the checkpoint has them.");
                    w.WriteLine("/// <exception cref=\"global::ModelCompiler.Checkpoints.CheckpointException\">The folder does not hold this model: the message names the tensor, shape or setting.</exception>");
                    using (w.WriteBlock("public static Module Load(string checkpointDirectory)"))
                    {
                        w.WriteLine("using var checkpoint = global::ModelCompiler.Torch.Checkpoints.Checkpoint.Open(checkpointDirectory);");
                        w.WriteLine($"checkpoint.EnsureDeclares({h.GlobalName}.Spec, \"{h.Name}\");");
                        w.WriteLine("var module = new Module(includeMtp: checkpoint.HasMtp);");
                        w.WriteLine("checkpoint.LoadInto(module);");
                        w.WriteLine("return module;");
                    }

                    w.WriteLine();
                    w.WriteSummary("Runs `plan`, `verify <checkpoint-dir>` or `generate <checkpoint-dir> --prompt-ids 1,2,3` (see ModelCompiler.Torch.ModelProgram); returns the exit code.");
                    w.WriteLine($"public static int RunCommands(string[] args) => global::ModelCompiler.Torch.ModelProgram.Run(args, \"{h.Name}\", {h.GlobalName}.Spec, () => new Module());");
                }
            });

            return new GeneratedFile(h.FilenameHint + ".Module.g.cs", text);
        }

        /// <summary>The state dict by name pattern: {a..b} ranges over layers or experts.</summary>
        private static string StateDict(ModelSpec s)
        {
            var rows = new List<(string Name, string Shape)>();
            var a = s.Attention;
            string d = Int(s.HiddenSize);
            string Range(int first, int count) => count == 1 ? Int(first) : $"{{{first}..{first + count - 1}}}";
            rows.Add(("model.embed_tokens.weight", $"[{s.VocabularySize}, {d}]"));
            void Block(string prefix, bool moe)
            {
                rows.Add((prefix + "input_layernorm.weight", $"[{d}]"));
                if (a.QueryLoraRank > 0)
                {
                    rows.Add((prefix + "self_attn.q_a_proj.weight", $"[{a.QueryLoraRank}, {d}]"));
                    rows.Add((prefix + "self_attn.q_a_layernorm.weight", $"[{a.QueryLoraRank}]"));
                    rows.Add((prefix + "self_attn.q_b_proj.weight", $"[{(long)a.Heads * a.QkHeadDim}, {a.QueryLoraRank}]"));
                }
                else
                {
                    rows.Add((prefix + "self_attn.q_proj.weight", $"[{(long)a.Heads * a.QkHeadDim}, {d}]"));
                }

                rows.Add((prefix + "self_attn.kv_a_proj_with_mqa.weight", $"[{a.CacheWidth}, {d}]"));
                rows.Add((prefix + "self_attn.kv_a_layernorm.weight", $"[{a.KeyValueLoraRank}]"));
                rows.Add((prefix + "self_attn.kv_b_proj.weight", $"[{(long)a.Heads * (a.QkNopeHeadDim + a.ValueHeadDim)}, {a.KeyValueLoraRank}]"));
                rows.Add((prefix + "self_attn.o_proj.weight", $"[{d}, {(long)a.Heads * a.ValueHeadDim}]"));
                rows.Add((prefix + "post_attention_layernorm.weight", $"[{d}]"));
                if (moe && s.Moe is { } m)
                {
                    rows.Add((prefix + "mlp.gate.weight", $"[{m.RoutedExperts}, {d}]"));
                    if (m.HasSelectionBias) rows.Add((prefix + "mlp.gate.e_score_correction_bias", $"[{m.RoutedExperts}] (FP32 buffer)"));
                    string experts = prefix + $"mlp.experts.{Range(0, m.RoutedExperts)}.";
                    rows.Add((experts + "gate_proj.weight, up_proj.weight", $"[{m.ExpertIntermediateSize}, {d}]"));
                    rows.Add((experts + "down_proj.weight", $"[{d}, {m.ExpertIntermediateSize}]"));
                    if (m.SharedExperts > 0)
                    {
                        long width = (long)m.SharedExperts * m.ExpertIntermediateSize;
                        rows.Add((prefix + "mlp.shared_experts.gate_proj.weight, up_proj.weight", $"[{width}, {d}]"));
                        rows.Add((prefix + "mlp.shared_experts.down_proj.weight", $"[{d}, {width}]"));
                    }
                }
                else
                {
                    rows.Add((prefix + "mlp.gate_proj.weight, up_proj.weight", $"[{s.DenseIntermediateSize}, {d}]"));
                    rows.Add((prefix + "mlp.down_proj.weight", $"[{d}, {s.DenseIntermediateSize}]"));
                }
            }

            if (s.DenseLayerCount > 0) Block($"model.layers.{Range(0, s.DenseLayerCount)}.", moe: false);
            if (s.MoeLayers > 0) Block($"model.layers.{Range(s.DenseLayerCount, s.MoeLayers)}.", moe: true);
            rows.Add(("model.norm.weight", $"[{d}]"));
            if (!s.TieEmbeddings) rows.Add(("lm_head.weight", $"[{s.VocabularySize}, {d}]"));
            if (s.Mtp is { Depth: > 0 } mtp)
            {
                string prefix = $"model.layers.{Range(s.Layers, mtp.Depth)}.";
                rows.Add((prefix + "enorm.weight, hnorm.weight, shared_head.norm.weight", $"[{d}]  (MTP, with includeMtp)"));
                rows.Add((prefix + "eh_proj.weight", $"[{d}, {2L * s.HiddenSize}]"));
                rows.Add((prefix + "(a full decoder block, as above)", string.Empty));
            }

            int width = rows.Max(r => r.Name.Length) + 2;
            return string.Join("\n", rows.Select(r => (r.Name.PadRight(width) + r.Shape).TrimEnd()));
        }
    }
}
