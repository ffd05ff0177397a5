r"""What ``backend='auto'`` stands for: the fastest sparse backend on the host at hand, timed once.

The sparse products of LightGCN-style propagation are memory-bound, and which kernel is fastest depends on
the CPU or GPU: on one host MKL's CSR product (``'csr'``) beat PyG's ``EdgeIndex`` product several times
over, on another CPU of the same machine kind the two were about as fast. So ``'auto'`` is decided by a
measurement on the host, not by a table: at its first use on a device, :func:`auto_backend` times one
forward plus backward product :math:`\mathbf{Y} = \hat{\mathbf{R}}\mathbf{X}`,
:math:`\partial L/\partial\mathbf{X} = \hat{\mathbf{R}}^\top \partial L/\partial\mathbf{Y}` on every
available backend over a probe graph (:func:`probe_graph`: power-law degrees, the size of MMRec's Amazon Baby
set, :math:`d = 64`) and keeps the winner for the rest of the process (:func:`choose_backend`). It takes
well under a second on a CPU.

Two runs of the same seed are bit-identical only on the same backend (the backends sum in different
orders), so the choice keeps a default unless another backend beats it by a margin, and an application can
pin it (:func:`set_auto_backend`): ``pyg-diffcl`` records each run's backend, resumes on it, and keeps one
choice per host in its cache directory, so that every process on a host agrees.
"""
from __future__ import annotations

import time
from typing import Dict, Optional, Sequence, Tuple

import torch
from torch import Tensor

#: The backend ``'auto'`` keeps unless another one is faster by :data:`AUTO_MARGIN` (its relative time).
AUTO_DEFAULT = 'csr'
#: How much faster than :data:`AUTO_DEFAULT` another backend must be for ``'auto'`` to take it.
AUTO_MARGIN = 0.1
#: The probe graph's size: users, items and interactions of MMRec's Amazon Baby set.
PROBE_SIZE = (19445, 7050, 160792)

#: ``'auto'`` per device, decided at first use in this process (or pinned by :func:`set_auto_backend`).
_AUTO: Dict[str, str] = {}


def _key(device: Optional[torch.device | str]) -> str:
    device = torch.device('cpu' if device is None else device)
    if device.type == 'cuda' and device.index is None:
        device = torch.device('cuda', torch.cuda.current_device())
    return str(device)


def probe_graph(num_users: int = PROBE_SIZE[0], num_items: int = PROBE_SIZE[1],
                num_edges: int = PROBE_SIZE[2], exponent: float = 0.8, seed: int = 0,
                device: Optional[torch.device | str] = None) -> Tuple[Tensor, Tensor, Tuple[int, int]]:
    r"""A synthetic user-item matrix :math:`\hat{\mathbf{R}}` to time the backends on: users drawn uniformly,
    items with probability :math:`\propto r^{-\text{exponent}}` by popularity rank :math:`r`, duplicate pairs
    dropped, symmetric normalisation
    :math:`\hat r_{ui} = 1/\sqrt{d_u d_i}`.

    Returns:
        ``(index [2, E] of (user, item), weight [E], (num_users, num_items))`` on :obj:`device`.
    """
    if min(num_users, num_items, num_edges) < 1:
        raise ValueError(f'num_users, num_items, num_edges: expected positive sizes, got '
                         f'{num_users}, {num_items}, {num_edges}')
    gen = torch.Generator().manual_seed(seed)
    users = torch.randint(num_users, (num_edges,), generator=gen)
    popularity = torch.arange(1, num_items + 1, dtype=torch.float64).pow(-exponent)
    items = torch.multinomial(popularity, num_edges, replacement=True, generator=gen)
    index = torch.unique(users * num_items + items)
    index = torch.stack([index // num_items, index % num_items])
    deg_u = torch.bincount(index[0], minlength=num_users).float()
    deg_i = torch.bincount(index[1], minlength=num_items).float()
    weight = (deg_u[index[0]] * deg_i[index[1]]).rsqrt()
    return index.to(device), weight.to(device), (num_users, num_items)


def time_backends(index: Optional[Tensor] = None, weight: Optional[Tensor] = None,
                  size: Optional[Tuple[int, int]] = None, backends: Optional[Sequence[str]] = None,
                  dim: int = 64, repeats: int = 7, device: Optional[torch.device | str] = None
                  ) -> Dict[str, float]:
    r"""Seconds of one forward plus backward :math:`\mathbf{M}\mathbf{X}` (``[n_src, dim]``
    :math:`\mathbf{X}` that requires gradients) on each backend: the fastest of :obj:`repeats` calls,
    taken in turn across the backends after one warm-up round.

    Args:
        index (Tensor, optional): ``[2, E]`` (dst, src) pairs of :math:`\mathbf{M}`; the
            :func:`probe_graph` when :obj:`None`.
        weight (Tensor, optional): ``[E]`` values of :math:`\mathbf{M}`.
        size (Tuple[int, int], optional): :math:`(n_\text{dst}, n_\text{src})`.
        backends (Sequence[str], optional): The backends to time (default: every available one).
        dim (int): The number of columns of :math:`\mathbf{X}`. (default: :obj:`64`)
        repeats (int): Timed rounds. (default: :obj:`7`)
        device (torch.device or str, optional): Where to time (default: :obj:`index`'s device, else CPU).
    """
    from .adj import Adjacency, available_backends, BACKENDS
    if (index is None) != (weight is None) or (index is None) != (size is None):
        raise ValueError('index, weight, size: give all three, or none for the probe graph')
    if repeats < 1 or dim < 1:
        raise ValueError(f'repeats, dim: expected positive values, got {repeats}, {dim}')
    if index is None:
        index, weight, size = probe_graph(device=device)
    elif device is not None:
        index, weight = index.to(device), weight.to(device)
    device = index.device
    backends = available_backends() if backends is None else list(backends)
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown:
        raise ValueError(f'backends: unknown {unknown} (choose from {", ".join(BACKENDS)})')
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(size[1], dim, generator=gen).to(device).requires_grad_()
    grad = torch.randn(size[0], dim, generator=gen).to(device)

    def sync() -> None:
        if device.type == 'cuda':
            torch.cuda.synchronize(device)

    adjs = {}
    for backend in backends:
        adjs[backend] = Adjacency(index, weight, size, backend)
        adjs[backend].t()  # prepared once, as in training
    samples: Dict[str, list] = {b: [] for b in backends}
    # Round-robin over the backends, the first round a warm-up, and the fastest call of each: a busy host
    # slows single calls at random, and interleaving spreads that over every backend alike.
    for i in range(repeats + 1):
        for backend, adj in adjs.items():
            x.grad = None
            sync()
            start = time.perf_counter()
            adj.matmul(x).backward(grad)
            sync()
            if i:
                samples[backend].append(time.perf_counter() - start)
    return {b: min(t) for b, t in samples.items()}


def choose_backend(times: Dict[str, float], default: str = AUTO_DEFAULT, margin: float = AUTO_MARGIN) -> str:
    r"""The fastest backend of :obj:`times`, except that :obj:`default` stays unless another one takes at
    most :math:`(1 - \text{margin})` of its time (so that timing noise between two nearly equal backends
    does not flip the choice from one process to the next)."""
    if not times:
        raise ValueError('times: expected at least one timed backend')
    fastest = min(times, key=times.__getitem__)
    if default in times and times[fastest] > (1.0 - margin) * times[default]:
        return default
    return fastest


def auto_backend(device: Optional[torch.device | str] = None) -> str:
    r"""The backend ``'auto'`` stands for on :obj:`device` (CPU by default): timed on the probe graph at the
    first call for that device in this process (:func:`time_backends`, :func:`choose_backend`), then kept.
    Timed at torch's thread count of that moment."""
    key = _key(device)
    if key not in _AUTO:
        _AUTO[key] = choose_backend(time_backends(device=key))
    return _AUTO[key]


def set_auto_backend(backend: Optional[str], device: Optional[torch.device | str] = None) -> None:
    r"""Fix what ``'auto'`` stands for on :obj:`device` for the rest of the process, or with :obj:`None` let
    the next use time the backends again. For applications (a resumed run must keep its backend); a library
    user names a backend instead."""
    key = _key(device)
    if backend is None:
        _AUTO.pop(key, None)
        return
    from .adj import resolve_backend
    if backend == 'auto':
        raise ValueError("backend: expected a named backend to stand for 'auto', got 'auto'")
    _AUTO[key] = resolve_backend(backend, key)
