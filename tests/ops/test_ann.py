"""Approximate kNN on faiss: exact when one cluster holds everything, high recall on clustered features, the
knn_graph layout, the automatic switch, and everything exact without faiss."""
import subprocess
import sys

import pytest
import torch

from pyg_diffcl.ops import knn_graph
from pyg_diffcl.ops import ann

faiss = pytest.importorskip('faiss')


def clustered(n, dim, topics, noise, seed=0):
    g = torch.Generator().manual_seed(seed)
    centroids = torch.randn(topics, dim, generator=g)
    return centroids[torch.randint(topics, (n,), generator=g)] + noise * torch.randn(n, dim, generator=g)


def exact_neighbours(x, k, loop, cosine):
    ei = knn_graph(x, k, loop=loop, cosine=cosine, flow='target_to_source')
    return ei[1].view(x.size(0), -1)


@pytest.mark.parametrize('cosine', [True, False])
@pytest.mark.parametrize('loop', [True, False])
def test_one_cluster_is_the_exact_search(cosine, loop):
    x = torch.randn(300, 16, generator=torch.Generator().manual_seed(1))
    got = ann.faiss_knn(x, 7, loop=loop, cosine=cosine, nlist=1, nprobe=1)
    # the same neighbours (two at an equal distance may come in either order: no index tie rule here)
    assert torch.equal(got.sort(1).values, exact_neighbours(x, 7, loop, cosine).sort(1).values)
    if not loop:
        assert not bool((got == torch.arange(300).view(-1, 1)).any())


def test_recall_on_clustered_features_and_faiss_threads_restored():
    x = clustered(4000, 32, topics=40, noise=0.5)
    before = faiss.omp_get_max_threads()
    got = ann.faiss_knn(x, 10, loop=True, cosine=True)
    assert faiss.omp_get_max_threads() == before
    want = exact_neighbours(x, 10, True, True)
    recall = sum(len(set(a.tolist()) & set(b.tolist())) for a, b in zip(got, want)) / want.numel()
    assert recall >= 0.95, recall
    nlist, nprobe = ann.ivf_parameters(4000)
    assert (nlist, nprobe) == (min(253, 4000 // 39), 16)


def test_knn_graph_methods_and_the_automatic_switch(monkeypatch):
    x = torch.randn(30, 8, generator=torch.Generator().manual_seed(2))  # < 39 rows: one cluster, exact
    exact = knn_graph(x, 5, cosine=True)
    faiss_graph = knn_graph(x, 5, cosine=True, method='faiss')
    assert torch.equal(faiss_graph[1], exact[1])  # grouped by centre, k each
    assert torch.equal(faiss_graph[0].view(30, 5).sort(1).values, exact[0].view(30, 5).sort(1).values)
    assert torch.equal(knn_graph(x, 5, cosine=True, method='auto'), exact)
    calls = []
    real = ann.faiss_knn
    monkeypatch.setattr(ann, 'faiss_knn', lambda *a, **kw: calls.append(1) or real(*a, **kw))
    knn_graph(x, 5, cosine=True, method='auto')
    assert not calls  # below APPROX_MIN_NODES: the exact search
    monkeypatch.setattr(ann, 'APPROX_MIN_NODES', 20)
    auto = knn_graph(x, 5, cosine=True, method='auto', flow='target_to_source')
    assert torch.equal(auto[1].view(30, 5).sort(1).values, exact[0].view(30, 5).sort(1).values)
    assert calls == [1]
    with pytest.raises(ValueError, match='method'):
        knn_graph(x, 5, method='annoy')


def test_without_faiss_everything_is_exact():
    code = ("import sys; sys.modules['faiss'] = None\n"
            "import torch\nfrom pyg_diffcl.ops import knn_graph, ann\n"
            "assert not ann.faiss_available()\n"
            "x = torch.randn(50, 4, generator=torch.Generator().manual_seed(0))\n"
            "ann.APPROX_MIN_NODES = 10\n"
            "assert torch.equal(knn_graph(x, 3, cosine=True, method='auto'), knn_graph(x, 3, cosine=True))\n"
            "try:\n    knn_graph(x, 3, method='faiss')\nexcept ValueError as e:\n    print('refused:', e)\n"
            "from pyg_diffcl.training.config import parse_set, resolve_config\n"
            "try:\n    resolve_config('lightgcn', [parse_set(['data.knn_method=faiss'])])\n"
            "except Exception as e:\n    print('config:', e)\n")
    res = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "refused: method: 'faiss' needs the faiss package" in res.stdout
    assert 'config: data.knn_method: faiss needs the faiss package' in res.stdout
