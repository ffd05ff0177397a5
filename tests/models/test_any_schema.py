"""No node or edge names are assumed: graphs typed like PyG's own data sets train from Python."""
import pytest
import torch
from torch_geometric.data import HeteroData
from torch_geometric.transforms import ToUndirected

from pyg_diffcl.datasets import BPRSampler
from pyg_diffcl.models import DiffCL, LightGCN
from pyg_diffcl.models.diffcl import DiffCLConfig
from pyg_diffcl.ops import BipartiteAdj, user_item_edge_type

from tests.ops.test_adj import dense_norm


def graph(src='customer', rel='buys', dst='product', users=12, items=9, reverse=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    R = (torch.rand(users, items, generator=g) < 0.35).float()
    R[torch.arange(users), torch.arange(users) % items] = 1.0  # every user has an item
    data = HeteroData()
    data[src].num_nodes, data[dst].num_nodes = users, items
    data[dst].x = torch.randn(items, 6, generator=g)
    data[src, rel, dst].edge_index = R.nonzero().t()
    if reverse == 'to_undirected':
        data = ToUndirected()(data)
    elif reverse is not None:
        data[dst, reverse, src].edge_index = R.nonzero().t().flip(0)
    return data, R


@pytest.mark.parametrize('names,reverse', [
    (('customer', 'buys', 'product'), None),
    (('user', 'rates', 'movie'), 'rated_by'),        # shaped like PyG's MovieLens100K
    (('user', 'rates', 'book'), 'rated_by'),         # shaped like PyG's AmazonBook
    (('customer', 'buys', 'product'), 'to_undirected'),
])
def test_the_user_item_edge_type_is_found(names, reverse):
    data, R = graph(*names, reverse=reverse)
    assert user_item_edge_type(data) == names
    adj = BipartiteAdj.from_data(data)
    assert (adj.num_users, adj.num_items) == R.shape
    assert torch.allclose(adj.item_to_user.to_dense(), dense_norm(R), atol=1e-6)


def test_ambiguous_or_missing_edge_types_are_named():
    data, _ = graph()
    data['customer', 'follows', 'brand'].edge_index = torch.tensor([[0], [0]])
    data['brand'].num_nodes = 1
    with pytest.raises(ValueError, match="edge_type: the graph has 2 candidate"):
        user_item_edge_type(data)
    assert BipartiteAdj.from_data(data, edge_type=('customer', 'buys', 'product')).num_items == 9
    with pytest.raises(ValueError, match="edge_type: .*'likes'.* is not in the graph"):
        BipartiteAdj.from_data(data, edge_type=('customer', 'likes', 'product'))
    with pytest.raises(TypeError, match='edge_type'):
        BipartiteAdj.from_data(data, edge_type='buys')


@pytest.mark.parametrize('model_name', ['lightgcn', 'diffcl'])
def test_models_train_on_a_customer_product_graph(model_name):
    torch.manual_seed(0)
    data, R = graph(users=30, items=20, seed=1)
    et = user_item_edge_type(data)
    U, I = data[et[0]].num_nodes, data[et[2]].num_nodes
    edge_index = data[et].edge_index
    if model_name == 'lightgcn':
        model = LightGCN(U, I, embedding_dim=16, num_layers=2)
    else:
        model = DiffCL(U, I, {'x': data[et[2]].x}, config=DiffCLConfig(embedding_dim=16, num_layers=2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    sampler = BPRSampler(edge_index, I, batch_size=64, seed=0)
    losses = []
    for epoch in range(15):
        total = 0.0
        for batch in sampler.epoch(epoch):
            opt.zero_grad()
            loss = model.loss(edge_index, batch)  # the raw edge_index, as PyG's examples pass it
            loss.backward()
            opt.step()
            total += float(loss.detach())
        losses.append(total)
    assert losses[-1] < 0.8 * losses[0]
    model.eval()
    with torch.no_grad():
        u, i = model.get_embedding(edge_index)
        # the same embeddings from a prepared adjacency and from a SparseTensor-free torch.sparse matrix
        u2, i2 = model.get_embedding(BipartiteAdj(edge_index, U, I))
        u3, i3 = model.get_embedding(R.to_sparse())
    assert u.shape[0] == U and i.shape[0] == I
    assert torch.allclose(u, u2, atol=1e-5) and torch.allclose(i, i2, atol=1e-5)
    assert torch.allclose(u, u3, atol=1e-5) and torch.allclose(i, i3, atol=1e-5)


def test_from_config_reads_the_training_edges_of_any_edge_type():
    """from_config needs only num_users, num_items, features(), item_graph() and dataset[0]: a data set
    whose graph is typed ('customer', 'buys', 'product') builds LD4MRec from its training edges."""
    from pyg_diffcl.models import LD4MRec
    from pyg_diffcl.models.ld4mrec import LD4MRecConfig
    from pyg_diffcl.ops import item_knn_graph
    data, R = graph(users=14, items=10, seed=2)

    class Dataset:
        num_users, num_items = 14, 10

        def __getitem__(self, i):
            return data

        def features(self):
            return {'x': data['product'].x}

        def item_graph(self, m, k):
            return item_knn_graph(data['product'].x, k)

    model = LD4MRec.from_config(LD4MRecConfig(fc_dim=16, hidden_dim=8, time_dim=4, svd_rank=3), Dataset())
    assert torch.equal(model.behaviours(torch.arange(14)), R)
