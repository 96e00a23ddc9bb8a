#!/usr/bin/env python3
"""Prints the per-channel means (RGB order, 0-255) of the mean image in ML.NET's ResNetPreprocess.onnx (NuGet
Microsoft.ML.DnnImageFeaturizer.ResNet18), which OnnxImportOptions.MlNetResNet18 uses. Its graph reorders RGB to BGR, then
subtracts MeanImage [1, 3, 224, 224] (BGR). Run by hand (python3-onnx):
  /usr/bin/python3 eng/mlnet-resnet18-preprocess.py ~/.nuget/packages/microsoft.ml.dnnimagefeaturizer.resnet18/0.23.1
"""
import os, sys, onnx
from onnx import numpy_helper

path = os.path.join(sys.argv[1], "tools", "DnnImageModels", "ResNetPrepOnnx", "ResNetPreprocess.onnx")
model = onnx.load(path)
print([(n.op_type, list(n.input), list(n.output)) for n in model.graph.node])
mean = numpy_helper.to_array(next(t for t in model.graph.initializer if t.name == "MeanImage"))
blue, green, red = mean[0].reshape(3, -1).mean(axis=1)
print(f"red {red:.4f}, green {green:.4f}, blue {blue:.4f}")
