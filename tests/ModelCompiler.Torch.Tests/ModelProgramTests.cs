using Xunit;

namespace ModelCompiler.Torch.Tests;

/// <summary>The generated project's commands (<see cref="ModelProgram"/>) refuse bad numbers by option name, before any work.</summary>
public sealed class ModelProgramTests
{
    [Theory]
    [InlineData("--max-new-tokens 0", "--max-new-tokens must be a whole number from 1")]
    [InlineData("--max-new-tokens ten", "--max-new-tokens: 'ten' is not a whole number")]
    [InlineData("--temperature -1", "--temperature must be at least 0, not -1")]
    [InlineData("--top-p 0", "--top-p must be in (0, 1], not 0")]
    [InlineData("--top-p NaN", "--top-p: 'NaN' is not a number")]
    [InlineData("--seed 1.5", "--seed: '1.5' is not a whole number")]
    [InlineData("--stop 3,x", "--stop: 'x' is not a token id")]
    [InlineData("--max-new-tokens", "Required argument missing for option: '--max-new-tokens'")]
    [InlineData("--bogus 7", "Unrecognized command or argument '--bogus'")]
    public void Generate_names_the_bad_option(string option, string expected)
    {
        // The checkpoint folder does not exist: the options are refused before it is read.
        Refused(["generate", "no-such-checkpoint", "--prompt-ids", "1,2", .. option.Split(' ')], expected);
    }

    [Fact]
    public void A_prompt_id_that_is_not_a_number_is_named()
    {
        Refused(["generate", "no-such-checkpoint", "--prompt-ids", "1,2;3,a"], "--prompt-ids: 'a' is not a token id");
    }

    [Theory]
    [InlineData("--steps 0", "--steps must be a whole number from 1")]
    [InlineData("--batch -2", "--batch must be a whole number from 1")]
    [InlineData("--row-length 1", "--row-length must be a whole number from 2")]
    [InlineData("--lr 0", "--lr must be positive, not 0")]
    [InlineData("--steps 99999999999", "--steps must be a whole number from 1 to 2147483647")]
    public void Pretrain_checks_its_numbers_before_reading_the_data(string option, string expected)
    {
        Refused(["pretrain", "--data", "no-such-file.txt", .. option.Split(' ')], expected);
    }

    [Fact]
    public void Generation_past_the_context_is_refused_before_loading()
    {
        // tests/fixtures/tiny-v3 declares max_position_embeddings 512.
        string fixture = ModelCompiler.TestUtilities.RepositoryPaths.Combine("tests", "fixtures", "tiny-v3");
        Refused(["generate", fixture, "--prompt-ids", "1,2,3", "--max-new-tokens", "600"], "run past the model's context of 512 positions (max_position_embeddings)");
    }

    [Fact]
    public void Non_finite_logits_end_generation_with_an_error()
    {
        using var model = new DeepSeekCausalLM(TestModels.Tiny());
        using (TorchSharp.torch.no_grad())
        {
            model.state_dict()["model.norm.weight"].fill_(KeptScalars.Of(double.NaN));
        }

        var error = Assert.Throws<NonFiniteLogitsException>(() => Generation.Generate(model, [[1, 2, 3]], 4));
        Assert.Contains("the model's logits are not finite (NaN or infinity) for sequence 0 at position 3", error.Message, StringComparison.Ordinal);
    }

    /// <summary>The command exits with 2 and says <paramref name="expected"/> on stderr.</summary>
    private static void Refused(string[] args, string expected)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int code = ModelProgram.Run(args, "Tiny", TestModels.Tiny(), () => new DeepSeekCausalLM(TestModels.Tiny()), output, error);
        Assert.Equal(2, code);
        Assert.Contains(expected, error.ToString(), StringComparison.Ordinal);
    }
}
