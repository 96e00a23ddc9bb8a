#!/usr/bin/env python3
"""Exports torchvision's classification families with torch.onnx, as a user would, and measures what DTSKD.Core makes of
each file (bench onnx-matrix); the table goes into docs/pretrained.md between its onnx-matrix markers.

For every family (the smallest member of each, from random weights, the batch norms' running statistics measured on 64
Fashion-MNIST images, then trained briefly on 256 of them: Adam, two passes, 1e-3, or 1e-4 without batch norms) and opsets 11 and 17, two files from the same weights:
  train  torch.onnx.export(model.eval(), x, f, opset_version=o, training=TRAINING)    batch norms kept
  eval   torch.onnx.export(model.eval(), x, f, opset_version=o)                      batch norms folded away
The eval file is ONNX Runtime's reference for both. A training-mode export runs the model in training mode, which moves
its batch norms' running statistics: the eval file is exported after it, from the same copy, so both hold one network. Stochastic depth (EfficientNet, ConvNeXt) is set to 0: torch 1.13
cannot export its random mask in training mode. Inception v3 takes 299 pixels and, in training mode, a batch of 2 (its
auxiliary classifier's batch norm sees one value per channel otherwise).

Run by hand, alone on the machine (Debian's python3-torch 1.13 and torchvision 0.14; about 7 GB of files):
  /usr/bin/python3 eng/export-torchvision-matrix.py /tmp/onnx-matrix --run
(--splice-only puts an earlier run's table, the folder's matrix.md, into the document.)
"""
import argparse, gzip, os, subprocess, sys, warnings
import numpy as np
import torch, torchvision
from torchvision import models

warnings.filterwarnings("ignore")
FAMILIES = [  # family, constructor, input side
    ("resnet", "resnet18", 64), ("resnext", "resnext50_32x4d", 64), ("wide_resnet", "wide_resnet50_2", 64),
    ("vgg", "vgg11", 224), ("alexnet", "alexnet", 224), ("squeezenet", "squeezenet1_0", 64),
    ("densenet", "densenet121", 64), ("googlenet", "googlenet", 64), ("inception_v3", "inception_v3", 299),
    ("mobilenet_v2", "mobilenet_v2", 64), ("mobilenet_v3", "mobilenet_v3_small", 64), ("mnasnet", "mnasnet0_5", 64),
    ("shufflenet_v2", "shufflenet_v2_x0_5", 64), ("efficientnet", "efficientnet_b0", 64), ("regnet", "regnet_x_400mf", 64),
    ("convnext", "convnext_tiny", 64),
]


def fashion(count, size):
    """The first Fashion-MNIST training images at the network's side, gray into RGB, with ImageNet's normalisation; their labels."""
    with gzip.open("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz") as f:
        pixels = np.frombuffer(f.read(), np.uint8, offset=16)[:count * 784].reshape(count, 1, 28, 28)
    with gzip.open("/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz") as f:
        labels = torch.from_numpy(np.frombuffer(f.read(), np.uint8, offset=8)[:count].astype(np.int64))
    x = torch.nn.functional.interpolate(torch.from_numpy(pixels.astype(np.float32)), size=(size, size), mode="bilinear", align_corners=False)
    x = x.round().clamp(0, 255).expand(-1, 3, -1, -1) / 255
    return (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), labels


def build(name, seed, size):
    torch.manual_seed(seed)
    kwargs = {"stochastic_depth_prob": 0.0} if name.startswith(("efficientnet", "convnext")) else {}
    if name in ("googlenet", "inception_v3"):
        kwargs["init_weights"] = True
    model = getattr(models, name)(**kwargs)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.LayerNorm)):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
            if hasattr(m, "layer_scale"):
                m.layer_scale.uniform_(0.1, 1.0)
        # The running statistics of real images, as a trained network's are (random ones leave most features constant).
        norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None
        model.train()
        images, _ = fashion(64, size)
        for i in range(0, 64, 16):
            model(images[i:i + 16])
        for m in norms:
            m.momentum = 0.1
    # A short training on Fashion-MNIST (Adam, two passes over 256 images, labels 0-9 of its 1000 classes): random
    # weights alone leave some families' features too alike for one fine-tuning epoch to move the loss, in PyTorch too.
    images, labels = fashion(256, size)
    # Adam at 1e-3 throws a network without batch norms (VGG, AlexNet) about; 1e-4 trains it steadily.
    normalised = any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3 if normalised else 1e-4)
    model.train()
    for _ in range(2):
        for i in range(0, 256, 32):
            optimizer.zero_grad()
            out = model(images[i:i + 32])
            logits = out[0] if isinstance(out, tuple) else out
            torch.nn.functional.cross_entropy(logits, labels[i:i + 32]).backward()
            optimizer.step()
    return model.eval()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("folder")
    parser.add_argument("--families", default=",".join(f for f, _, _ in FAMILIES))
    parser.add_argument("--opsets", default="11,17")
    parser.add_argument("--run", action="store_true", help="run bench onnx-matrix and put its table into docs/pretrained.md")
    parser.add_argument("--splice-only", action="store_true", help="put the folder's matrix.md (a run's table) into docs/pretrained.md, nothing else")
    args = parser.parse_args()
    if args.splice_only:
        splice(os.path.join(args.folder, "matrix.md"))
        return
    os.makedirs(args.folder, exist_ok=True)
    wanted = args.families.split(",")
    rows = ["file\tfamily\topset\tmode\tsize\treference"]
    for seed, (family, name, size) in enumerate(FAMILIES):
        if family not in wanted:
            continue
        for opset in [int(o) for o in args.opsets.split(",")]:
            model = build(name, seed, size)
            reference = f"{family}-opset{opset}-eval.onnx"
            for mode in ("train", "eval"):
                file = f"{family}-opset{opset}-{mode}.onnx"
                batch = 2 if mode == "train" and name == "inception_v3" else 1
                kwargs = {"training": torch.onnx.TrainingMode.TRAINING} if mode == "train" else {}
                torch.onnx.export(model.eval(), torch.randn(batch, 3, size, size), os.path.join(args.folder, file), opset_version=opset, **kwargs)
                rows.append(f"{file}\t{family}\t{opset}\t{mode}\t{size}\t{reference}")
                print(file, flush=True)
    manifest = os.path.join(args.folder, "manifest.tsv")
    # Families exported again replace their rows of an earlier manifest; the others keep theirs, in the families' order.
    if os.path.exists(manifest):
        kept = [r for r in open(manifest).read().split("\n")[1:] if r and r.split("\t")[1] not in wanted]
        order = [f for f, _, _ in FAMILIES]
        rows = rows[:1] + sorted(kept + rows[1:], key=lambda r: (order.index(r.split("\t")[1]), r.split("\t")[2], r.split("\t")[3] != "train"))
    with open(manifest, "w") as f:
        f.write("\n".join(rows) + "\n")
    if not args.run:
        return
    table = os.path.join(args.folder, "matrix.md")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    status = subprocess.call(["dotnet", "run", "-c", "Release", "--project", os.path.join(root, "bench/DTSKD.Benchmarks"), "--",
                              "onnx-matrix", "--manifest", manifest, "--output", table])
    splice(table)
    sys.exit(status)


def splice(table):
    """Puts the bench's table between docs/pretrained.md's onnx-matrix markers."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    docs = os.path.join(root, "docs/pretrained.md")
    text = open(docs).read()
    begin, end = "<!-- onnx-matrix:begin -->", "<!-- onnx-matrix:end -->"
    if begin in text and end in text and os.path.exists(table):
        text = text[:text.index(begin) + len(begin)] + "\n" + open(table).read() + text[text.index(end):]
        open(docs, "w").write(text)
        print("docs/pretrained.md updated")


if __name__ == "__main__":
    main()
