#!/usr/bin/env python3
"""Golden files from the authors' PyTorch release of DTSKD, for DTSKD.Core's parity tests.

Run by hand (CI has no PyTorch), with a checkout of the public release (github.com/zhengli97/DTSKD) and Debian's
python3-torch (1.13, CPU):

    apt-get install python3-torch
    git clone https://github.com/zhengli97/DTSKD /tmp/dtskd-release
    /usr/bin/python3 eng/release-reference.py --release /tmp/dtskd-release trajectory
    /usr/bin/python3 eng/release-reference.py --release /tmp/dtskd-release logits
    /usr/bin/python3 eng/release-reference.py --release /tmp/dtskd-release check-export --file backbone.pt
    /usr/bin/python3 eng/release-reference.py --release /tmp/dtskd-release check-weights --file model.pth --model resnet18_dtskd

Nothing of the release is copied: its model and loss classes are imported from the checkout. Its
utils/label_dynamic.py imports `yacs`, which Debian lacks; this script puts an empty stand-in on the path.

Both sides build the same initial weights from a formula (no weights are stored): every parameter is keyed by a
64-bit FNV-1a hash of its state-dict name, and element i gets u = splitmix64(hash + (i + 1) * golden) / 2^53 in
[0, 1). Tensors of 2 or more dimensions get (2u - 1) / sqrt(fan_in) (the bound of PyTorch's default
initialisation), 1-D "weight"s get 1 + 0.1 (2u - 1) and 1-D "bias"es 0.1 (2u - 1); for the logits golden file the
BatchNorm statistics get values too: running_mean 0.1 (2u - 1), running_var 0.5 + u. The C# twin is
tests/DTSKD.Core.Tests/ReferenceWeights.cs.
"""
import argparse
import atexit
import base64
import importlib
import json
import math
import os
import shutil
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

MASK = (1 << 64) - 1
GOLDEN = np.uint64(0x9E3779B97F4A7C15)
OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "DTSKD.Core.Tests", "TestData", "golden")


def fnv1a(name):
    h = 0xCBF29CE484222325
    for b in name.encode("utf-8"):
        h ^= b
        h = (h * 0x100000001B3) & MASK
    return h


def unit_values(name, count):
    """u in [0, 1) for elements 0..count-1 of the tensor called `name` (exact in float64 on both sides)."""
    with np.errstate(over="ignore"):
        i = np.arange(1, count + 1, dtype=np.uint64)
        z = np.uint64(fnv1a(name)) + i * GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * (2.0 ** -53)


def formula_value(name, shape):
    n = int(np.prod(shape)) if len(shape) > 0 else 1
    u = unit_values(name, n)
    if name.endswith("running_mean"):
        v = 0.1 * (2.0 * u - 1.0)
    elif name.endswith("running_var"):
        v = 0.5 + u
    elif len(shape) >= 2:
        fan_in = int(np.prod(shape[1:]))
        v = (2.0 * u - 1.0) * (1.0 / math.sqrt(fan_in))
    elif name.endswith("weight"):
        v = 1.0 + 0.1 * (2.0 * u - 1.0)
    else:
        v = 0.1 * (2.0 * u - 1.0)
    return torch.from_numpy(v.reshape(shape))


def init_parameters(model):
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(formula_value(name, tuple(p.shape)).to(p.dtype))


def init_state(model):
    """Parameters and BatchNorm statistics from the formula (eval-mode outputs then depend on every buffer too)."""
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                t.copy_(formula_value(name, tuple(t.shape)).to(t.dtype))


def import_release(path):
    stub = tempfile.mkdtemp(prefix="yacs-stub-")
    atexit.register(shutil.rmtree, stub, ignore_errors=True)
    os.makedirs(os.path.join(stub, "yacs"))
    open(os.path.join(stub, "yacs", "__init__.py"), "w").close()
    open(os.path.join(stub, "yacs", "config.py"), "w").close()
    sys.path[:0] = [path, stub]
    return importlib.import_module("models.resnet_dtskd"), importlib.import_module("utils.label_dynamic")


def release_networks(path):
    """The release's five multi-branch networks by their --classifier_type names, at 100 classes."""
    import_release(path)
    resnet = importlib.import_module("models.resnet_dtskd")
    vgg = importlib.import_module("models.vgg_dtskd")
    resnext = importlib.import_module("models.resnext2_dtskd")
    shuffle = importlib.import_module("models.shufflenetv2_dtskd")
    return {
        "resnet18_dtskd": lambda: resnet.resnet18_dtskd(num_classes=100),
        "resnet34_dtskd": lambda: resnet.resnet34_dtskd(num_classes=100),
        "vgg16_dtskd": lambda: vgg.vgg16_dtskd(num_classes=100),
        "resnext18_dtskd": lambda: resnext.resnext18_dtskd(num_classes=100),
        "shufflev2_dtskd": lambda: shuffle.shufflenetv2(num_classes=100),
    }


def normalise(images_uint8):
    # What the C# side computes for mean 0, std 1: uint8 -> float32, times float32(1/255), then widened.
    scale = torch.tensor(1.0 / 255.0, dtype=torch.float32)
    return (images_uint8.to(torch.float32) * scale).to(torch.float64)


def b64(array):
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")


def trajectory(args):
    """Trains the release's resnet18_dtskd with the release's loss classes in float64, history written every step."""
    models, losses = import_release(args.release)
    torch.set_num_threads(1)
    rng = np.random.RandomState(20241126)
    n, m, classes, batch, epochs = 40, 6, 100, 16, 3
    lr, momentum, weight_decay, milestones, gamma = 0.1, 0.9, 5e-4, [2], 0.1
    cos_max, cos_min, weights, ce_weight, kd_weight = 0.9, 0.0, [3.0, 1.0, 1.0, 1.0], 0.2, 0.8
    train_images = rng.randint(0, 256, size=(n, 3, 32, 32)).astype(np.uint8)
    train_labels = rng.randint(0, classes, size=n).astype(np.int64)
    test_images = rng.randint(0, 256, size=(m, 3, 32, 32)).astype(np.uint8)
    generator = torch.Generator().manual_seed(7)
    orders = [torch.randperm(n, generator=generator) for _ in range(epochs)]

    net = models.resnet18_dtskd(num_classes=classes).double()
    init_parameters(net)
    optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=True)
    criterion_ce = losses.KL_Loss2(temperature=1)
    criterion_kd = losses.KL_Loss(temperature=4)
    tables = [torch.zeros(n, classes, dtype=torch.float32) for _ in range(4)]
    identity = torch.eye(classes)
    x_all = normalise(torch.from_numpy(train_images))
    y_all = torch.from_numpy(train_labels)

    steps = []
    for epoch in range(epochs):
        rate = lr
        for milestone in milestones:
            rate *= gamma if epoch >= milestone else 1.0
        for group in optimizer.param_groups:
            group["lr"] = rate
        alpha = cos_min + (cos_max - cos_min) * (math.cos(math.pi * epoch / epochs) + 1.0) / 2.0
        net.train()
        order = orders[epoch]
        for step, start in enumerate(range(0, n, batch)):
            idx = order[start:start + batch]
            x, y = x_all[idx], y_all[idx]
            one_hot = identity[y]
            if epoch == 0:
                for table in tables:
                    table[idx] = one_hot
            targets = [alpha * one_hot + (1 - alpha) * table[idx] for table in tables]
            outputs = net(x)
            terms = [criterion_ce(outputs[h], targets[h]) for h in range(4)]
            kd = [criterion_kd(outputs[k], outputs[0]) for k in range(1, 4)]
            loss_ce = weights[0] * terms[0]
            for h in range(1, 4):
                loss_ce += weights[h] * terms[h]
            loss_kd = kd[0] + kd[1] + kd[2]
            loss = ce_weight * loss_ce + kd_weight * loss_kd
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                for h in range(4):
                    tables[h][idx] = F.softmax(outputs[h], dim=1).to(torch.float32)
            components = {"history/backbone": terms[0].item()}
            components.update({f"history/branch{h}": terms[h].item() for h in range(1, 4)})
            components.update({f"structural/branch{k}": kd[k - 1].item() for k in range(1, 4)})
            steps.append({"epoch": epoch, "step": step, "lr": rate, "alpha": alpha, "total": loss.item(), "components": components})
            print(f"epoch {epoch} step {step}: loss {loss.item():.10f}")

    net.eval()
    with torch.no_grad():
        heads = net(normalise(torch.from_numpy(test_images)))
    golden = {
        "description": "resnet18_dtskd (release) trained 3 epochs in float64 with the release's KL_Loss/KL_Loss2, history written every step",
        "torch": torch.__version__,
        "classes": classes, "batch": batch, "epochs": epochs, "lr": lr, "momentum": momentum, "weight_decay": weight_decay,
        "milestones": milestones, "gamma": gamma, "cos_max": cos_max, "cos_min": cos_min,
        "head_weights": weights, "ce_weight": ce_weight, "kd_weight": kd_weight, "temperature": 4.0,
        "train_images": b64(train_images), "train_labels": train_labels.tolist(), "test_images": b64(test_images),
        "image_shape": [3, 32, 32],
        "orders": [o.tolist() for o in orders],
        "steps": steps,
        "test_logits": [h.tolist() for h in heads],
    }
    write(os.path.join(args.out, "release-trajectory.json"), golden)


def logits(args):
    """Every network's four heads in eval mode, float32, for formula weights and statistics and a few fixed images."""
    torch.set_num_threads(1)
    images = np.random.RandomState(20241127).randint(0, 256, size=(4, 3, 32, 32)).astype(np.uint8)
    x = normalise(torch.from_numpy(images)).to(torch.float32)
    nets = {}
    for name, build in release_networks(args.release).items():
        torch.manual_seed(0)
        net = build()
        init_state(net)
        net.eval()
        with torch.no_grad():
            heads = net(x)
        nets[name] = {
            "parameters": sum(p.numel() for p in net.parameters()),
            "state_dict": [[k, list(v.shape)] for k, v in net.state_dict().items()],
            "logits": [h.double().tolist() for h in heads],
        }
        print(f"{name}: {nets[name]['parameters']} parameters, backbone logit[0][0] {heads[0][0][0].item():.6f}")
    write(os.path.join(args.out, "release-logits.json"), {
        "description": "the release's networks at 100 classes, formula weights and BatchNorm statistics, eval mode, float32",
        "torch": torch.__version__, "images": b64(images), "image_shape": [3, 32, 32], "networks": nets})


def check_export(args):
    """Loads an exported backbone (DTSKD.Core's `export`) into the release's plain CIFAR ResNet18 with strict=True."""
    import_release(args.release)
    resnet = importlib.import_module("models.resnet")
    net = resnet.CIFAR_ResNet(resnet.BasicBlock, [2, 2, 2, 2], num_classes=args.classes)
    state = torch.load(args.file, map_location="cpu")
    result = net.load_state_dict(state, strict=True)
    net.eval()
    with torch.no_grad():
        out = net(torch.zeros(1, 3, 32, 32))
    print(f"loaded {len(state)} tensors into the release's CIFAR ResNet18 with strict=True ({result}); logits shape {tuple(out.shape)}")


def check_weights(args):
    """Loads a whole multi-branch state dict saved by DTSKD.Core (PyTorchWeights.Save) into the release's network."""
    net = release_networks(args.release)[args.model]()
    state = torch.load(args.file, map_location="cpu")
    result = net.load_state_dict(state, strict=True)
    net.eval()
    with torch.no_grad():
        heads = [h.double() for h in net(torch.zeros(1, 3, 32, 32))]
    print(f"loaded {len(state)} tensors into the release's {args.model} with strict=True ({result})")
    if args.logits:
        with open(args.logits) as f:
            expected = torch.tensor(json.load(f), dtype=torch.float64)
        worst = max(float((heads[h][0] - expected[h]).abs().max() / expected[h].abs().max()) for h in range(len(heads)))
        print(f"eval-mode logits of all {len(heads)} heads for a zero image: worst difference {worst:.2e} of the row's largest logit")


def write(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temp = path + ".tmp"
    with open(temp, "w") as f:
        json.dump(obj, f, separators=(",", ":"))
    os.replace(temp, path)
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--release", required=True, help="a checkout of github.com/zhengli97/DTSKD")
    parser.add_argument("--out", default=OUT_DIR, help="where the golden files go (default: the test project's TestData/golden)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("trajectory", help="a float64 training trajectory of resnet18_dtskd with the release's losses")
    sub.add_parser("logits", help="eval-mode logits of the release's five networks")
    check = sub.add_parser("check-export", help="load an exported backbone state dict into the release's plain ResNet18")
    check.add_argument("--file", required=True)
    check.add_argument("--classes", type=int, default=100)
    weights = sub.add_parser("check-weights", help="load a whole multi-branch state dict into the release's network of that name")
    weights.add_argument("--file", required=True)
    weights.add_argument("--model", default="resnet18_dtskd")
    weights.add_argument("--logits", help="a JSON list of the four heads' logits for a zero image, to compare")
    args = parser.parse_args()
    {"trajectory": trajectory, "logits": logits, "check-export": check_export, "check-weights": check_weights}[args.command](args)


if __name__ == "__main__":
    main()
