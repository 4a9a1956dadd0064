using ModelCompiler;
using ModelCompiler.Planning;
using Samples.DeepSeekV3;

// `plan` (the default and only command): everything printed here was computed at build time by the generator (DeepSeekV3.Plan, DeepSeekV3.Config); the runtime
// planner, run on the generated spec, must agree with it.
Console.WriteLine("DeepSeek-V3, as planned by the ModelCompiler generator at build time");
Console.WriteLine();
var runtime = ModelPlanner.PlanOrThrow(DeepSeekV3.Spec);
Console.Write(PlanReport.Format(DeepSeekV3.Spec, runtime));
Console.WriteLine();
bool agrees = runtime.TotalParameters == DeepSeekV3.Plan.TotalParameters
    && runtime.ActivatedParameters == DeepSeekV3.Plan.ActivatedParameters
    && runtime.KvCacheBytesPerToken == DeepSeekV3.Plan.KvCacheBytesPerToken
    && runtime.TrainingFlopsPerToken == DeepSeekV3.Plan.TrainingFlopsPerToken;
Console.WriteLine($"build-time plan == run-time plan: {(agrees ? "yes" : "NO")}");
Console.WriteLine($"softmax scale (YaRN mscale² applied): {DeepSeekV3.Config.SoftmaxScale:G7}");
return agrees ? 0 : 1;
