"""Run-level policies: users without training interactions (``data.cold_users``), deterministic mode, and the
provenance header of ``config.yaml``."""
import warnings

import pytest
import torch
import yaml

from pyg_diffcl.errors import DataError
from pyg_diffcl.training import prepare
from pyg_diffcl.training.config import packaged_config, parse_set, resolve_config
from pyg_diffcl.training.run import config_text, find_cold_users
from tests.helpers import write_dataset


@pytest.fixture
def cold_data(tmp_path):
    d = write_dataset(tmp_path / 'cold', num_users=10, num_items=12, modalities={})
    lines = (d / 'toy.inter').read_text().strip().split('\n')
    # Users 10 and 11: only held-out items (11 on two lines, valid and test).
    lines += ['10\t3\t2', '11\t4\t1', '11\t5\t2']
    (d / 'toy.inter').write_text('\n'.join(lines) + '\n')
    return d, len(lines) - 2  # the 1-based line of user 10's interaction


def _config(data, policy):
    return resolve_config('mf', [parse_set([f'data.name={data}', f'data.cold_users={policy}'])])


def test_cold_users_error_names_the_line(cold_data):
    data, line = cold_data
    with pytest.raises(DataError, match=rf'toy.inter:{line}: user 10 has validation/test interactions but none '
                                        r'in training \(2 such user'):
        prepare(_config(data, 'error'))


def test_cold_users_keep_and_drop(cold_data):
    data, _ = cold_data
    with pytest.warns(UserWarning, match=r'2 user\(s\) .* first is user 10.*ranked and counted'):
        keep = prepare(_config(data, 'keep'))
    assert find_cold_users(keep.dataset).nonzero().flatten().tolist() == [10, 11]
    with pytest.warns(UserWarning, match='left out of validation and test'):
        drop = prepare(_config(data, 'drop'))
    for split, cold_here in (('valid', 1), ('test', 2)):  # user 11 in both splits, user 10 in test only
        n_keep = keep.evaluator(split).num_eval_users
        n_drop = drop.evaluator(split).num_eval_users
        assert n_keep - n_drop == cold_here


def test_tiktok_packaged_settings_keep_its_cold_users():
    # The 'common' section applies to every model of the embedded data set, under the model's own section.
    for model in ('mf', 'lightgcn', 'diffcl', 'ld4mrec'):
        assert packaged_config('tiktok', model)['data']['cold_users'] == 'keep'
    assert packaged_config('tiktok', 'lightgcn')['model']['num_layers'] == 4


def test_bad_policy_is_a_config_error():
    from pyg_diffcl.errors import ConfigError
    with pytest.raises(ConfigError, match="data.cold_users: expected one of error, keep, drop, got 'maybe'"):
        resolve_config('mf', [parse_set(['data.cold_users=maybe'])])


def test_config_header_records_provenance(tmp_path):
    cfg = resolve_config('mf', [parse_set(['model.embedding_dim=4'])])
    text = config_text(cfg, {'a.inter': 'ab' * 32, 'v_feat.npy': 'cd' * 32})
    header = [line for line in text.split('\n') if line.startswith('#')]
    assert f'# torch: {torch.__version__}' in header
    assert any(line.startswith('# git_commit: ') for line in header)
    assert f"# data_sha256 a.inter: {'ab' * 32}" in header and f"# data_sha256 v_feat.npy: {'cd' * 32}" in header
    assert yaml.safe_load(text) == cfg.to_dict()  # the comments do not change what is read back


def test_git_commit_of_this_checkout():
    import subprocess
    from pathlib import Path

    from pyg_diffcl.training.run import git_commit
    root = Path(__file__).resolve().parents[2]
    head = subprocess.run(['git', '-C', str(root), 'rev-parse', 'HEAD'], capture_output=True, text=True)
    if head.returncode != 0:
        pytest.skip('not a git checkout')
    assert git_commit().split('-')[0] == head.stdout.strip()


def test_deterministic_mode_trains_on_cpu(tmp_path):
    """Every model's training and evaluation ops have deterministic kernels (none raises in that mode), and
    two runs agree bit for bit."""
    from pyg_diffcl.datasets.mmrec import EDGE_TYPE
    from pyg_diffcl.training import Trainer
    data = write_dataset(tmp_path / 'mm', num_users=16, num_items=20, per_user=6, modalities={'v': 4})
    small = {'mf': [], 'lightgcn': [], 'diffcl': ['model.denoiser_hidden=[8]'],
             'ld4mrec': ['model.fc_dim=8', 'model.hidden_dim=4', 'model.svd_rank=2', 'model.item_graph_k=3']}
    try:
        for model, extra in small.items():
            results = []
            for _ in range(2):
                cfg = resolve_config(model, [parse_set(extra + [f'data.name={data}', 'train.deterministic=true',
                                                                'train.epochs=2', 'model.embedding_dim=8'
                                                                if model != 'ld4mrec' else 'train.batch_size=8'])])
                prep = prepare(cfg)
                assert torch.are_deterministic_algorithms_enabled()
                sampler = prep.model.make_sampler(prep.dataset[0][EDGE_TYPE].edge_index, cfg.train.batch_size, 0)
                trainer = Trainer(prep.model, prep.adj, sampler, prep.evaluator('valid'), epochs=2,
                                  show_progress=False, handle_sigint=False)
                res = trainer.fit()
                results.append(([r.loss for r in res.history], [r.valid for r in res.history]))
            assert results[0] == results[1], model
    finally:
        torch.use_deterministic_algorithms(False)


@pytest.mark.cuda
def test_deterministic_cuda_runs_agree(tmp_path):
    """On CUDA, --deterministic gives bit-identical runs (index_add backend, deterministic kernels)."""
    from pyg_diffcl.datasets.mmrec import EDGE_TYPE
    from pyg_diffcl.training import Trainer
    data = write_dataset(tmp_path / 'mm', num_users=200, num_items=120, per_user=8, modalities={'v': 6})
    try:
        for model in ('lightgcn', 'diffcl'):
            results = []
            for _ in range(2):
                cfg = resolve_config(model, [parse_set([f'data.name={data}', 'train.deterministic=true',
                                                        'train.device=cuda', 'train.batch_size=64'])])
                prep = prepare(cfg)
                assert prep.adj.backend == 'index_add'
                sampler = prep.model.make_sampler(prep.dataset[0][EDGE_TYPE].edge_index, 64, 0)
                trainer = Trainer(prep.model, prep.adj, sampler, prep.evaluator('valid'), epochs=3,
                                  show_progress=False, handle_sigint=False)
                trainer.fit()
                results.append({k: v.cpu() for k, v in prep.model.state_dict().items()})
            assert all(torch.equal(results[0][k], results[1][k]) for k in results[0]), model
    finally:
        torch.use_deterministic_algorithms(False)


def test_fused_adam_takes_the_same_steps_as_plain_adam(tmp_path):
    """``train.fused_adam``: the fused kernel's updates equal torch's default (for-each) Adam's up to rounding."""
    from pyg_diffcl.datasets.mmrec import EDGE_TYPE
    from pyg_diffcl.training import Trainer
    data = write_dataset(tmp_path / 'mm', num_users=16, num_items=20, per_user=6, modalities={'v': 4})
    params = []
    for fused in (False, True):
        torch.manual_seed(0)
        cfg = resolve_config('diffcl', [parse_set([f'data.name={data}', 'model.embedding_dim=8', 'train.lr=0.01',
                                                   'model.denoiser_hidden=[8]', 'train.weight_decay=1e-4',
                                                   f'train.fused_adam={str(fused).lower()}'])])
        assert cfg.train.fused_adam is fused
        prep = prepare(cfg)
        sampler = prep.model.make_sampler(prep.dataset[0][EDGE_TYPE].edge_index, 8, 0)
        trainer = Trainer(prep.model, prep.adj, sampler, prep.evaluator('valid'), lr=cfg.train.lr, epochs=2,
                          weight_decay=cfg.train.weight_decay, fused_adam=cfg.train.fused_adam,
                          show_progress=False, handle_sigint=False)
        assert bool(trainer.optimizer.defaults.get('fused')) is fused
        trainer.fit()
        params.append([p.detach().clone() for p in prep.model.parameters()])
    moved = max((a - b).abs().max().item() for a, b in zip(params[0], params[1]))
    assert moved < 1e-4
    assert all(not torch.equal(p, torch.zeros_like(p)) for p in params[1])


def test_validation_on_a_seeded_sample_of_users(tmp_path):
    """eval.valid_users: the epoch is selected on a fixed sample of validation users, recorded in config.yaml;
    the test split still scores every user."""
    import hashlib

    from pyg_diffcl.training.config import parse_set, resolve_config
    from pyg_diffcl.training.run import prepare, train_run
    from tests.helpers import write_dataset
    data = write_dataset(tmp_path / 'mm', num_users=40, num_items=30, modalities={})

    def cfg(*extra):
        sets = [f'data.name={data}', 'model.embedding_dim=4', 'train.epochs=2', *extra]
        return resolve_config('lightgcn', [parse_set(sets)])
    everyone = prepare(cfg())
    valid_users = torch.unique(everyone.graph['user', 'rates', 'item'].valid_edge_label_index[0])
    assert everyone.valid_sample() is None and everyone.evaluator('valid').num_eval_users == valid_users.numel() == 20
    a, b, c = (prepare(cfg('eval.valid_users=7', f'eval.valid_users_seed={s}')) for s in (0, 0, 1))
    sample = a.valid_sample()
    assert sample.numel() == 7 and torch.equal(sample, b.valid_sample()) and not torch.equal(sample, c.valid_sample())
    assert bool(torch.isin(sample, valid_users).all()) and torch.equal(sample, sample.sort().values)
    assert a.evaluator('valid').num_eval_users == 7 and a.evaluator('test').num_eval_users == 40
    assert prepare(cfg('eval.valid_users=500')).valid_sample() is None  # more than there are: everyone
    metrics = train_run(cfg('eval.valid_users=7'), tmp_path / 'run', quiet=True)
    digest = hashlib.sha256(','.join(str(int(u)) for u in sample).encode()).hexdigest()
    header = (tmp_path / 'run' / 'config.yaml').read_text()
    assert f'# valid_users_sample: 7 of 20 validation users (seed 0); sha256' in header and digest in header
    assert metrics['test']['recall@20'] >= 0
    from pyg_diffcl.errors import ConfigError
    with pytest.raises(ConfigError, match='eval.valid_users: must be positive'):
        cfg('eval.valid_users=0')
