#!/usr/bin/env python3
"""Writes the folder the image benchmarks read: photo-sized JPEGs (300-500 pixels a side, colour, noisy, so their
entropy is a photo's rather than a drawing's) made from Fashion-MNIST, ten class folders.
  /usr/bin/python3 eng/make-bench-folder.py <folder> [images]
"""
import gzip, os, sys
import numpy as np
from PIL import Image

out, count = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 2000
names = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]
x = np.frombuffer(gzip.open("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").read(), np.uint8, offset=16).reshape(-1, 28, 28)
y = np.frombuffer(gzip.open("/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz").read(), np.uint8, offset=8)
rng = np.random.default_rng(1)
for i in range(count):
    w, h = (int(v) for v in rng.integers(300, 501, size=2))
    base = Image.fromarray(x[i]).resize((w, h), Image.BICUBIC)
    tint = rng.integers(0, 256, size=3)
    rgb = np.stack([np.asarray(base, np.float32) * (0.4 + t / 425) for t in tint], axis=-1)
    rgb = np.clip(rgb + rng.normal(0, 12, size=rgb.shape), 0, 255).astype(np.uint8)
    folder = os.path.join(out, names[y[i]])
    os.makedirs(folder, exist_ok=True)
    Image.fromarray(rgb).save(os.path.join(folder, f"{i:05d}.jpg"), quality=90)
print(f"wrote {count} images into {out}")
