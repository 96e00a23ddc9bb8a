#!/usr/bin/env python3
"""Runs the ONNX checker (Debian's python3-onnx) on every .onnx file of a folder that eng/export-onnx-models.cs wrote,
with full shape inference, and prints what it found. Run by hand:
  /usr/bin/python3 eng/onnx-check.py <folder>
"""
import glob, os, sys
import onnx
from onnx import checker, shape_inference

files = sorted(glob.glob(os.path.join(sys.argv[1], "*.onnx")))
if not files:
    raise SystemExit(f"no .onnx files in {sys.argv[1]}")
print(f"onnx {onnx.__version__}: checker.check_model(full_check=True) on {len(files)} files")
for path in files:
    model = onnx.load(path)
    checker.check_model(model, full_check=True)
    inferred = shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    outputs = ", ".join(f"{o.name} {[d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim]}" for o in inferred.graph.output)
    meta = {p.key: p.value for p in model.metadata_props}
    print(f"{os.path.basename(path)}: OK (IR {model.ir_version}, opset {model.opset_import[0].version}, {len(model.graph.node)} nodes; "
          f"outputs {outputs}; image {meta['dtskd.image_size']} from {meta['dtskd.decode_size']}, mean {meta['dtskd.mean']})")
