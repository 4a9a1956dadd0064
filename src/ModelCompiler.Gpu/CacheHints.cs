namespace ModelCompiler.Gpu;

/// <summary>
/// Cache hints that ILGPU 1.5.3 cannot express (it has no cache operators on loads and stores). A CUDA kernel marked with
/// <see cref="CacheHintsAttribute"/> gets them written into its PTX when <see cref="GpuDevice"/> loads it, and in
/// <see cref="Ptx.Compile"/>, so that its snapshot shows what runs.
/// </summary>
public enum CacheHints
{
    /// <summary>No hints: ILGPU's PTX as it is.</summary>
    None = 0,

    /// <summary>
    /// A kernel that reads its data twice, once before its first barrier and again after it (torch.compile's RMSNorm): the
    /// first reads keep their lines in L2 for the second (<c>ld.global.L1::evict_last</c> with an L2 <c>evict_last</c>
    /// policy), the second reads let them go (<c>evict_first</c>), and the stores stream (<c>st.global.cs</c>) so that
    /// they do not push the kept lines out.
    /// </summary>
    ReadTwice = 1,
}

/// <summary>The <see cref="CacheHints"/> a kernel method is loaded with on CUDA.</summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false)]
public sealed class CacheHintsAttribute(CacheHints hints) : Attribute
{
    /// <summary>The hints.</summary>
    public CacheHints Hints { get; } = hints;
}
