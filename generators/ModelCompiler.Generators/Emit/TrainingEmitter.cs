using System.Globalization;
using ModelCompiler.Generators.Model;
using ModelCompiler.Planning;
using static ModelCompiler.Generators.Emit.Literals;

namespace ModelCompiler.Generators.Emit
{
    /// <summary>
    /// Emits <c>{Model}.Training.g.cs</c> when the project references ModelCompiler.Torch: the nested <c>Training</c> class that
    /// states the declaration's pre-training recipe (loss, MTP, balancing, precision, optimizer) with its values and creates
    /// the trainer and the run for the generated <c>Module</c>.
    /// </summary>
    internal static class TrainingEmitter
    {
        public static GeneratedFile Emit(ModelGeneration g)
        {
            var h = g.Hierarchy;
            var s = g.Spec;
            string text = Headers.ModelClassFile(h, w =>
            {
                w.WriteLine($"/// <summary>The pre-training recipe of {Xml.Escape(h.Name)}, as declared.</summary>");
                w.WriteLine("/// <remarks>");
                w.WriteLine("/// <list type=\"bullet\">");
                foreach (string line in Recipe(s)) w.WriteLine("/// <item>" + Xml.Escape(line) + "</item>");
                w.WriteLine("/// </list>");
                w.WriteLine("/// </remarks>");
                w.WriteLine(Headers.GeneratedCode);
                using (w.WriteBlock("public static class Training"))
                {
                    Const(w, "int", "MtpDepth", Int(s.Mtp?.Depth ?? 0), "MTP modules trained with the main model.");
                    Const(w, "double", "MtpLossWeight", Double(s.Mtp?.LossWeight ?? 0), "λ: the MTP loss is λ/D · Σ_k L_k.");
                    Const(w, "double", "BiasUpdateSpeed", Double(s.Moe is { HasSelectionBias: true } m ? m.BiasUpdateSpeed : 0), "γ of auxiliary-loss-free balancing (0: no selection bias).");
                    Const(w, "global::ModelCompiler.NumericFormat", "ComputeFormat", Enum(s.Precision.Compute), "Format of GEMM inputs during training.");
                    Const(w, "global::ModelCompiler.NumericFormat", "OptimizerMomentFormat", Enum(s.Precision.OptimizerMoments), "Format of AdamW's moments.");
                    w.WriteSummary("A pre-training step for a model built with its MTP modules (new Module(includeMtp: true)).");
                    w.WriteLine("public static global::ModelCompiler.Torch.Training.Pretrainer CreateTrainer(Module model, global::ModelCompiler.Torch.Training.PretrainOptions? options = null) =>");
                    w.WriteLine("    new global::ModelCompiler.Torch.Training.Pretrainer(model, options ?? new global::ModelCompiler.Torch.Training.PretrainOptions());");
                    w.WriteLine();
                    w.WriteSummary("A pre-training run in a folder: metrics.jsonl, atomic checkpoints, bit-exact resume, report.md.");
                    w.WriteLine($"public static global::ModelCompiler.Torch.Training.PretrainRun CreateRun(global::ModelCompiler.Torch.Training.PretrainOptions options, string directory, int checkpointEvery = 50) =>");
                    w.WriteLine($"    new global::ModelCompiler.Torch.Training.PretrainRun({h.GlobalName}.Spec, options, directory, checkpointEvery);");
                }
            });

            return new GeneratedFile(h.FilenameHint + ".Training.g.cs", text);
        }

        private static System.Collections.Generic.IEnumerable<string> Recipe(ModelSpec s)
        {
            yield return "Loss: next-token cross-entropy" + (s.Mtp is { Depth: > 0 } mtp
                ? string.Format(CultureInfo.InvariantCulture, " + λ/D · Σ_k CE_k with λ = {0}, D = {1} (module k predicts token i+k+1)", Display(mtp.LossWeight), mtp.Depth)
                : string.Empty) + ", normalised once per optimizer step by its target tokens.";
            if (s.Moe is { } m)
            {
                yield return m.HasSelectionBias
                    ? string.Format(CultureInfo.InvariantCulture, "Balancing: selection bias moved by ±γ = {0} per step against each expert's load (no gradient).", Display(m.BiasUpdateSpeed))
                    : "Balancing: no selection bias.";
                if (m.SequenceBalanceLossWeight > 0) yield return $"Sequence-wise balance loss α = {Display(m.SequenceBalanceLossWeight)}.";
                if (m.ExpertBalanceLossWeight > 0) yield return $"Expert-level balance loss α1 = {Display(m.ExpertBalanceLossWeight)}.";
                if (m.DeviceBalanceLossWeight > 0) yield return $"Device-level balance loss α2 = {Display(m.DeviceBalanceLossWeight)} over {m.ExpertGroups} groups.";
                if (m.CommunicationBalanceLossWeight > 0) yield return $"Communication balance loss α3 = {Display(m.CommunicationBalanceLossWeight)}, at most {m.GroupsPerToken} groups per token.";
            }

            var p = s.Precision;
            yield return p.Compute == NumericFormat.Fp8E4M3
                ? $"Precision: GEMM inputs FP8 E4M3, 1×{p.ActivationTile} activation tiles and {p.WeightBlock}×{p.WeightBlock} weight blocks, straight-through gradient; master weights {p.MasterWeights}, AdamW moments {p.OptimizerMoments}."
                : $"Precision: GEMM inputs {p.Compute}; master weights {p.MasterWeights}, AdamW moments {p.OptimizerMoments}.";
            yield return string.Format(CultureInfo.InvariantCulture, "Optimizer: AdamW β {0} / {1}, weight decay {2} on matrices, linear warm-up then cosine to {3} %, gradient clipping at {4} (PretrainOptions overrides).",
                Display(SpecDefaults.AdamBeta1), Display(SpecDefaults.AdamBeta2), Display(SpecDefaults.WeightDecay), Display(SpecDefaults.FinalLearningRateRatio * 100),
                SpecDefaults.GradientClip.ToString("0.0", CultureInfo.InvariantCulture));
        }

        private static void Const(IndentedWriter w, string type, string name, string value, string summary)
        {
            w.WriteSummary(summary);
            w.WriteLine($"public const {type} {name} = {value};");
            w.WriteLine();
        }
    }
}
