using ILGPU;
using ILGPU.Runtime;

namespace ModelCompiler.Inference;

/// <summary>How the engine holds weights and the latent cache on the device.</summary>
public enum EnginePrecision
{
    /// <summary>bf16 weights and cache, FP32 activations and accumulation: the default, half the memory traffic.</summary>
    Bf16,

    /// <summary>FP32 weights and cache: the exactness mode, equal to the reference within float rounding.</summary>
    Float32,
}

/// <summary>
/// A weight on the device, FP32 or bf16 (its other view empty), with its row-major shape: what every kernel of
/// <see cref="EngineKernels"/> takes as the pair (w32, w16) and a flag.
/// </summary>
public sealed class DeviceWeight : IDisposable
{
    private readonly MemoryBuffer1D<float, Stride1D.Dense>? _f32;
    private readonly MemoryBuffer1D<ushort, Stride1D.Dense>? _bf16;

    private readonly EmptyViews _empty;

    private DeviceWeight(EmptyViews empty, long[] shape, MemoryBuffer1D<float, Stride1D.Dense>? f32, MemoryBuffer1D<ushort, Stride1D.Dense>? bf16)
    {
        _empty = empty;
        Shape = shape;
        _f32 = f32;
        _bf16 = bf16;
    }

    /// <summary>The shape.</summary>
    public long[] Shape { get; }

    /// <summary>Elements.</summary>
    public long Length => Shape.Aggregate(1L, (a, b) => a * b);

    /// <summary>Whether it is held in bf16.</summary>
    public bool IsBf16 => _bf16 is not null;

    /// <summary>The kernels' bf16 flag.</summary>
    public int Bf16Flag => IsBf16 ? 1 : 0;

    /// <summary>The FP32 view (empty when bf16).</summary>
    public ArrayView<float> F32 => _f32?.View ?? _empty.F32;

    /// <summary>The bf16 view (empty when FP32).</summary>
    public ArrayView<ushort> Bf16 => _bf16?.View ?? _empty.Bf16;

    /// <summary>Bytes on the device.</summary>
    public long Bytes => Length * (IsBf16 ? 2 : 4);

    /// <summary>An uninitialised weight of <paramref name="shape"/> in <paramref name="precision"/>'s format.</summary>
    public static DeviceWeight Allocate(Accelerator accelerator, EmptyViews empty, long[] shape, EnginePrecision precision)
    {
        long length = shape.Aggregate(1L, (a, b) => a * b);
        return precision == EnginePrecision.Float32
            ? new DeviceWeight(empty, shape, accelerator.Allocate1D<float>(length), null)
            : new DeviceWeight(empty, shape, null, accelerator.Allocate1D<ushort>(length));
    }

    /// <summary>Copies <paramref name="values"/> (converted to bf16 when it is held so) to elements [offset, offset + length).</summary>
    public void CopyFrom(long offset, ReadOnlySpan<float> values)
    {
        if (offset < 0 || offset + values.Length > Length) throw new ArgumentOutOfRangeException(nameof(offset), $"{values.Length} values at {offset} do not fit a weight of {Length}");
        if (_f32 is not null)
        {
            _f32.View.BaseView.SubView(offset, values.Length).CopyFromCPU(values);
            return;
        }

        var bits = new ushort[values.Length];
        for (int i = 0; i < values.Length; i++) bits[i] = ToBf16(values[i]);
        _bf16!.View.BaseView.SubView(offset, values.Length).CopyFromCPU(bits);
    }

    /// <summary>bf16 bits of <paramref name="value"/>, rounded to nearest even (as the kernels' <c>Bf16.FromFloat</c>).</summary>
    public static ushort ToBf16(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value)) return 0x7FC0;
        return (ushort)((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _f32?.Dispose();
        _bf16?.Dispose();
    }
}

/// <summary>Zero-length views for the unused half of a (FP32, bf16) kernel argument pair: one small allocation per device.</summary>
public sealed class EmptyViews(Accelerator accelerator) : IDisposable
{
    private readonly MemoryBuffer1D<float, Stride1D.Dense> _f32 = accelerator.Allocate1D<float>(1);
    private readonly MemoryBuffer1D<ushort, Stride1D.Dense> _bf16 = accelerator.Allocate1D<ushort>(1);

    /// <summary>An empty FP32 view.</summary>
    public ArrayView<float> F32 => _f32.View.SubView(0, 0);

    /// <summary>An empty bf16 view.</summary>
    public ArrayView<ushort> Bf16 => _bf16.View.SubView(0, 0);

    /// <inheritdoc/>
    public void Dispose()
    {
        _f32.Dispose();
        _bf16.Dispose();
    }
}
