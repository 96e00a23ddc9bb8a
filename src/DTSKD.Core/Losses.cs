using TorchSharp;
using static TorchSharp.torch;

namespace DTSKD.Core;

/// <summary>
/// The distillation loss primitives of DTSKD, computed exactly as the reference implementation does
/// (eps added to the teacher distribution, batch mean, T² scale).
/// </summary>
/// <remarks>
/// Both return a 0-dim float32 tensor that autograd flows through (into the student, and into the
/// teacher logits of <see cref="KlDivergence"/> unless the caller detaches them). They compute in float32
/// (half-precision inputs are widened), or in float64 when the student is float64.
/// </remarks>
public static class Losses
{
    /// <summary>The constant the reference adds to every teacher probability before taking its log.</summary>
    public const double Epsilon = 1e-7;

    /// <summary>
    /// Temperature KL divergence with a logit teacher:
    /// <c>T² · Σ t·(log t − log_softmax(student/T)) / B</c>, where <c>t = softmax(teacher/T) + 1e-7</c>.
    /// </summary>
    /// <param name="student">Student logits, [batch, classes].</param>
    /// <param name="teacher">Teacher logits, same shape as <paramref name="student"/>.</param>
    /// <param name="temperature">The softening temperature T (&gt; 0); the structural teacher uses 4.</param>
    /// <returns>A 0-dim tensor (float32, or float64 for float64 input).</returns>
    public static Tensor KlDivergence(Tensor student, Tensor teacher, double temperature)
    {
        TensorChecks.Logits(student, nameof(student));
        TensorChecks.Logits(teacher, nameof(teacher));
        TensorChecks.SameShape(student, nameof(student), teacher, nameof(teacher));
        TensorChecks.Temperature(temperature, nameof(temperature));

        using var scope = NewDisposeScope();
        var t = teacher.to(ComputeType(student)).div(temperature).softmax(1).add(Epsilon);
        return Divergence(student, t, temperature).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Soft-target KL divergence with a probability target:
    /// <c>T² · Σ q·(log q − log_softmax(student/T)) / B</c>, where <c>q = target + 1e-7</c>.
    /// </summary>
    /// <param name="student">Student logits, [batch, classes].</param>
    /// <param name="targetProbabilities">Target distribution per row (rows sum to 1), same shape as <paramref name="student"/>.</param>
    /// <param name="temperature">The temperature T (&gt; 0); the historical teacher uses 1.</param>
    /// <returns>A 0-dim tensor (float32, or float64 for float64 input).</returns>
    public static Tensor SoftTargetKlDivergence(Tensor student, Tensor targetProbabilities, double temperature = 1.0)
    {
        TensorChecks.Logits(student, nameof(student));
        TensorChecks.Logits(targetProbabilities, nameof(targetProbabilities));
        TensorChecks.SameShape(student, nameof(student), targetProbabilities, nameof(targetProbabilities));
        TensorChecks.Temperature(temperature, nameof(temperature));

        using var scope = NewDisposeScope();
        var q = targetProbabilities.to(ComputeType(student)).add(Epsilon);
        return Divergence(student, q, temperature).MoveToOuterDisposeScope();
    }

    /// <summary>Cross-entropy of logits against integer labels, batch mean (PyTorch's default).</summary>
    /// <param name="logits">Logits, [batch, classes].</param>
    /// <param name="labels">Class indices, [batch].</param>
    /// <returns>A 0-dim tensor (float32, or float64 for float64 input).</returns>
    public static Tensor CrossEntropy(Tensor logits, Tensor labels)
    {
        TensorChecks.Logits(logits, nameof(logits));
        TensorChecks.IndexVector(labels, nameof(labels), logits.shape[0], logits.shape[1], "class labels");

        using var scope = NewDisposeScope();
        return nn.functional.cross_entropy(logits.to(ComputeType(logits)), labels.to(ScalarType.Int64))
            .MoveToOuterDisposeScope();
    }

    private static ScalarType ComputeType(Tensor t) => t.dtype == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;

    // q already holds the (eps-shifted) teacher probabilities; the sum over classes and batch divided
    // by B is PyTorch's KLDivLoss(reduction="batchmean").
    private static Tensor Divergence(Tensor student, Tensor q, double temperature)
    {
        var logStudent = student.to(q.dtype).div(temperature).log_softmax(1);
        var batch = student.shape[0];
        return q.mul(q.log().sub(logStudent)).sum().mul(temperature * temperature / batch);
    }
}
