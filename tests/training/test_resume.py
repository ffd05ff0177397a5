"""Resuming: a run stopped mid-epoch and at an epoch boundary, restored into a freshly built model (as a new
process would), makes the same updates bit for bit as a run that was never stopped."""
import copy
import io

import pytest
import torch

from pyg_diffcl.datasets.mmrec import EDGE_TYPE
from pyg_diffcl.training import Trainer, prepare
from pyg_diffcl.training.config import parse_set, resolve_config
from tests.helpers import write_dataset

SETTINGS = {
    'mf': ['model.embedding_dim=8'],
    'lightgcn': ['model.embedding_dim=8'],
    'diffcl': ['model.embedding_dim=8', 'model.denoiser_hidden=[8]', 'model.cl_max_nodes=16'],
    'ld4mrec': ['model.fc_dim=16', 'model.hidden_dim=8', 'model.svd_rank=4', 'model.item_graph_k=3',
                'model.step_sampling=importance', 'model.step_record=example'],
    'vbpr': ['model.embedding_dim=8'],
    'freedom': ['model.embedding_dim=8', 'model.item_graph_k=3'],
    'bm3': ['model.embedding_dim=8'],
    'mentor': ['model.embedding_dim=8', 'model.item_graph_k=3', 'model.mlp_hidden=16'],
    'diffmm': ['model.embedding_dim=8', 'model.denoiser_hidden=[8]', 'model.diff_batch_size=8'],
}
EPOCHS = 4


class StopAfter:
    """A sampler wrapper that asks the trainer to stop after :obj:`count` batches in all."""
    def __init__(self, sampler, count):
        self.sampler, self.count, self.seen, self.trainer = sampler, count, 0, None

    def __len__(self):
        return len(self.sampler)

    def epoch(self, epoch, start_batch=0):
        for batch in self.sampler.epoch(epoch, start_batch):
            self.seen += 1
            if self.seen == self.count:  # the trainer finishes this batch, then stops
                self.trainer.request_stop()
            yield batch


def _roundtrip(state):
    """What a checkpoint file gives back (torch.save, then load with weights_only=True)."""
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def _trainer(config, wrap=None, on_epoch=None):
    prep = prepare(config)
    sampler = prep.model.make_sampler(prep.dataset[0][EDGE_TYPE].edge_index, config.train.batch_size,
                                      config.train.seed)
    if wrap is not None:
        sampler = wrap(sampler)
    saved = []
    trainer = Trainer(prep.model, prep.adj, sampler, prep.evaluator('valid'), lr=config.train.lr,
                      epochs=config.train.epochs, patience=config.train.patience, show_progress=False,
                      on_checkpoint=lambda s: saved.append(_roundtrip(s)), on_epoch=on_epoch, handle_sigint=False,
                      weight_decay=config.train.weight_decay, checkpoint_every=config.train.checkpoint_every)
    if wrap is not None:
        sampler.trainer = trainer
    return trainer, saved


def same(a, b):
    """Bit equality of tensors, and of the nested containers a model's extra state may hold."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def _history(result):
    return [(r.epoch, r.loss, r.valid, r.grad_norm, r.grad_norm_max) for r in result.history]


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp('resume') / 'mm', num_users=24, num_items=30, per_user=7,
                         modalities={'v': 6, 't': 5})


@pytest.mark.parametrize('model', sorted(SETTINGS))
def test_resume_is_bit_identical(data, model):
    config = resolve_config(model, [parse_set(SETTINGS[model] + [
        f'data.name={data}', f'train.epochs={EPOCHS}', 'train.patience=50', 'train.seed=5',
        f"train.batch_size={8 if model == 'ld4mrec' else 32}", 'train.weight_decay=1e-4'])])

    full, _ = _trainer(config)
    reference = full.fit()
    assert not reference.interrupted and reference.epochs_run == EPOCHS
    final = copy.deepcopy(full.model.state_dict())

    # First stop: mid-epoch (the 2nd batch of epoch 2).
    first, saved = _trainer(config, wrap=lambda s: StopAfter(s, len(s) + 2))
    n_batches = len(first.sampler)
    assert n_batches >= 3
    stopped = first.fit()
    assert stopped.interrupted and stopped.stopped_at == (1, 2)
    state = saved[-1]
    assert state['position'] == {'epoch': 1, 'batch': 2} and len(state['history']) == 1

    # Second stop, in a fresh model: requested during epoch 3's validation, so it stops at the epoch boundary.
    def on_epoch(record, improved):
        if record.epoch == 3:
            second.request_stop()
    second, saved2 = _trainer(config, on_epoch=on_epoch)
    second.load_state_dict(state)
    stopped = second.fit()
    assert stopped.interrupted and stopped.stopped_at == (3, 0)
    state = saved2[-1]
    assert state['position'] == {'epoch': 3, 'batch': 0} and len(state['history']) == 3
    if model == 'diffmm':  # the best epoch's copy keeps what scoring needs, not the denoisers' optimizer
        assert state['model']['_extra_state']['diff_opt'] is not None
        assert state['early_stopping']['best_state']['_extra_state']['diff_opt'] is None

    third, _ = _trainer(config)
    third.load_state_dict(state)
    resumed = third.fit()
    assert not resumed.interrupted
    assert _history(resumed) == _history(reference)
    assert resumed.best_epoch == reference.best_epoch and resumed.best_valid == reference.best_valid
    for key, value in third.model.state_dict().items():
        assert same(value, final[key]), key
    for key, value in resumed.best_state.items():
        assert same(value, reference.best_state[key]), key


def test_resume_after_early_stop_does_nothing(data):
    config = resolve_config('mf', [parse_set([f'data.name={data}', 'train.epochs=30', 'train.patience=1',
                                              'model.embedding_dim=4'])])
    trainer, saved = _trainer(config)
    result = trainer.fit()
    assert result.epochs_run < 30  # stopped by patience
    again, more = _trainer(config)
    again.load_state_dict(saved[-1])
    assert again.fit().epochs_run == result.epochs_run and not more


def test_random_states_roundtrip():
    import random

    import numpy as np

    from pyg_diffcl.training.trainer import rng_state, set_rng_state
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    state = _roundtrip(rng_state())
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    set_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_checkpoint_every(data):
    config = resolve_config('mf', [parse_set([f'data.name={data}', 'train.epochs=5', 'train.patience=50',
                                              'model.embedding_dim=4', 'train.checkpoint_every=2'])])
    trainer, saved = _trainer(config)
    trainer.fit()
    assert [s['position'] for s in saved] == [{'epoch': 2, 'batch': 0}, {'epoch': 4, 'batch': 0}]
    # A stop request is always saved, whatever the period.
    trainer, saved = _trainer(config, on_epoch=lambda rec, improved: rec.epoch == 3 and trainer.request_stop())
    trainer.checkpoint_every = 0
    assert trainer.fit().interrupted
    assert [s['position'] for s in saved] == [{'epoch': 3, 'batch': 0}]
