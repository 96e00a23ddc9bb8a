"""The fine-tuning step of torchvision's resnet18 in PyTorch, the peer of DTSKD.Core's in `bench finetune-steps`.

What a PyTorch user fine-tuning an ImageNet network on their own photos runs: torchvision.models.resnet18 with a new
`fc` for the classes, cross-entropy, SGD (Nesterov 0.9, weight decay 1e-4) with the pretrained layers at a tenth of the
rate of the new ones, on 224-pixel batches already in memory (no decoding, no augmentation: DTSKD.Core's figure includes
gathering and augmenting its batch). The weights are torchvision's initialisation: the speed of a step does not depend
on their values, and DTSKD.Core's side loads the same file (--save-weights) through TorchvisionResNet.Load.

Modes: fp32, amp-bf16 (torch.autocast on the CPU), with a "-cl" suffix for channels_last (model and inputs).

Usage: python3 finetune_step_bench.py [--modes fp32,amp-bf16,amp-bf16-cl] [--steps 20] [--batch-size 32]
       [--image-size 224] [--classes 10] [--save-weights resnet18.pth]
Prints "PyTorch <version>, ..." and one Markdown table row per mode.
"""
import argparse
import math
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision


def network(classes):
    model = torchvision.models.resnet18()
    model.fc = nn.Linear(model.fc.in_features, classes)
    return model


def run(mode, steps, batch, size, classes):
    channels_last = mode.endswith("-cl")
    base = mode[:-3] if channels_last else mode
    if base not in ("fp32", "amp-bf16"):
        raise SystemExit(f"unknown mode {mode}: use fp32 or amp-bf16, optionally with -cl")
    layout = torch.channels_last if channels_last else torch.contiguous_format
    torch.manual_seed(1)
    model = network(classes).to(memory_format=layout)
    head = list(model.fc.parameters())
    backbone = [p for n, p in model.named_parameters() if not n.startswith("fc.")]
    optimizer = torch.optim.SGD([{"params": head, "lr": 0.01}, {"params": backbone, "lr": 0.001}],
                                lr=0.01, momentum=0.9, weight_decay=1e-4, nesterov=True)
    images = [torch.randn(batch, 3, size, size).to(memory_format=layout) for _ in range(steps)]
    labels = torch.randint(0, classes, (steps, batch))

    def epoch():
        model.train()
        for s in range(steps):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=base == "amp-bf16"):
                logits = model(images[s])
            loss = F.cross_entropy(logits.float(), labels[s])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return loss.item()

    epoch()  # warm-up: oneDNN primitive caches, allocator
    start = time.perf_counter()
    last = epoch()
    seconds = time.perf_counter() - start
    if not math.isfinite(last):
        raise SystemExit(f"mode {mode}: the loss is {last}")
    return steps * batch / seconds, 1000 * seconds / steps


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--modes", default="fp32,amp-bf16,amp-bf16-cl")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="CPU threads (default: every core, as DTSKD.Core uses; Debian's PyTorch starts with one)")
    parser.add_argument("--save-weights", help="write torchvision's resnet18 state dict (1000 classes) here first, and exit")
    args = parser.parse_args()
    if args.save_weights:
        torch.manual_seed(1)
        torch.save(torchvision.models.resnet18().state_dict(), args.save_weights)
        return
    torch.set_num_threads(args.threads)
    print(f"PyTorch {torch.__version__}, torchvision {torchvision.__version__}, CPU, {torch.get_num_threads()} threads")
    print("| mode | train images/s | ms per step |")
    print("| --- | --- | --- |")
    for mode in args.modes.split(","):
        ips, ms = run(mode, args.steps, args.batch_size, args.image_size, args.classes)
        print(f"| pytorch {mode} | {ips:.0f} | {ms:.2f} |")


if __name__ == "__main__":
    main()
