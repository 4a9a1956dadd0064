using System.Collections.Generic;
using System.Globalization;
using ModelCompiler.Generators.Model;
using ModelCompiler.Planning;
using static ModelCompiler.Generators.Emit.Literals;

namespace ModelCompiler.Generators.Emit
{
    /// <summary>
    /// Emits <c>{Model}.Grpo.g.cs</c> for a class with [Grpo] when the project references ModelCompiler.Torch: the nested
    /// <c>Grpo</c> class that states the declared objective with its values and creates GRPO runs and the R1 alternation.
    /// </summary>
    internal static class GrpoEmitter
    {
        public static GeneratedFile? Emit(ModelGeneration g)
        {
            if (g.Spec.Grpo is not { } grpo) return null;
            var h = g.Hierarchy;
            string text = Headers.ModelClassFile(h, w =>
            {
                w.WriteLine($"/// <summary>Reinforcement learning with verifiable rewards for {Xml.Escape(h.Name)}: GRPO as declared by [Grpo].</summary>");
                w.WriteLine("/// <remarks>");
                w.WriteLine("/// <list type=\"bullet\">");
                foreach (string line in Objective(grpo)) w.WriteLine("/// <item>" + Xml.Escape(line) + "</item>");
                w.WriteLine("/// </list>");
                w.WriteLine("/// </remarks>");
                w.WriteLine(Headers.GeneratedCode);
                using (w.WriteBlock("public static class Grpo"))
                {
                    Const(w, "int", "GroupSize", Int(grpo.GroupSize), "G: completions sampled per prompt; the group's mean and spread are the baseline.");
                    Const(w, "double", "Epsilon", Double(grpo.Epsilon), "ε: the ratio is clipped below at 1 − ε.");
                    Const(w, "double", "EpsilonHigh", Double(grpo.EffectiveEpsilonHigh), "ε_high: the ratio is clipped above at 1 + ε_high.");
                    Const(w, "double", "Beta", Double(grpo.Beta), "β of the k3 KL penalty to the frozen reference (0: no reference model is loaded).");
                    Const(w, "global::ModelCompiler.GrpoLossAggregation", "LossAggregation", Enum(grpo.LossAggregation), "How token losses are aggregated.");
                    Const(w, "global::ModelCompiler.RewardScaling", "RewardScaling", Enum(grpo.RewardScaling), "How rewards are scaled into advantages.");
                    Const(w, "int", "UpdatesPerRollout", Int(grpo.UpdatesPerRollout), "μ: optimizer updates per batch of rollouts, against the stored old-policy log-probabilities.");
                    w.WriteSummary("The declared settings; GrpoRun.Preset derives deepseekmath, r1, dapo or dr_grpo from them.");
                    w.WriteLine($"public static global::ModelCompiler.Planning.GrpoSpec Settings => {h.GlobalName}.Spec.Grpo!;");
                    w.WriteLine();
                    w.WriteSummary("A GRPO run in a folder (metrics.jsonl, report.md, checkpoint/), from the declared settings or a named preset.");
                    w.WriteLine("public static global::ModelCompiler.Torch.Rl.GrpoRun CreateRun(global::ModelCompiler.Torch.Rl.GrpoOptions options, string directory, string? preset = null) =>");
                    w.WriteLine($"    new global::ModelCompiler.Torch.Rl.GrpoRun({h.GlobalName}.Spec, preset is null ? Settings : global::ModelCompiler.Torch.Rl.GrpoRun.Preset(Settings, preset), options, directory);");
                    w.WriteLine();
                    w.WriteSummary("DeepSeek-R1's alternation of rejection-sampling SFT and GRPO with the declared settings.");
                    w.WriteLine("public static global::ModelCompiler.Torch.Rl.IterativeRecipe CreateRecipe(global::ModelCompiler.Torch.Rl.GrpoOptions options) =>");
                    w.WriteLine($"    new global::ModelCompiler.Torch.Rl.IterativeRecipe({h.GlobalName}.Spec, Settings, options);");
                }
            });

            return new GeneratedFile(h.FilenameHint + ".Grpo.g.cs", text);
        }

        private static IEnumerable<string> Objective(GrpoSpec grpo)
        {
            string aggregation = grpo.LossAggregation switch
            {
                GrpoLossAggregation.Grpo => "each completion's token losses averaged, then averaged over completions (DeepSeekMath)",
                GrpoLossAggregation.Bnpo => "token losses summed over the batch and divided by its completion tokens",
                GrpoLossAggregation.DrGrpo => "token losses summed and divided by completions × the maximum completion length (Dr. GRPO)",
                _ => "token losses summed over the batch and divided by its completion tokens, with ε_high for the upper clip (DAPO)",
            };
            yield return string.Format(CultureInfo.InvariantCulture, "Sampling: G = {0} completions per prompt from the latent KV cache; rewards from verifiable reward functions.", grpo.GroupSize);
            yield return grpo.RewardScaling switch
            {
                RewardScaling.Group => "Advantages: (r − mean of the group) / (std of the group + ε); a group with zero spread gets zero advantage.",
                RewardScaling.Batch => "Advantages: (r − mean of the group) / (std of the batch + ε).",
                _ => "Advantages: r − mean of the group (no scaling).",
            };
            yield return string.Format(CultureInfo.InvariantCulture, "Surrogate: min(ρ·Â, clip(ρ, 1 − {0}, 1 + {1})·Â) with ρ the token probability ratio to the old policy, μ = {2} update{3} per rollout.",
                Display(grpo.Epsilon), Display(grpo.EffectiveEpsilonHigh), grpo.UpdatesPerRollout, grpo.UpdatesPerRollout == 1 ? string.Empty : "s");
            yield return "Aggregation: " + aggregation + ".";
            yield return grpo.Beta > 0
                ? $"KL: β = {Display(grpo.Beta)} times the k3 estimator to a frozen reference policy, log-ratio clamped."
                : "KL: none (β = 0), so no reference model is loaded.";
        }

        private static void Const(IndentedWriter w, string type, string name, string value, string summary)
        {
            w.WriteSummary(summary);
            w.WriteLine($"public const {type} {name} = {value};");
            w.WriteLine();
        }
    }
}
