"""``train.backend: auto`` in a run: one choice per host in the cache directory, recorded by each run, kept by
``--resume`` and by re-reading the run."""
import json

import pytest
import torch

from pyg_diffcl.ops import autotune, resolve_backend
from pyg_diffcl.training import backend as backend_module
from pyg_diffcl.training.lock import RunWriteError
from pyg_diffcl.training.run import RESUME_CHECKPOINT, load_run, resume_run, train_run

from tests.helpers import stop_at_resume_write, tiny_run_config, write_dataset


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp('auto') / 'mm', num_users=20, num_items=15, modalities={})


def config(data, **train):
    return tiny_run_config(data, **train)


class FakeHost:
    """Timings that make FASTEST the host's choice, counted; the process's own 'auto' restored after."""
    def __init__(self, fastest):
        self.fastest, self.calls = fastest, 0

    def __call__(self, **kwargs):
        self.calls += 1
        return {'csr': 1.0, 'index_add': 1.0, self.fastest: 0.5}


@pytest.fixture
def host(monkeypatch, tmp_path):
    saved = dict(autotune._AUTO)
    fake = FakeHost('index_add')
    monkeypatch.setattr(backend_module, 'time_backends', fake)
    monkeypatch.setenv('PYG_DIFFCL_CACHE', str(tmp_path / 'cache'))
    yield fake
    autotune._AUTO.clear()
    autotune._AUTO.update(saved)


def test_the_host_choice_is_timed_once_recorded_and_used(data, host, tmp_path):
    metrics = train_run(config(data), tmp_path / 'a', quiet=True)
    assert metrics['backend'] == 'index_add' and host.calls == 1
    choices = json.loads((tmp_path / 'cache' / backend_module.CHOICES_FILE).read_text())
    (entry,) = choices.values()
    assert entry['backend'] == 'index_add' and entry['fwdbwd_ms']['index_add'] == 500.0
    assert resolve_backend('auto') == 'index_add'  # the graphs a model builds itself agree
    autotune.set_auto_backend(None)
    assert train_run(config(data), tmp_path / 'b', quiet=True)['backend'] == 'index_add'
    assert host.calls == 1  # read from the cache directory, not timed again
    assert train_run(config(data, backend='csr'), tmp_path / 'c', quiet=True)['backend'] == 'csr'


def test_an_unreadable_choices_file_is_timed_again(data, host, tmp_path):
    path = tmp_path / 'cache' / backend_module.CHOICES_FILE
    path.parent.mkdir(parents=True)
    path.write_text('{not json')
    with pytest.warns(UserWarning, match='unreadable'):
        assert backend_module.host_backend(torch.device('cpu')) == 'index_add'
    assert host.calls == 1 and 'index_add' in path.read_text()


def test_resume_and_reload_keep_the_run_backend_when_the_host_choice_changes(data, host, tmp_path, monkeypatch):
    out = tmp_path / 'run'
    undo = stop_at_resume_write(monkeypatch)  # the second resume checkpoint fails: the run stops after epoch 1
    with pytest.raises(RunWriteError):
        train_run(config(data), out, quiet=True)
    undo()
    assert torch.load(out / RESUME_CHECKPOINT, weights_only=True)['backend'] == 'index_add'
    # The host now prefers csr (a new file, a fresh process's memo): the run still ends on index_add.
    (tmp_path / 'cache' / backend_module.CHOICES_FILE).unlink()
    host.fastest = 'csr'
    autotune.set_auto_backend(None)
    metrics = resume_run(out, quiet=True)
    assert metrics['backend'] == 'index_add' and metrics['epochs_run'] == 3
    reference = train_run(config(data, backend='index_add'), tmp_path / 'ref', quiet=True)
    assert metrics['test'] == reference['test'] and metrics['best_epoch'] == reference['best_epoch']
    autotune.set_auto_backend(None)
    assert load_run(out).adj.backend == 'index_add'  # from metrics.json
    assert train_run(config(data), tmp_path / 'new', quiet=True)['backend'] == 'csr'


def test_a_checkpoint_from_before_the_record_resumes_on_csr(data, host, tmp_path, monkeypatch):
    out = tmp_path / 'old'
    undo = stop_at_resume_write(monkeypatch)
    with pytest.raises(RunWriteError):
        train_run(config(data, backend='csr'), out, quiet=True)
    undo()
    ckpt = torch.load(out / RESUME_CHECKPOINT, weights_only=True)
    ckpt.pop('backend')
    ckpt['config']['train']['backend'] = 'auto'
    # and from before train.loader existed: a key added since, with its default, still matches
    del ckpt['config']['train']['loader']
    torch.save(ckpt, out / RESUME_CHECKPOINT)
    text = (out / 'config.yaml').read_text()
    assert '  loader: full\n' in text
    text = text.replace('backend: csr', 'backend: auto').replace('  loader: full\n', '')
    (out / 'config.yaml').write_text(text)
    assert resume_run(out, quiet=True)['backend'] == 'csr' and host.calls == 0
