"""Training batches on sampled subgraphs (PyG's LinkNeighborLoader): exact at full fan-out against a dense
LightGCN, the whole graph's normalisation on sampled edges, the degree scaling on a hand-worked star, and
batches that depend on (seed, epoch, batch) alone."""
import pytest
import torch
from torch_geometric.data import HeteroData

from pyg_diffcl.datasets import NeighborBPRSampler, SubgraphBatch
from pyg_diffcl.datasets.sampler import BPRBatch
from pyg_diffcl.models import DiffCL, DiffCLConfig, LightGCN
from pyg_diffcl.ops import BipartiteAdj, item_knn_graph

from tests.helpers import run_cli, stop_at_resume_write, tiny_run_config, write_dataset


def random_graph(num_users=20, num_items=15, per_user=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    pairs = {(u, int(i)) for u in range(num_users) for i in torch.randperm(num_items, generator=gen)[:per_user]}
    return torch.tensor(sorted(pairs)).t()


def dense_lightgcn(edge_index, num_users, num_items, x_user, x_item, layers):
    """mean_k A^k E0 with A the symmetric normalised bipartite adjacency, densely."""
    n = num_users + num_items
    a = torch.zeros(n, n, dtype=torch.float64)
    a[edge_index[0], num_users + edge_index[1]] = 1.0
    a = a + a.t()
    d = a.sum(1).clamp(min=1).rsqrt()
    a = d[:, None] * a * d[None, :]
    h = torch.cat([x_user, x_item]).double()
    out = h.clone()
    for _ in range(layers):
        h = a @ h
        out = out + h
    out = out / (layers + 1)
    return out[:num_users].float(), out[num_users:].float()


@pytest.mark.parametrize('scaling', ['degree', 'none'])
def test_full_fan_out_is_the_whole_graph_at_the_seeds(scaling):
    ei = random_graph()
    model = LightGCN(20, 15, embedding_dim=6, num_layers=3, reg_weight=1e-2)
    sampler = model.make_neighbor_sampler(ei, [-1, -1, -1], batch_size=7, seed=3, scaling=scaling)
    ref_user, ref_item = dense_lightgcn(ei, 20, 15, model.user_emb.weight.detach(), model.item_emb.weight.detach(), 3)
    full = BipartiteAdj(ei, 20, 15)
    for batch in sampler.epoch(0):
        assert isinstance(batch, SubgraphBatch) and batch.user.numel() <= 7
        sub_user, sub_item = model.propagation(batch.adj, model.user_emb(batch.user_id),
                                               model.item_emb(batch.item_id))
        users, pos, neg = batch.user_id[batch.user], batch.item_id[batch.pos_item], batch.item_id[batch.neg_item]
        torch.testing.assert_close(sub_user[batch.user], ref_user[users], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(sub_item[batch.pos_item], ref_item[pos], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(sub_item[batch.neg_item], ref_item[neg], atol=1e-5, rtol=1e-5)
        # the loss, and its gradient, are the whole graph's on the same triples
        model.zero_grad()
        model.loss(None, batch).backward()
        sampled = [p.grad.clone() for p in model.parameters()]
        model.zero_grad()
        model.loss(full, BPRBatch(users, pos, neg)).backward()
        for g_sub, p in zip(sampled, model.parameters()):
            torch.testing.assert_close(g_sub, p.grad, atol=1e-6, rtol=1e-4)


def small_diffcl(num_users=20, num_items=15, seed=0, **config):
    gen = torch.Generator().manual_seed(seed)
    features = {'image': torch.randn(num_items, 7, generator=gen), 'text': torch.randn(num_items, 5, generator=gen)}
    graphs = {m: item_knn_graph(x, k=3) for m, x in features.items()}
    base = dict(embedding_dim=6, num_layers=2, feat_dropout=0.0, use_diffusion=False, use_alignment=False,
                id_reg_weight=1e-2, normalize_input='modalities', emb_reg_weight=0.7)
    torch.manual_seed(seed)
    return DiffCL(num_users, num_items, features, graphs, DiffCLConfig(**{**base, **config}))


@pytest.mark.parametrize('config', [{}, {'modality_layers': 1, 'item_graph_layers': 2},
                                    {'modality_users': 'id', 'normalize_input': 'all'}])
def test_diffcl_at_full_fan_out_is_the_whole_graph_at_the_seeds(config):
    """Every branch, after the item-graph enhancement, at the batch's rows, and the loss with its gradient,
    equal the whole graph's when every fan-out is -1 (the item graphs sampled as edge types)."""
    ei = random_graph()
    model = small_diffcl(**config)
    hops = 2 + model.config.item_graph_layers
    sampler = model.make_neighbor_sampler(ei, [-1] * hops, batch_size=9, seed=1)
    assert sampler.item_hops == model.config.item_graph_layers and sorted(sampler.item_graph_types) == ['image', 'text']
    full = BipartiteAdj(ei, 20, 15)
    e_id, mods = model.encode(full)
    whole = {'id': e_id, **model.enhance(mods)}
    for batch in sampler.epoch(0):
        s_id, s_mods = model.encode_subgraph(batch)
        sub = {'id': s_id, **model.enhance(s_mods, batch.item_graphs)}
        users = batch.user_id[batch.user]
        items = torch.cat([batch.pos_item, batch.neg_item])
        for name in whole:
            torch.testing.assert_close(sub[name][0][batch.user], whole[name][0][users], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(sub[name][1][items], whole[name][1][batch.item_id[items]], atol=1e-5, rtol=1e-5)
        model.zero_grad()
        model.loss(None, batch).backward()
        sampled = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        model.zero_grad()
        model.loss(full, BPRBatch(users, batch.item_id[batch.pos_item], batch.item_id[batch.neg_item])).backward()
        reference = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
        assert sampled.keys() == reference.keys()
        for n in reference:
            torch.testing.assert_close(sampled[n], reference[n], atol=1e-6, rtol=1e-4, msg=n)


def test_diffcl_sampled_item_graphs_and_alignment_on_the_batch_rows():
    """At a small fan-out the sampled item-item edges are the whole graph's (same weights), all of them into
    each seed item during the one item hop and none into other items; the alignment term is the mean and
    deviation gap over the batch's unique users and items, computed here by hand."""
    ei = random_graph(num_users=40, num_items=30, per_user=8, seed=1)
    model = small_diffcl(40, 30, use_alignment=True, align_weight=0.5)
    # one negative per triple, so that the seed items are the batch's own (with 'unseen' the candidates left
    # unused are seeds too)
    sampler = model.make_neighbor_sampler(ei, [2, 2, 2], batch_size=6, seed=0, negatives='any')
    batch = sampler.batch(0, 2)
    seeds = torch.unique(torch.cat([batch.pos_item, batch.neg_item]))
    for m in model.modalities:
        full = {(int(i), int(j)): float(w) for (i, j), w in zip(getattr(model, f'ii_index_{m}').t(),
                                                                 getattr(model, f'ii_weight_{m}'))}
        dst, src = batch.item_graphs[m].index
        got = {(int(batch.item_id[i]), int(batch.item_id[j])): float(w)
               for i, j, w in zip(dst, src, batch.item_graphs[m].weight)}
        want = {(i, j): w for (i, j), w in full.items() if i in set(batch.item_id[seeds].tolist())}
        assert got.keys() == want.keys() and all(got[k] == pytest.approx(want[k]) for k in want)
    model.eval()  # no dropout either way
    with torch.no_grad():
        s_id, s_mods = model.encode_subgraph(batch)
        enh = model.enhance(s_mods, batch.item_graphs)
        au = torch.unique(batch.user)
        ai = torch.unique(torch.cat([batch.pos_item, batch.neg_item]))
        def stats(pair):
            x = torch.cat([pair[0][au], pair[1][ai]]).double()
            return x.mean(), x.std(unbiased=False)
        mu_id, sd_id = stats(s_id)
        by_hand = sum(abs(mu_id - stats(enh[m])[0]) + abs(sd_id - stats(enh[m])[1]) for m in model.modalities)
        with_align = model.loss(None, batch)
        model.config.use_alignment = False
        without = model.loss(None, batch)
    assert float(with_align - without) == pytest.approx(0.5 * float(by_hand), rel=1e-4, abs=1e-6)


def test_diffcl_sampled_refusals():
    ei = random_graph()
    with pytest.raises(ValueError, match=r'num_neighbors: one fan-out per hop \(3: 2 user-item layers \+ 1'):
        small_diffcl().make_neighbor_sampler(ei, [5, 5], 8, 0)
    assert small_diffcl(use_item_graph=False).make_neighbor_sampler(ei, None, 8, 0).num_neighbors == [10, 10]
    with pytest.raises(ValueError, match='loader: DiffCL with model.modality_users=items'):
        small_diffcl(modality_users='items').make_neighbor_sampler(ei, None, 8, 0)
    with pytest.raises(ValueError, match='item_hops'):
        NeighborBPRSampler(ei, 20, 15, [3], item_graphs={'a': item_knn_graph(torch.randn(15, 4), k=2)}, item_hops=2)


@pytest.mark.parametrize('scaling', ['degree', 'none'])
def test_item_graph_fan_out_samples_and_reweights_item_edges(scaling):
    """``item_fanout`` draws that many of a receiving item's item-item neighbours, each one of its edges in the
    whole graph; with degree scaling its weight is the graph's times k_i / s_i (k_i its neighbours in the
    whole graph, s_i those drawn), so that each receiving row sums what the whole graph's would in
    expectation. A fan-out of k or more is the whole item graph."""
    ei = random_graph(num_users=40, num_items=30, per_user=8, seed=1)
    gen = torch.Generator().manual_seed(3)
    ii_index, ii_weight = item_knn_graph(torch.randn(30, 6, generator=gen), k=5)
    k = torch.bincount(ii_index[0], minlength=30)
    full = {(int(i), int(j)): float(w) for (i, j), w in zip(ii_index.t(), ii_weight)}
    graphs = {'a': (ii_index, ii_weight)}

    def edges(fanout, epoch=0):
        batch = NeighborBPRSampler(ei, 40, 30, [3, 3], batch_size=6, seed=0, scaling=scaling, item_graphs=graphs,
                                   item_fanout=fanout).batch(epoch, 1)
        dst, src = batch.item_graphs['a'].index
        return {(int(batch.item_id[i]), int(batch.item_id[j])): float(w)
                for i, j, w in zip(dst, src, batch.item_graphs['a'].weight)}

    for epoch in range(3):
        got = edges(2, epoch)
        receiving = torch.tensor(sorted({i for i, _ in got}))
        drawn = torch.bincount(torch.tensor([i for i, _ in got]), minlength=30)
        assert receiving.numel() > 0 and bool((drawn[receiving] == torch.clamp(k[receiving], max=2)).all())
        for (i, j), w in got.items():
            scale = float(k[i]) / float(drawn[i]) if scaling == 'degree' else 1.0
            assert w == pytest.approx(full[(i, j)] * scale)
    assert edges(5) == edges(-1) and edges(8) == edges(-1)
    with pytest.raises(ValueError, match='item_fanout'):
        NeighborBPRSampler(ei, 40, 30, [3, 3], item_graphs=graphs, item_fanout=0)


def test_item_graph_fan_out_refusals():
    ei = random_graph()
    with pytest.raises(ValueError, match='^item_graph_neighbors: LightGCN has no item-item graphs'):
        LightGCN(20, 15, 4, 2).make_neighbor_sampler(ei, None, 8, 0, item_graph_neighbors=3)
    with pytest.raises(ValueError, match='^item_graph_neighbors: 3, but this DiffCL has no item-item graph'):
        small_diffcl(use_item_graph=False).make_neighbor_sampler(ei, None, 8, 0, item_graph_neighbors=3)
    assert small_diffcl().make_neighbor_sampler(ei, None, 8, 0, item_graph_neighbors=2).item_fanout == 2
    from pyg_diffcl.training.config import TrainConfig
    with pytest.raises(ValueError, match='^item_graph_neighbors: expected a positive fan-out or -1'):
        TrainConfig(item_graph_neighbors=0).validate()


def test_sampled_edges_keep_the_whole_graph_normalisation():
    ei = random_graph(num_users=40, num_items=30, per_user=8, seed=1)
    sampler = NeighborBPRSampler(ei, 40, 30, [2, 2], batch_size=5, seed=0, scaling='none')
    du = torch.bincount(ei[0], minlength=40).float()
    di = torch.bincount(ei[1], minlength=30).float()
    train = set(map(tuple, ei.t().tolist()))
    batch = sampler.batch(0, 1)
    for adj, user_row in ((batch.adj.item_to_user, True), (batch.adj.user_to_item, False)):
        dst, src = adj.index
        users = batch.user_id[dst] if user_row else batch.user_id[src]
        items = batch.item_id[src] if user_row else batch.item_id[dst]
        assert all((u, i) in train for u, i in zip(users.tolist(), items.tolist()))
        torch.testing.assert_close(adj.weight, (du[users] * di[items]).rsqrt())
    # fan-out 2: no node receives more than two sampled edges per hop, two hops
    assert int(torch.bincount(batch.adj.user_to_item.index[0]).max()) <= 4


def test_degree_scaling_on_a_star():
    """One user with four items of degree 1: each edge weighs 1/sqrt(4 * 1) = 0.5. Sampling two of the four,
    the user's layer sum of ones is 2 x 0.5 = 1.0 unscaled and 4/2 x 1.0 = 2.0 scaled, the full sum."""
    ei = torch.tensor([[0, 0, 0, 0], [0, 1, 2, 3]])
    for scaling, want in (('none', 1.0), ('degree', 2.0)):
        batch = NeighborBPRSampler(ei, 1, 4, [2], batch_size=1, seed=0, scaling=scaling).batch(0, 0)
        into_users = batch.adj.item_to_user
        assert into_users.nnz == 2
        ones = torch.ones(batch.item_id.numel(), 1)
        assert into_users.matmul(ones).flatten().tolist() == [pytest.approx(want)]


def test_a_batch_depends_on_seed_epoch_and_batch_only():
    ei = random_graph(num_users=60, num_items=40, per_user=6, seed=2)
    a = NeighborBPRSampler(ei, 60, 40, [3, 3], batch_size=16, seed=7)
    b = NeighborBPRSampler(ei, 60, 40, [3, 3], batch_size=16, seed=7)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    whole = list(a.epoch(2))
    assert torch.equal(torch.get_rng_state(), state)  # the caller's random state is untouched
    tail = list(b.epoch(2, start_batch=3))
    assert len(whole) == len(a) == 23 and len(tail) == len(whole) - 3
    for x, y in zip(whole[3:], tail):
        for f in ('user', 'pos_item', 'neg_item', 'user_id', 'item_id'):
            assert torch.equal(getattr(x, f), getattr(y, f))
        assert torch.equal(x.adj.item_to_user.index, y.adj.item_to_user.index)
    other = NeighborBPRSampler(ei, 60, 40, [3, 3], batch_size=16, seed=8).batch(2, 0)
    assert not torch.equal(other.user_id, whole[0].user_id) or not torch.equal(other.item_id, whole[0].item_id)
    # every training interaction is a positive pair at most once per epoch, and exactly once with 'any'
    # negatives ('unseen' leaves out the rare triple whose two candidates are both the user's items)
    pos = torch.cat([torch.stack([x.user_id[x.user], x.item_id[x.pos_item]]) for x in whole], 1)
    pairs = list(map(tuple, pos.t().tolist()))
    assert len(set(pairs)) == len(pairs) and set(pairs) <= set(map(tuple, ei.t().tolist()))
    every = NeighborBPRSampler(ei, 60, 40, [3, 3], batch_size=16, seed=7, negatives='any').epoch(2)
    pos = torch.cat([torch.stack([x.user_id[x.user], x.item_id[x.pos_item]]) for x in every], 1)
    assert sorted(map(tuple, pos.t().tolist())) == sorted(map(tuple, ei.t().tolist()))


def heavy_user_graph():
    """User 0 has 12 of the 16 items; users 1-9 have 2 each (items 0-15 cycled)."""
    pairs = [(0, i) for i in range(12)] + [(u, (2 * u + k) % 16) for u in range(1, 10) for k in range(2)]
    return torch.tensor(pairs).t()


def test_unseen_negatives_are_uniform_over_the_users_unseen_items():
    ei = heavy_user_graph()
    train = {(int(u), int(i)) for u, i in ei.t()}
    counts = {'unseen': torch.zeros(16), 'any': torch.zeros(16)}
    kept = {'unseen': 0, 'any': 0}
    for negatives in counts:
        sampler = NeighborBPRSampler(ei, 10, 16, [2], batch_size=10, seed=1, negatives=negatives)
        for epoch in range(150):
            perm = sampler._permutation(epoch)
            for b, batch in enumerate(sampler.epoch(epoch)):
                user, pos = batch.user_id[batch.user], batch.item_id[batch.pos_item]
                neg = batch.item_id[batch.neg_item]
                assert user.numel() == pos.numel() == neg.numel()
                # each kept triple is one of the batch's seed interactions, in order
                seeds = ei[:, perm[b * 10:(b + 1) * 10]]
                seed_pairs = list(map(tuple, seeds.t().tolist()))
                got = list(map(tuple, torch.stack([user, pos]).t().tolist()))
                it = iter(seed_pairs)
                assert all(pair in it for pair in got)
                kept[negatives] += user.numel()
                zero = user == 0
                counts[negatives] += torch.bincount(neg[zero], minlength=16).float()
                if negatives == 'unseen':
                    assert not any((int(u), int(j)) in train for u, j in zip(user, neg))
    # 'any': user 0's negatives fall on its 12 training items 12/16 of the time (PyG's uniform draw)
    any_seen = counts['any'][:12].sum() / counts['any'].sum()
    assert abs(any_seen - 12 / 16) < 0.05 and kept['any'] == 150 * ei.size(1)
    # 'unseen': only items 12-15, each about a quarter of the time
    freq = counts['unseen'][12:] / counts['unseen'].sum()
    assert counts['unseen'][:12].sum() == 0 and (freq - 0.25).abs().max() < 0.05
    # a triple of user 0 is dropped when both candidates are seen: (12/16)^2 of its 12 * 150 triples
    dropped = 150 * ei.size(1) - kept['unseen']
    expect = 150 * (12 * (12 / 16) ** 2 + 18 * (2 / 16) ** 2)
    assert abs(dropped - expect) < 0.2 * expect


def test_unseen_negatives_never_empty_a_batch():
    """A user who has seen 15 of 16 items, one triple per batch: the batch keeps its triple even when both
    candidates are seen (an empty batch has no mean loss)."""
    ei = torch.tensor([[0] * 15 + [1], list(range(15)) + [15]])
    sampler = NeighborBPRSampler(ei, 2, 16, [2], batch_size=1, seed=0)
    sizes = [batch.user.numel() for epoch in range(20) for batch in sampler.epoch(epoch)]
    assert sizes == [1] * (20 * 16)


def test_any_node_and_edge_names_and_bad_arguments():
    ei = random_graph()
    data = HeteroData()
    data['customer'].num_nodes, data['product'].num_nodes = 20, 15
    data['customer', 'buys', 'product'].edge_index = ei
    sampler = NeighborBPRSampler.from_data(data, [5], batch_size=8)
    assert sampler.num_users == 20 and sampler.num_items == 15 and len(sampler) == -(-ei.size(1) // 8)
    for kwargs, match in (({'num_neighbors': []}, 'num_neighbors'), ({'num_neighbors': [0]}, 'num_neighbors'),
                          ({'batch_size': 0}, 'batch_size'), ({'scaling': 'inverse'}, 'scaling'),
                          ({'negatives': 'hard'}, 'negatives'), ({'negative_candidates': 0}, 'negative_candidates')):
        args = {'num_neighbors': [5], **kwargs}
        with pytest.raises(ValueError, match=match):
            NeighborBPRSampler(ei, 20, 15, **args)
    model = LightGCN(20, 15, num_layers=2)
    with pytest.raises(ValueError, match=r'num_neighbors: one fan-out per layer \(2\)'):
        model.make_neighbor_sampler(ei, [5], 8, 0)
    assert model.make_neighbor_sampler(ei, None, 8, 0).num_neighbors == [10, 10]
    with pytest.raises(ValueError, match='b: expected a batch'):
        sampler.batch(0, len(sampler))


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp('neighbor') / 'mm', num_users=40, num_items=30, modalities={})


def test_cli_trains_sampled_and_refuses_what_cannot(data, tmp_path):
    common = ['--data', str(data), '--set', 'model.embedding_dim=8', '--set', 'model.num_layers=2',
              '--set', 'train.batch_size=32', '--set', 'train.loader=neighbor', '--epochs', '2', '--quiet']
    res = run_cli('train', '--model', 'lightgcn', *common, '--set', 'train.num_neighbors=[3,3]',
                  '--out', str(tmp_path / 'ok'))
    assert res.returncode == 0, res.stderr
    assert (tmp_path / 'ok' / 'metrics.json').is_file()
    res = run_cli('train', '--model', 'ld4mrec', '--data', str(data), '--set', 'train.loader=neighbor', '--quiet',
                  '--out', str(tmp_path / 'no'))
    assert res.returncode == 2 and 'train.loader=neighbor: model ld4mrec trains on the whole graph only' in res.stderr
    for args, text in (                       (['--model', 'lightgcn', '--set', 'train.num_neighbors=[3]'],
                        'train.num_neighbors: one fan-out per layer (2)'),
                       (['--model', 'lightgcn', '--set', 'train.num_neighbors=[3,0]'], 'train.num_neighbors'),
                       (['--model', 'lightgcn', '--set', 'train.loader=full', '--set', 'train.optimizer=sparse_adam'],
                        'train.optimizer: sparse_adam needs train.loader=neighbor')):
        res = run_cli('train', *common, *args, '--out', str(tmp_path / 'no'))  # args last: they win
        lines = [l for l in res.stderr.strip().splitlines() if l.startswith('pyg-diffcl: error')]
        assert res.returncode == 2 and len(lines) == 1 and text in lines[0], res.stderr


@pytest.fixture(scope='module')
def mm_data(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp('neighbor') / 'mm2', num_users=40, num_items=30,
                         modalities={'v': 6, 'a': 4})


@pytest.mark.parametrize('model,optimizer', [('lightgcn', 'adam'), ('lightgcn', 'sparse_adam'),
                                             ('diffcl', 'sparse_adam')])
def test_sampled_training_resumes_bit_for_bit(data, mm_data, tmp_path, monkeypatch, model, optimizer):
    from pyg_diffcl.training.lock import RunWriteError
    from pyg_diffcl.training.run import resume_run, train_run
    fan_out = '[4,4]' if model == 'lightgcn' else '[4,4,3]'
    sets = ['model.embedding_dim=8', 'model.num_layers=2', 'train.batch_size=32', 'train.loader=neighbor',
            f'train.num_neighbors={fan_out}', f'train.optimizer={optimizer}']
    if model == 'diffcl':
        data = mm_data
        sets += ['model.item_graph_k=3', 'model.cl_max_nodes=8']
    out = tmp_path / 'run'
    undo = stop_at_resume_write(monkeypatch)
    with pytest.raises(RunWriteError):
        train_run(tiny_run_config(data, model, sets=sets), out, quiet=True)
    undo()
    resumed = resume_run(out, quiet=True)
    reference = train_run(tiny_run_config(data, model, sets=sets), tmp_path / 'ref', quiet=True)
    assert resumed['test'] == reference['test'] and resumed['best_epoch'] == reference['best_epoch']
    def losses(run):  # epoch, loss and validation columns (not the timings)
        import csv
        with open(run / 'log.csv') as f:
            return [(r['epoch'], r['loss'], r['valid_recall@20']) for r in csv.DictReader(f)]
    assert losses(out) == losses(tmp_path / 'ref') and len(losses(out)) == 3


def test_sparse_adam_updates_only_the_rows_a_batch_touches():
    """Lazy Adam: its first step moves exactly the rows with a gradient, each entry against its gradient's
    sign (Adam's first step is about -lr sign(g)); at the second step a row that the second batch does not
    touch keeps its value, where dense Adam's momentum still moves it."""
    from pyg_diffcl.training.trainer import make_optimizer
    ei = random_graph(num_users=60, num_items=40, per_user=3, seed=4)
    torch.manual_seed(0)
    lazy, dense = LightGCN(60, 40, embedding_dim=8, num_layers=1), LightGCN(60, 40, embedding_dim=8, num_layers=1)
    dense.load_state_dict(lazy.state_dict())
    opt_lazy, opt_dense = make_optimizer(lazy, 'sparse_adam', lr=0.1), make_optimizer(dense, 'adam', lr=0.1)
    assert lazy.user_emb.sparse and not dense.user_emb.sparse
    sampler = NeighborBPRSampler(ei, 60, 40, [2], batch_size=8, seed=1)
    first, second = sampler.batch(0, 0), sampler.batch(0, 1)
    start = lazy.user_emb.weight.detach().clone()
    for model, opt in ((lazy, opt_lazy), (dense, opt_dense)):
        opt.zero_grad()
        model.loss(None, first).backward()
        if model is lazy:
            grad = model.user_emb.weight.grad.to_dense()
            assert model.user_emb.weight.grad.is_sparse
        opt.step()
    step = lazy.user_emb.weight.detach() - start
    has_grad = grad != 0
    assert torch.equal(step != 0, has_grad)
    big = grad.abs() > 1e-4  # away from eps, the first step is -lr sign(g) to a few per cent
    torch.testing.assert_close(step[big], -0.1 * grad[big].sign(), rtol=0.05, atol=0.0)
    before = lazy.user_emb.weight.detach().clone()
    for model, opt in ((lazy, opt_lazy), (dense, opt_dense)):
        opt.zero_grad()
        model.loss(None, second).backward()
        opt.step()
    untouched = torch.ones(60, dtype=torch.bool)
    untouched[second.user_id] = False
    moved_by_first = torch.zeros(60, dtype=torch.bool)
    moved_by_first[first.user_id] = True
    rows = untouched & moved_by_first
    assert bool(rows.any())
    assert torch.equal(lazy.user_emb.weight[rows], before[rows])
    assert not torch.allclose(dense.user_emb.weight[rows], before[rows])
    with pytest.raises(ValueError, match='weight decay'):
        make_optimizer(LightGCN(5, 5), 'sparse_adam', weight_decay=1e-4)
