#!/usr/bin/env python3
"""Writes an ONNX file with every BatchNormalization that follows a convolution folded into it, as an eval-mode
torch.onnx export folds them: the same network, without batch norms to fine-tune. Used on ML.NET's ResNet18.onnx (the
only ImageNet-trained network reachable here) to measure what folding costs a fine-tuning (docs/pretrained.md).
  /usr/bin/python3 eng/fold-onnx-batchnorms.py IN.onnx OUT.onnx
"""
import sys
import numpy as np
import onnx
from onnx import numpy_helper

model = onnx.load(sys.argv[1])
graph = model.graph
weights = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
readers = {}
for node in graph.node:
    for name in node.input:
        readers[name] = readers.get(name, 0) + 1
producer = {o: n for n in graph.node for o in n.output}
folded, removed = 0, []
for norm in [n for n in graph.node if n.op_type == "BatchNormalization"]:
    conv = producer.get(norm.input[0])
    if conv is None or conv.op_type != "Conv" or readers[norm.input[0]] != 1:
        continue
    eps = next((a.f for a in norm.attribute if a.name == "epsilon"), 1e-5)
    gamma, beta, mean, var = (weights[norm.input[i]].astype(np.float64) for i in range(1, 5))
    w = weights[conv.input[1]].astype(np.float64)
    b = weights[conv.input[2]].astype(np.float64) if len(conv.input) > 2 else np.zeros(w.shape[0])
    factor = gamma / np.sqrt(var + eps)
    name = conv.input[1]
    graph.initializer.append(numpy_helper.from_array((w * factor.reshape(-1, 1, 1, 1)).astype(np.float32), name + "_folded"))
    graph.initializer.append(numpy_helper.from_array(((b - mean) * factor + beta).astype(np.float32), name + "_folded_bias"))
    del conv.input[1:]
    conv.input.extend([name + "_folded", name + "_folded_bias"])
    conv.output[0] = norm.output[0]
    removed.append(norm)
    folded += 1
for norm in removed:
    graph.node.remove(norm)
used = {i for n in graph.node for i in n.input}
for t in [t for t in graph.initializer if t.name not in used]:
    graph.initializer.remove(t)
# Before IR 4 every initializer is also a graph input: the list follows the initializers.
names = {t.name for t in graph.initializer}
for value in [i for i in graph.input if i.name not in names and i.name not in used]:
    graph.input.remove(value)
if model.ir_version < 4:
    listed = {i.name for i in graph.input}
    graph.input.extend(onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in graph.initializer if t.name not in listed)
onnx.checker.check_model(model)
onnx.save(model, sys.argv[2])
print(f"folded {folded} batch norms into their convolutions: {sys.argv[2]}")
