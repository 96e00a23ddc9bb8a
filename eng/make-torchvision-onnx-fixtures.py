#!/usr/bin/env python3
"""Writes the small exporter-written ONNX files tests/DTSKD.Core.Onnx.Tests reads (CI has no Python): torchvision's
classifiers at narrow widths and a network of the remaining operators, exported by torch.onnx as users export them.
Each 'train' file (training=TRAINING: batch norms kept) has an 'eval' twin from the same weights (batch norms folded),
ONNX Runtime's reference for both. Run by hand (Debian's python3-torch 1.13, torchvision 0.14, python3-onnx):
  /usr/bin/python3 eng/make-torchvision-onnx-fixtures.py tests/DTSKD.Core.Onnx.Tests/TestData/torchvision
"""
import os, sys, warnings
import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F
from onnx import helper, numpy_helper, TensorProto
from torchvision import models
from torchvision.models.convnext import CNBlockConfig
from torchvision.models.squeezenet import Fire

warnings.filterwarnings("ignore")
out = sys.argv[1]
os.makedirs(out, exist_ok=True)


def settle(model, size):
    """Random batch-norm scales and the running statistics of random images, as a trained network has its data's."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm2d, nn.LayerNorm)):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
            if hasattr(m, "layer_scale"):
                m.layer_scale.uniform_(0.1, 1.0)
        norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None
        model.train()
        model(torch.randn(16, 3, size, size))
        for m in norms:
            m.momentum = 0.1
    return model.eval()


def export(model, name, opset, size, modes=("train", "eval"), **kwargs):
    for mode in modes:
        path = os.path.join(out, f"{name}-opset{opset}-{mode}.onnx")
        extra = {"training": torch.onnx.TrainingMode.TRAINING} if mode == "train" else {}
        torch.onnx.export(model.eval(), torch.randn(1, 3, size, size), path, opset_version=opset, **extra, **kwargs)
        graph = onnx.load(path).graph
        print(os.path.basename(path), os.path.getsize(path), sorted({n.op_type for n in graph.node}))


class Operators(nn.Module):
    """The operators no torchvision classifier uses: Split, Resize (nearest and bilinear), Softmax over channels,
    Expand, Pow and Sqrt, Squeeze and Unsqueeze, a max pool with ceil_mode and pads, GELU."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.pool = nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True)
        self.mix = nn.Conv2d(16, 32, 3, stride=2, padding=1)
        self.scale = nn.Parameter(torch.rand(1, 16, 1, 1) + 0.5)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = self.pool(self.stem(x))
        a, b = torch.split(x, [8, 8], dim=1)
        a = F.interpolate(F.avg_pool2d(a, 2), scale_factor=2.0, mode="nearest")
        b = F.interpolate(F.interpolate(b, scale_factor=0.5, mode="bilinear", align_corners=False), size=b.shape[-2:], mode="bilinear", align_corners=False)
        attention = torch.softmax(x.mean(dim=(2, 3)), dim=1).unsqueeze(-1).unsqueeze(-1)
        x = torch.cat([a, b], dim=1) * attention + self.scale.expand(x.shape[0], -1, x.shape[2], x.shape[3])
        x = x / torch.sqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-5)
        x = F.gelu(self.mix(x))
        return self.fc(x.mean(dim=(2, 3), keepdim=True).squeeze(-1).squeeze(-1))


torch.manual_seed(7)
export(settle(models.mobilenet_v3_small(width_mult=0.25, num_classes=10), 64), "mobilenet_v3", 11, 64)
torch.manual_seed(8)
export(settle(models.ShuffleNetV2([2, 2, 2], [16, 32, 64, 128, 256], num_classes=10), 64), "shufflenet_v2", 17, 64)
torch.manual_seed(9)
convnext = settle(models.ConvNeXt([CNBlockConfig(16, 32, 1), CNBlockConfig(32, 64, 1), CNBlockConfig(64, 128, 1), CNBlockConfig(128, None, 1)], stochastic_depth_prob=0.0, num_classes=10), 64)
export(convnext, "convnext", 11, 64, modes=("eval",))
export(convnext, "convnext", 17, 64, modes=("eval",))
torch.manual_seed(10)
squeezenet = models.squeezenet1_1(num_classes=10)
squeezenet.features = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, ceil_mode=True), Fire(16, 4, 8, 8),
                                    nn.MaxPool2d(3, 2, ceil_mode=True), Fire(16, 8, 16, 16), nn.MaxPool2d(3, 2, ceil_mode=True), Fire(32, 8, 16, 16))
squeezenet.classifier = nn.Sequential(nn.Dropout(0.5), nn.Conv2d(32, 10, 1), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1))
export(settle(squeezenet, 64), "squeezenet", 11, 64, modes=("eval",))
torch.manual_seed(11)
export(settle(models.MNASNet(0.2, num_classes=10), 64), "mnasnet", 17, 64, keep_initializers_as_inputs=True)
torch.manual_seed(13)
vgg = models.VGG(nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(True), nn.MaxPool2d(2), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(True), nn.MaxPool2d(2),
                               nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(True), nn.MaxPool2d(2)), num_classes=10)
vgg.avgpool = nn.AdaptiveAvgPool2d((2, 2))
vgg.classifier = nn.Sequential(nn.Linear(32 * 2 * 2, 64), nn.ReLU(True), nn.Dropout(), nn.Linear(64, 10))
export(settle(vgg, 32), "vgg", 17, 32, modes=("eval",))
torch.manual_seed(12)
operators = settle(Operators(), 30)
export(operators, "operators", 11, 30)
export(operators, "operators", 17, 30)

# Gelu is opset 20, past torch 1.13's exporter and Debian's onnx checker: one node, written by hand, run by ONNX Runtime.
rng = np.random.default_rng(5)
nodes = [helper.make_node("Conv", ["image", "w"], ["c"], name="conv", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
         helper.make_node("Gelu", ["c"], ["g"], name="gelu", approximate="tanh"),
         helper.make_node("Conv", ["g", "w2"], ["d"], name="conv2", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
         helper.make_node("Gelu", ["d"], ["e"], name="gelu2"),
         helper.make_node("GlobalAveragePool", ["e"], ["p"], name="gap"),
         helper.make_node("Flatten", ["p"], ["logits"], name="flatten")]
graph = helper.make_graph(nodes, "gelu", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 16, 16])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 16])],
                          [numpy_helper.from_array((rng.standard_normal((16, 3, 3, 3)) * 0.3).astype(np.float32), "w"),
                           numpy_helper.from_array((rng.standard_normal((16, 16, 3, 3)) * 0.2).astype(np.float32), "w2")])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)], producer_name="eng/make-torchvision-onnx-fixtures.py")
model.ir_version = 9
onnx.save(model, os.path.join(out, "gelu-opset20.onnx"))
print("gelu-opset20.onnx")
