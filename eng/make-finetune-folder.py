#!/usr/bin/env python3
"""Writes the folder of docs/pretrained.md's fine-tuning study: the first 2,000 Fashion-MNIST training images as 28x28
gray PNGs, images 0-1499 under train/<class>/ and 1500-1999 under val/<class>/ (the split the bench's folder runs and
ML.NET's pipeline read).
  /usr/bin/python3 eng/make-finetune-folder.py <folder>
"""
import gzip, os, sys
import numpy as np
from PIL import Image

out = sys.argv[1]
names = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]
x = np.frombuffer(gzip.open("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").read(), np.uint8, offset=16).reshape(-1, 28, 28)
y = np.frombuffer(gzip.open("/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz").read(), np.uint8, offset=8)
for i in range(2000):
    folder = os.path.join(out, "train" if i < 1500 else "val", names[y[i]])
    os.makedirs(folder, exist_ok=True)
    Image.fromarray(x[i]).save(os.path.join(folder, f"{i:05d}.png"))
print(f"wrote 1500 training and 500 held-out images into {out}")
