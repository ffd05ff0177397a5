r"""LightGCN propagation on every sparse backend, against PyG's stock layers and a memory-bandwidth bound
measured in the same run: the script to run before choosing ``backend=`` for your hardware.

    python benchmarks/propagation.py --quick                   # < 1 minute: Baby-sized graph, d = 64, 1 layer
    python benchmarks/propagation.py                           # baby, sports, tiktok; d 32/64/128; 1-4 layers
    python benchmarks/propagation.py --device cuda --json cuda.json
    python benchmarks/propagation.py --graphs 200000x50000x2000000 --dims 64 --layers 2

What is timed, per row: :math:`K` layers of LightGCN propagation with the layer mean,
:math:`\sum_k \frac{1}{K+1}\mathbf{A}^k\mathbf{E}` over the symmetric normalised user-item adjacency
:math:`\mathbf{A}` (``n_nodes`` = users + items, ``nnz`` = its non-zeros, twice the interactions), from
embeddings that require gradients. ``fwd_ms`` is the forward pass, ``fwdbwd_ms`` forward plus backward to the
embeddings: medians of ``--repeats`` after warm-up (CUDA events on GPU). Every backend of
:data:`pyg_diffcl.ops.BACKENDS` runs through our :class:`~pyg_diffcl.nn.LightGCNPropagation` on a
:class:`~pyg_diffcl.ops.BipartiteAdj` prepared once. The baselines are what a PyG user writes today:
``pyg-lgconv`` is :math:`K` calls of PyG's ``LGConv`` on the homogeneous ``edge_index`` (normalising in
every call, as ``LGConv`` does), ``pyg-lightgcn`` is PyG's ``LightGCN.get_embedding(edge_index)``. PyG at its
documented best for a fixed graph is ``pyg-lgconv-cached``: ``LGConv(normalize=False)`` on a ``SparseTensor``
``adj_t`` normalised once with ``gcn_norm`` (needs torch-sparse). ``pyg-dropin-lightgcn`` is
:class:`pyg_diffcl.nn.LightGCN` called exactly as PyG's class is.

Bound: a STREAM-style copy of two 512 MiB buffers gives the bandwidth :math:`B` (``bandwidth_gbs``, bytes
read plus written per second). One product :math:`\mathbf{A}\mathbf{X}` must at least read the CSR
structure once (32-bit column index and fp32 value per non-zero, a 32-bit row pointer per row), read
:math:`\mathbf{X}` once and write the result once: :math:`8\,\mathrm{nnz} + 4(n+1) + 8nd` bytes. Forward
plus backward is :math:`2K` products, so ``bound_fwdbwd_ms`` :math:`= 2K(8\,\mathrm{nnz} + 4(n+1) + 8nd)/B`.
It ignores the gathers' re-reads of :math:`\mathbf{X}` (which the caches serve) and the layer sums, so it
is a lower bound on DRAM traffic time; a graph that fits in the last-level cache can beat it.

Peak memory (``peak_mib``): on CPU the growth of the process's peak resident set over one forward+backward
(Linux ``/proc/self/clear_refs``), with glibc told to map every buffer of 64 KiB and more afresh for that
call and freed heap pages returned first (``malloc_trim``), so that reused memory counts; on CUDA ``torch.cuda.max_memory_allocated`` above what was allocated before.

``--json FILE`` writes ``{"device", "host", "bandwidth_gbs", "results": [{"backend", "graph", "n_nodes",
"nnz", "dim", "layers", "fwd_ms", "fwdbwd_ms", "bound_fwdbwd_ms", "peak_mib"}, ...]}``; ``host`` (also the
first line printed) names the CPU, its cores, torch's threads, the instruction set and the BLAS, since the
ratio to the bound differs between CPUs of one machine kind.
"""
from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import torch
from torch import Tensor

from pyg_diffcl.datasets import powerlaw_interactions
from pyg_diffcl.nn import LightGCNPropagation
from pyg_diffcl.ops import (BipartiteAdj, available_backends, format_host, host_description, resolve_backend,
                            tune_allocator)
from pyg_diffcl.ops.allocator import DEFAULT_MMAP_THRESHOLD, M_MMAP_THRESHOLD

#: Synthetic graphs of the sizes of MMRec's Amazon sets (users, items, interactions), power-law degrees.
NAMED_GRAPHS = {
    'baby': (19445, 7050, 160792),
    'sports': (35598, 18357, 296337),
    'clothing': (39387, 23033, 278677),
}
BASELINES = ('pyg-lgconv', 'pyg-lgconv-cached', 'pyg-lightgcn', 'pyg-dropin-lightgcn')


def sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize()


def median_ms(fn: Callable[[], object], repeats: int, device: torch.device, warmup: int = 2) -> float:
    """Median milliseconds of :obj:`repeats` calls after :obj:`warmup` calls (CUDA events on GPU)."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        if device.type == 'cuda':
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def stream_copy_gbs(device: torch.device, mib: int = 512, repeats: int = 10) -> float:
    """Bandwidth of a copy between two :obj:`mib` MiB buffers, counting bytes read plus written."""
    n = mib * 2**20 // 4
    a = torch.ones(n, device=device)
    b = torch.empty_like(a)
    ms = median_ms(lambda: b.copy_(a), repeats, device)
    del a, b
    return 2 * n * 4 / (ms * 1e-3) / 1e9


def _status_kib(field: str) -> int:
    for line in Path('/proc/self/status').read_text().splitlines():
        if line.startswith(field + ':'):
            return int(line.split()[1])
    raise KeyError(field)


def peak_mib(fn: Callable[[], object], device: torch.device) -> Optional[float]:
    """Extra memory at the peak of one call of :obj:`fn` (see the module docstring)."""
    if device.type == 'cuda':
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
        # Map every buffer of 64 KiB and more afresh (and unmap it when freed) for this one call, so that the
        # resident set follows the live tensors instead of reusing freed heap memory; then restore the
        # library's setting (tune_allocator).
        libc.mallopt(M_MMAP_THRESHOLD, 64 << 10)
        libc.malloc_trim(0)  # and give the freed heap pages back, so that reusing them shows as growth
        Path('/proc/self/clear_refs').write_text('5')  # reset the peak resident set to the current one
        base = _status_kib('VmRSS')
        fn()
        return max(_status_kib('VmHWM') - base, 0) / 1024
    except (OSError, AttributeError):  # not Linux/glibc, or not permitted
        return None
    finally:
        if 'libc' in locals():
            libc.mallopt(M_MMAP_THRESHOLD, DEFAULT_MMAP_THRESHOLD)


def load_graph(spec: str, seed: int) -> Tuple[str, Tensor, int, int]:
    """``(name, [2, E] user-item pairs, users, items)`` for a named graph, ``tiktok`` / a data directory
    (its training interactions), or ``USERSxITEMSxINTERACTIONS``."""
    if spec in NAMED_GRAPHS:
        u, i, e = NAMED_GRAPHS[spec]
        return spec, powerlaw_interactions(u, i, e, seed=seed), u, i
    parts = spec.lower().split('x')
    if len(parts) == 3 and all(p.isdigit() for p in parts):
        u, i, e = map(int, parts)
        return spec, powerlaw_interactions(u, i, e, seed=seed), u, i
    from pyg_diffcl.datasets import MMRecDataset
    from pyg_diffcl.datasets.mmrec import EDGE_TYPE
    ds = MMRecDataset(spec, modalities=[])
    return ds.name, ds[0][EDGE_TYPE].edge_index, ds.num_users, ds.num_items


def bytes_per_product(n: int, nnz: int, dim: int) -> int:
    return 8 * nnz + 4 * (n + 1) + 8 * n * dim


def homogeneous(ei: Tensor, num_users: int) -> Tensor:
    """The user-item pairs as one undirected ``edge_index`` over users then items (PyG's ``LightGCN`` layout)."""
    user, item = ei[0], ei[1] + num_users
    return torch.cat([torch.stack([user, item]), torch.stack([item, user])], 1)


def make_runner(backend: str, ei: Tensor, U: int, I: int, dim: int, layers: int, device: torch.device,
                seed: int) -> Tuple[Callable[[], object], Callable[[], object]]:
    """``(forward, forward_and_backward)`` closures for one backend (ours or a baseline)."""
    g = torch.Generator().manual_seed(seed)
    N = U + I
    if backend in ('pyg-lightgcn', 'pyg-dropin-lightgcn'):
        from torch_geometric.nn.models import LightGCN as PyGLightGCN
        from pyg_diffcl.nn import LightGCN as DropIn
        homo = homogeneous(ei, U).to(device)
        model = (PyGLightGCN if backend == 'pyg-lightgcn' else DropIn)(N, dim, layers).to(device)
        grad = torch.randn(N, dim, generator=g).to(device)
        fwd = lambda: model.get_embedding(homo)  # noqa: E731
        def fwdbwd():
            model.embedding.weight.grad = None
            model.get_embedding(homo).backward(grad)
        return fwd, fwdbwd
    x = torch.randn(N, dim, generator=g).to(device).requires_grad_()
    grad = torch.randn(N, dim, generator=g).to(device)
    if backend in ('pyg-lgconv', 'pyg-lgconv-cached'):
        from torch_geometric.nn import LGConv
        homo = homogeneous(ei, U).to(device)
        conv = LGConv(normalize=backend == 'pyg-lgconv').to(device)
        if backend == 'pyg-lgconv-cached':  # PyG's practice for a fixed graph: normalise once, adj_t
            from torch_geometric.nn.conv.gcn_conv import gcn_norm
            from torch_sparse import SparseTensor
            homo = gcn_norm(SparseTensor(row=homo[1], col=homo[0], sparse_sizes=(N, N)), add_self_loops=False)

        def fwd() -> Tensor:
            out, h = x, x
            for _ in range(layers):
                h = conv(h, homo)
                out = out + h
            return out / (layers + 1)
    else:
        adj = BipartiteAdj(ei.to(device), U, I, backend=backend)
        prop = LightGCNPropagation(layers, 'mean').to(device)
        # users and items are separate parameters, as in every model of the library
        xu, xi = x[:U].detach().clone().requires_grad_(), x[U:].detach().clone().requires_grad_()
        gu, gi = grad[:U].contiguous(), grad[U:].contiguous()

        def fwd() -> Tuple[Tensor, Tensor]:
            return prop(adj, xu, xi)

        def fwdbwd() -> None:
            xu.grad = xi.grad = None
            torch.autograd.backward(fwd(), (gu, gi))
        return fwd, fwdbwd

    def fwdbwd_homo() -> None:
        x.grad = None
        fwd().backward(grad)
    return fwd, fwdbwd_homo


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--quick', action='store_true', help='baby graph, d = 64, 1 layer, fewer repeats (< 1 min)')
    p.add_argument('--device', default='cpu')
    p.add_argument('--graphs', default='baby,sports,tiktok',
                   help=f"comma-separated: {', '.join(NAMED_GRAPHS)}, tiktok or a data directory, or UxIxE")
    p.add_argument('--dims', default='32,64,128')
    p.add_argument('--layers', default='1,2,3,4')
    p.add_argument('--backends', default='all', help="comma-separated backends and baselines, or 'all'")
    p.add_argument('--repeats', type=int, default=20)
    p.add_argument('--threads', type=int, default=None)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--json', default=None, help='write the figures to this JSON file')
    args = p.parse_args(argv)
    if args.quick:
        args.graphs, args.dims, args.layers, args.repeats = 'baby', '64', '1', 10
    device = torch.device(args.device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        print('error: --device cuda, but torch finds no CUDA device', file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    tune_allocator()  # the library's own setting (pyg-diffcl train does the same), for every row alike
    warnings.simplefilter('ignore', UserWarning)  # torch's sparse-CSR beta notices
    import torch_geometric.typing
    names = list(available_backends()) + [b for b in BASELINES if b != 'pyg-lgconv-cached'
                                          or torch_geometric.typing.WITH_TORCH_SPARSE]
    if args.backends != 'all':
        names = [b.strip() for b in args.backends.split(',')]
        for b in names:
            if b not in BASELINES:
                resolve_backend(b)
    dims = [int(d) for d in args.dims.split(',')]
    layer_counts = [int(k) for k in args.layers.split(',')]

    bw = stream_copy_gbs(device)
    dev_name = torch.cuda.get_device_name(device) if device.type == 'cuda' else \
        f'cpu ({torch.get_num_threads()} threads)'
    host = host_description(device)
    print(format_host(host))
    print(f'device {dev_name}; STREAM-style copy bandwidth {bw:.1f} GB/s; auto = {resolve_backend("auto", device)}')
    head = (f"{'backend':20s}{'graph':>10s}{'n_nodes':>9s}{'nnz':>10s}{'dim':>5s}{'K':>3s}{'fwd_ms':>9s}"
            f"{'fwdbwd_ms':>11s}{'bound_ms':>10s}{'x bound':>8s}{'GB/s':>7s}{'peak_MiB':>9s}{'vs LGConv':>10s}")
    results: List[Dict[str, object]] = []
    for spec in args.graphs.split(','):
        name, ei, U, I = load_graph(spec.strip(), args.seed)
        n, nnz = U + I, 2 * ei.size(1)
        print(f'\n{name}: {U} users, {I} items, {ei.size(1)} interactions (nnz {nnz})')
        print(head)
        for dim in dims:
            for layers in layer_counts:
                bound = 2 * layers * bytes_per_product(n, nnz, dim) / (bw * 1e9) * 1e3
                rows = []
                for backend in names:
                    fwd, fwdbwd = make_runner(backend, ei, U, I, dim, layers, device, args.seed)
                    f_ms = median_ms(fwd, args.repeats, device)
                    fb_ms = median_ms(fwdbwd, args.repeats, device)
                    peak = peak_mib(fwdbwd, device)
                    rows.append(dict(backend=backend, graph=name, n_nodes=n, nnz=nnz, dim=dim, layers=layers,
                                     fwd_ms=round(f_ms, 4), fwdbwd_ms=round(fb_ms, 4),
                                     bound_fwdbwd_ms=round(bound, 4),
                                     peak_mib=None if peak is None else round(peak, 2)))
                    del fwd, fwdbwd
                ref = next((r['fwdbwd_ms'] for r in rows if r['backend'] == 'pyg-lgconv'), None)
                for r in rows:
                    fb = float(r['fwdbwd_ms'])
                    gbs = 2 * layers * bytes_per_product(n, nnz, dim) / (fb * 1e-3) / 1e9
                    peak_s = '-' if r['peak_mib'] is None else f"{r['peak_mib']:.1f}"
                    vs = '-' if ref is None else f'{ref / fb:.2f}x'
                    print(f"{r['backend']:20s}{name:>10s}{n:9d}{nnz:10d}{dim:5d}{layers:3d}{r['fwd_ms']:9.2f}"
                          f"{fb:11.2f}{bound:10.2f}{fb / bound:8.2f}{gbs:7.1f}{peak_s:>9s}{vs:>10s}", flush=True)
                results.extend(rows)
    if args.json:
        Path(args.json).write_text(json.dumps({'device': dev_name, 'host': host, 'bandwidth_gbs': round(bw, 3),
                                               'results': results}, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
