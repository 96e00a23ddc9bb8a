namespace DTSKD.Core;
/// <summary>x</summary>
public static class Probe { /// <summary>x</summary>
 public static float Run() { using var t = TorchSharp.torch.ones(3, requires_grad: true); using var s = t.sum(); s.backward(); return t.grad!.sum().item<float>(); } }
