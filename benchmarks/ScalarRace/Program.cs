// Reproduces TorchSharp 0.107's unkept temporary Scalars (README, "Known issue"): TinySeek decodes in a loop while another
// thread allocates without pause, so garbage collections, and the finalizer thread after them, run while TorchSharp calls
// are in flight. A Scalar such as the alpha of a + b, finalised mid-call, makes libtorch throw "Expected false to be true"
// (c10 Scalar::toFloat) or "Unknown scalar type". Prints each failure with the first frames of our code, then a count.
//   dotnet run --project benchmarks/ScalarRace -c Release -- [seconds, default 120]
// 2026-11-29, this project's 2-core machine: 41 failures in 594 Generate calls in 240 s (~5,000 collections a second)
// before the layers and the decoding loop passed long-lived scalars (ModelCompiler.Torch.KeptScalars); none in 428 calls
// in 180 s after.
using System.Runtime.InteropServices;
using ModelCompiler.Torch;
using Samples.TinySeek;

int seconds = args.Length > 0 ? int.Parse(args[0], System.Globalization.CultureInfo.InvariantCulture) : 120;
bool stop = false;
var allocator = new Thread(() =>
{
    var kept = new List<byte[]>();
    while (!Volatile.Read(ref stop))
    {
        kept.Add(new byte[4096]);
        if (kept.Count > 64) kept.Clear();
    }
}) { IsBackground = true };
allocator.Start();

var model = new DeepSeekCausalLM(TinySeek.Spec, includeMtp: false, seed: 1);
model.eval();
var prompts = Enumerable.Range(0, 8).Select(i => (IReadOnlyList<long>)Enumerable.Range(1, 10 + i).Select(t => (long)(((t * 7) + i) % 30) + 1).ToList()).ToList();
var clock = System.Diagnostics.Stopwatch.StartNew();
int calls = 0, failures = 0;
while (clock.Elapsed.TotalSeconds < seconds)
{
    try
    {
        Generation.Generate(model, prompts, 16);
    }
    catch (ExternalException e)
    {
        failures++;
        var frames = (e.StackTrace ?? string.Empty).Split('\n').Select(l => l.Trim()).Where(l => l.Contains("ModelCompiler.Torch", StringComparison.Ordinal)).Take(2).Select(l => l.Split(" in ")[0]);
        Console.WriteLine($"call {calls}: {e.Message.Split('\n')[0].Trim()} | {string.Join(" <- ", frames)}");
    }

    calls++;
}

Volatile.Write(ref stop, true);
Console.WriteLine($"{failures} failures in {calls} Generate calls, {clock.Elapsed.TotalSeconds:F0} s, {GC.CollectionCount(0)} collections");
return failures == 0 ? 0 : 1;
