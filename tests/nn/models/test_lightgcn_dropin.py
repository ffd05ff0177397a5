"""pyg_diffcl.nn.LightGCN against PyG's own class: the same interface, and for the same weights the same
numbers (PyG's class is the independent reference)."""
import pytest
import torch
import torch_geometric.typing
from torch_geometric.nn.models import LightGCN as PyGLightGCN

from pyg_diffcl.nn import LightGCN


def bipartite_graph(users=15, items=11, p=0.3, seed=0):
    """An undirected user-item graph in one node space (items after users), as PyG's example builds it."""
    g = torch.Generator().manual_seed(seed)
    R = (torch.rand(users, items, generator=g) < p)
    u, i = R.nonzero().t()
    i = i + users
    return torch.cat([torch.stack([u, i]), torch.stack([i, u])], dim=1), users + items


def pair(num_nodes, dim=8, layers=3, alpha=None, **kw):
    torch.manual_seed(0)
    ref = PyGLightGCN(num_nodes, dim, layers, alpha, **kw)
    ours = LightGCN(num_nodes, dim, layers, alpha, **kw)
    assert list(ours.state_dict()) == list(ref.state_dict())
    ours.load_state_dict(ref.state_dict())
    return ref, ours


@pytest.mark.parametrize('alpha', [None, 0.5, torch.tensor([0.4, 0.3, 0.2, 0.1])])
def test_same_embeddings_scores_and_gradients_as_pyg(alpha):
    ei, n = bipartite_graph()
    ref, ours = pair(n, alpha=alpha)
    assert torch.allclose(ours.get_embedding(ei), ref.get_embedding(ei), atol=1e-5)
    label = torch.tensor([[0, 3, 5], [16, 20, 25]])
    for model in (ref, ours):
        model.zero_grad()
        model(ei, label).sum().backward()
    assert torch.allclose(ours(ei, label), ref(ei, label), atol=1e-5)
    assert torch.allclose(ours(ei), ref(ei), atol=1e-5)  # edge_label_index defaults to the edges
    assert torch.allclose(ours.embedding.weight.grad, ref.embedding.weight.grad, atol=1e-5)
    assert torch.equal(ours.predict_link(ei, label), ref.predict_link(ei, label))
    assert torch.allclose(ours.predict_link(ei, label, prob=True), ref.predict_link(ei, label, prob=True),
                          atol=1e-6)


def test_weighted_and_sparse_inputs_and_a_directed_graph():
    ei, n = bipartite_graph(seed=1)
    w = torch.rand(ei.size(1), generator=torch.Generator().manual_seed(2)) + 0.1
    ref, ours = pair(n, layers=2)
    assert torch.allclose(ours.get_embedding(ei, w), ref.get_embedding(ei, w), atol=1e-5)
    directed = ei[:, : ei.size(1) // 2]  # user -> item only: the propagation matrix is not symmetric
    x = ref.get_embedding(directed)
    assert torch.allclose(ours.get_embedding(directed), x, atol=1e-5)
    ref.zero_grad(), ours.zero_grad()
    ref.get_embedding(directed).pow(2).sum().backward()
    ours.get_embedding(directed).pow(2).sum().backward()
    assert torch.allclose(ours.embedding.weight.grad, ref.embedding.weight.grad, atol=1e-4)
    if torch_geometric.typing.WITH_TORCH_SPARSE:
        from torch_sparse import SparseTensor
        adj_t = SparseTensor(row=ei[1], col=ei[0], sparse_sizes=(n, n))
        assert torch.allclose(ours.get_embedding(adj_t), ref.get_embedding(adj_t), atol=1e-5)
        assert torch.allclose(ours(adj_t), ref(adj_t), atol=1e-5)
    ref_nn, ours_nn = pair(n, layers=1, normalize=False)
    assert torch.allclose(ours_nn.get_embedding(ei), ref_nn.get_embedding(ei), atol=1e-5)


def test_recommend_and_losses_match_pyg():
    ei, n = bipartite_graph(seed=3)
    ref, ours = pair(n)
    src, dst = torch.arange(15), torch.arange(15, n)
    assert torch.equal(ours.recommend(ei, src_index=src, dst_index=dst, k=4),
                       ref.recommend(ei, src_index=src, dst_index=dst, k=4))
    assert torch.equal(ours.recommend(ei, k=2), ref.recommend(ei, k=2))
    pos, neg = torch.randn(6), torch.randn(6)
    node_id = torch.tensor([0, 1, 17, 20])
    for lam in (1e-4, 0.0, 0.3):
        assert torch.allclose(ours.recommendation_loss(pos, neg, node_id, lambda_reg=lam),
                              ref.recommendation_loss(pos, neg, node_id, lambda_reg=lam), atol=1e-6)
    assert torch.allclose(ours.recommendation_loss(pos, neg), ref.recommendation_loss(pos, neg), atol=1e-6)
    label = (torch.rand(6) > 0.5).long()
    assert torch.allclose(ours.link_pred_loss(pos, label), ref.link_pred_loss(pos, label))


def test_the_graph_is_prepared_once_and_again_when_it_changes():
    ei, n = bipartite_graph(seed=4)
    ref, ours = pair(n, layers=2)
    ours.get_embedding(ei)
    prepared = ours.adj_cache._entry[3]
    ours.get_embedding(ei)
    assert ours.adj_cache._entry[3] is prepared
    other, _ = bipartite_graph(seed=5)
    assert torch.allclose(ours.get_embedding(other), ref.get_embedding(other), atol=1e-5)
    ei[1, 0] = (ei[1, 0] + 1) % n  # changed in place
    assert torch.allclose(ours.get_embedding(ei), ref.get_embedding(ei), atol=1e-5)


def test_interface_errors():
    with pytest.raises(TypeError, match='cached'):
        LightGCN(5, 4, 2, cached=True)
    with pytest.raises(ValueError, match='alpha'):
        LightGCN(5, 4, 2, alpha=torch.ones(2))
    assert repr(LightGCN(5, 4, 2)) == repr(PyGLightGCN(5, 4, 2))


def pyg_example_losses(model_cls, steps=6):
    """The training loop of PyG's examples/lightgcn.py (AmazonBook), on an offline graph of the same shape:
    a HeteroData ('user', 'rates', 'book') made homogeneous, batches of training edges with one random
    negative book each, `model(edge_index, edge_label_index)` and `recommendation_loss`."""
    from torch_geometric.data import HeteroData
    from torch_geometric.transforms import ToUndirected
    g = torch.Generator().manual_seed(7)
    num_users, num_books = 40, 30
    R = torch.rand(num_users, num_books, generator=g) < 0.2
    data = HeteroData()
    data['user'].num_nodes, data['book'].num_nodes = num_users, num_books
    data['user', 'rates', 'book'].edge_index = R.nonzero().t()
    data = ToUndirected()(data).to_homogeneous()
    mask = data.edge_index[0] < data.edge_index[1]
    train_edge_label_index = data.edge_index[:, mask]
    torch.manual_seed(0)
    model = model_cls(num_nodes=data.num_nodes, embedding_dim=16, num_layers=2)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    loader = torch.utils.data.DataLoader(range(train_edge_label_index.size(1)), shuffle=True, batch_size=32)
    losses = []
    for index in loader:
        pos_edge_label_index = train_edge_label_index[:, index]
        neg_edge_label_index = torch.stack([pos_edge_label_index[0],
                                            torch.randint(num_users, num_users + num_books, (index.numel(),))])
        edge_label_index = torch.cat([pos_edge_label_index, neg_edge_label_index], dim=1)
        optimizer.zero_grad()
        pos_rank, neg_rank = model(data.edge_index, edge_label_index).chunk(2)
        loss = model.recommendation_loss(pos_rank, neg_rank, node_id=edge_label_index.unique())
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
        if len(losses) == steps:
            break
    with torch.no_grad():
        top = model.recommend(data.edge_index, src_index=torch.arange(num_users),
                              dst_index=torch.arange(num_users, num_users + num_books), k=5)
    return losses, top


def test_pygs_example_loop_runs_unchanged_with_the_import_swapped():
    ref_losses, ref_top = pyg_example_losses(PyGLightGCN)
    losses, top = pyg_example_losses(LightGCN)
    assert losses == pytest.approx(ref_losses, abs=1e-5)
    assert torch.equal(top, ref_top)
