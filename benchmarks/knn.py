r"""The item-item kNN graph at catalogue scale: faiss' approximate search against the exact chunked one.

    python benchmarks/knn.py                                  # 200k items, 4,096 features, k = 10
    python benchmarks/knn.py --items 50000 --dim 1024 --json out.json

What is measured, in one process:

* **approximate**: :func:`pyg_diffcl.ops.knn_graph` with ``method='faiss'`` (cosine, the item graph's
  setting), timed in full: the inverted file's k-means, adding every item, and searching every item;
* **exact**: the library's exact search (float32 products of unit rows, top-k, float64 re-scoring of
  near-ties), timed on ``--queries`` query items against all items and scaled to all items (its cost is
  linear in the queries);
* **recall**: for those query items, the share of the exact k neighbours that the approximate search found.

The features are synthetic, from :func:`pyg_diffcl.datasets.planted_interactions`' feature model: ``--topics``
topic centroids (standard normal) plus Gaussian noise of scale ``--noise`` per item, so that neighbours exist
as they do in real embeddings (unstructured Gaussian features have no near neighbours to find). With
``--tiktok`` the same comparison also runs, in full on both sides, on the embedded tiktok data set's real image
and audio features.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

from pyg_diffcl.ops import format_host, host_description, knn_graph
from pyg_diffcl.ops.ann import faiss_available, ivf_parameters
from pyg_diffcl.ops.knn import _exact_top_k, _pair_scores


def planted_features(n: int, dim: int, topics: int, noise: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    centroids = torch.randn(topics, dim, generator=g)
    topic = torch.randint(topics, (n,), generator=g)
    x = torch.empty(n, dim)
    for s in range(0, n, 8192):  # in chunks: no second n x dim temporary
        e = min(n, s + 8192)
        x[s:e] = centroids[topic[s:e]] + noise * torch.randn(e - s, dim, generator=g)
    return x


def exact_rows(x: torch.Tensor, rows: torch.Tensor, k: int) -> torch.Tensor:
    """The exact cosine neighbours (loop included, as the item graph) of the query rows: the library's exact
    kernel on that slice."""
    xn = torch.nn.functional.normalize(x, dim=1)
    eps = 8 * torch.finfo(torch.float32).eps * math.sqrt(x.size(1))
    out = []
    for s in range(0, rows.numel(), 512):
        r = rows[s:s + 512]
        score = xn[r] @ xn.t()
        tol = score.new_full((r.numel(), 1), eps)
        out.append(_exact_top_k(score, k, tol, lambda a, c, r=r: _pair_scores(x, r[a], c, True)))
    return torch.cat(out)


def compare(name: str, x: torch.Tensor, k: int, queries: int, seed: int) -> dict:
    n = x.size(0)
    rows = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:min(queries, n)].sort().values
    t0 = time.perf_counter()
    exact = exact_rows(x, rows, k)
    exact_s = (time.perf_counter() - t0) * n / rows.numel()
    t0 = time.perf_counter()
    ei = knn_graph(x, k, loop=True, cosine=True, method='faiss')
    approx_s = time.perf_counter() - t0
    approx = ei[0].view(n, k)[rows]
    hits = sum(len(set(a.tolist()) & set(b.tolist())) for a, b in zip(approx, exact))
    nlist, nprobe = ivf_parameters(n)
    res = {'data': name, 'items': n, 'dim': x.size(1), 'k': k, 'queries': rows.numel(), 'nlist': nlist,
           'nprobe': nprobe, 'exact_s_scaled': exact_s, 'faiss_s': approx_s, 'speedup': exact_s / approx_s,
           'recall': hits / (rows.numel() * k)}
    print(f"{name:>22s}: {n} items x {x.size(1)}  exact {exact_s:8.1f} s (scaled from {rows.numel()} queries)  "
          f"faiss {approx_s:7.1f} s (nlist {nlist}, nprobe {nprobe})  speed-up {res['speedup']:5.1f}x  "
          f"recall@{k} {res['recall']:.4f}", flush=True)
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--items', type=int, default=200_000)
    p.add_argument('--dim', type=int, default=4096)
    p.add_argument('--k', type=int, default=10)
    p.add_argument('--queries', type=int, default=2000)
    p.add_argument('--topics', type=int, default=1000)
    p.add_argument('--noise', type=float, default=2.0)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--tiktok', action='store_true', help="also on the embedded tiktok data set's features")
    p.add_argument('--json', default=None)
    args = p.parse_args()
    if not faiss_available():
        sys.exit('benchmarks/knn.py needs faiss: pip install pyg-diffcl[faiss] (or faiss-cpu)')
    print(format_host(host_description()), flush=True)
    results = []
    if args.tiktok:
        from pyg_diffcl.datasets import MMRecDataset
        ds = MMRecDataset('tiktok')
        for m, feat in ds.features().items():
            results.append(compare(f'tiktok {m}', feat.float(), args.k, args.queries, args.seed))
    x = planted_features(args.items, args.dim, args.topics, args.noise, args.seed)
    results.append(compare(f'planted (noise {args.noise})', x, args.k, args.queries, args.seed))
    if args.json:
        Path(args.json).write_text(json.dumps({'host': host_description(), 'args': vars(args),
                                               'results': results}, indent=2))


if __name__ == '__main__':
    main()
