// Reproduces TorchSharp 0.107's unkept temporary Scalars (README, "Known issue"): TinySeek decodes in a loop while another
// thread allocates without pause, so garbage collections, and the finalizer thread after them, run while TorchSharp calls
// are in flight. A Scalar such as the alpha of a + b, finalised mid-call, makes libtorch throw "Expected false to be true"
// (c10 Scalar::toFloat) or "Unknown scalar type". Prints each failure with the first frames of our code, then a count.
// `train` runs FP8 pre-training steps (Pretrainer, AdamW, balance and MTP losses) instead of decoding.
//   dotnet run --project benchmarks/ScalarRace -c Release -- [decode|train] [seconds, default 120]
// 2026-11-29, this project's 2-core machine: 41 failures in 594 Generate calls in 240 s (~5,000 collections a second)
// before the layers and the decoding loop passed long-lived scalars (ModelCompiler.Torch.KeptScalars); none in 428 calls
// in 180 s after. `train`: 59 failures in 100 steps in 241 s before the training code did the same (AdamW, the losses,
// the FP8 quantisation; KeptScalarTests now finds any such call), none in 72 steps in 242 s after.
using System.Runtime.InteropServices;
using ModelCompiler.Torch;
using Samples.TinySeek;

bool train = args is ["train", ..];
if (args is ["train" or "decode", .. var rest]) args = rest;
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

var model = new DeepSeekCausalLM(TinySeek.Spec, includeMtp: train, seed: 1);
if (train) model.Precision.Format = ModelCompiler.NumericFormat.Fp8E4M3; // the quantisation path too
else model.eval();
using var trainer = train ? new ModelCompiler.Torch.Training.Pretrainer(model, new()) : null;
var prompts = Enumerable.Range(0, 8).Select(i => (IReadOnlyList<long>)Enumerable.Range(1, 10 + i).Select(t => (long)(((t * 7) + i) % 30) + 1).ToList()).ToList();
var clock = System.Diagnostics.Stopwatch.StartNew();
int calls = 0, failures = 0;
while (clock.Elapsed.TotalSeconds < seconds)
{
    try
    {
        if (trainer is not null) trainer.TrainStep();
        else Generation.Generate(model, prompts, 16);
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
Console.WriteLine($"{failures} failures in {calls} {(train ? "training steps" : "Generate calls")}, {clock.Elapsed.TotalSeconds:F0} s, {GC.CollectionCount(0)} collections");
return failures == 0 ? 0 : 1;
