using TorchSharp;
using static TorchSharp.torch;

namespace DTSKD.Core;

/// <summary>
/// The loss primitives of DTSKD, each implemented once and computed exactly as the reference does (eps added to
/// the teacher distribution, batch mean, T² scale). The teachers and the objectives are built on them.
/// </summary>
/// <remarks>
/// <para>
/// Every primitive takes either one head, <c>[batch, classes]</c>, and returns a 0-dim tensor, or a stack of heads,
/// <c>[heads, batch, classes]</c>, and returns one value per head, <c>[heads]</c>: a stack costs the same few kernels
/// whatever the number of heads. A teacher of shape <c>[batch, classes]</c> broadcasts over a stack of students.
/// </para>
/// <para>
/// They compute in float32 (half-precision inputs are widened), or in float64 when the inputs are float64, and
/// autograd flows through them (into the student, and into the teacher logits of <see cref="KlDivergence"/>
/// unless the caller detaches them).
/// </para>
/// </remarks>
public static class Losses
{
    /// <summary>The constant the reference adds to every teacher probability before taking its log.</summary>
    public const double Epsilon = 1e-7;

    /// <summary>
    /// Temperature KL divergence with a logit teacher:
    /// <c>T² · Σ t·(log t − log_softmax(student/T)) / B</c>, where <c>t = softmax(teacher/T) + 1e-7</c>.
    /// </summary>
    /// <param name="student">Student logits, [batch, C] or [heads, batch, C].</param>
    /// <param name="teacher">Teacher logits, the student's shape or [batch, C] (shared by every head).</param>
    /// <param name="temperature">The softening temperature T (&gt; 0); the structural teacher uses 4.</param>
    /// <returns>A 0-dim tensor, or [heads] for a stack (float32, or float64 for float64 input).</returns>
    public static Tensor KlDivergence(Tensor student, Tensor teacher, double temperature)
    {
        TensorChecks.Logits(student, nameof(student), allowStack: true);
        TensorChecks.Logits(teacher, nameof(teacher), allowStack: true);
        TensorChecks.Broadcastable(student, nameof(student), teacher, nameof(teacher));
        TensorChecks.Temperature(temperature, nameof(temperature));
        return KlDivergenceUnchecked(student, teacher, temperature);
    }

    /// <summary>
    /// Soft-target KL divergence with a probability target:
    /// <c>T² · Σ q·(log q − log_softmax(student/T)) / B</c>, where <c>q = target + 1e-7</c>.
    /// </summary>
    /// <param name="student">Student logits, [batch, C] or [heads, batch, C].</param>
    /// <param name="targetProbabilities">Target distribution per row (rows sum to 1), the student's shape or [batch, C].</param>
    /// <param name="temperature">The temperature T (&gt; 0); the historical teacher uses 1.</param>
    /// <returns>A 0-dim tensor, or [heads] for a stack (float32, or float64 for float64 input).</returns>
    public static Tensor SoftTargetKlDivergence(Tensor student, Tensor targetProbabilities, double temperature = 1.0)
    {
        TensorChecks.Logits(student, nameof(student), allowStack: true);
        TensorChecks.Logits(targetProbabilities, nameof(targetProbabilities), allowStack: true);
        TensorChecks.Broadcastable(student, nameof(student), targetProbabilities, nameof(targetProbabilities));
        TensorChecks.Temperature(temperature, nameof(temperature));
        return SoftTargetKlDivergenceUnchecked(student, targetProbabilities, temperature);
    }

    /// <summary>Cross-entropy of logits against integer labels, batch mean (PyTorch's default).</summary>
    /// <param name="logits">Logits, [batch, C] or [heads, batch, C].</param>
    /// <param name="labels">Class indices, [batch] (shared by every head).</param>
    /// <returns>A 0-dim tensor, or [heads] for a stack (float32, or float64 for float64 input).</returns>
    public static Tensor CrossEntropy(Tensor logits, Tensor labels)
    {
        TensorChecks.Logits(logits, nameof(logits), allowStack: true);
        TensorChecks.IndexVector(labels, nameof(labels), logits.shape[^2], logits.shape[^1], "class labels");
        return CrossEntropyUnchecked(logits, labels);
    }

    internal static Tensor KlDivergenceUnchecked(Tensor student, Tensor teacher, double temperature)
    {
        using var scope = NewDisposeScope();
        var t = teacher.to(ComputeType(teacher)).div(temperature).softmax(-1).add(Epsilon);
        return Divergence(student, t, temperature).MoveToOuterDisposeScope();
    }

    internal static Tensor SoftTargetKlDivergenceUnchecked(Tensor student, Tensor targetProbabilities, double temperature)
    {
        using var scope = NewDisposeScope();
        var q = targetProbabilities.to(ComputeType(targetProbabilities)).add(Epsilon);
        return Divergence(student, q, temperature).MoveToOuterDisposeScope();
    }

    internal static Tensor CrossEntropyUnchecked(Tensor logits, Tensor labels)
    {
        using var scope = NewDisposeScope();
        var z = logits.to(ComputeType(logits));
        var target = labels.to(ScalarType.Int64, z.device).unsqueeze(-1);
        if (z.dim() == 3)
        {
            target = target.unsqueeze(0).expand(z.shape[0], -1, 1);
        }

        // -log_softmax at the label, averaged over the batch: nn.functional.cross_entropy's value, for any stack.
        return z.log_softmax(-1).gather(-1, target).squeeze(-1).mean([-1]).neg().MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Label-smoothed cross-entropy, as PyTorch's <c>cross_entropy(label_smoothing=ε)</c> computes it: (1 − ε) times the
    /// label's −log p plus ε times the mean over classes of −log p, averaged over the batch, for any stack of heads.
    /// </summary>
    internal static Tensor LabelSmoothedCrossEntropyUnchecked(Tensor logits, Tensor labels, double smoothing)
    {
        using var scope = NewDisposeScope();
        var z = logits.to(ComputeType(logits));
        var target = labels.to(ScalarType.Int64, z.device).unsqueeze(-1);
        if (z.dim() == 3)
        {
            target = target.unsqueeze(0).expand(z.shape[0], -1, 1);
        }

        var logp = z.log_softmax(-1);
        var label = logp.gather(-1, target).squeeze(-1).neg();
        var uniform = logp.mean([-1]).neg();
        return label.mul(1 - smoothing).add(uniform.mul(smoothing)).mean([-1]).MoveToOuterDisposeScope();
    }

    /// <summary>The type the losses compute in: float64 for float64 input, float32 otherwise.</summary>
    internal static ScalarType ComputeType(Tensor t) => t.dtype == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;

    // q already holds the (eps-shifted) teacher probabilities; the sum over classes and batch divided by B is
    // PyTorch's KLDivLoss(reduction="batchmean"), taken per head for a stack. The reference's dtype flow and order of
    // operations are kept: q and log q in the teacher's own type (float32 history tables stay float32 even for a
    // float64 student), the student's log-softmax in its type, PyTorch's type promotion for the product, T² first,
    // then / B. So float64 runs agree with the reference to rounding.
    private static Tensor Divergence(Tensor student, Tensor q, double temperature)
    {
        var logStudent = student.to(ComputeType(student)).div(temperature).log_softmax(-1);
        var batch = student.shape[^2];
        return q.mul(q.log().sub(logStudent)).sum([-2, -1]).mul(temperature * temperature).div(batch);
    }
}
