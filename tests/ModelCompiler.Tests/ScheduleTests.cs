using ModelCompiler.Pipeline;
using Xunit;

namespace ModelCompiler.Tests;

/// <summary>The schedule tables against the bubble formulas, and their properties for random costs.</summary>
public sealed class ScheduleTests
{
    private static readonly OpCosts Unit = new(1, 2, 1, 3);

    [Theory]
    [InlineData(PipelineSchedule.OneFOneB, 8, 20, 21.0)]     // (P−1)(F+B)
    [InlineData(PipelineSchedule.OneFOneB, 4, 32, 9.0)]
    [InlineData(PipelineSchedule.ZeroBubbleH1, 8, 20, 7.0)]  // (P−1)(F+B−2W)
    [InlineData(PipelineSchedule.ZeroBubbleH1, 4, 12, 3.0)]
    [InlineData(PipelineSchedule.DualPipe, 8, 20, 6.0)]      // (P/2−1)(F&B+B−3W)
    [InlineData(PipelineSchedule.DualPipe, 8, 40, 6.0)]
    [InlineData(PipelineSchedule.DualPipe, 4, 16, 2.0)]
    public void Bubble_matches_the_formula(PipelineSchedule kind, int stages, int microBatches, double bubble)
    {
        var result = Simulator.Run(Schedules.Build(kind, stages, microBatches), Unit);
        Assert.All(result.Bubble, b => Assert.Equal(bubble, b, 9));
    }

    [Fact]
    public void Peak_activations_follow_the_schedules()
    {
        Assert.Equal([8, 7, 6, 5, 4, 3, 2, 1], Simulator.Run(Schedules.Build(PipelineSchedule.OneFOneB, 8, 32), Unit).PeakActivations);
        Assert.Equal([8, 8, 8, 9, 9, 8, 8, 8], Simulator.Run(Schedules.Build(PipelineSchedule.DualPipe, 8, 40), Unit).PeakActivations);
    }
}
