using System.Collections.Concurrent;
using TorchSharp;
using static TorchSharp.torch;

namespace ModelCompiler.Torch;

/// <summary>
/// Scalars that live as long as the process, for the constants of TorchSharp calls. TorchSharp 0.107 makes a temporary
/// <see cref="Scalar"/> for <c>a + b</c>'s alpha and for a number operand, and nothing keeps it alive during the native
/// call: a garbage collection started by another thread can finalise it mid-call, and libtorch then reads a freed scalar
/// (README, "Known issue"; <c>benchmarks/ScalarRace</c> reproduces it). Passing one of these instead leaves no temporary;
/// values that change while running go through a <see cref="ScalarScope"/>. <c>KeptScalarTests</c> fails on any call in
/// this library that still makes a temporary. Each keeps the operand's type (an int alpha, a double scale), so results are
/// bit for bit as before (ScalarRace, 2026-11-29: 41 failures in 594 <c>Generate</c> calls and 59 in 100 FP8 training
/// steps before, none in 428 and 72 after).
/// </summary>
internal static class KeptScalars
{
    private static readonly ConcurrentDictionary<double, Scalar> s_reals = new();
    private static readonly ConcurrentDictionary<long, Scalar> s_integers = new();

    /// <summary>1, the alpha of an addition or subtraction.</summary>
    public static readonly Scalar One = 1;

    /// <summary>−∞, for masking scores.</summary>
    public static readonly Scalar NegativeInfinity = double.NegativeInfinity;

    /// <summary>The kept scalar of a floating-point value (a model constant: ε, a scale).</summary>
    public static Scalar Of(double value) => s_reals.GetOrAdd(value, static v => v);

    /// <summary>The kept scalar of an integer value (a model constant, such as the experts per token).</summary>
    public static Scalar OfInteger(long value) => s_integers.GetOrAdd(value, static v => v);

    /// <summary><paramref name="a"/> + <paramref name="b"/> without a temporary alpha.</summary>
    public static Tensor Plus(this Tensor a, Tensor b) => a.add(b, One);

    /// <summary><paramref name="a"/> + <paramref name="constant"/> with the constant's kept scalar.</summary>
    public static Tensor Plus(this Tensor a, double constant) => a.add(Of(constant), One);

    /// <summary>
    /// <paramref name="start"/>, <paramref name="start"/> + 1, …, <paramref name="stop"/> − 1 as int64 (or
    /// <paramref name="type"/>), on <paramref name="device"/> (the CPU by default), as <c>arange</c> with bounds that live
    /// through the call.
    /// </summary>
    public static Tensor Range(long start, long stop, ScalarType type = ScalarType.Int64, Device? device = null)
    {
        using Scalar from = start, to = stop;
        return arange(from, to, One, type, device);
    }

    /// <summary><paramref name="a"/> · <paramref name="factor"/> with the factor's kept scalar.</summary>
    public static Tensor Times(this Tensor a, double factor) => a.mul(Of(factor));
}

/// <summary>
/// Scalars for values known only while running (a step's token count, its learning rate), kept until the scope is
/// disposed; the long-lived <see cref="KeptScalars"/> are for constants, so that their cache does not grow with every step.
/// libtorch copies a Scalar's value into what it records for the backward pass, so disposing after the calls is safe.
/// </summary>
internal sealed class ScalarScope : IDisposable
{
    private readonly List<Scalar> _made = [];

    /// <summary>A floating-point scalar that lives until this scope is disposed.</summary>
    public Scalar Of(double value) => Keep(value);

    /// <summary>An integer scalar (as a C# <c>long</c> operand makes) that lives until this scope is disposed.</summary>
    public Scalar OfInteger(long value) => Keep(value);

    /// <summary>Frees the scalars.</summary>
    public void Dispose()
    {
        foreach (var scalar in _made) scalar.Dispose();
        _made.Clear();
    }

    private Scalar Keep(Scalar scalar)
    {
        _made.Add(scalar);
        return scalar;
    }
}
