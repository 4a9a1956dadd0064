using System.Collections.Concurrent;
using System.Reflection;
using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Backends;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;
using ILGPU.Runtime.OpenCL;

namespace ModelCompiler.Gpu;

/// <summary>Which ILGPU backend runs the kernels.</summary>
public enum GpuBackend
{
    /// <summary>An NVIDIA GPU through CUDA: the kernels with warp shuffles and inline PTX.</summary>
    Cuda,

    /// <summary>OpenCL, in CI PoCL on the CPU: the kernels that reduce through shared memory (ILGPU cannot shuffle there).</summary>
    OpenCL,

    /// <summary>ILGPU's CPU simulator (one OS thread per GPU thread): runs the CUDA-shaped kernels, minus inline PTX, on tiny shapes.</summary>
    Cpu,
}

/// <summary>
/// One ILGPU context and accelerator, chosen once: CUDA when a GPU is present, otherwise OpenCL (PoCL), otherwise ILGPU's CPU
/// simulator; <see cref="Create(GpuBackend, bool)"/> asks for one. On CUDA the PTX <c>.target</c> is raised from ILGPU's fixed sm_80
/// to the device's architecture, so that FP8 conversions (sm_89+) assemble. Loaded kernels are cached per method.
/// </summary>
public sealed class GpuDevice : IDisposable
{
    private readonly ConcurrentDictionary<(MethodInfo, Type), Delegate> _kernels = new();

    private GpuDevice(Context context, Accelerator accelerator, GpuBackend backend)
    {
        Context = context;
        Accelerator = accelerator;
        Backend = backend;
        if (accelerator is CudaAccelerator cuda) RaisePtxTarget(cuda);
    }

    /// <summary>The ILGPU context.</summary>
    public Context Context { get; }

    /// <summary>The accelerator kernels run on.</summary>
    public Accelerator Accelerator { get; }

    /// <summary>The backend of <see cref="Accelerator"/>.</summary>
    public GpuBackend Backend { get; }

    /// <summary>Whether kernels may use warp shuffles (CUDA and the CPU simulator; not OpenCL in ILGPU 1.5.3).</summary>
    public bool HasWarpShuffles => Backend != GpuBackend.OpenCL;

    /// <summary>The device's name, as the driver reports it.</summary>
    public string Name => Accelerator.Name;

    /// <summary>
    /// Serialises creating contexts and opening devices: when two threads enumerated devices at once (two test classes'
    /// fixtures), the OpenCL ICD loader and PoCL reported no device to one of them.
    /// </summary>
    private static readonly object s_enumeration = new();

    /// <summary>The first backend that has a device, in the order CUDA, OpenCL, CPU simulator.</summary>
    public static GpuDevice CreateDefault()
    {
        lock (s_enumeration)
        {
            var context = CreateContext();
            var backend = context.GetCudaDevices().Count > 0 ? GpuBackend.Cuda
                : context.GetCLDevices().Count > 0 ? GpuBackend.OpenCL
                : GpuBackend.Cpu;
            return Open(context, backend);
        }
    }

    /// <summary>A device of the given backend; throws <see cref="InvalidOperationException"/> naming what is missing when there is none.</summary>
    /// <param name="backend">The backend.</param>
    /// <param name="profiling">Enables stream profiling markers (device-side timing for benchmarks).</param>
    public static GpuDevice Create(GpuBackend backend, bool profiling = false)
    {
        lock (s_enumeration)
        {
            return Open(CreateContext(profiling), backend);
        }
    }

    /// <summary>The first device of <paramref name="backend"/> in <paramref name="context"/>, which it then owns (disposed on failure).</summary>
    private static GpuDevice Open(Context context, GpuBackend backend)
    {
        try
        {
            switch (backend)
            {
                case GpuBackend.Cuda when context.GetCudaDevices().Count > 0:
                    return new GpuDevice(context, context.CreateCudaAccelerator(0), backend);
                case GpuBackend.OpenCL when context.GetCLDevices().Count > 0:
                    return new GpuDevice(context, context.CreateCLAccelerator(0), backend);
                case GpuBackend.Cpu:
                    // Warp 32 and groups up to 1024, as on NVIDIA GPUs; ILGPU's default CPU device has warp 4 and groups of 16.
                    return new GpuDevice(context, CPUDevice.Nvidia.CreateCPUAccelerator(context), backend);
                default:
                    throw new InvalidOperationException(backend == GpuBackend.Cuda
                        ? "No CUDA device: ILGPU found no GPU through libcuda."
                        : "No OpenCL device: install an OpenCL driver (in CI, PoCL: apt-get install pocl-opencl-icd ocl-icd-opencl-dev).");
            }
        }
        catch
        {
            context.Dispose();
            throw;
        }
    }

    private static Context CreateContext(bool profiling = false) =>
        Context.Create(builder =>
        {
            builder.Cuda().OpenCL().CPU(CPUDevice.Nvidia).Optimize(OptimizationLevel.O2).Math(MathMode.Fast32BitOnly).EnableAlgorithms();
            if (profiling) builder.Profiling();
        });

    /// <summary>
    /// Loads an explicitly grouped kernel once and returns its launcher <c>Action&lt;AcceleratorStream, KernelConfig, …&gt;</c>.
    /// The generated <c>Kernels.Launcher</c> calls this with the backend's variant of each kernel. On CUDA a kernel marked
    /// with <see cref="CacheHintsAttribute"/> is loaded with those hints in its PTX.
    /// </summary>
    public TLauncher Load<TLauncher>(Delegate kernel, int dynamicSharedBytes = 0, bool hopperSpecific = false)
        where TLauncher : Delegate =>
        (TLauncher)_kernels.GetOrAdd((kernel.Method, typeof(TLauncher)), _ =>
        {
            var hints = Ptx.HintsOf(kernel.Method);
            var loaded = hopperSpecific ? LoadHopperSpecific(kernel.Method, hints)
                : hints != CacheHints.None && Accelerator is CudaAccelerator ? LoadRewritten(kernel.Method, ptx => Ptx.WithCacheHints(ptx, hints))
                : Accelerator.LoadKernel(kernel.Method);
            if (dynamicSharedBytes > 48 * 1024 && loaded is CudaKernel cudaKernel)
            {
                CudaDriver.AllowDynamicSharedMemory(cudaKernel, dynamicSharedBytes);
            }

            return loaded.CreateLauncherDelegate<TLauncher>();
        });

    /// <summary>
    /// Whether the device runs Hopper's architecture-specific instructions (<c>wgmma</c>, <c>setmaxnreg</c>): a CUDA device of
    /// compute capability 9.0 exactly, as <c>sm_90a</c> code runs on no other.
    /// </summary>
    public bool HasWarpGroupMma => Accelerator is CudaAccelerator cuda && cuda.Architecture == CudaArchitecture.SM_90;

    /// <summary>
    /// Compiles <paramref name="kernel"/> and loads its PTX with the target <c>sm_90a</c>, which ILGPU cannot name
    /// (ilgpu-notes §5).
    /// </summary>
    private Kernel LoadHopperSpecific(MethodInfo kernel, CacheHints hints)
    {
        if (!HasWarpGroupMma) throw new NotSupportedException($"Kernel {kernel.Name} uses sm_90a instructions; {Name} is not a compute capability 9.0 GPU.");
        return LoadRewritten(kernel, ptx => Ptx.TargetHopperSpecific(Ptx.WithCacheHints(ptx, hints)));
    }

    /// <summary>
    /// Compiles the explicitly grouped <paramref name="kernel"/> for CUDA and loads the PTX that <paramref name="rewrite"/>
    /// makes of ILGPU's text: for what ILGPU cannot express (an architecture-specific target, cache hints on its own loads
    /// and stores). The text is handed to PTXCompiledKernel's internal constructor; the result is not cached.
    /// </summary>
    public Kernel LoadRewritten(MethodInfo kernel, Func<string, string> rewrite)
    {
        var cuda = Accelerator as CudaAccelerator ?? throw new NotSupportedException($"Rewriting PTX needs a CUDA device; {Name} is not one.");
        var compiled = (PTXCompiledKernel)cuda.Backend.Compile(EntryPointDescription.FromExplicitlyGroupedKernel(kernel), KernelSpecialization.Empty);
        string ptx = rewrite(compiled.PTXAssembly);
        var constructor = typeof(PTXCompiledKernel).GetConstructors(BindingFlags.NonPublic | BindingFlags.Instance).SingleOrDefault(c => c.GetParameters().Length == 4)
            ?? throw new InvalidOperationException("ILGPU changed: PTXCompiledKernel's internal constructor is gone.");
        var entryPoint = typeof(CompiledKernel).GetProperty("EntryPoint", BindingFlags.NonPublic | BindingFlags.Public | BindingFlags.Instance)!.GetValue(compiled);
        var patched = (PTXCompiledKernel)constructor.Invoke([compiled.Context, entryPoint, compiled.Info, ptx]);
        return Accelerator.LoadKernel(patched);
    }

    /// <summary>Waits for the default stream.</summary>
    public void Synchronize() => Accelerator.Synchronize();

    /// <inheritdoc/>
    public void Dispose()
    {
        Accelerator.Dispose();
        Context.Dispose();
    }

    /// <summary>ILGPU 1.5.3 writes <c>.target sm_80</c> whatever the device; the setter is internal (docs: ilgpu-notes).</summary>
    internal static void RaisePtxTarget(CudaAccelerator cuda) =>
        SetTargetArchitecture(cuda.Capabilities, cuda.Architecture);

    internal static void SetTargetArchitecture(CudaCapabilityContext capabilities, CudaArchitecture architecture)
    {
        var property = typeof(CudaCapabilityContext).GetProperty("TargetArchitecture", BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic)
            ?? throw new InvalidOperationException("ILGPU changed: CudaCapabilityContext.TargetArchitecture is gone; the PTX target cannot be raised.");
        property.SetValue(capabilities, architecture);
    }
}
