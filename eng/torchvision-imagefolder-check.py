#!/usr/bin/env python3
"""Builds the folder of TestData/images/folder-spec.txt and prints how torchvision's ImageFolder reads it (classes, the
class-to-index map and the samples in order), as the JSON tests/DTSKD.Core.Tests/TestData/images/torchvision-imagefolder.json
holds. Run by hand with Debian's python3-torchvision: /usr/bin/python3 eng/torchvision-imagefolder-check.py
"""
import json, os, tempfile
import torchvision
from PIL import Image

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
data = os.path.join(root, "tests", "DTSKD.Core.Tests", "TestData", "images")
spec = [l.strip() for l in open(os.path.join(data, "folder-spec.txt"), encoding="utf-8") if l.strip() and not l.startswith("#")]
with tempfile.TemporaryDirectory() as tree:
    for rel in spec:
        path = os.path.join(tree, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if rel.lower().endswith(torchvision.datasets.folder.IMG_EXTENSIONS):
            Image.new("L", (28, 28), 128).save(path, format="PNG")
        else:
            open(path, "w").write("not an image\n")
    folder = torchvision.datasets.ImageFolder(tree)
    result = {
        "torchvision": torchvision.__version__,
        "classes": folder.classes,
        "class_to_idx": folder.class_to_idx,
        "samples": [[os.path.relpath(p, tree), i] for p, i in folder.samples],
    }
out = os.path.join(data, "torchvision-imagefolder.json")
json.dump(result, open(out, "w", encoding="utf-8"), ensure_ascii=False, indent=1)
print(json.dumps(result, ensure_ascii=False, indent=1))
