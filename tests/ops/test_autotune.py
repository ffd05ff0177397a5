"""``backend='auto'``: the probe graph, the timing, the choice with its margin, and the per-process memo."""
import pytest
import torch

from pyg_diffcl.ops import Adjacency, available_backends, resolve_backend
from pyg_diffcl.ops import autotune


@pytest.fixture
def fresh_auto():
    """An empty memo for the test, the process's own restored after it."""
    saved = dict(autotune._AUTO)
    autotune._AUTO.clear()
    yield autotune._AUTO
    autotune._AUTO.clear()
    autotune._AUTO.update(saved)


def test_probe_graph_is_the_normalised_matrix_of_distinct_pairs():
    index, weight, size = autotune.probe_graph(num_users=30, num_items=12, num_edges=200, seed=3)
    assert size == (30, 12)
    pairs = set(map(tuple, index.t().tolist()))
    assert len(pairs) == index.size(1)  # no duplicate (user, item)
    dense = torch.zeros(size)
    dense[index[0], index[1]] = 1.0
    du, di = dense.sum(1), dense.sum(0)
    want = dense / (du.clamp(min=1).sqrt()[:, None] * di.clamp(min=1).sqrt()[None, :])
    got = torch.zeros(size)
    got[index[0], index[1]] = weight
    assert torch.allclose(got, want)
    # popular items by rank: item 0 is drawn more often than the last one
    assert di[0] > di[-1]


def test_time_backends_times_each_requested_backend():
    index, weight, size = autotune.probe_graph(num_users=40, num_items=20, num_edges=150)
    times = autotune.time_backends(index, weight, size, backends=['csr', 'index_add'], dim=8, repeats=2)
    assert set(times) == {'csr', 'index_add'} and all(t > 0 for t in times.values())
    with pytest.raises(ValueError, match='backends: unknown'):
        autotune.time_backends(index, weight, size, backends=['cuSPARSE'])
    with pytest.raises(ValueError, match='give all three'):
        autotune.time_backends(index, weight)
    with pytest.raises(ValueError, match='repeats'):
        autotune.time_backends(index, weight, size, repeats=0)


def test_choose_backend_keeps_the_default_within_the_margin():
    assert autotune.choose_backend({'csr': 1.0, 'edge_index': 0.95}) == 'csr'  # 5 % faster: noise
    assert autotune.choose_backend({'csr': 1.0, 'edge_index': 0.85}) == 'edge_index'
    assert autotune.choose_backend({'csr': 1.0, 'edge_index': 1.2}) == 'csr'
    assert autotune.choose_backend({'index_add': 3.0, 'edge_index': 2.0}) == 'edge_index'  # no default timed
    assert autotune.choose_backend({'csr': 1.0, 'edge_index': 0.95}, margin=0.0) == 'edge_index'
    with pytest.raises(ValueError, match='times'):
        autotune.choose_backend({})


def test_auto_is_timed_once_per_device_then_kept(fresh_auto, monkeypatch):
    calls = []

    def fake(**kwargs):
        calls.append(kwargs.get('device'))
        return {'csr': 1.0, 'index_add': 0.5}
    monkeypatch.setattr(autotune, 'time_backends', fake)
    assert resolve_backend('auto') == 'index_add'
    assert resolve_backend('auto', 'cpu') == 'index_add'
    index = torch.tensor([[0, 1], [1, 0]])
    assert Adjacency(index, torch.ones(2), (2, 2)).backend == 'index_add'
    assert calls == ['cpu']
    autotune.set_auto_backend('csr')  # pinned: no timing
    assert resolve_backend('auto') == 'csr' and len(calls) == 1
    autotune.set_auto_backend(None)  # cleared: timed again at the next use
    assert resolve_backend('auto') == 'index_add' and len(calls) == 2


def test_set_auto_backend_refuses_what_cannot_stand_for_auto(fresh_auto):
    with pytest.raises(ValueError, match="got 'auto'"):
        autotune.set_auto_backend('auto')
    with pytest.raises(ValueError, match='unknown sparse backend'):
        autotune.set_auto_backend('dense')
    assert 'cpu' not in fresh_auto


def test_auto_on_this_host_is_an_available_backend(fresh_auto):
    assert resolve_backend('auto') in available_backends()
