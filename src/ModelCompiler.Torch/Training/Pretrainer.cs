using ModelCompiler.Planning;
using ModelCompiler.Torch.Layers;
using ModelCompiler.Torch.Parallel;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ModelCompiler.Torch.Training;

/// <summary>The knobs of pre-training; defaults are DeepSeek-V3's where it has one (AdamW 0.9/0.95, weight decay 0.1, clip 1.0).</summary>
public sealed record PretrainOptions
{
    /// <summary>Optimizer steps.</summary>
    public int Steps { get; init; } = 2000;

    /// <summary>Stop this invocation after this step (a checkpoint is written there), to be resumed later; null runs to <see cref="Steps"/>.
    /// The learning-rate schedule always spans <see cref="Steps"/>, so stopping and resuming changes nothing.</summary>
    public int? StopAfter { get; init; }

    /// <summary>Format of GEMM inputs during training; null takes the declaration's precision policy.</summary>
    public NumericFormat? Precision { get; init; }

    /// <summary>Sequences per micro-batch.</summary>
    public int MicroBatchSize { get; init; } = 64;

    /// <summary>Micro-batches per optimizer step.</summary>
    public int AccumulationSteps { get; init; } = 1;

    /// <summary>Peak learning rate.</summary>
    public double LearningRate { get; init; } = 3e-3;

    /// <summary>Linear warm-up steps from 0.</summary>
    public int WarmupSteps { get; init; } = 30;

    /// <summary>The cosine decays to this fraction of the peak at the last step.</summary>
    public double FinalLearningRateRatio { get; init; } = SpecDefaults.FinalLearningRateRatio;

    /// <summary>AdamW weight decay on matrices (norms and biases are not decayed).</summary>
    public double WeightDecay { get; init; } = SpecDefaults.WeightDecay;

    /// <summary>AdamW β1.</summary>
    public double Beta1 { get; init; } = SpecDefaults.AdamBeta1;

    /// <summary>AdamW β2.</summary>
    public double Beta2 { get; init; } = SpecDefaults.AdamBeta2;

    /// <summary>Gradient-norm clip.</summary>
    public double GradientClip { get; init; } = SpecDefaults.GradientClip;

    /// <summary>Bias update speed γ; null takes the declaration's.</summary>
    public double? BiasUpdateSpeed { get; init; }

    /// <summary>Share of training answers that are systematically wrong.</summary>
    public double Noise { get; init; } = 0.6;

    /// <summary>Seed of initialisation and data.</summary>
    public long Seed { get; init; } = 1;

    /// <summary>Tokens per training row (prompt, answer, end, padding).</summary>
    public int RowLength { get; init; } = 16;

    /// <summary>The learning rate at optimizer step <paramref name="step"/> (0-based): linear warm-up, then cosine to the final ratio.</summary>
    public double LearningRateAt(int step)
    {
        if (step < WarmupSteps) return LearningRate * (step + 1) / WarmupSteps;
        double progress = Steps <= WarmupSteps ? 1 : (double)(step - WarmupSteps) / Math.Max(1, Steps - WarmupSteps - 1);
        double cosine = 0.5 * (1 + Math.Cos(Math.PI * Math.Min(1, progress)));
        return LearningRate * (FinalLearningRateRatio + ((1 - FinalLearningRateRatio) * cosine));
    }
}

/// <summary>What one optimizer step did.</summary>
/// <param name="Step">1-based step number.</param>
/// <param name="Loss">Main next-token cross-entropy (per target token).</param>
/// <param name="MtpLoss">λ/D · Σ_k MTP cross-entropy (per target token), 0 without MTP.</param>
/// <param name="LearningRate">The learning rate used.</param>
/// <param name="GradientNorm">Gradient norm before clipping.</param>
/// <param name="Tokens">Target tokens in the step.</param>
/// <param name="MaxViolation">MaxVio averaged over MoE layers: (max load − mean load) / mean load.</param>
/// <param name="Loads">Per MoE layer (MTP included), tokens routed to each expert.</param>
/// <param name="BalanceLoss">The auxiliary balance losses (V3 sequence-wise α; V2 expert, device, communication), 0 when none is declared.</param>
/// <param name="ProcessedTokens">Input tokens the step ran through the model (micro-batch rows × positions).</param>
/// <param name="Timings">Where the step's time went.</param>
public sealed record StepReport(int Step, double Loss, double MtpLoss, double LearningRate, double GradientNorm, long Tokens, double MaxViolation,
    IReadOnlyList<long[]> Loads, double BalanceLoss, long ProcessedTokens, StepTimings Timings);

/// <summary>Seconds spent in each part of a step.</summary>
/// <param name="Forward">Forward passes (main model, MTP, losses), MoE dispatch included.</param>
/// <param name="Backward">Backward passes.</param>
/// <param name="Optimizer">Clipping, AdamW and the bias update.</param>
/// <param name="MoeDispatch">Inside the forward: routing, sorting, gathering and scattering tokens for the experts (expert compute excluded).</param>
public sealed record StepTimings(double Forward, double Backward, double Optimizer, double MoeDispatch)
{
    /// <summary>The whole step.</summary>
    public double Total => Forward + Backward + Optimizer;
}

/// <summary>
/// DeepSeek-V3's pre-training step on a <see cref="DeepSeekCausalLM"/> built with its MTP modules: next-token cross-entropy
/// plus λ/D · Σ_k of the MTP modules' cross-entropies, normalised once per optimizer step by the step's number of target tokens
/// (so 8 × 1 and 4 × 2 micro-batching give the same update); AdamW with warm-up and cosine; gradient clipping; then, with no
/// gradient, every MoE layer's selection bias moves by γ·sign(mean load − load) (auxiliary-loss-free balancing).
/// Data is TinySeek's arithmetic corpus, loss on answer tokens.
/// <para>
/// With an <see cref="ExpertParallelGroup"/> every rank of the group runs this step on its share of each micro-batch's rows
/// (the data stream is drawn whole on every rank, then cut), with the routed experts spread over the group: the gradients of
/// everything else (attention, router, shared experts, embeddings) are summed over the group, the gradient norm is taken
/// over all of it, and the expert loads, which move the selection biases, are summed before the update, so every rank keeps
/// the same biases. The losses are the single-process step's up to the order of floating-point sums.
/// </para>
/// </summary>
public sealed class Pretrainer : IDisposable
{
    private readonly DeepSeekCausalLM _model;
    private readonly PretrainOptions _options;
    private readonly AdamWOptimizer _optimizer;
    private readonly double _lambda;
    private readonly int _depth;
    private readonly double _gamma;
    private readonly bool _balance;
    private readonly Device _device; // the model's: the data comes from the CPU and goes there

    private readonly IPretrainData _data;
    private readonly ExpertParallelGroup? _experts;

    /// <summary>Creates the trainer; <paramref name="model"/> must be built with its MTP modules when it declares MTP.</summary>
    /// <param name="model">The model.</param>
    /// <param name="options">The recipe.</param>
    /// <param name="data">The data stream; TinySeek's arithmetic problems (seed and noise from <paramref name="options"/>) when null.</param>
    /// <param name="expertParallel">
    /// The group to spread the routed experts over (every rank of it constructs its trainer with the same model seed and
    /// options, checked), or null to hold them all.
    /// </param>
    public Pretrainer(DeepSeekCausalLM model, PretrainOptions options, IPretrainData? data = null, ExpertParallelGroup? expertParallel = null)
    {
        if (expertParallel is not null)
        {
            if (model.Spec.Moe is null) throw new ArgumentException("expert parallelism needs a model with [MixtureOfExperts]", nameof(expertParallel));
            if (options.MicroBatchSize % expertParallel.Size != 0)
            {
                throw new ArgumentException($"{options.MicroBatchSize} rows per micro-batch do not split over {expertParallel.Size} expert-parallel ranks", nameof(options));
            }

            expertParallel.Communicator.RequireSameOnAllRanks(ModelFingerprint.Of(model, $"{options}|experts over {expertParallel.Size}"), "model, weights and options");
            foreach (var moe in MoeLayersOf(model)) moe.DistributeExperts(expertParallel);
        }

        _experts = expertParallel;
        _model = model;
        _options = options;
        _data = data ?? new ArithmeticData(options.Seed, options.Noise, options.RowLength);
        _depth = model.MtpModules.Count;
        _lambda = model.Spec.Mtp?.LossWeight ?? 0;
        _gamma = options.BiasUpdateSpeed ?? model.Spec.Moe?.BiasUpdateSpeed ?? 0;
        _device = model.Device;
        _balance = model.Spec.Moe is { } m
            && (m.SequenceBalanceLossWeight > 0 || m.ExpertBalanceLossWeight > 0 || m.DeviceBalanceLossWeight > 0 || m.CommunicationBalanceLossWeight > 0);
        foreach (var moe in MoeLayers()) moe.KeepRouting = _balance;
        if (options.Precision is { } precision) model.Precision.Format = precision;
        var momentType = model.Spec.Precision.OptimizerMoments == NumericFormat.Bf16 ? ScalarType.BFloat16 : ScalarType.Float32;
        _optimizer = new AdamWOptimizer(model.named_parameters(), options.Beta1, options.Beta2, options.WeightDecay, momentType: momentType);
    }

    /// <summary>Optimizer steps taken.</summary>
    public int Step { get; private set; }

    /// <summary>Problems drawn from the data stream so far (the data position).</summary>
    public long DataPosition { get; private set; }

    /// <summary>The AdamW optimizer (for checkpoints).</summary>
    public AdamWOptimizer Optimizer => _optimizer;

    /// <summary>Restores the counters of a checkpoint.</summary>
    public void Restore(int step, long dataPosition)
    {
        Step = step;
        DataPosition = dataPosition;
    }

    /// <summary>Runs one optimizer step over the next micro-batches of the data stream.</summary>
    public StepReport TrainStep()
    {
        var batches = Enumerable.Range(0, _options.AccumulationSteps).Select(_ => NextBatch(_options.MicroBatchSize)).ToList();
        return TrainStep(batches);
    }

    /// <summary>Runs one optimizer step over the given micro-batches of token rows [B, L] with their target masks.</summary>
    public StepReport TrainStep(IReadOnlyList<(Tensor Tokens, Tensor AnswerMask)> microBatches)
    {
        using var scope = NewDisposeScope();
        _model.train();
        _optimizer.ZeroGrad();
        double lr = _options.LearningRateAt(Step);

        // One normalisation per optimizer step: the target tokens of all micro-batches together.
        long tokens = microBatches.Sum(b => b.AnswerMask.narrow(1, 1, b.AnswerMask.shape[1] - 1).sum().item<long>());
        var loads = MoeLayers().Select(_ => new long[_model.Spec.Moe?.RoutedExperts ?? 0]).ToList();
        double mainSum = 0, mtpSum = 0, balanceSum = 0;
        long sequences = microBatches.Sum(b => b.Tokens.shape[0]);
        long processed = microBatches.Sum(b => b.Tokens.shape[0] * (b.Tokens.shape[1] - 1));
        var clock = System.Diagnostics.Stopwatch.StartNew();
        double forward = 0, backward = 0;
        double dispatchBefore = MixtureOfExperts.DispatchSeconds;
        using var scalars = new ScalarScope();
        foreach (var (allRows, allMask) in microBatches)
        {
            using var microScope = NewDisposeScope();
            var (rows, mask) = OwnShare(allRows, allMask);
            var started = clock.Elapsed.TotalSeconds;
            var (main, mtp) = Losses(rows.to(_device), mask.to(_device));
            var loss = StepLoss(main, mtp, _lambda, _depth, scalars.OfInteger(tokens));
            if (_balance)
            {
                // The balance losses are means over sequences: weight each micro-batch by its share of the step's sequences.
                var balance = BalanceLoss(rows.shape[0]).mul(scalars.Of((double)rows.shape[0] / sequences));
                loss = loss.Plus(balance);
                balanceSum += balance.item<float>();
            }

            var backwardStarted = clock.Elapsed.TotalSeconds;
            forward += backwardStarted - started;
            loss.backward();
            backward += clock.Elapsed.TotalSeconds - backwardStarted;
            mainSum += main.item<float>();
            mtpSum += mtp.item<float>();
            AccumulateLoads(loads);
        }

        var optimizerStarted = clock.Elapsed.TotalSeconds;
        double norm;
        if (_experts is null)
        {
            norm = nn.utils.clip_grad_norm_(_model.parameters(), _options.GradientClip);
        }
        else
        {
            norm = ExpertParallelTraining.SumAndClip(_model, _experts, _options.GradientClip);
            (mainSum, mtpSum, balanceSum) = ExpertParallelTraining.Sum(_experts.Communicator, loads, mainSum, mtpSum, balanceSum);
        }

        _optimizer.Step(lr);
        UpdateBiases(loads);
        var timings = new StepTimings(forward, backward, clock.Elapsed.TotalSeconds - optimizerStarted, MixtureOfExperts.DispatchSeconds - dispatchBefore);
        Step++;
        double maxVio = loads.Count == 0 ? 0 : loads.Average(l => l.Length == 0 || l.Average() == 0 ? 0 : (l.Max() - l.Average()) / l.Average());
        return new StepReport(Step, mainSum / tokens, mtpSum * (_lambda / Math.Max(1, _depth)) / tokens, lr, norm, tokens, maxVio, loads, balanceSum, processed, timings);
    }

    /// <summary>This rank's rows of a micro-batch: all of them without expert parallelism, else its contiguous share.</summary>
    private (Tensor Rows, Tensor Mask) OwnShare(Tensor rows, Tensor mask)
    {
        if (_experts is null) return (rows, mask);
        long share = rows.shape[0] / _experts.Size;
        return (rows.narrow(0, _experts.Rank * share, share), mask.narrow(0, _experts.Rank * share, share));
    }

    /// <summary>
    /// Summed (not averaged) cross-entropies over answer targets: the main next-token loss and Σ_k of the MTP depth-k losses,
    /// where depth k at position i predicts token i + k + 1 from h_{k−1}(i) and the embedding of token i + k.
    /// </summary>
    public (Tensor Main, Tensor Mtp) Losses(Tensor rows, Tensor answerMask) =>
        LossesFromHidden(_model, _depth, _model.Hidden(rows.narrow(1, 0, rows.shape[1] - 1), 0, AttentionMode.Naive, null), rows, answerMask);

    /// <summary>A micro-batch's share of the step's loss: (main + λ/D · Σ MTP) over the step's target tokens.</summary>
    internal static Tensor StepLoss(Tensor main, Tensor mtp, double lambda, int depth, Scalar tokens) =>
        main.Plus(mtp.Times(lambda / Math.Max(1, depth))).div(tokens);

    /// <summary>
    /// <see cref="Losses"/> from the last decoder layer's output <paramref name="hidden"/> [B, L−1, d]: the part of the step
    /// that runs on the last stage of a pipeline.
    /// </summary>
    internal static (Tensor Main, Tensor Mtp) LossesFromHidden(DeepSeekCausalLM model, int depth, Tensor hidden, Tensor rows, Tensor answerMask)
    {
        long length = rows.shape[1];
        var main = SummedCrossEntropy(model.Logits(model.FinalNorm(hidden)), rows.narrow(1, 1, length - 1), answerMask.narrow(1, 1, length - 1));
        var mtp = zeros(1, device: hidden.device).squeeze();
        var previous = hidden;
        for (int k = 1; k <= depth && length - 1 - k > 0; k++)
        {
            long span = length - 1 - k;                                  // positions 0 … span−1 have a target k+1 ahead
            var embedded = model.Embed(rows.narrow(1, k, span));
            var state = model.MtpModules[k - 1].Predict(previous.narrow(1, 0, span), embedded);
            var logits = model.Logits(model.MtpModules[k - 1].Normalise(state));
            mtp = mtp.Plus(SummedCrossEntropy(logits, rows.narrow(1, k + 1, span), answerMask.narrow(1, k + 1, span)));
            previous = state;
        }

        return (main, mtp);
    }

    /// <summary>
    /// The declared auxiliary balance losses over the routing the last forward pass kept, summed over MoE layers and averaged
    /// over sequences (deepseek-reference §2.5–2.6). With T tokens per sequence, K routed of N_r experts, and scores s
    /// (sigmoid scores normalised to sum 1 over the experts, as V3's s'; softmax scores as they are):
    /// f_i = N_r/(K·T) Σ_t 1[t selects i], P_i = (1/T) Σ_t s_{i,t}; sequence-wise (V3) and expert-level (V2) α Σ_i f_i P_i;
    /// device-level α2 Σ_d mean_{i∈d}(f_i) · Σ_{i∈d} P_i; communication α3 Σ_d (D/(M·T)) Σ_t 1[t uses device d] · Σ_{i∈d} P_i,
    /// with the expert groups as devices and M = GroupsPerToken. Gradients flow through P only.
    /// </summary>
    /// <param name="sequences">Sequences in the micro-batch the routing came from.</param>
    public Tensor BalanceLoss(long sequences)
    {
        var m = _model.Spec.Moe!;
        var total = zeros(1, device: _device).squeeze();
        using var scalars = new ScalarScope();
        foreach (var moe in MoeLayers())
        {
            if (moe.LastRouting is not { } routing) continue;
            long length = routing.Scores.shape[0] / sequences, experts = m.RoutedExperts, groups = m.ExpertGroups; // main layers see L−1 tokens, MTP depth k L−1−k
            var scores = routing.Scores.view(sequences, length, experts);
            var normalised = m.Scoring == ExpertScoring.Sigmoid ? scores / scores.sum(-1, keepdim: true) : scores;
            var p = normalised.mean([1L]);                                                                                       // [B, N_r]
            var selected = zeros(routing.Experts.shape[0], experts, device: _device).scatter(1, routing.Experts, ones(routing.Experts.shape, device: _device)).view(sequences, length, experts);
            var f = selected.sum(1).mul(scalars.Of((double)experts / (m.ActivatedExperts * length)));                    // [B, N_r]
            double alpha = m.SequenceBalanceLossWeight + m.ExpertBalanceLossWeight;
            if (alpha > 0) total = total.Plus((f * p).sum(-1).mean().Times(alpha));
            if (m.DeviceBalanceLossWeight > 0)
            {
                var fDevice = f.view(sequences, groups, -1).mean([-1L]);
                var pDevice = p.view(sequences, groups, -1).sum(-1);
                total = total.Plus((fDevice * pDevice).sum(-1).mean().Times(m.DeviceBalanceLossWeight));
            }

            if (m.CommunicationBalanceLossWeight > 0)
            {
                var used = selected.view(sequences, length, groups, -1).amax([-1L]);                                        // [B, T, D]
                var fComm = used.sum(1).mul(scalars.Of((double)groups / (m.GroupsPerToken * length)));
                var pDevice = p.view(sequences, groups, -1).sum(-1);
                total = total.Plus((fComm * pDevice).sum(-1).mean().Times(m.CommunicationBalanceLossWeight));
            }

            routing.Weights.Dispose();
            routing.Experts.Dispose();
            routing.Scores.Dispose();
        }

        return total;
    }

    /// <summary>The next <paramref name="count"/> rows of the data stream, with their target mask.</summary>
    public (Tensor Tokens, Tensor AnswerMask) NextBatch(int count)
    {
        var batch = _data.Batch(DataPosition, count);
        DataPosition += count;
        return batch;
    }

    /// <summary>Token rows [count, length] (padded) and a mask of answer and end positions.</summary>
    public static (Tensor Tokens, Tensor AnswerMask) Layout(IReadOnlyList<Problem> problems, int length)
    {
        var ids = new long[problems.Count * length];
        var mask = new bool[problems.Count * length];
        for (int r = 0; r < problems.Count; r++)
        {
            long[] text = ArithmeticTasks.Encode(problems[r].Text);
            if (text.Length > length) throw new ArgumentException($"'{problems[r].Text}' is longer than the row length {length}");
            for (int t = 0; t < text.Length; t++)
            {
                ids[(r * length) + t] = text[t];
                mask[(r * length) + t] = t >= problems[r].Prompt.Length;
            }
        }

        return (tensor(ids, [problems.Count, length]), tensor(mask, [problems.Count, length]));
    }

    /// <inheritdoc/>
    public void Dispose() => _optimizer.Dispose();

    internal static Tensor SummedCrossEntropy(Tensor logits, Tensor targets, Tensor mask)
    {
        var losses = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[^1]), targets.reshape(-1), reduction: nn.Reduction.None);
        return (losses * mask.reshape(-1).to(losses.dtype)).sum();
    }

    private IEnumerable<MixtureOfExperts> MoeLayers() => MoeLayersOf(_model);

    internal static IEnumerable<MixtureOfExperts> MoeLayersOf(DeepSeekCausalLM model) => model.MoeLayers;

    private void AccumulateLoads(List<long[]> loads)
    {
        int i = 0;
        foreach (var moe in MoeLayers())
        {
            if (moe.LastLoads is { } counts)
            {
                for (int e = 0; e < counts.Length; e++) loads[i][e] += counts[e];
            }

            i++;
        }
    }

    private void UpdateBiases(List<long[]> loads) => UpdateBiases(_model, _gamma, loads);

    /// <summary>b_i ← b_i + γ·sign(c̄ − c_i) for every MoE layer: overloaded experts down, underloaded up. No gradient.</summary>
    internal static void UpdateBiases(DeepSeekCausalLM model, double gamma, IReadOnlyList<long[]> loads)
    {
        if (gamma == 0) return;
        using var _ = no_grad();
        int i = 0;
        foreach (var moe in MoeLayersOf(model))
        {
            if (moe.Gate.SelectionBias is { } bias)
            {
                double mean = loads[i].Average();
                var step = loads[i].Select(c => (float)(gamma * Math.Sign(mean - c))).ToArray();
                bias.add_(tensor(step, device: bias.device), KeptScalars.One);
            }

            i++;
        }
    }
}
