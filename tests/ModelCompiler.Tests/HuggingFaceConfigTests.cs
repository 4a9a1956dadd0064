using ModelCompiler.HuggingFace;
using ModelCompiler.TestUtilities;
using Xunit;

namespace ModelCompiler.Tests;

/// <summary>Reading config.json: both transformers layouts, and a clear error naming the key for every bad input.</summary>
public sealed class HuggingFaceConfigTests
{
    private static string V3 => File.ReadAllText(RepositoryPaths.Combine("tests", "fixtures", "configs", "deepseek-v3.json"));

    [Fact]
    public void Reads_v3_with_rope_scaling_and_v5_layout_with_rope_parameters()
    {
        var v3 = HuggingFaceConfig.Parse(V3);
        Assert.Equal(40, v3.Yarn!.Factor);
        Assert.Equal(ModelCompiler.LoadBalancing.AuxiliaryLossFree, v3.Moe!.Balancing);
        Assert.Equal(ModelCompiler.NumericFormat.Fp8E4M3, v3.Precision.Compute);
        Assert.Equal(1, v3.Mtp!.Depth);

        var tiny = HuggingFaceConfig.Read(RepositoryPaths.Combine("tests", "fixtures", "configs", "tiny-v3.json"));
        Assert.Null(tiny.Yarn);
        Assert.Equal(10000, tiny.RopeTheta);
        Assert.Equal(192, tiny.Attention.QueryLoraRank);

        var lite = HuggingFaceConfig.Read(RepositoryPaths.Combine("tests", "fixtures", "configs", "deepseek-v2-lite.json"));
        Assert.Equal(0, lite.Attention.QueryLoraRank); // q_lora_rank: null
        Assert.Equal(ModelCompiler.ExpertScoring.Softmax, lite.Moe!.Scoring);
        Assert.False(lite.Moe.NormalizeTopK);
        Assert.Equal(0.001, lite.Moe.ExpertBalanceLossWeight);
    }

    [Theory]
    [InlineData("\"model_type\": \"deepseek_v3\"", "\"model_type\": \"llama\"", "\"model_type\" is \"llama\"")]
    [InlineData("\"hidden_size\": 7168,", "", "\"hidden_size\" is missing")]
    [InlineData("\"hidden_size\": 7168", "\"hidden_size\": \"wide\"", "\"hidden_size\" must be a whole number, not the string \"wide\"")]
    [InlineData("\"scoring_func\": \"sigmoid\"", "\"scoring_func\": \"relu\"", "\"scoring_func\" is \"relu\"")]
    [InlineData("\"type\": \"yarn\"", "\"type\": \"linear\"", "\"rope_scaling.type\" is \"linear\"")]
    [InlineData("\"factor\": 40,", "", "\"rope_scaling.factor\" is missing")]
    [InlineData("\"weight_block_size\": [128, 128]", "\"weight_block_size\": [128, 64]", "\"quantization_config.weight_block_size\" must be two equal sizes")]
    [InlineData("\"moe_layer_freq\": 1", "\"moe_layer_freq\": 2", "\"moe_layer_freq\" is 2")]
    public void Bad_configs_name_the_key(string find, string replace, string expected)
    {
        string json = V3.Replace(find, replace, StringComparison.Ordinal);
        Assert.NotEqual(V3, json);
        var error = Assert.Throws<ConfigException>(() => HuggingFaceConfig.Parse(json, "my/config.json"));
        Assert.StartsWith("my/config.json: ", error.Message, StringComparison.Ordinal);
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Invalid_json_reports_the_line()
    {
        var error = Assert.Throws<ConfigException>(() => HuggingFaceConfig.Parse("{\n  \"model_type\": \"deepseek_v3\",\n  oops\n}", "c.json"));
        Assert.Contains("not valid JSON at line 3", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Missing_file_is_a_config_error()
    {
        var error = Assert.Throws<ConfigException>(() => HuggingFaceConfig.Read("/nonexistent/config.json"));
        Assert.Contains("/nonexistent/config.json: cannot read the file", error.Message, StringComparison.Ordinal);
    }
}
