#!/usr/bin/env python3
"""Writes the torchvision fixture of tests/DTSKD.Core.Tests/TestData/torchvision: a torchvision resnet18 state dict
(torch.save, as torchvision's own weight files) and the logits torchvision's ResNet.forward computes from it.

The network is torchvision.models.resnet18(num_classes=10) with random weights and BatchNorm statistics that are not the
defaults, cut to a quarter of its width (the first 16/32/64/128 channels of every tensor) so the file stays small; the
forward pass that makes the reference logits is still torchvision's own code. Run by hand (python3-torchvision):
  /usr/bin/python3 eng/make-torchvision-fixture.py tests/DTSKD.Core.Tests/TestData/torchvision
"""
import os, sys, torch, torchvision

folder = sys.argv[1]
os.makedirs(folder, exist_ok=True)
torch.manual_seed(7)
model = torchvision.models.resnet18(num_classes=10)
quarter = lambda n: n // 4

with torch.no_grad():
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Conv2d):
            out_c, in_c = module.weight.shape[:2]
            keep_in = in_c if name == "conv1" else quarter(in_c)
            module.weight = torch.nn.Parameter(module.weight[: quarter(out_c), :keep_in].clone())
        elif isinstance(module, torch.nn.BatchNorm2d):
            c = quarter(module.num_features)
            module.weight = torch.nn.Parameter(torch.empty(c).uniform_(0.5, 1.5))
            module.bias = torch.nn.Parameter(torch.empty(c).normal_(0, 0.1))
            module.running_mean = torch.empty(c).normal_(0, 0.1)
            module.running_var = torch.empty(c).uniform_(0.5, 1.5)
            module.num_batches_tracked = torch.tensor(17)
        elif isinstance(module, torch.nn.Linear):
            # Scaled up so the logits are of order one, as a trained classifier's.
            module.weight = torch.nn.Parameter(module.weight[:, : quarter(module.in_features)].clone() * 20)

model.eval()
x = torch.rand(2, 3, 64, 64)
mean, std = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
gray = (x[:, :1] - 0.449) / 0.226
with torch.no_grad():
    logits = model((x - mean) / std)
    # A gray image into the RGB network: its normalised channel replicated three times.
    gray_logits = model(gray.expand(-1, 3, -1, -1))

torch.save(model.state_dict(), os.path.join(folder, "resnet18-quarter.pth"))
torch.save({"input": x, "logits": logits, "gray_input": gray, "gray_logits": gray_logits}, os.path.join(folder, "resnet18-quarter-reference.pt"))
print(f"torchvision {torchvision.__version__}, torch {torch.__version__}: {len(model.state_dict())} tensors, "
      f"{sum(p.numel() for p in model.parameters())} parameters; logits {logits.abs().max().item():.3f} at most")
