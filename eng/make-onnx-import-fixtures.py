#!/usr/bin/env python3
"""Writes the small ONNX models tests/DTSKD.Core.Onnx.Tests import and compare with ONNX Runtime: every operator the
importer knows, in their opset-7 forms (attributes) and their opset-13/14 forms (inputs), with asymmetric and SAME pads,
groups and dilations. Random weights; input [1, 3, 16, 16], output 'logits' [1, 10]. Run by hand (python3-onnx):
  /usr/bin/python3 eng/make-onnx-import-fixtures.py tests/DTSKD.Core.Onnx.Tests/TestData
"""
import os, sys
import numpy as np
import onnx
from onnx import helper, TensorProto, numpy_helper

out = sys.argv[1]
rng = np.random.default_rng(3)

def init(name, *shape, scale=0.3, dtype=np.float32):
    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(dtype), name)

def ints(name, values):
    return numpy_helper.from_array(np.array(values, np.int64), name)

def bn(prefix, c):
    return [numpy_helper.from_array(rng.uniform(0.5, 1.5, c).astype(np.float32), prefix + "_s"),
            numpy_helper.from_array(rng.normal(0, 0.1, c).astype(np.float32), prefix + "_b"),
            numpy_helper.from_array(rng.normal(0, 0.1, c).astype(np.float32), prefix + "_m"),
            numpy_helper.from_array(rng.uniform(0.5, 1.5, c).astype(np.float32), prefix + "_v")]

def save(name, nodes, inits, opset):
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="eng/make-onnx-import-fixtures.py")
    model.ir_version = 7
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(out, name + ".onnx"))
    print(name, opset, sorted({n.op_type for n in nodes}))

N = helper.make_node
# Opset 7: attributes for Clip, Pad, Dropout; asymmetric pads, groups, dilations; a classifier of Gemm then MatMul.
nodes7 = [
    N("Conv", ["image", "w1", "b1"], ["c1"], name="conv1", kernel_shape=[3, 3], pads=[1, 0, 2, 1], strides=[1, 1], group=1),
    N("BatchNormalization", ["c1", "bn1_s", "bn1_b", "bn1_m", "bn1_v"], ["n1"], name="bn1", epsilon=1e-3, momentum=0.9),
    N("Relu", ["n1"], ["r1"], name="relu1"),
    N("MaxPool", ["r1"], ["p1"], name="pool1", kernel_shape=[3, 3], strides=[2, 2], pads=[0, 0, 1, 1]),
    N("Conv", ["p1", "w2"], ["c2"], name="conv2", kernel_shape=[3, 3], pads=[2, 2, 2, 2], dilations=[2, 2], group=2, strides=[2, 2]),
    N("Clip", ["c2"], ["k2"], name="clip2", min=-0.5, max=0.8),
    N("LeakyRelu", ["k2"], ["l2"], name="leaky2", alpha=0.1),
    N("Sigmoid", ["l2"], ["s2"], name="sigmoid2"),
    N("Mul", ["l2", "s2"], ["m2"], name="swish2"),
    N("Add", ["m2", "shift"], ["a2"], name="shift2"),
    N("Pad", ["a2"], ["d2"], name="pad2", pads=[0, 0, 1, 0, 0, 0, 0, 2], mode="constant", value=0.25),
    N("AveragePool", ["d2"], ["v2"], name="avg2", kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1], count_include_pad=0),
    N("Dropout", ["v2"], ["o2"], name="drop2", ratio=0.3),
    N("Identity", ["o2"], ["i2"], name="identity2"),
    N("HardSigmoid", ["i2"], ["h2"], name="hsig2", alpha=0.3, beta=0.4),
    N("Concat", ["i2", "h2"], ["cat"], name="concat", axis=1),
    N("Sub", ["cat", "centre"], ["sub"], name="centre"),
    N("Div", ["sub", "scale"], ["div"], name="scale"),
    N("GlobalAveragePool", ["div"], ["g"], name="gap"),
    N("Flatten", ["g"], ["f"], name="flatten", axis=1),
    N("Gemm", ["f", "fc_w", "fc_b"], ["e"], name="fc1", transB=1, alpha=0.7, beta=1.3),
    N("MatMul", ["e", "fc2_w"], ["logits"], name="fc2"),
]
inits7 = [init("w1", 8, 3, 3, 3), init("b1", 8), *bn("bn1", 8), init("w2", 8, 4, 3, 3), init("shift", 1, 8, 1, 1),
          init("centre", 1, 16, 1, 1), numpy_helper.from_array(rng.uniform(0.5, 2, (1, 16, 1, 1)).astype(np.float32), "scale"),
          init("fc_w", 12, 16), init("fc_b", 12), init("fc2_w", 12, 10)]
save("ops-opset7", nodes7, inits7, 7)

# Opset 14: inputs for Clip and Pad, HardSwish, SAME pads, Reshape by a shape constant, a whole-map average pool.
nodes14 = [
    N("Conv", ["image", "w1"], ["c1"], name="conv1", kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER"),
    N("BatchNormalization", ["c1", "bn1_s", "bn1_b", "bn1_m", "bn1_v"], ["n1"], name="bn1"),
    N("Clip", ["n1", "lo", "hi"], ["k1"], name="relu6"),
    N("Conv", ["k1", "w2", "b2"], ["c2"], name="dw2", kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1], group=8),
    N("HardSwish", ["c2"], ["h2"], name="hswish2"),
    N("Pad", ["h2", "pads", "padval"], ["d2"], name="reflect2", mode="reflect"),
    N("Conv", ["d2", "w3"], ["c3"], name="conv3", kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_LOWER"),
    N("MaxPool", ["c3"], ["p3"], name="pool3", kernel_shape=[2, 2], strides=[1, 1], auto_pad="SAME_UPPER"),
    N("AveragePool", ["p3"], ["v3"], name="whole3", kernel_shape=[6, 6]),
    N("Reshape", ["v3", "shape"], ["f"], name="reshape"),
    N("Dropout", ["f", "ratio"], ["o"], name="drop"),
    N("Gemm", ["o", "fc_w", "fc_b"], ["logits"], name="fc"),
]
inits14 = [init("w1", 8, 3, 3, 3), *bn("bn1", 8), numpy_helper.from_array(np.array(0, np.float32), "lo"),
           numpy_helper.from_array(np.array(0.9, np.float32), "hi"), init("w2", 8, 1, 3, 3), init("b2", 8),
           ints("pads", [0, 0, 1, 2, 0, 0, 2, 1]), numpy_helper.from_array(np.array(0, np.float32), "padval"),
           init("w3", 16, 8, 3, 3), ints("shape", [1, 16]), numpy_helper.from_array(np.array(0.2, np.float32), "ratio"),
           init("fc_w", 16, 10), init("fc_b", 1, 10)]
save("ops-opset14", nodes14, inits14, 14)

# An operator the importer does not know, inside the backbone.
bad = [N("Conv", ["image", "w1"], ["c1"], name="conv1", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
       N("Elu", ["c1"], ["e1"], name="elu1"),
       N("GlobalAveragePool", ["e1"], ["g"], name="gap"), N("Flatten", ["g"], ["f"], name="flatten"),
       N("Gemm", ["f", "fc_w"], ["logits"], name="fc", transB=1)]
save("unsupported-elu", bad, [init("w1", 8, 3, 3, 3), init("fc_w", 10, 8)], 13)
