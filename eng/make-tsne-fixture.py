#!/usr/bin/env python3
"""Writes the t-SNE test's fixture (tests/DTSKD.Samples.Cifar100.Tests/TestData/tsne/): 500 Fashion-MNIST test images
reduced to 32 principal components (features.f64, little-endian float64, row-major [500, 32]), scikit-learn's TSNE map
of them (sklearn-map.f64, [500, 2]), and reference.json with sklearn.manifold.trustworthiness of that map (k = 5).
  /usr/bin/python3 eng/make-tsne-fixture.py <folder>
"""
import gzip, json, os, sys
import numpy as np
import sklearn
from sklearn.manifold import TSNE, trustworthiness

out = sys.argv[1]
x = np.frombuffer(gzip.open("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz").read(), np.uint8, offset=16).reshape(-1, 784)[:500]
x = x.astype(np.float64) / 255
x -= x.mean(0)
u, s, vt = np.linalg.svd(x, full_matrices=False)
features = x @ vt[:32].T
tsne = TSNE(n_components=2, perplexity=30.0, init="pca", learning_rate="auto", random_state=0)
embedded = tsne.fit_transform(features)
os.makedirs(out, exist_ok=True)
features.astype("<f8").tofile(os.path.join(out, "features.f64"))
embedded.astype("<f8").tofile(os.path.join(out, "sklearn-map.f64"))
reference = {
    "points": int(features.shape[0]), "dimensions": int(features.shape[1]), "perplexity": 30.0, "neighbours": 5,
    "sklearn": sklearn.__version__, "method": tsne.method,
    "trustworthiness": float(trustworthiness(features, embedded, n_neighbors=5)),
}
json.dump(reference, open(os.path.join(out, "reference.json"), "w"), indent=2)
print(reference)
