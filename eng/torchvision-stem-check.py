#!/usr/bin/env python3
"""Loads the backbones eng/export-for-torchvision.cs wrote into torchvision's resnet18 and resnet34 (num_classes=10)
with strict=True, and compares their eval-mode logits with TorchSharp's on the same input. Run by hand:
  /usr/bin/python3 eng/torchvision-stem-check.py <folder>
"""
import os, sys, torch, torchvision

folder = sys.argv[1]
for name, build in [("resnet18_dtskd", torchvision.models.resnet18), ("resnet34_dtskd", torchvision.models.resnet34)]:
    model = build(num_classes=10)
    state = torch.load(os.path.join(folder, f"{name}-imagenet-stem.pt"))
    result = model.load_state_dict(state, strict=True)
    model.eval()
    x = torch.load(os.path.join(folder, f"{name}-input.pt"))["input"]
    with torch.no_grad():
        ours = torch.tensor([float(v) for v in open(os.path.join(folder, f"{name}-logits.txt")).read().split()]).view(2, 10)
        theirs = model(x)
    scale = ours.abs().max(dim=1, keepdim=True).values
    print(f"{name}: torchvision.models.{build.__name__}(num_classes=10).load_state_dict(strict=True): {result}; "
          f"{len(state)} tensors; largest logit difference / row max = {((ours - theirs).abs() / scale).max().item():.2e}")
