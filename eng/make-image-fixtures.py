#!/usr/bin/env python3
"""Writes the odd image files the image-folder tests read (tests/DTSKD.Core.Tests/TestData/images/), from Fashion-MNIST
test image 0, in formats SkiaSharp cannot write: CMYK JPEG, 16-bit grayscale PNG, palette PNG with transparency, and a
JPEG whose EXIF orientation says "rotate 90 degrees clockwise". Run by hand with Debian's python3-pil:
  /usr/bin/python3 eng/make-image-fixtures.py
"""
import gzip, os
import numpy as np
from PIL import Image

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
out = os.path.join(root, "tests", "DTSKD.Core.Tests", "TestData", "images")
os.makedirs(out, exist_ok=True)
raw = gzip.open("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz").read()
gray = np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(-1, 28, 28)[0]
rgb = np.stack([gray, 255 - gray, gray // 2], axis=-1)

Image.fromarray(rgb).convert("CMYK").save(os.path.join(out, "cmyk.jpg"), quality=95)
Image.fromarray(gray.astype(np.uint16) * 257, mode="I;16").save(os.path.join(out, "gray16.png"))
palette = Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE, colors=16)
palette.info["transparency"] = 0
palette.save(os.path.join(out, "palette.png"), transparency=0)
# A 28x14 image stored sideways: the left half of the picture, rotated; EXIF orientation 6 turns it upright.
left = Image.fromarray(rgb[:, :14])
stored = left.transpose(Image.ROTATE_90)  # counter-clockwise 90: what a camera stores for orientation 6
exif = Image.Exif()
exif[0x0112] = 6
stored.save(os.path.join(out, "rotated.jpg"), quality=100, exif=exif.tobytes(), subsampling=0)
# What PIL (and so torchvision's ImageFolder) sees in each: the tests compare SkiaSharp's decoding with it.
from PIL import ImageOps
for name in ["cmyk.jpg", "palette.png", "rotated.jpg"]:
    image = ImageOps.exif_transpose(Image.open(os.path.join(out, name))).convert("RGB")
    with open(os.path.join(out, name + ".rgb"), "wb") as f:
        f.write(bytes([image.width, image.height]) + image.tobytes())
print("wrote", sorted(os.listdir(out)))
