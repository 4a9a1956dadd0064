using System.Reflection;
using System.Text.RegularExpressions;
using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Backends;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace ModelCompiler.Gpu;

/// <summary>
/// Offline PTX for a kernel, without a GPU: what the CUDA driver would be given for sm_90 (the <c>.target</c> raised as on a
/// real device). <see cref="Normalize"/> renumbers ILGPU's context-wide ids so that a kernel's text does not depend on what
/// was compiled before it, which makes the PTX a stable snapshot.
/// </summary>
public static partial class Ptx
{
    /// <summary>
    /// The PTX of the explicitly grouped kernel <paramref name="kernel"/> for <paramref name="architecture"/> (default sm_90, ISA 8.8);
    /// sm_90a for a kernel that uses warp-group MMA.
    /// </summary>
    public static string Compile(MethodInfo kernel, CudaArchitecture? architecture = null)
    {
        var arch = architecture ?? CudaArchitecture.SM_90;
        using var context = Context.Create(builder => builder.Optimize(OptimizationLevel.O2).Math(MathMode.Fast32BitOnly).EnableAlgorithms());
        var capabilities = new CudaCapabilityContext(arch);
        GpuDevice.SetTargetArchitecture(capabilities, arch);
        using var backend = new PTXBackend(context, capabilities, arch, CudaInstructionSet.ISA_88, null);
        var compiled = (PTXCompiledKernel)backend.Compile(EntryPointDescription.FromExplicitlyGroupedKernel(kernel), KernelSpecialization.Empty);
        string ptx = WithCacheHints(compiled.PTXAssembly, HintsOf(kernel));
        // A kernel with warp-group MMA is loaded for sm_90a (GpuDevice.Load with hopperSpecific): show that target.
        if (arch == CudaArchitecture.SM_90 && ptx.Contains("wgmma.", StringComparison.Ordinal)) ptx = TargetHopperSpecific(ptx);
        return Normalize(ptx);
    }

    /// <summary>
    /// The same PTX for <c>sm_90a</c>, the architecture-specific target whose <c>wgmma</c> and <c>setmaxnreg</c> run on
    /// compute capability 9.0 only; ILGPU writes a plain <c>.target</c> (raised to sm_90 by <see cref="GpuDevice"/>).
    /// </summary>
    public static string TargetHopperSpecific(string ptx)
    {
        var target = TargetPattern().Match(ptx);
        if (!target.Success) throw new InvalidOperationException("The PTX has no .target line to raise to sm_90a.");
        return string.Concat(ptx.AsSpan(0, target.Index), ".target sm_90a", ptx.AsSpan(target.Index + target.Length));
    }

    /// <summary>The hints <paramref name="kernel"/> is marked with (<see cref="CacheHintsAttribute"/>).</summary>
    public static CacheHints HintsOf(MethodInfo kernel) => kernel.GetCustomAttribute<CacheHintsAttribute>()?.Hints ?? CacheHints.None;

    /// <summary>
    /// <paramref name="ptx"/> with <paramref name="hints"/> written into its global loads and stores (see <see cref="CacheHints"/>).
    /// Throws when the text lacks what the hints rely on (a barrier between the two reads, global loads on both sides), so a
    /// change to the kernel cannot silently drop them.
    /// </summary>
    public static string WithCacheHints(string ptx, CacheHints hints)
    {
        if (hints == CacheHints.None) return ptx;
        if (hints != CacheHints.ReadTwice) throw new ArgumentOutOfRangeException(nameof(hints), hints, "Unknown cache hints.");
        int barrier = ptx.IndexOf("bar.sync", StringComparison.Ordinal);
        if (barrier < 0) throw new InvalidOperationException("CacheHints.ReadTwice needs a barrier between the two reads; the kernel has none.");
        string before = GlobalLoad().Replace(ptx[..barrier], "ld.global.L1::evict_last.L2::cache_hint$1 $2, %rdkeep;");
        string after = GlobalLoad().Replace(ptx[barrier..], "ld.global.L1::evict_first.L2::cache_hint$1 $2, %rdrelease;");
        after = GlobalStore().Replace(after, "st.global.cs$1");
        if (!before.Contains("%rdkeep;", StringComparison.Ordinal) || !after.Contains("%rdrelease;", StringComparison.Ordinal))
        {
            throw new InvalidOperationException("CacheHints.ReadTwice needs global loads before and after the kernel's first barrier.");
        }

        int body = before.IndexOf("ld.param", StringComparison.Ordinal); // the policies are made before the kernel's first instruction
        if (body < 0) throw new InvalidOperationException("CacheHints.ReadTwice found no parameter load to put the cache policies before.");
        const string Policies = ".reg .b64 %rdkeep, %rdrelease;\n\t" +
            "createpolicy.fractional.L2::evict_last.b64 %rdkeep, 1.0;\n\t" +
            "createpolicy.fractional.L2::evict_first.b64 %rdrelease, 1.0;\n\t";
        return string.Concat(before.AsSpan(0, body), Policies, before.AsSpan(body), after);
    }

    /// <summary>Renumbers parameter and label ids by first appearance and drops ILGPU's version line.</summary>
    public static string Normalize(string ptx)
    {
        var ids = new Dictionary<string, string>();
        string renumbered = IdPattern().Replace(ptx, match =>
        {
            if (!ids.TryGetValue(match.Value, out string? id))
            {
                ids[match.Value] = id = match.Groups[1].Value + ids.Count.ToString(System.Globalization.CultureInfo.InvariantCulture);
            }

            return id;
        });
        return VersionPattern().Replace(renumbered, "// Generated by ILGPU").Replace("\r\n", "\n");
    }

    [GeneratedRegex(@"ld\.global((?:\.v[24])?\.(?:f32|b32|u32|s32|b64|u64|f64|b16|u16|u8|b8))\s+(\{[^}]*\}, \[[^\]]*\]|%\w+, \[[^\]]*\]);")]
    private static partial Regex GlobalLoad();

    [GeneratedRegex(@"st\.global((?:\.v[24])?\.\w+\s)")]
    private static partial Regex GlobalStore();

    [GeneratedRegex(@"\b(_\w+?_|L_)(\d+)\b")]
    private static partial Regex IdPattern();

    [GeneratedRegex(@"\.target sm_\d+a?\b")]
    private static partial Regex TargetPattern();

    [GeneratedRegex(@"// Generated by ILGPU v[\d.]+")]
    private static partial Regex VersionPattern();
}
