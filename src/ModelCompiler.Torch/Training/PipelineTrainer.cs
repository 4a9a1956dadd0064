using ModelCompiler.Distributed;
using ModelCompiler.Pipeline;
using ModelCompiler.Torch.Layers;
using ModelCompiler.Torch.Parallel;
using TorchSharp;
using static TorchSharp.torch;

namespace ModelCompiler.Torch.Training;

/// <summary>
/// The pre-training step of <see cref="Pretrainer"/> run across MPI ranks with a pipeline schedule (1F1B, ZB-H1 or DualPipe):
/// the decoder layers are cut into stage positions, stage 0 embeds, the last stage computes the main and MTP losses, and each
/// rank runs its static op table (<see cref="Schedules"/>), sending activations forward and gradients backward on separate
/// MPI tags per phase. Every rank holds a replica of the whole model and updates all of it: after the micro-batches, the
/// gradients (zeros where a rank did not touch a parameter), the expert loads and the loss sums are summed over the ranks,
/// which also sums DualPipe's two copies of each stage and the embedding used by stage 0 and by the MTP modules. The result
/// is the single-process step up to the order of floating-point additions. A model on a CUDA GPU (one rank per GPU) sends
/// its activations, gradients and the gradient all-reduce through NCCL instead (<see cref="NcclChannels"/>); the loss sums and
/// expert loads, a few numbers, still go through MPI.
/// <para>
/// With an <see cref="ExpertParallelGroup"/> the ranks form a grid: the constructor's MPI communicator is this rank's
/// pipeline (the ranks with its place in the expert group), the group the ranks that run the same stage positions and share
/// their MoE layers' experts. Each member of a group runs the same schedule on its share of every micro-batch's rows, so the
/// dispatch and combine of a stage's MoE layers line up across the group; at the end the replicas' gradients are summed over
/// the pipeline and then the group, the experts' over the pipeline only, and the loads and losses over both.
/// </para>
/// </summary>
public sealed class PipelineTrainer : IDisposable
{
    private const int ActivationTag = 100, GradientTag = 200;
    private readonly DeepSeekCausalLM _model;
    private readonly PretrainOptions _options;
    private readonly Mpi _mpi;
    private readonly ScheduleTable _table;
    private readonly AdamWOptimizer _optimizer;
    private readonly IPretrainData _data;
    private readonly (int First, int End)[] _layers;
    private readonly double _lambda, _gamma;
    private readonly int _depth;
    private readonly Device _device;
    private readonly NcclChannels? _channels;
    private readonly List<Mpi.Request> _pending = [];
    private readonly ExpertParallelGroup? _experts;

    /// <summary>Prepares rank <paramref name="mpi"/>.Rank; every rank must pass the same model seed, options and schedule (checked).</summary>
    /// <param name="model">The model with its MTP modules, initialised identically on every rank.</param>
    /// <param name="options">The recipe; the step's rows (MicroBatchSize × AccumulationSteps) are cut into <paramref name="microBatches"/>.</param>
    /// <param name="mpi">The MPI world: one rank per pipeline rank.</param>
    /// <param name="schedule">1F1B, ZB-H1 or DualPipe.</param>
    /// <param name="microBatches">Pipeline micro-batches per step.</param>
    /// <param name="data">The data stream; TinySeek's arithmetic problems when null.</param>
    /// <param name="expertParallel">The group of ranks that share this rank's stage positions and spread their experts, or null.</param>
    public PipelineTrainer(DeepSeekCausalLM model, PretrainOptions options, Mpi mpi, PipelineSchedule schedule, int microBatches, IPretrainData? data = null,
        ExpertParallelGroup? expertParallel = null)
    {
        var moe = model.Spec.Moe;
        if (moe is { } m && (m.SequenceBalanceLossWeight > 0 || m.ExpertBalanceLossWeight > 0 || m.DeviceBalanceLossWeight > 0 || m.CommunicationBalanceLossWeight > 0))
        {
            throw new NotSupportedException("pipeline training does not compute auxiliary balance losses yet; train this model in one process");
        }

        int rows = options.MicroBatchSize * options.AccumulationSteps;
        if (rows % microBatches != 0) throw new ArgumentException($"{rows} rows per step do not split into {microBatches} micro-batches", nameof(microBatches));
        if (expertParallel is not null && rows / microBatches % expertParallel.Size != 0)
        {
            throw new ArgumentException($"{rows / microBatches} rows per micro-batch do not split over {expertParallel.Size} expert-parallel ranks", nameof(expertParallel));
        }

        // DualPipeV folds 2N stages onto N ranks; the others run one stage position per rank and phase.
        _table = Schedules.Build(schedule, schedule == PipelineSchedule.DualPipeV ? 2 * mpi.Size : mpi.Size, microBatches);
        if (_table.Ranks != mpi.Size) throw new ArgumentException($"the {schedule} table needs {_table.Ranks} ranks; mpirun started {mpi.Size}");
        int stages = _table.ModelStages;
        if (model.Layers.Count < stages) throw new ArgumentException($"{model.Layers.Count} layers cannot fill {stages} stages");
        _layers = Enumerable.Range(0, stages).Select(s => (s * model.Layers.Count / stages, (s + 1) * model.Layers.Count / stages)).ToArray();
        _model = model;
        _options = options;
        _mpi = mpi;
        _data = data ?? new ArithmeticData(options.Seed, options.Noise, options.RowLength);
        _depth = model.MtpModules.Count;
        _lambda = model.Spec.Mtp?.LossWeight ?? 0;
        _gamma = options.BiasUpdateSpeed ?? moe?.BiasUpdateSpeed ?? 0;
        if (options.Precision is { } precision) model.Precision.Format = precision;
        var momentType = model.Spec.Precision.OptimizerMoments == NumericFormat.Bf16 ? ScalarType.BFloat16 : ScalarType.Float32;
        _optimizer = new AdamWOptimizer(model.named_parameters(), options.Beta1, options.Beta2, options.WeightDecay, momentType: momentType);
        long fingerprint = ModelFingerprint.Of(model, $"{options}|{schedule}|{microBatches}|experts over {expertParallel?.Size ?? 1}");
        mpi.RequireSameOnAllRanks(fingerprint, "model, weights, options and schedule");
        if (expertParallel is not null)
        {
            expertParallel.Communicator.RequireSameOnAllRanks(fingerprint, "model, weights, options and schedule");
            foreach (var layer in model.MoeLayers) layer.DistributeExperts(expertParallel);
        }

        _experts = expertParallel;
        _device = model.Device;
        if (_device.type == DeviceType.CUDA) _channels = new NcclChannels(mpi, _table.Phases, _device);
    }

    /// <summary>Optimizer steps taken.</summary>
    public int Step { get; private set; }

    /// <summary>The layer range [First, End) of each stage position.</summary>
    public IReadOnlyList<(int First, int End)> StageLayers => _layers;

    /// <summary>The schedule's table.</summary>
    public ScheduleTable Table => _table;

    /// <summary>One optimizer step over the next rows of the data stream; every rank returns the same report.</summary>
    public StepReport TrainStep()
    {
        using var scope = NewDisposeScope();
        _model.train();
        _optimizer.ZeroGrad();
        double lr = _options.LearningRateAt(Step);
        var (rows, mask) = _data.Batch((long)Step * _options.MicroBatchSize * _options.AccumulationSteps, _options.MicroBatchSize * _options.AccumulationSteps);
        (rows, mask) = (rows.to(_device), mask.to(_device));
        long tokens = mask.narrow(1, 1, mask.shape[1] - 1).sum().item<long>();
        using Scalar tokenScalar = tokens;
        var moeLayers = Pretrainer.MoeLayersOf(_model).ToList();
        var loads = moeLayers.Select(_ => new long[_model.Spec.Moe?.RoutedExperts ?? 0]).ToList();
        double mainSum = 0, mtpSum = 0;
        int perBatch = (int)rows.shape[0] / _table.MicroBatches;
        // With expert parallelism this rank trains on its share of each micro-batch (the group's members split its rows).
        int share = perBatch / (_experts?.Size ?? 1), shareStart = (_experts?.Rank ?? 0) * share;

        // Per phase: the micro-batches forwarded and backwarded so far, and what each backward needs. DualPipeV's turn (phase 0's
        // last stage and phase 1's first, both on the last rank) hands the activation and its gradient over in memory.
        var forwarded = new int[_table.Phases];
        var backwarded = new int[_table.Phases];
        var saved = new Dictionary<(int Phase, int MicroBatch), (Tensor? Input, Tensor Output)>();
        var turns = new Dictionary<int, Tensor>();
        int last = _table.ModelStages - 1;
        bool IsTurn(int phase, int position) => _table.Chained && phase == 0 && position == _table.Stages - 1;

        var clock = System.Diagnostics.Stopwatch.StartNew();
        double forwardSeconds = 0, backwardSeconds = 0;

        double Timed(Action<int> op, int phase)
        {
            double started = clock.Elapsed.TotalSeconds;
            op(phase);
            return clock.Elapsed.TotalSeconds - started;
        }

        void Forward(int phase)
        {
            int k = forwarded[phase]++;
            int position = _table.PositionOf(phase, _mpi.Rank);
            int stage = _table.ModelStageOf(phase, position);
            int batch = _table.Chained ? k : (phase * _table.MicroBatchesPerPhase) + k;
            var microRows = rows.narrow(0, (batch * perBatch) + shareStart, share);
            var microMask = mask.narrow(0, (batch * perBatch) + shareStart, share);
            Tensor? input = null;
            Tensor x;
            if (stage == 0)
            {
                x = _model.Embed(microRows.narrow(1, 0, microRows.shape[1] - 1));
            }
            else if (_table.Chained && phase == 1 && position == 0)
            {
                input = saved[(0, k)].Output.detach().requires_grad_(true); // the turn of the V: phase 0's output, on this rank
                turns[k] = input;
                x = input;
            }
            else
            {
                input = Receive(_table.RankOf(phase, position - 1), phase, gradient: false, [share, rows.shape[1] - 1, _model.Spec.HiddenSize]).requires_grad_(true);
                x = input;
            }

            var (first, end) = _layers[stage];
            for (int i = first; i < end; i++) x = _model.Layers[i].Forward(x, 0, AttentionMode.Naive, null);
            for (int i = first; i < end; i++) AddLoads(_model.Layers[i].Moe, moeLayers, loads);
            if (stage == last)
            {
                var (main, mtp) = Pretrainer.LossesFromHidden(_model, _depth, x, microRows, microMask);
                foreach (var module in _model.MtpModules) AddLoads(module.Moe, moeLayers, loads);
                mainSum += main.item<float>();
                mtpSum += mtp.item<float>();
                x = Pretrainer.StepLoss(main, mtp, _lambda, _depth, tokenScalar);
            }
            else if (!IsTurn(phase, position))
            {
                Send(x, _table.RankOf(phase, position + 1), phase, gradient: false);
            }

            saved[(phase, k)] = (input, x);
        }

        void Backward(int phase)
        {
            int k = backwarded[phase]++;
            int position = _table.PositionOf(phase, _mpi.Rank);
            var (input, output) = saved[(phase, k)];
            saved.Remove((phase, k));
            if (_table.ModelStageOf(phase, position) == last)
            {
                output.backward();
            }
            else if (IsTurn(phase, position))
            {
                output.backward([turns[k].grad!]); // phase 1's first stage has run its backward on this rank
                turns.Remove(k);
            }
            else
            {
                var gradient = Receive(_table.RankOf(phase, position + 1), phase, gradient: true, output.shape);
                output.backward([gradient]);
            }

            bool turnInput = _table.Chained && phase == 1 && position == 0;
            if (input is not null && !turnInput) Send(input.grad!, _table.RankOf(phase, position - 1), phase, gradient: true);
        }

        foreach (var op in _table.Ops[_mpi.Rank])
        {
            switch (op.Kind)
            {
                case OpKind.Forward:
                    forwardSeconds += Timed(Forward, op.Phase);
                    break;
                case OpKind.Backward:
                case OpKind.BackwardInput: // autograd computes input and weight gradients together; the Weight op then has nothing left
                    backwardSeconds += Timed(Backward, op.Phase);
                    break;
                case OpKind.ForwardBackward:
                    forwardSeconds += Timed(Forward, op.Phase);
                    backwardSeconds += Timed(Backward, op.BackwardPhase);
                    break;
                case OpKind.Weight:
                    break;
            }
        }

        Mpi.WaitAll(_pending);
        _pending.Clear();
        _channels?.Flush();
        double optimizerStarted = clock.Elapsed.TotalSeconds;
        SumGradients();
        (mainSum, mtpSum, _) = ExpertParallelTraining.Sum(_mpi, loads, mainSum, mtpSum, 0);
        double norm;
        if (_experts is null)
        {
            norm = nn.utils.clip_grad_norm_(_model.parameters(), _options.GradientClip);
        }
        else
        {
            (mainSum, mtpSum, _) = ExpertParallelTraining.Sum(_experts.Communicator, loads, mainSum, mtpSum, 0);
            norm = ExpertParallelTraining.SumAndClip(_model, _experts, _options.GradientClip);
        }

        _optimizer.Step(lr);
        Pretrainer.UpdateBiases(_model, _gamma, loads);
        Step++;
        double maxVio = loads.Count == 0 ? 0 : loads.Average(l => l.Length == 0 || l.Average() == 0 ? 0 : (l.Max() - l.Average()) / l.Average());
        long processed = rows.shape[0] * (rows.shape[1] - 1);
        // Timings are this rank's: its forwards and backwards (waits for peers included), then the all-reduces and the update.
        var timings = new StepTimings(forwardSeconds, backwardSeconds, clock.Elapsed.TotalSeconds - optimizerStarted, 0);
        return new StepReport(Step, mainSum / tokens, mtpSum * (_lambda / Math.Max(1, _depth)) / tokens, lr, norm, tokens, maxVio, loads, 0, processed, timings);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _optimizer.Dispose();
        _channels?.Dispose();
    }

    /// <summary>
    /// Sums every parameter's gradient over the ranks in one all-reduce. A parameter no rank touched keeps a null gradient,
    /// as in one process, so that AdamW leaves it alone (an expert no token was routed to).
    /// </summary>
    private void SumGradients()
    {
        var parameters = _model.parameters().ToList();
        var present = parameters.Select(p => p.grad is null ? 0f : 1f).ToArray();
        _mpi.AllReduceSum(present);
        using var flat = cat(parameters.Select(p => (p.grad ?? zeros_like(p)).flatten()).ToList());
        Tensor summed;
        if (_channels is not null)
        {
            _channels.AllReduceSum(flat); // on the GPUs, in place
            summed = flat;
        }
        else
        {
            var values = flat.data<float>().ToArray();
            _mpi.AllReduceSum(values);
            summed = tensor(values);
        }

        long offset = 0;
        for (int i = 0; i < parameters.Count; i++)
        {
            long count = parameters[i].numel();
            parameters[i].grad = present[i] == 0 ? null : summed.narrow(0, offset, count).view(parameters[i].shape).DetachFromDisposeScope();
            offset += count;
        }
    }

    private static void AddLoads(MixtureOfExperts? moe, List<MixtureOfExperts> all, List<long[]> loads)
    {
        if (moe?.LastLoads is not { } counts) return;
        var table = loads[all.IndexOf(moe)];
        for (int e = 0; e < counts.Length; e++) table[e] += counts[e];
    }

    // Activations and gradients travel apart: MPI tags per phase and kind, or one NCCL channel each.
    private Tensor Receive(int source, int phase, bool gradient, long[] shape)
    {
        if (_channels is not null) return _channels.Receive(source, phase, gradient, shape, _device);
        var values = new float[shape.Aggregate(1L, (a, b) => a * b)];
        _mpi.Receive<float>(values, source, (gradient ? GradientTag : ActivationTag) + phase);
        return tensor(values).view(shape);
    }

    private void Send(Tensor x, int destination, int phase, bool gradient)
    {
        if (_channels is not null) _channels.Send(x, destination, phase, gradient);
        else _pending.Add(_mpi.SendAsync(Values(x), destination, (gradient ? GradientTag : ActivationTag) + phase));
    }

    private static float[] Values(Tensor x)
    {
        using var detached = x.detach().contiguous();
        return detached.data<float>().ToArray();
    }
}
