using ModelCompiler;
using ModelCompiler.Planning;
using Samples.TinySeek;

// TinySeek is the model the training issues train; for now it prints the plan the generator computed at build time.
Console.WriteLine("TinySeek, as planned by the ModelCompiler generator at build time");
Console.WriteLine();
var runtime = ModelPlanner.PlanOrThrow(TinySeek.Spec);
Console.Write(PlanReport.Format(TinySeek.Spec, runtime));
Console.WriteLine();
bool agrees = runtime.TotalParameters == TinySeek.Plan.TotalParameters && runtime.ActivatedParameters == TinySeek.Plan.ActivatedParameters
    && runtime.KvCacheBytesPerToken == TinySeek.Plan.KvCacheBytesPerToken;
Console.WriteLine($"build-time plan == run-time plan: {(agrees ? "yes" : "NO")}");
return agrees ? 0 : 1;
