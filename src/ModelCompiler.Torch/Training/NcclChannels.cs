using ModelCompiler.Distributed;
using static TorchSharp.torch;

namespace ModelCompiler.Torch.Training;

/// <summary>
/// The pipeline's transport between GPUs: activations and gradients of each phase on their own NCCL communicator and
/// stream (NCCL matches point-to-point messages in issue order and has no tags, so each channel is a communicator), and one
/// more for the gradient all-reduce, all bootstrapped over MPI. Tensors are PyTorch's CUDA tensors, computed on the legacy
/// default stream; NCCL runs on non-blocking streams beside it, so a send waiting for its peer never holds up the
/// computation behind it. A send returns at once and keeps its tensor until <see cref="Flush"/>; a receive returns once
/// the values have arrived. Verified on two H200s with TinySeek's 15 KB messages; docs/pipeline.md says what hung.
/// </summary>
internal sealed class NcclChannels : IDisposable
{
    private readonly (NcclCommunicator Comm, DriverStream Stream)[] _activations, _gradients;
    private readonly (NcclCommunicator Comm, DriverStream Stream) _reduce;
    private readonly List<Tensor> _inFlight = [];

    /// <summary>Joins the communicators on the GPU <paramref name="device"/> (collective: every rank creates them in the same order).</summary>
    public NcclChannels(Mpi mpi, int phases, Device device)
    {
        static (NcclCommunicator, DriverStream) Channel(Mpi mpi) => (NcclCommunicator.Create(mpi), DriverStream.Create());
        _activations = Enumerable.Range(0, phases).Select(_ => Channel(mpi)).ToArray();
        _gradients = Enumerable.Range(0, phases).Select(_ => Channel(mpi)).ToArray();
        _reduce = Channel(mpi);
        Connect(mpi, device);
    }

    /// <summary>
    /// NCCL connects two ranks on their first message between them. The first two-GPU run, without this, hung on its first
    /// sends — each rank's first send on a different channel, waiting, it seems, for the peer to join that channel — so every
    /// channel exchanges one value with every other rank, in one group, before the first step (and then the runs went through).
    /// </summary>
    private void Connect(Mpi mpi, Device device)
    {
        var peers = Enumerable.Range(0, mpi.Size).Where(r => r != mpi.Rank).ToList();
        using var values = ones(2 * mpi.Size, ScalarType.Float32, device);
        IntPtr at(int slot) => Address(values) + (slot * sizeof(float));
        foreach (var (comm, stream) in _activations.Concat(_gradients))
        {
            comm.Exchange([.. peers.Select(p => (at(p), 1L, p))], [.. peers.Select(p => (at(mpi.Size + p), 1L, p))], stream.Handle);
            stream.Synchronize();
            comm.ThrowIfFailed();
        }
    }

    /// <summary>Starts sending <paramref name="x"/> to <paramref name="peer"/> on the activation or gradient channel of <paramref name="phase"/>.</summary>
    public void Send(Tensor x, int peer, int phase, bool gradient)
    {
        var values = x.detach().contiguous().DetachFromDisposeScope();
        _inFlight.Add(values);
        var (comm, stream) = (gradient ? _gradients : _activations)[phase];
        DriverStream.SynchronizeDefault(); // the values have been computed
        comm.Send(Address(values), values.numel(), peer, stream.Handle);
    }

    /// <summary>Receives a float tensor of <paramref name="shape"/> on <paramref name="device"/> from <paramref name="peer"/>.</summary>
    public Tensor Receive(int peer, int phase, bool gradient, long[] shape, Device device)
    {
        var values = empty(shape, ScalarType.Float32, device);
        var (comm, stream) = (gradient ? _gradients : _activations)[phase];
        DriverStream.SynchronizeDefault(); // the memory is no longer in use by earlier kernels
        comm.Receive(Address(values), values.numel(), peer, stream.Handle);
        stream.Synchronize();
        comm.ThrowIfFailed();
        return values;
    }

    /// <summary>Waits until every send has been received and releases the sent tensors.</summary>
    public void Flush()
    {
        foreach (var (comm, stream) in _activations.Concat(_gradients))
        {
            stream.Synchronize();
            comm.ThrowIfFailed();
        }

        foreach (var values in _inFlight) values.Dispose();
        _inFlight.Clear();
    }

    /// <summary>Sums the contiguous float tensor <paramref name="values"/> over the ranks, in place.</summary>
    public void AllReduceSum(Tensor values)
    {
        DriverStream.SynchronizeDefault();
        _reduce.Comm.AllReduceSum(Address(values), values.numel(), _reduce.Stream.Handle);
        _reduce.Stream.Synchronize();
        _reduce.Comm.ThrowIfFailed();
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        // Sends still in flight mean a failed step: their receives may never come, so the communicators are aborted, not drained.
        bool failed = _inFlight.Count > 0;
        foreach (var (comm, stream) in _activations.Concat(_gradients).Append(_reduce))
        {
            if (failed) comm.Abort();
            else comm.Dispose();
            stream.Dispose();
        }

        foreach (var values in _inFlight) values.Dispose();
    }

    private static IntPtr Address(Tensor values) => Parallel.DeviceAddress.Of(values);
}
