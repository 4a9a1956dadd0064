using ILGPU;
using ILGPU.Runtime;
using ModelCompiler.Planning;

namespace ModelCompiler.Inference;

/// <summary>
/// MLA's latent cache in pages, as FlashMLA pages it: each layer holds pages of <see cref="PageSize"/> tokens × (d_c + d_rope)
/// values (the normalised latent c_KV, then the rotary key k_pe), FP32 or bf16. A sequence occupies a slot with a page table
/// (page ids, the same in every layer); pages are taken from a free list as it grows and returned when it leaves, so
/// sequences of any lengths share the memory without reserving their maximum.
/// </summary>
public sealed class PagedLatentCache : IDisposable
{
    /// <summary>Tokens per page.</summary>
    public const int PageSize = 64;

    private readonly MemoryBuffer1D<float, Stride1D.Dense>?[] _f32;
    private readonly MemoryBuffer1D<ushort, Stride1D.Dense>?[] _bf16;
    private readonly int[] _tables;                         // [slots, pagesPerSequence], −1 where unused
    private readonly int[] _lengths;                        // tokens covered by each slot's pages
    private readonly Stack<int> _freePages;
    private readonly Stack<int> _freeSlots;
    private readonly MemoryBuffer1D<int, Stride1D.Dense> _deviceTables;
    private bool _tablesChanged = true;

    /// <summary>Allocates the cache of <paramref name="pages"/> pages per layer for up to <paramref name="slots"/> sequences of up to <paramref name="maxLength"/> tokens.</summary>
    /// <exception cref="InsufficientDeviceMemoryException">The pages do not fit beside what is already allocated.</exception>
    public PagedLatentCache(Accelerator accelerator, ModelSpec spec, EnginePrecision precision, int slots, int maxLength, int pages)
    {
        if (slots < 1 || maxLength < 1 || pages < 1) throw new ArgumentOutOfRangeException(nameof(slots), "a cache needs at least one slot, one token and one page");
        Width = spec.Attention.CacheWidth;
        Layers = spec.Layers;
        Slots = slots;
        PagesPerSequence = (maxLength + PageSize - 1) / PageSize;
        Pages = pages;
        Precision = precision;
        long bytes = BytesFor(spec, precision, pages);
        if (bytes > accelerator.MemorySize)
        {
            throw new InsufficientDeviceMemoryException($"the latent cache of {pages} pages needs {bytes / (double)(1L << 30):F1} GiB; the device ({accelerator.Name}) has {accelerator.MemorySize / (double)(1L << 30):F1} GiB");
        }

        _f32 = new MemoryBuffer1D<float, Stride1D.Dense>?[Layers];
        _bf16 = new MemoryBuffer1D<ushort, Stride1D.Dense>?[Layers];
        try
        {
            long perLayer = (long)pages * PageSize * Width;
            for (int layer = 0; layer < Layers; layer++)
            {
                if (precision == EnginePrecision.Float32) _f32[layer] = accelerator.Allocate1D<float>(perLayer);
                else _bf16[layer] = accelerator.Allocate1D<ushort>(perLayer);
            }

            _deviceTables = accelerator.Allocate1D<int>((long)slots * PagesPerSequence);
        }
        catch
        {
            Dispose();
            throw;
        }

        _tables = Enumerable.Repeat(0, slots * PagesPerSequence).ToArray();
        _lengths = new int[slots];
        _freePages = new Stack<int>(Enumerable.Range(0, pages).Reverse());
        _freeSlots = new Stack<int>(Enumerable.Range(0, slots).Reverse());
    }

    /// <summary>Values per cached token: d_c + d_rope.</summary>
    public int Width { get; }

    /// <summary>Layers.</summary>
    public int Layers { get; }

    /// <summary>Sequence slots.</summary>
    public int Slots { get; }

    /// <summary>Page-table entries per slot: enough for the longest sequence.</summary>
    public int PagesPerSequence { get; }

    /// <summary>Pages per layer.</summary>
    public int Pages { get; }

    /// <summary>FP32 or bf16.</summary>
    public EnginePrecision Precision { get; }

    /// <summary>Pages not held by any sequence.</summary>
    public int FreePages => _freePages.Count;

    /// <summary>Slots not held by any sequence.</summary>
    public int FreeSlots => _freeSlots.Count;

    /// <summary>Bytes per token over all layers.</summary>
    public long BytesPerToken => (long)Width * Layers * (Precision == EnginePrecision.Float32 ? 4 : 2);

    /// <summary>The device copy of the page tables [slots, pagesPerSequence].</summary>
    internal ArrayView<int> Tables => _deviceTables.View;

    /// <summary>Bytes of <paramref name="pages"/> pages of every layer.</summary>
    public static long BytesFor(ModelSpec spec, EnginePrecision precision, long pages) =>
        pages * PageSize * spec.Attention.CacheWidth * spec.Layers * (precision == EnginePrecision.Float32 ? 4 : 2);

    /// <summary>Pages that <paramref name="tokens"/> tokens occupy.</summary>
    public static int PagesFor(int tokens) => (tokens + PageSize - 1) / PageSize;

    /// <summary>Layer <paramref name="layer"/>'s pages: the FP32 view (empty in bf16).</summary>
    internal ArrayView<float> F32(int layer, EmptyViews empty) => _f32[layer]?.View ?? empty.F32;

    /// <summary>Layer <paramref name="layer"/>'s pages: the bf16 view (empty in FP32).</summary>
    internal ArrayView<ushort> Bf16(int layer, EmptyViews empty) => _bf16[layer]?.View ?? empty.Bf16;

    /// <summary>Takes a free slot for a new sequence, or returns −1 when every slot is taken.</summary>
    public int TakeSlot()
    {
        if (_freeSlots.Count == 0) return -1;
        int slot = _freeSlots.Pop();
        _lengths[slot] = 0;
        return slot;
    }

    /// <summary>Whether a slot's sequence can grow to <paramref name="length"/> tokens with the free pages.</summary>
    public bool CanGrow(int slot, int length) => length <= PagesPerSequence * PageSize && PagesFor(length) - PagesFor(_lengths[slot]) <= _freePages.Count;

    /// <summary>Gives slot <paramref name="slot"/> pages for its first <paramref name="length"/> tokens.</summary>
    /// <exception cref="InvalidOperationException">Not enough free pages, or beyond the sequence limit.</exception>
    public void Grow(int slot, int length)
    {
        if (!CanGrow(slot, length)) throw new InvalidOperationException($"slot {slot} cannot grow to {length} tokens: {_freePages.Count} pages free, {PagesPerSequence * PageSize} tokens at most");
        for (int page = PagesFor(_lengths[slot]); page < PagesFor(length); page++)
        {
            _tables[(slot * PagesPerSequence) + page] = _freePages.Pop();
            _tablesChanged = true;
        }

        _lengths[slot] = Math.Max(_lengths[slot], length);
    }

    /// <summary>Returns slot <paramref name="slot"/> and its pages.</summary>
    public void Release(int slot)
    {
        for (int page = 0; page < PagesFor(_lengths[slot]); page++) _freePages.Push(_tables[(slot * PagesPerSequence) + page]);
        _lengths[slot] = 0;
        _freeSlots.Push(slot);
    }

    /// <summary>Uploads the page tables when they changed since the last step.</summary>
    internal void Synchronise()
    {
        if (!_tablesChanged) return;
        _deviceTables.View.CopyFromCPU(_tables);
        _tablesChanged = false;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (var buffer in _f32) buffer?.Dispose();
        foreach (var buffer in _bf16) buffer?.Dispose();
        _deviceTables?.Dispose();
    }
}
