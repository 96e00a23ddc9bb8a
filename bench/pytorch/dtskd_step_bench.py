"""Training throughput of resnet18_dtskd with the DTSKD loss in PyTorch, for comparison with DTSKD.Core.

Written by us from docs/method.md and ../shared/spec (the release's architecture and loss, with the history
memory that updates). The release trains with autocast + GradScaler; this script times that ("amp-fp16") and
the other modes a PyTorch user would turn on, on random CIFAR-sized batches that are already on the device (so it
measures the model, loss and optimizer step; DTSKD.Core's numbers also include gathering and augmenting the batch).

Modes: fp32, tf32 (CUDA), amp-bf16, amp-fp16 (CUDA, with GradScaler); a "-cl" suffix adds channels_last
(model.to(memory_format=torch.channels_last) and channels_last inputs), e.g. fp32-cl, amp-bf16-cl.

Usage: python3 dtskd_step_bench.py [--device cuda|cpu] [--modes fp32,tf32,amp-bf16,amp-fp16] [--steps 50] [--batch-size 128]
Prints one Markdown table row per mode. `dotnet run --project bench/DTSKD.Benchmarks -- steps --pytorch python3`
runs it beside DTSKD.Core's own modes, alternating the two sides.
"""
import argparse
import math
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

EPS = 1e-7


class BasicBlock(nn.Module):
    def __init__(self, in_planes, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))
        else:
            self.downsample = nn.Sequential()

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.downsample(x))


def conv_bn_relu(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class ResNetDtskd(nn.Module):
    """resnet18_dtskd as docs/models.md describes it (13,971,920 parameters for 100 classes)."""

    def __init__(self, blocks=(2, 2, 2, 2), num_classes=100, width=64, neck=512):
        super().__init__()
        widths = [width, width * 2, width * 4, width * 8]
        self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        in_planes = widths[0]
        layers = []
        for i, (w, n) in enumerate(zip(widths, blocks)):
            stage = []
            for b in range(n):
                stage.append(BasicBlock(in_planes, w, (1 if i == 0 else 2) if b == 0 else 1))
                in_planes = w
            layers.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.fc = nn.Linear(widths[3], num_classes)
        self.laterals = nn.ModuleList([
            nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, neck, 1, bias=False), nn.BatchNorm2d(neck), nn.ReLU())
            for c in widths[:3]])
        self.upsample = nn.ModuleList([conv_bn_relu(widths[3] if i == 2 else neck, neck) for i in range(3)])
        self.fuse_1, self.fuse_2, self.fuse_3 = (conv_bn_relu(2 * neck, neck) for _ in range(3))
        self.fc_b1, self.fc_b2, self.fc_b3 = (nn.Linear(neck, num_classes) for _ in range(3))

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        s1 = self.layer1(x)
        s2 = self.layer2(s1)
        s3 = self.layer3(s2)
        s4 = self.layer4(s3)
        f = F.adaptive_avg_pool2d(s4, 1)
        z0 = self.fc(torch.flatten(f, 1))
        u3 = self.upsample[2](f)
        t3 = self.fuse_3(torch.cat([u3 + self.laterals[2](s3), u3], 1))
        u2 = self.upsample[1](t3)
        t2 = self.fuse_2(torch.cat([u2 + self.laterals[1](s2), u2], 1))
        u1 = self.upsample[0](t2)
        t1 = self.fuse_1(torch.cat([u1 + self.laterals[0](s1), u1], 1))
        return z0, self.fc_b1(torch.flatten(t1, 1)), self.fc_b2(torch.flatten(t2, 1)), self.fc_b3(torch.flatten(t3, 1))


def kl(student, teacher_probs, t):
    q = teacher_probs + EPS
    return t * t * (q * (q.log() - F.log_softmax(student / t, 1))).sum() / student.shape[0]


def dtskd_loss(heads, labels, idx, memory, alpha, weights=(3.0, 1.0, 1.0, 1.0), w_ce=0.2, w_kd=0.8, temperature=4.0):
    heads = [h.float() for h in heads]
    one_hot = F.one_hot(labels, heads[0].shape[1]).float()
    supervised = 0.0
    for h, (z, w) in enumerate(zip(heads, weights)):
        q = alpha * one_hot + (1 - alpha) * memory[h, idx]
        supervised = supervised + w * kl(z, q, 1.0)
    teacher = F.softmax(heads[0] / temperature, 1)
    kd = sum(kl(z, teacher, temperature) for z in heads[1:])
    with torch.no_grad():
        memory[:, idx] = torch.stack([F.softmax(z.detach(), 1) for z in heads])
    return w_ce * supervised + w_kd * kd


def run(mode, steps, batch, device):
    torch.manual_seed(1)
    channels_last = mode.endswith("-cl")
    base = mode[:-3] if channels_last else mode
    on_cuda = device.type == "cuda"
    if on_cuda:
        torch.backends.cuda.matmul.allow_tf32 = base != "fp32"
        torch.backends.cudnn.allow_tf32 = base != "fp32"
        torch.backends.cudnn.benchmark = True
    elif base in ("tf32", "amp-fp16"):
        raise SystemExit(f"mode {mode} needs CUDA")
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model = ResNetDtskd().to(device).to(memory_format=layout)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True)
    scaler = torch.cuda.amp.GradScaler() if base == "amp-fp16" else None
    dtype = {"amp-fp16": torch.float16, "amp-bf16": torch.bfloat16}.get(base)
    n = steps * batch
    memory = torch.zeros(4, n, 100, device=device)
    images = [torch.randn(batch, 3, 32, 32, device=device).to(memory_format=layout) for _ in range(steps)]
    labels = torch.randint(0, 100, (steps, batch), device=device)

    def sync():
        if on_cuda:
            torch.cuda.synchronize()

    def epoch():
        for s in range(steps):
            idx = torch.arange(s * batch, (s + 1) * batch, device=device)
            with torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
                heads = model(images[s])
            loss = dtskd_loss(heads, labels[s], idx, memory, alpha=0.9)
            optimizer.zero_grad(set_to_none=True)
            if scaler is None:
                loss.backward()
                optimizer.step()
            else:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()

    epoch()  # warm-up: cuDNN autotuning, oneDNN primitive caches, allocator
    sync()
    start = time.perf_counter()
    epoch()
    sync()
    seconds = time.perf_counter() - start
    return n / seconds, 1000 * seconds / steps


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--modes", default="fp32,tf32,amp-bf16,amp-fp16")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="CPU threads (default: every core, as DTSKD.Core uses; Debian's PyTorch starts with one)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    params = sum(p.numel() for p in ResNetDtskd().parameters())
    assert params == 13_971_920, params
    where = f"CUDA {torch.version.cuda}, {torch.cuda.get_device_name()}" if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"PyTorch {torch.__version__}, {where}")
    print("| mode | train images/s | ms per step |")
    print("| --- | --- | --- |")
    for mode in args.modes.split(","):
        ips, ms = run(mode, args.steps, args.batch_size, device)
        print(f"| pytorch {mode} | {ips:.0f} | {ms:.2f} |")
        if not math.isfinite(ips):
            raise SystemExit(1)


if __name__ == "__main__":
    main()
