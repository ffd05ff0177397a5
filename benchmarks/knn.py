r"""Exact k-nearest-neighbour graphs: our chunked :func:`pyg_diffcl.ops.knn_graph` vs PyG's (when pyg-lib is
installed) vs torch-cluster's (when installed) vs a brute-force dense product, on random features.

    python benchmarks/knn.py --quick                  # < 1 minute
    python benchmarks/knn.py                          # 1k-200k items, 128-4096 dims, cosine and Euclidean
    python benchmarks/knn.py --cases 7000:4096 --metrics cosine --json knn.json
    python benchmarks/knn.py --device cuda

Per case (``items:dim``) and metric, each implementation builds the :math:`k`-NN graph (no self-loops) of
``items`` random feature rows; the table gives the median seconds of ``--repeats`` runs, the peak memory
above what the process held before (CPU: growth of the peak resident set, Linux ``/proc/self/clear_refs``;
CUDA: ``max_memory_allocated``), and exactness: the recall of the true neighbours of up to 500 sampled
centres, computed separately in float64 (1.0 = exact).

torch-cluster's ``knn_graph`` has no cosine mode: for cosine it gets the L2-normalised rows (the Euclidean
order of unit vectors is the cosine order), the normalisation included in its time. The brute force (one
``N x N`` product and ``topk``) runs where the similarity matrix fits in ``--brute-max-gib``; torch-cluster
up to ``--cluster-max-items`` items (on 20,000 x 384 it ran for over 10 minutes here).

With ``--approx`` it compares instead the approximate search for large catalogues,
``knn_graph(..., method='faiss')`` (needs faiss), with the exact one:

    python benchmarks/knn.py --approx --tiktok --json benchmarks/results/knn.json   # 200k items x 4,096 dims

* **approximate**: cosine (the item graph's setting), self included, timed in full: faiss' k-means, the
  assignment and probes, and the cluster-by-cluster products;
* **exact**: the library's exact kernel (float32 products of unit rows, top-k, float64 re-scoring of
  near-ties), timed on ``--queries`` query items against all items and scaled to all items (its cost is
  linear in the queries);
* **recall**: for those query items, the share of the exact k neighbours that the approximate search found.

Its features are synthetic, from :func:`pyg_diffcl.datasets.planted_interactions`' feature model: ``--topics``
topic centroids (standard normal) plus Gaussian noise of scale ``--noise`` per item, so that neighbours exist
as they do in real embeddings (unstructured Gaussian features have no near neighbours to find). With
``--tiktok`` the same comparison also runs on the embedded tiktok data set's real image and audio features.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import torch
from torch import Tensor

import torch_geometric.typing as pyg_typing
from pyg_diffcl.ops import format_host, host_description, knn_graph, tune_allocator
from pyg_diffcl.ops.ann import faiss_available, ivf_parameters
from pyg_diffcl.ops.knn import _exact_top_k, _pair_scores

sys.path.insert(0, str(Path(__file__).resolve().parent))
from propagation import peak_mib, sync  # noqa: E402  (shared timing helpers of the benchmarks)

DEFAULT_CASES = '1000:128,1000:4096,7000:128,7000:4096,50000:384,200000:384'


def brute_force(x: Tensor, k: int, cosine: bool) -> Tensor:
    """Dense all-pairs similarity and ``topk``, same ``edge_index`` layout as ``knn_graph``."""
    if cosine:
        x = torch.nn.functional.normalize(x, dim=-1)
        score = x @ x.t()
    else:
        score = -torch.cdist(x, x).pow(2)
    score.fill_diagonal_(float('-inf'))
    nbr = score.topk(k, dim=1).indices
    centre = torch.arange(x.size(0), device=x.device).repeat_interleave(k)
    return torch.stack([nbr.reshape(-1), centre])


def torch_cluster_knn(x: Tensor, k: int, cosine: bool) -> Tensor:
    import torch_cluster
    if cosine:
        x = torch.nn.functional.normalize(x, dim=-1)
    return torch_cluster.knn_graph(x, k, loop=False, flow='source_to_target')


def true_neighbours(x: Tensor, centres: Tensor, k: int, cosine: bool) -> Tensor:
    """The exact :obj:`k` neighbours of :obj:`centres`, in float64 (self excluded)."""
    xd = x.double()
    if cosine:
        xd = torch.nn.functional.normalize(xd, dim=-1)
        score = xd[centres] @ xd.t()
    else:
        score = -torch.cdist(xd[centres], xd).pow(2)
    score[torch.arange(centres.numel()), centres] = float('-inf')
    return score.topk(k, dim=1).indices


def recall(edge_index: Tensor, centres: Tensor, truth: Tensor, n: int) -> float:
    src, dst = edge_index[0].cpu(), edge_index[1].cpu()
    found = torch.zeros(n, dtype=torch.bool)
    hits = 0
    for row, c in enumerate(centres.tolist()):
        found.zero_()
        found[src[dst == c]] = True
        hits += int(found[truth[row]].sum())
    return hits / truth.numel()


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


def compare_approx(name: str, x: torch.Tensor, k: int, queries: int, seed: int) -> dict:
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


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--quick', action='store_true', help='small cases, one repeat (< 1 minute)')
    p.add_argument('--cases', default=DEFAULT_CASES, help='comma-separated ITEMS:DIM')
    p.add_argument('--metrics', default='cosine,euclidean')
    p.add_argument('--k', type=int, default=10)
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--device', default='cpu')
    p.add_argument('--brute-max-gib', type=float, default=2.0)
    p.add_argument('--cluster-max-items', type=int, default=7000,
                   help="run torch-cluster's knn_graph up to this many items (it is minutes beyond)")
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--json', default=None)
    a = p.add_argument_group('--approx: faiss against the exact search')
    a.add_argument('--approx', action='store_true', help="compare knn_graph(method='faiss') with the exact search")
    a.add_argument('--items', type=int, default=200_000)
    a.add_argument('--dim', type=int, default=4096)
    a.add_argument('--queries', type=int, default=2000)
    a.add_argument('--topics', type=int, default=1000)
    a.add_argument('--noise', type=float, default=2.0)
    a.add_argument('--tiktok', action='store_true', help="also on the embedded tiktok data set's features")
    args = p.parse_args(argv)
    if args.approx:
        return approx_main(args)
    if args.quick:
        args.cases, args.repeats = '1000:128,7000:4096,20000:384', 1
    device = torch.device(args.device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        print('error: --device cuda, but torch finds no CUDA device', file=sys.stderr)
        return 2
    tune_allocator()
    impls: Dict[str, Callable[[Tensor, int, bool], Tensor]] = {
        'ours': lambda x, k, c: knn_graph(x, k, cosine=c, use_pyg=False)}
    if pyg_typing.WITH_KNN:
        from torch_geometric.nn.pool import knn_graph as pyg_knn
        impls['pyg'] = lambda x, k, c: pyg_knn(x, k, cosine=c)
    try:
        import torch_cluster  # noqa: F401
        impls['torch_cluster'] = torch_cluster_knn
    except ImportError:
        pass
    impls['brute'] = brute_force
    print(f"device {device}; implementations: {', '.join(impls)}; k = {args.k}")
    print(f"{'impl':14s}{'items':>8s}{'dim':>6s}{'metric':>10s}{'seconds':>10s}{'peak_MiB':>10s}{'recall':>8s}"
          f"{'vs ours':>9s}")
    g = torch.Generator().manual_seed(args.seed)
    rows = []
    for case in args.cases.split(','):
        n, dim = (int(v) for v in case.split(':'))
        x = torch.randn(n, dim, generator=g).to(device)
        centres = torch.randperm(n, generator=g)[:min(n, 500)]
        for metric in args.metrics.split(','):
            cosine = metric == 'cosine'
            truth = true_neighbours(x.cpu(), centres, args.k, cosine)
            ours_s = None
            for name, fn in impls.items():
                if name == 'brute' and n * n * 4 / 2**30 > args.brute_max_gib:
                    continue
                if name == 'torch_cluster' and n > args.cluster_max_items:
                    continue
                times = []
                for _ in range(args.repeats):
                    sync(device)
                    t0 = time.perf_counter()
                    ei = fn(x, args.k, cosine)
                    sync(device)
                    times.append(time.perf_counter() - t0)
                    del ei
                sec = statistics.median(times)
                out: List[Tensor] = []
                peak = peak_mib(lambda: out.append(fn(x, args.k, cosine)), device)
                rec = recall(out[0], centres, truth, n)
                del out
                ours_s = sec if name == 'ours' else ours_s
                vs = f'{sec / ours_s:.1f}x' if ours_s else '-'
                peak_s = '-' if peak is None else f'{peak:.0f}'
                print(f'{name:14s}{n:8d}{dim:6d}{metric:>10s}{sec:10.3f}{peak_s:>10s}{rec:8.4f}{vs:>9s}', flush=True)
                rows.append(dict(impl=name, items=n, dim=dim, metric=metric, k=args.k, seconds=round(sec, 4),
                                 peak_mib=None if peak is None else round(peak, 1), recall=rec))
        del x
    if args.json:
        Path(args.json).write_text(json.dumps({'device': str(device), 'results': rows}, indent=1))
    return 0


def approx_main(args: argparse.Namespace) -> int:
    if not faiss_available():
        print('error: --approx needs faiss: pip install pyg-diffcl[faiss] (or faiss-cpu)', file=sys.stderr)
        return 2
    print(format_host(host_description()), flush=True)
    results = []
    if args.tiktok:
        from pyg_diffcl.datasets import MMRecDataset
        for m, feat in MMRecDataset('tiktok').features().items():
            results.append(compare_approx(f'tiktok {m}', feat.float(), args.k, args.queries, args.seed))
    x = planted_features(args.items, args.dim, args.topics, args.noise, args.seed)
    results.append(compare_approx(f'planted (noise {args.noise})', x, args.k, args.queries, args.seed))
    if args.json:
        Path(args.json).write_text(json.dumps({'host': host_description(), 'args': vars(args),
                                               'results': results}, indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(main())
