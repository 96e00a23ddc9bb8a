#!/usr/bin/env python3
"""torchvision's ImageFolder + DataLoader(num_workers=2) over a folder, with the transforms DTSKD.Core.Images applies
(Resize(size) on the shorter side, CenterCrop(size), to uint8 tensors): images decoded per second, as JSON. The .NET
benchmark (`bench images --pytorch ...`) runs it between its own rounds, so both sides are measured in one run.
  python3 bench/pytorch/imagefolder_bench.py <folder> <size> [workers]
"""
import json, sys, time
import torch, torchvision
from torchvision import transforms

folder, size = sys.argv[1], int(sys.argv[2])
workers = int(sys.argv[3]) if len(sys.argv) > 3 else 2
torch.set_num_threads(1)
data = torchvision.datasets.ImageFolder(folder, transform=transforms.Compose([
    transforms.Resize(size), transforms.CenterCrop(size), transforms.PILToTensor()]))
loader = torch.utils.data.DataLoader(data, batch_size=64, num_workers=workers, shuffle=False)
start = time.perf_counter()
count = 0
for images, labels in loader:
    count += images.shape[0]
seconds = time.perf_counter() - start
print(json.dumps({"images": count, "seconds": seconds, "images_per_second": count / seconds,
                  "torch": torch.__version__, "torchvision": torchvision.__version__, "workers": workers}))
