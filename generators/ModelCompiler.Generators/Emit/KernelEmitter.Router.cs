using System.Collections.Generic;
using System.Linq;
using ModelCompiler.Planning;
using static ModelCompiler.Generators.Emit.Literals;

namespace ModelCompiler.Generators.Emit
{
    internal static partial class KernelEmitter
    {
        /// <summary>The MoE gate after its GEMM: scores, selection bias, group-limited top-k, normalisation, route scale.</summary>
        private sealed partial class KernelSet
        {
            private void WriteRouteSummary(IndentedWriter w, MoeSpec moe, string launch)
            {
                bool sigmoid = moe.Scoring == ExpertScoring.Sigmoid;
                w.WriteLine("/// <summary>");
                w.WriteLine($"/// The whole MoE gate of one token after its GEMM, as DeepSeek's Gate computes it: s = {(sigmoid ? "sigmoid(logits)" : "softmax(logits)")} over {moe.RoutedExperts} experts;");
                w.WriteLine(moe.HasSelectionBias ? "/// selection scores q = s + bias (the bias only selects);" : "/// selection scores q = s (no selection bias);");
                if (moe.ExpertGroups > 1)
                {
                    w.WriteLine($"/// {moe.ExpertGroups} groups scored by {(moe.HasSelectionBias ? "the sum of their two largest q" : "their largest q")}, the best {moe.GroupsPerToken} kept, q = −∞ outside them;");
                }

                w.WriteLine($"/// the top {moe.ActivatedExperts} experts by q; weights = their s{(moe.NormalizeTopK ? " / Σ s" : string.Empty)} · {Display(moe.RoutedScalingFactor)}. Ties go to the lower expert id.");
                w.WriteLine("/// " + launch);
                w.WriteLine("/// </summary>");
                w.WriteLine($"/// <param name=\"logits\">Router logits [tokens, {moe.RoutedExperts}] FP32 (x · gate.weightᵀ).</param>");
                w.WriteLine($"/// <param name=\"bias\">e_score_correction_bias [{moe.RoutedExperts}]{(moe.HasSelectionBias ? string.Empty : " (unused: no selection bias)")}.</param>");
                w.WriteLine($"/// <param name=\"weights\">Gate weights [tokens, {moe.ActivatedExperts}] FP32.</param>");
                w.WriteLine($"/// <param name=\"experts\">Expert ids [tokens, {moe.ActivatedExperts}], in selection order.</param>");
                w.WriteLine("/// <param name=\"tokens\">Number of tokens.</param>");
                w.WriteLine("public static void Route(ArrayView<float> logits, ArrayView<float> bias, ArrayView<int> experts, ArrayView<float> weights, int tokens)");
            }

            private void WriteRouteCuda(IndentedWriter w, MoeSpec moe)
            {
                var r = _plan.Router!;
                int p = r.PerLane, e = r.Experts, k = moe.ActivatedExperts;
                bool sigmoid = moe.Scoring == ExpertScoring.Sigmoid;
                WriteRouteSummary(w, moe, $"Launch: one warp per token, groups of 128 (4 tokens); lane l holds {(p == 1 ? "expert l" : $"experts {p}·l … {p}·l + {p - 1}")} in registers{(r.Groups > 1 ? $", so a group is {r.LanesPerGroup} adjacent lanes" : string.Empty)}. Every choice is a shuffle: no shared memory, no sort.");
                using (w.WriteBraces())
                {
                    w.WriteLine("int token = Grid.IdxX * 4 + Warp.WarpIdx;");
                    w.WriteLine("if (token >= tokens) return; // the whole warp leaves together, so the shuffles below stay converged");
                    w.WriteLine("int lane = Warp.LaneIdx;");
                    w.WriteLine($"int first = {Times("lane", p)}; // this lane's {(p == 1 ? "expert" : "first expert")}");
                    w.WriteLine($"long row = (long)token * {e};");
                    w.WriteLine();
                    w.WriteLine("// Scores s and selection scores q of this lane's experts (−∞ past the last expert).");
                    for (int i = 0; i < p; i++)
                    {
                        string valid = e % p == 0 ? $"lane < {r.ActiveLanes}" : $"{Plus("first", i)} < {e}";
                        w.WriteLine($"float l{i} = {valid} ? logits[{Plus("row + first", i)}] : float.NegativeInfinity;");
                    }

                    if (sigmoid)
                    {
                        for (int i = 0; i < p; i++) w.WriteLine($"float s{i} = 1f / (1f + MathF.Exp(-l{i}));");
                    }
                    else
                    {
                        w.WriteLine("float largest = " + Nest("MathF.Max", Enumerable.Range(0, p).Select(i => "l" + i).ToArray()) + ";");
                        WarpAllReduce(w, "largest", 32, max: true);
                        for (int i = 0; i < p; i++) w.WriteLine($"float s{i} = MathF.Exp(l{i} - largest);");
                        w.WriteLine("float total = " + string.Join(" + ", Enumerable.Range(0, p).Select(i => "s" + i)) + ";");
                        WarpAllReduce(w, "total", 32, max: false);
                        for (int i = 0; i < p; i++) w.WriteLine($"s{i} /= total;");
                    }

                    for (int i = 0; i < p; i++)
                    {
                        string valid = e % p == 0 ? $"lane < {r.ActiveLanes}" : $"{Plus("first", i)} < {e}";
                        w.WriteLine(moe.HasSelectionBias
                            ? $"float q{i} = {valid} ? s{i} + bias[{Plus("first", i)}] : float.NegativeInfinity;"
                            : $"float q{i} = {valid} ? s{i} : float.NegativeInfinity;");
                    }

                    if (r.Groups > 1)
                    {
                        int lanes = r.LanesPerGroup;
                        w.WriteLine();
                        if (moe.HasSelectionBias)
                        {
                            w.WriteLine($"// Group score: the sum of the two largest q of the group, merged over its {lanes} lanes.");
                            w.WriteLine("float top1 = q0, top2 = float.NegativeInfinity;");
                            for (int i = 1; i < p; i++)
                            {
                                w.WriteLine($"top2 = MathF.Max(top2, MathF.Min(top1, q{i})); top1 = MathF.Max(top1, q{i});");
                            }

                            for (int offset = lanes / 2; offset >= 1; offset /= 2)
                            {
                                w.WriteLine($"float first{offset} = Warp.ShuffleXor(top1, {offset}), second{offset} = Warp.ShuffleXor(top2, {offset});");
                                w.WriteLine($"top2 = MathF.Max(MathF.Min(top1, first{offset}), MathF.Max(top2, second{offset})); top1 = MathF.Max(top1, first{offset});");
                            }

                            w.WriteLine("float groupScore = top1 + top2;");
                        }
                        else
                        {
                            w.WriteLine($"// Group score: the largest q of the group, over its {lanes} lanes.");
                            w.WriteLine("float groupScore = " + Nest("MathF.Max", Enumerable.Range(0, p).Select(i => "q" + i).ToArray()) + ";");
                            WarpAllReduce(w, "groupScore", lanes, max: true);
                        }

                        w.WriteLine();
                        w.WriteLine($"// Keep the best {moe.GroupsPerToken} of {r.Groups} groups: a group's rank is the number of groups ahead of it.");
                        w.WriteLine($"int group = lane / {lanes};");
                        w.WriteLine("int rank = 0;");
                        for (int j = 0; j < r.Groups; j++)
                        {
                            w.WriteLine($"float group{j} = Warp.Shuffle(groupScore, {j * lanes});");
                            w.WriteLine($"if (group{j} > groupScore || (group{j} == groupScore && {j} < group)) rank++;");
                        }

                        w.WriteLine($"if (rank >= {moe.GroupsPerToken})");
                        using (w.WriteBraces())
                        {
                            for (int i = 0; i < p; i++) w.WriteLine($"q{i} = float.NegativeInfinity;");
                        }
                    }

                    w.WriteLine();
                    w.WriteLine($"// Top {k}: each lane sorts its keys once (q and expert id packed so that the unsigned order is \"higher q, then lower");
                    w.WriteLine($"// id\"), then {k} rounds of a warp max over the lanes' first keys; the lane that owned the winner drops it. Lane j keeps choice j.");
                    for (int i = 0; i < p; i++) w.WriteLine($"ulong k{i} = RouterKey.Make(q{i}, {Plus("first", i)});");
                    foreach (var (x, y) in SortingNetwork(p))
                    {
                        w.WriteLine($"{{ ulong high = Math.Max(k{x}, k{y}); k{y} = Math.Min(k{x}, k{y}); k{x} = high; }}");
                    }

                    w.WriteLine("int chosenExpert = 0;");
                    for (int round = 0; round < k; round++)
                    {
                        w.WriteLine($"// choice {round}");
                        using (w.WriteBraces())
                        {
                            w.WriteLine("ulong best = k0;");
                            for (int offset = 16; offset >= 1; offset /= 2)
                            {
                                w.WriteLine($"best = Math.Max(best, Warp.ShuffleXor(best, {offset}));");
                            }

                            w.WriteLine($"if (lane == {round}) chosenExpert = RouterKey.Expert(best);");
                            if (round < k - 1)
                            {
                                string shift = string.Join(" ", Enumerable.Range(0, p).Select(i => i + 1 < p ? $"k{i} = k{i + 1};" : $"k{i} = 0;"));
                                w.WriteLine($"if (k0 == best) {{ {shift} }} // taken: the owner moves to its next key");
                            }
                        }
                    }

                    w.WriteLine();
                    w.WriteLine("// The chosen experts' unbiased scores, read again (the row is in cache) rather than carried through the rounds.");
                    w.WriteLine(sigmoid
                        ? $"float chosenScore = lane < {k} ? 1f / (1f + MathF.Exp(-logits[row + chosenExpert])) : 0f;"
                        : $"float chosenScore = lane < {k} ? MathF.Exp(logits[row + chosenExpert] - largest) / total : 0f;");
                    if (moe.NormalizeTopK)
                    {
                        w.WriteLine("// Normalise over the chosen experts and scale.");
                        w.WriteLine("float chosenTotal = chosenScore;");
                        WarpAllReduce(w, "chosenTotal", 32, max: false);
                        w.WriteLine($"if (lane < {k})");
                        using (w.WriteBraces())
                        {
                            w.WriteLine($"experts[(long)token * {k} + lane] = chosenExpert;");
                            w.WriteLine($"weights[(long)token * {k} + lane] = chosenScore / chosenTotal{RouteScale(moe)};");
                        }
                    }
                    else
                    {
                        w.WriteLine("// Scale (no renormalisation).");
                        w.WriteLine($"if (lane < {k})");
                        using (w.WriteBraces())
                        {
                            w.WriteLine($"experts[(long)token * {k} + lane] = chosenExpert;");
                            w.WriteLine($"weights[(long)token * {k} + lane] = chosenScore{RouteScale(moe)};");
                        }
                    }
                }

                w.WriteLine();
            }

            /// <summary>Batcher's odd-even merge sort for <paramref name="count"/> keys (padded to a power of two; comparators with a padded key are dropped, as a padded key is the smallest).</summary>
            private static IEnumerable<(int, int)> SortingNetwork(int count)
            {
                int n = 1;
                while (n < count) n *= 2;
                for (int p = 1; p < n; p *= 2)
                {
                    for (int k = p; k >= 1; k /= 2)
                    {
                        for (int j = k % p; j + k < n; j += 2 * k)
                        {
                            for (int i = 0; i < k && i + j + k < n; i++)
                            {
                                if ((i + j) / (2 * p) == (i + j + k) / (2 * p) && i + j + k < count) yield return (i + j, i + j + k);
                            }
                        }
                    }
                }
            }

            private void WriteRoutePortable(IndentedWriter w, MoeSpec moe)
            {
                int e = moe.RoutedExperts, k = moe.ActivatedExperts, groups = System.Math.Max(1, moe.ExpertGroups);
                bool sigmoid = moe.Scoring == ExpertScoring.Sigmoid;
                WriteRouteSummary(w, moe, "Launch: 1-D, groups of 64, one thread per token working through its experts in order (private arrays): the plain form, for CPUs.");
                using (w.WriteBraces())
                {
                    w.WriteLine("int token = Grid.IdxX * Group.DimX + Group.IdxX;");
                    w.WriteLine("if (token >= tokens) return; // the grid is rounded up to whole groups");
                    w.WriteLine($"long row = (long)token * {e};");
                    w.WriteLine($"var score = LocalMemory.Allocate<float>({e});");
                    w.WriteLine($"var choice = LocalMemory.Allocate<float>({e});");
                    if (sigmoid)
                    {
                        w.WriteLine($"for (int e = 0; e < {e}; e++) score[e] = 1f / (1f + MathF.Exp(-logits[row + e]));");
                    }
                    else
                    {
                        w.WriteLine("float largest = float.NegativeInfinity;");
                        w.WriteLine($"for (int e = 0; e < {e}; e++) largest = MathF.Max(largest, logits[row + e]);");
                        w.WriteLine("float total = 0f;");
                        w.WriteLine($"for (int e = 0; e < {e}; e++) {{ score[e] = MathF.Exp(logits[row + e] - largest); total += score[e]; }}");
                        w.WriteLine($"for (int e = 0; e < {e}; e++) score[e] /= total;");
                    }

                    w.WriteLine($"for (int e = 0; e < {e}; e++) choice[e] = score[e]{(moe.HasSelectionBias ? " + bias[e]" : string.Empty)};");
                    if (groups > 1)
                    {
                        int size = e / groups;
                        w.WriteLine($"var groupScore = LocalMemory.Allocate<float>({groups});");
                        w.WriteLine($"for (int g = 0; g < {groups}; g++)");
                        using (w.WriteBraces())
                        {
                            w.WriteLine("float top1 = float.NegativeInfinity, top2 = float.NegativeInfinity;");
                            w.WriteLine($"for (int e = g * {size}; e < (g + 1) * {size}; e++) {{ top2 = MathF.Max(top2, MathF.Min(top1, choice[e])); top1 = MathF.Max(top1, choice[e]); }}");
                            w.WriteLine(moe.HasSelectionBias ? "groupScore[g] = top1 + top2;" : "groupScore[g] = top1;");
                        }

                        w.WriteLine($"for (int g = 0; g < {groups}; g++)");
                        using (w.WriteBraces())
                        {
                            w.WriteLine("int rank = 0;");
                            w.WriteLine($"for (int other = 0; other < {groups}; other++) if (groupScore[other] > groupScore[g] || (groupScore[other] == groupScore[g] && other < g)) rank++;");
                            w.WriteLine($"if (rank >= {moe.GroupsPerToken}) for (int e = g * {size}; e < (g + 1) * {size}; e++) choice[e] = float.NegativeInfinity;");
                        }
                    }

                    w.WriteLine("float chosenTotal = 0f;");
                    w.WriteLine($"for (int j = 0; j < {k}; j++)");
                    using (w.WriteBraces())
                    {
                        w.WriteLine("int best = 0;");
                        w.WriteLine($"for (int e = 1; e < {e}; e++) if (choice[e] > choice[best]) best = e;");
                        w.WriteLine($"experts[(long)token * {k} + j] = best;");
                        w.WriteLine($"weights[(long)token * {k} + j] = score[best];");
                        w.WriteLine("chosenTotal += score[best];");
                        w.WriteLine("choice[best] = float.NegativeInfinity; // taken");
                    }

                    if (moe.NormalizeTopK)
                    {
                        w.WriteLine($"for (int j = 0; j < {k}; j++) weights[(long)token * {k} + j] = weights[(long)token * {k} + j] / chosenTotal{RouteScale(moe)};");
                    }
                    else if (moe.RoutedScalingFactor != 1)
                    {
                        w.WriteLine($"for (int j = 0; j < {k}; j++) weights[(long)token * {k} + j] *= {Float(moe.RoutedScalingFactor)};");
                    }
                }

                w.WriteLine();
            }

            /// <summary>" * 2.5f", the route scale as a factor, or nothing for DeepSeek-V2-Lite's and TinySeek's 1.</summary>
            private static string RouteScale(MoeSpec moe) => moe.RoutedScalingFactor == 1 ? string.Empty : " * " + Float(moe.RoutedScalingFactor);

            /// <summary>f(f(a, b), f(c, d)) … as a balanced tree.</summary>
            private static string Nest(string function, string[] items)
            {
                while (items.Length > 1)
                {
                    items = Enumerable.Range(0, (items.Length + 1) / 2)
                        .Select(i => 2 * i + 1 < items.Length ? $"{function}({items[2 * i]}, {items[2 * i + 1]})" : items[2 * i])
                        .ToArray();
                }

                return items[0];
            }
        }
    }
}
