using ILGPU;
using ILGPU.Runtime;

namespace ModelCompiler.Gpu;

/// <summary>What one tiled 2-D tensor map describes (the arguments of <see cref="TensorMap.Tiled2D"/>): equal values, the same map.</summary>
public readonly record struct TiledMap(long Address, long Width, long Rows, long RowBytes, int BoxWidth, int BoxRows, bool Swizzle128 = false, int ElementBytes = 2);

/// <summary>
/// The tensor maps one kernel's bulk tensor copies read from device memory, <see cref="TensorMap.Bytes"/> apart: encoded and
/// uploaded again only when what they describe changes (a buffer moved, a shape changed), so a launch usually costs a
/// comparison.
/// </summary>
public sealed class TensorMapCache(Accelerator accelerator) : IDisposable
{
    private MemoryBuffer1D<byte, Stride1D.Dense>? _buffer;
    private TiledMap[] _maps = [];

    /// <summary>The device address of <paramref name="maps"/>, uploaded on <paramref name="stream"/> when they changed.</summary>
    public long Address(AcceleratorStream stream, params TiledMap[] maps)
    {
        if (_buffer is null || !_maps.AsSpan().SequenceEqual(maps))
        {
            var bytes = new byte[maps.Length * TensorMap.Bytes];
            for (int i = 0; i < maps.Length; i++)
            {
                var map = maps[i];
                TensorMap.Tiled2D(map.Address, map.Width, map.Rows, map.RowBytes, map.BoxWidth, map.BoxRows, map.Swizzle128, map.ElementBytes)
                    .CopyTo(bytes, i * TensorMap.Bytes);
            }

            if (_buffer is null || _buffer.Length != bytes.Length)
            {
                _buffer?.Dispose();
                _buffer = accelerator.Allocate1D<byte>(bytes.Length);
            }

            _buffer.View.CopyFromCPU(stream, bytes);
            _maps = maps;
        }

        return _buffer.View.BaseView.LoadEffectiveAddressAsPtr().ToInt64();
    }

    /// <summary>Frees the device copy.</summary>
    public void Dispose() => _buffer?.Dispose();
}
