using System.Collections.Generic;
using System.Linq;

namespace ModelCompiler.Planning
{
    /// <summary>
    /// One kernel of a declaration's <see cref="KernelPlan"/>: what it computes, and whether it is generated; when it is not, why
    /// and which attribute argument decides it.
    /// </summary>
    /// <param name="Name">The kernel's name in the generated <c>Kernels</c> class, e.g. <c>RmsNormHidden</c>.</param>
    /// <param name="Summary">What it computes, at this declaration's widths.</param>
    /// <param name="Limit">Why it is not generated (null when it is).</param>
    /// <param name="Relevant">
    /// Whether the declaration would use the kernel: an FP8 kernel is not relevant to a model that computes in FP32, and its
    /// absence is no news (no MC4001).
    /// </param>
    public sealed record KernelEntry(string Name, string Summary, KernelLimit? Limit, bool Relevant)
    {
        /// <summary>Whether the kernel is generated.</summary>
        public bool Generated => Limit is null;

        /// <summary>One line: the summary, or why the kernel is not generated.</summary>
        public override string ToString() => Limit is null ? $"{Name}: {Summary}" : $"{Name}: not generated because {Limit.Reason}.";
    }

    /// <summary>One RMSNorm kernel: the row it normalises.</summary>
    /// <param name="Name">The suffix of its name: <c>RmsNorm{Name}</c>.</param>
    /// <param name="Title">What the row is.</param>
    /// <param name="Shape">Its geometry.</param>
    public sealed record NormKernel(string Name, string Title, RowShape Shape);

    /// <summary>
    /// The GPU kernels a declaration gets: each kernel's geometry and whether (and why not) it is generated. Built by the
    /// planner from the spec alone, equatable like the rest of the plan; the kernel emitter prints what it says, and
    /// <c>modelc plan --kernels</c> shows it.
    /// </summary>
    public sealed record KernelPlan
    {
        /// <summary>The RMSNorm kernels: the residual stream, the query latent (with query compression) and the key-value latent.</summary>
        public EquatableArray<NormKernel> Norms { get; init; }

        /// <summary>Geometry of rows of the residual stream.</summary>
        public RowShape Hidden { get; init; } = new RowShape(0);

        /// <summary>Intermediate width of one routed expert (of the dense FFN without MoE): the rows SwiGLU kernels see.</summary>
        public int ExpertWidth { get; init; }

        /// <summary>FP8 activation tile: values sharing one scale.</summary>
        public int ActivationTile { get; init; }

        /// <summary>FP8 weight block edge.</summary>
        public int WeightBlock { get; init; }

        /// <summary>Lanes of the fused RMSNorm + quantisation that share one activation tile (0: the kernel is not generated).</summary>
        public int HiddenLanesPerTile { get; init; }

        /// <summary>The router's warp layout, when the model has MoE layers.</summary>
        public RouterShape? Router { get; init; }

        /// <summary>The tensor-core (mma.sync) MLA decode kernel's tiling.</summary>
        public MlaShape Mla { get; init; } = new MlaShape(0, 0, 0);

        /// <summary>The warp-group (wgmma) MLA decode kernel's tiling.</summary>
        public WarpGroupMlaShape WarpGroupMla { get; init; } = new WarpGroupMlaShape(0, 0, 0);

        /// <summary>The FP8 GEMM's tiling.</summary>
        public Fp8GemmShape Fp8Gemm { get; init; } = new Fp8GemmShape(PrecisionSpec.Fp32);

        /// <summary>Every kernel, generated or not, in the order of the generated file.</summary>
        public EquatableArray<KernelEntry> Kernels { get; init; }

        /// <summary>The entry named <paramref name="name"/>.</summary>
        /// <exception cref="KeyNotFoundException">No kernel has that name.</exception>
        public KernelEntry this[string name] => Kernels.FirstOrDefault(k => k.Name == name) ?? throw new KeyNotFoundException($"the kernel plan has no kernel named {name}");

        /// <summary>Whether the kernel named <paramref name="name"/> is generated.</summary>
        public bool Generates(string name) => this[name].Generated;
    }
}
