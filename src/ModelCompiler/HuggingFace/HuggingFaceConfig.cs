using System;
using System.Globalization;
using System.IO;
using System.Text.Json;
using ModelCompiler.Planning;

namespace ModelCompiler.HuggingFace
{
    /// <summary>A config.json that cannot be read as a DeepSeek model; the message names the file and the key.</summary>
    public sealed class ConfigException : Exception
    {
        /// <summary>Creates the exception.</summary>
        public ConfigException(string message, Exception? inner = null)
            : base(message, inner)
        {
        }
    }

    /// <summary>
    /// Reads a Hugging Face <c>config.json</c> of <c>model_type</c> <c>deepseek_v3</c> or <c>deepseek_v2</c> into a
    /// <see cref="ModelSpec"/>: q_lora_rank null, rope_scaling (transformers 4) or rope_parameters (transformers 5) with
    /// YaRN, topk_method, scoring_func, n_group, num_nextn_predict_layers and quantization_config.
    /// </summary>
    public static class HuggingFaceConfig
    {
        /// <summary>Reads <paramref name="path"/>.</summary>
        /// <exception cref="ConfigException">The file is missing, not JSON, or not a DeepSeek config; the message says which key.</exception>
        public static ModelSpec Read(string path)
        {
            string text;
            try
            {
                text = File.ReadAllText(path);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new ConfigException($"{path}: cannot read the file: {e.Message}", e);
            }

            return Parse(text, path);
        }

        /// <summary>
        /// The context length config.json declares (<c>max_position_embeddings</c>), which generation may not run past; null when
        /// it declares none. (<see cref="ModelSpec.SequenceLength"/> is the training length, capped at
        /// <see cref="SpecDefaults.SequenceLength"/>.)
        /// </summary>
        /// <exception cref="ConfigException">The file cannot be read, or the value is not a positive whole number.</exception>
        public static int? ReadContextLength(string path)
        {
            try
            {
                using var document = JsonDocument.Parse(File.ReadAllText(path), new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
                if (!document.RootElement.TryGetProperty("max_position_embeddings", out var value) || value.ValueKind == JsonValueKind.Null) return null;
                return value.TryGetInt32(out int length) && length > 0 ? length
                    : throw new ConfigException($"{path}: \"max_position_embeddings\" must be a positive whole number, not {value.GetRawText()}");
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException or InvalidOperationException)
            {
                throw new ConfigException($"{path}: cannot read max_position_embeddings: {e.Message}", e);
            }
        }

        /// <summary>Parses config.json text; <paramref name="source"/> names it in errors.</summary>
        /// <exception cref="ConfigException">Not JSON, or not a DeepSeek config.</exception>
        public static ModelSpec Parse(string json, string source = "config.json")
        {
            JsonDocument document;
            try
            {
                document = JsonDocument.Parse(json, new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
            }
            catch (JsonException e)
            {
                throw new ConfigException($"{source}: not valid JSON at line {(e.LineNumber ?? 0) + 1}, byte {(e.BytePositionInLine ?? 0) + 1}: {e.Message}", e);
            }

            using (document)
            {
                var root = new Reader(document.RootElement, source, string.Empty);
                string modelType = root.String("model_type") ?? throw root.Error("model_type", "is missing; expected \"deepseek_v3\" or \"deepseek_v2\"");
                bool v3 = modelType switch
                {
                    "deepseek_v3" => true,
                    "deepseek_v2" => false,
                    _ => throw root.Error("model_type", $"is \"{modelType}\"; ModelCompiler reads \"deepseek_v3\" and \"deepseek_v2\""),
                };
                return ReadSpec(root, v3);
            }
        }

        /// <summary>
        /// The config.json of <paramref name="spec"/> in the transformers-4 layout (rope_scaling), as deepseek_v3 when the router
        /// has the selection bias or there are MTP modules, else deepseek_v2. <see cref="Parse"/> reads it back to an equal spec
        /// (the training-only settings of the DSL — balance-loss weights other than aux_loss_alpha, γ, λ, precision beyond the
        /// weight block — are not part of config.json).
        /// </summary>
        public static string ToJson(ModelSpec spec)
        {
            var a = spec.Attention;
            var m = spec.Moe;
            bool v3 = m?.HasSelectionBias == true || spec.Mtp is not null;
            var config = new System.Collections.Generic.Dictionary<string, object?>
            {
                ["architectures"] = new[] { v3 ? "DeepseekV3ForCausalLM" : "DeepseekV2ForCausalLM" },
                ["model_type"] = v3 ? "deepseek_v3" : "deepseek_v2",
                ["vocab_size"] = spec.VocabularySize,
                ["hidden_size"] = spec.HiddenSize,
                ["num_hidden_layers"] = spec.Layers,
                ["first_k_dense_replace"] = m is null ? spec.Layers : spec.DenseLayers,
                ["intermediate_size"] = spec.DenseIntermediateSize,
                ["rms_norm_eps"] = spec.RmsNormEpsilon,
                ["rope_theta"] = spec.RopeTheta,
                ["tie_word_embeddings"] = spec.TieEmbeddings,
                ["max_position_embeddings"] = spec.SequenceLength,
                ["num_attention_heads"] = a.Heads,
                ["num_key_value_heads"] = a.Heads,
                ["q_lora_rank"] = a.QueryLoraRank == 0 ? null : a.QueryLoraRank,
                ["kv_lora_rank"] = a.KeyValueLoraRank,
                ["qk_nope_head_dim"] = a.QkNopeHeadDim,
                ["qk_rope_head_dim"] = a.QkRopeHeadDim,
                ["v_head_dim"] = a.ValueHeadDim,
                ["num_nextn_predict_layers"] = spec.Mtp?.Depth ?? 0,
            };
            if (spec.Yarn is { } y)
            {
                config["rope_scaling"] = new System.Collections.Generic.Dictionary<string, object>
                {
                    ["type"] = "yarn", ["factor"] = y.Factor, ["original_max_position_embeddings"] = y.OriginalContextLength,
                    ["beta_fast"] = y.BetaFast, ["beta_slow"] = y.BetaSlow, ["mscale"] = y.MScale, ["mscale_all_dim"] = y.MScaleAllDim,
                };
            }

            if (m is not null)
            {
                config["n_routed_experts"] = m.RoutedExperts;
                config["num_experts_per_tok"] = m.ActivatedExperts;
                config["moe_intermediate_size"] = m.ExpertIntermediateSize;
                config["n_shared_experts"] = m.SharedExperts;
                config["moe_layer_freq"] = 1;
                config["scoring_func"] = m.Scoring == ExpertScoring.Sigmoid ? "sigmoid" : "softmax";
                config["n_group"] = m.ExpertGroups;
                config["topk_group"] = m.GroupsPerToken;
                config["routed_scaling_factor"] = m.RoutedScalingFactor;
                config["norm_topk_prob"] = m.NormalizeTopK;
                config["topk_method"] = m.HasSelectionBias ? "noaux_tc" : m.ExpertGroups > 1 ? "group_limited_greedy" : "greedy";
                config["aux_loss_alpha"] = m.HasSelectionBias ? m.SequenceBalanceLossWeight : m.ExpertBalanceLossWeight;
            }

            if (spec.Precision.Compute == NumericFormat.Fp8E4M3)
            {
                config["quantization_config"] = new System.Collections.Generic.Dictionary<string, object>
                {
                    ["quant_method"] = "fp8", ["fmt"] = "e4m3", ["activation_scheme"] = "dynamic",
                    ["weight_block_size"] = new[] { spec.Precision.WeightBlock, spec.Precision.WeightBlock },
                };
            }

            return JsonSerializer.Serialize(config, new JsonSerializerOptions { WriteIndented = true });
        }

        private static ModelSpec ReadSpec(Reader c, bool v3)
        {
            int? maxPositions = c.Int("max_position_embeddings");
            var spec = new ModelSpec
            {
                VocabularySize = c.RequiredInt("vocab_size"),
                HiddenSize = c.RequiredInt("hidden_size"),
                Layers = c.RequiredInt("num_hidden_layers"),
                DenseLayers = c.Int("first_k_dense_replace") ?? 0,
                DenseIntermediateSize = c.Int("intermediate_size") ?? 0,
                RmsNormEpsilon = c.Double("rms_norm_eps") ?? SpecDefaults.RmsNormEpsilon,
                TieEmbeddings = c.Bool("tie_word_embeddings") ?? false,
                SequenceLength = Math.Min(SpecDefaults.SequenceLength, maxPositions ?? SpecDefaults.SequenceLength),
                Attention = new AttentionSpec(
                    c.RequiredInt("num_attention_heads"),
                    c.RequiredInt("kv_lora_rank"),
                    c.Int("q_lora_rank") ?? 0,
                    c.Int("qk_nope_head_dim") ?? SpecDefaults.QkNopeHeadDim,
                    c.Int("qk_rope_head_dim") ?? SpecDefaults.QkRopeHeadDim,
                    c.Int("v_head_dim") ?? SpecDefaults.ValueHeadDim),
            };

            // transformers 5 moved rope_theta and rope_scaling into rope_parameters.
            var rope = c.Object("rope_parameters") ?? c.Object("rope_scaling");
            double theta = c.Double("rope_theta") ?? rope?.Double("rope_theta") ?? SpecDefaults.RopeTheta;
            spec = spec with { RopeTheta = theta };
            if (rope is not null)
            {
                string kind = rope.String("rope_type") ?? rope.String("type") ?? "default";
                if (kind == "yarn")
                {
                    double mscale = rope.Double("mscale") ?? SpecDefaults.MScale;
                    spec = spec with
                    {
                        Yarn = new YarnSpec(
                            rope.Double("factor") ?? throw rope.Error("factor", "is missing; YaRN needs its scaling factor"),
                            rope.Int("original_max_position_embeddings") ?? throw rope.Error("original_max_position_embeddings", "is missing; YaRN needs the original context length"),
                            rope.Double("beta_fast") ?? SpecDefaults.BetaFast,
                            rope.Double("beta_slow") ?? SpecDefaults.BetaSlow,
                            mscale,
                            rope.Double("mscale_all_dim") ?? mscale),
                    };
                }
                else if (kind != "default")
                {
                    throw rope.Error(rope.String("rope_type") is null ? "type" : "rope_type", $"is \"{kind}\"; DeepSeek models use \"yarn\" or \"default\"");
                }
            }

            int? routed = c.Int("n_routed_experts");
            if (routed is > 0)
            {
                int frequency = c.Int("moe_layer_freq") ?? 1;
                if (frequency != 1) throw c.Error("moe_layer_freq", $"is {frequency}; only every-layer MoE (1) after first_k_dense_replace is supported");
                string scoring = c.String("scoring_func") ?? (v3 ? "sigmoid" : "softmax");
                string method = c.String("topk_method") ?? (v3 ? "noaux_tc" : "greedy");
                var balancing = method switch
                {
                    "noaux_tc" => LoadBalancing.AuxiliaryLossFree,
                    "greedy" or "group_limited_greedy" => LoadBalancing.AuxiliaryLoss,
                    _ => throw c.Error("topk_method", $"is \"{method}\"; expected \"noaux_tc\", \"group_limited_greedy\" or \"greedy\""),
                };
                double alpha = c.Double("aux_loss_alpha") ?? 0;
                spec = spec with
                {
                    Moe = new MoeSpec(
                        routed.Value,
                        c.RequiredInt("num_experts_per_tok"),
                        c.RequiredInt("moe_intermediate_size"),
                        c.Int("n_shared_experts") ?? 0,
                        scoring switch
                        {
                            "sigmoid" => ExpertScoring.Sigmoid,
                            "softmax" => ExpertScoring.Softmax,
                            _ => throw c.Error("scoring_func", $"is \"{scoring}\"; expected \"sigmoid\" or \"softmax\""),
                        },
                        c.Int("n_group") ?? 1,
                        c.Int("topk_group") ?? 1,
                        c.Double("routed_scaling_factor") ?? 1.0,
                        c.Bool("norm_topk_prob") ?? v3,
                        balancing,
                        balancing == LoadBalancing.AuxiliaryLossFree ? SpecDefaults.BiasUpdateSpeed : 0,
                        balancing == LoadBalancing.AuxiliaryLossFree ? alpha : 0,
                        balancing == LoadBalancing.AuxiliaryLoss ? alpha : 0,
                        0,
                        0),
                };
            }

            int depth = c.Int("num_nextn_predict_layers") ?? 0;
            if (depth > 0) spec = spec with { Mtp = new MtpSpec(depth, SpecDefaults.MtpLossWeight) };

            if (c.Object("quantization_config") is { } q)
            {
                string method = q.String("quant_method") ?? "fp8";
                if (method != "fp8") throw q.Error("quant_method", $"is \"{method}\"; only DeepSeek's block-scaled \"fp8\" is supported");
                string format = q.String("fmt") ?? "e4m3";
                if (format != "e4m3") throw q.Error("fmt", $"is \"{format}\"; only \"e4m3\" is supported");
                int block = SpecDefaults.Fp8BlockSize;
                if (q.IntArray("weight_block_size") is { } sizes)
                {
                    if (sizes.Length != 2 || sizes[0] != sizes[1]) throw q.Error("weight_block_size", "must be two equal sizes, e.g. [128, 128]");
                    block = sizes[0];
                }

                spec = spec with { Precision = new PrecisionSpec(NumericFormat.Fp8E4M3, block, block, Math.Min(block, SpecDefaults.PromotionInterval), NumericFormat.Fp32, NumericFormat.Fp32) };
            }

            return spec;
        }

        /// <summary>Typed access to one JSON object, with errors that name the file and the key path.</summary>
        private sealed class Reader
        {
            private readonly JsonElement _element;
            private readonly string _source;
            private readonly string _path;

            public Reader(JsonElement element, string source, string path)
            {
                _element = element;
                _source = source;
                _path = path;
                if (element.ValueKind != JsonValueKind.Object) throw new ConfigException($"{source}: {(path.Length == 0 ? "the document" : path)} must be a JSON object");
            }

            public ConfigException Error(string key, string problem) => new($"{_source}: \"{_path}{key}\" {problem}");

            public Reader? Object(string key) => Get(key) is { } e ? new Reader(e, _source, _path + key + ".") : null;

            public string? String(string key) => Get(key) is not { } e ? null
                : e.ValueKind == JsonValueKind.String ? e.GetString() : throw Error(key, $"must be a string, not {Describe(e)}");

            public bool? Bool(string key) => Get(key) is not { } e ? null
                : e.ValueKind is JsonValueKind.True or JsonValueKind.False ? e.GetBoolean() : throw Error(key, $"must be true or false, not {Describe(e)}");

            public double? Double(string key) => Get(key) is not { } e ? null
                : e.ValueKind == JsonValueKind.Number ? e.GetDouble() : throw Error(key, $"must be a number, not {Describe(e)}");

            public int? Int(string key)
            {
                if (Get(key) is not { } e) return null;
                if (e.ValueKind == JsonValueKind.Number && e.TryGetInt32(out int value)) return value;
                if (e.ValueKind == JsonValueKind.Number && e.TryGetDouble(out double d) && d == Math.Floor(d) && Math.Abs(d) <= int.MaxValue) return (int)d;
                throw Error(key, $"must be a whole number, not {Describe(e)}");
            }

            public int RequiredInt(string key) => Int(key) ?? throw Error(key, "is missing");

            public int[]? IntArray(string key)
            {
                if (Get(key) is not { } e) return null;
                if (e.ValueKind != JsonValueKind.Array) throw Error(key, $"must be an array, not {Describe(e)}");
                var result = new int[e.GetArrayLength()];
                int i = 0;
                foreach (var item in e.EnumerateArray())
                {
                    if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt32(out result[i++])) throw Error(key, "must hold whole numbers");
                }

                return result;
            }

            /// <summary>The value of <paramref name="key"/>, or null when it is absent or JSON null.</summary>
            private JsonElement? Get(string key) =>
                _element.TryGetProperty(key, out var value) && value.ValueKind != JsonValueKind.Null ? value : null;

            private static string Describe(JsonElement e) => e.ValueKind switch
            {
                JsonValueKind.String => "the string \"" + e.GetString() + "\"",
                JsonValueKind.Number => e.GetRawText(),
                _ => e.ValueKind.ToString().ToLowerInvariant(),
            };
        }
    }
}
