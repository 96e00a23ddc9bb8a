namespace DTSKD.Core.Training;

/// <summary>The number format of the model's forward and backward passes.</summary>
/// <remarks>
/// In the half formats the convolution and linear weights are kept in that format for the passes, while the
/// optimizer keeps float32 master weights, BatchNorm keeps float32 parameters and statistics, and the loss is
/// computed in float32. TorchSharp has no autocast; this is its equivalent for these models. The half formats are
/// opt-in: they have not yet been shown to train to float32's accuracy on a GPU (<c>docs/gpu.md</c>).
/// </remarks>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Naming", "CA1720", Justification = "The members are named after the tensor formats (torch.float32, torch.bfloat16, torch.float16).")]
public enum TrainingPrecision
{
    /// <summary>Everything in float32 (TF32 matrix maths on GPUs that have it, unless <see cref="TrainerOptions.AllowTf32"/> is off).</summary>
    Float32,

    /// <summary>bfloat16 passes; no loss scaling is needed (same exponent range as float32). Runs on CPUs too.</summary>
    BFloat16,

    /// <summary>float16 passes with dynamic loss scaling (<c>GradScaler</c> semantics): steps whose gradients overflow are skipped.</summary>
    Float16,

    /// <summary>Everything in float64, model included: for reference checks against PyTorch, where float32 trajectories drift apart.</summary>
    Float64,
}
