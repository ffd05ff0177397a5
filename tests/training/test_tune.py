"""pyg-diffcl tune: the objective is the seeds' mean validation value read back from the run directories,
pruning ends a run as an early stop does, a killed search continues, two processes share one study, and bad
spaces are refused before any trial."""
import csv
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

optuna = pytest.importorskip('optuna')

from pyg_diffcl.training.tune import SEED_STRIDE, TuneSpec, load_space, make_objective  # noqa: E402

from tests.helpers import run_cli, write_dataset  # noqa: E402

FAST = ['--set', 'model.embedding_dim=4', '--set', 'train.batch_size=16', '--set', 'train.epochs=3']


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp('tune') / 'mm', num_users=40, num_items=30, modalities={})


def write_space(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_a_study_selects_the_best_mean_over_seeds_and_writes_its_files(data, tmp_path):
    space = write_space(tmp_path / 'space.yaml', 'model.num_layers: {low: 1, high: 3}\n'
                                                 'model.reg_weight: {choices: [1.0e-4, 1.0e-2]}\n')
    out = tmp_path / 'study'
    res = run_cli('tune', '--model', 'lightgcn', '--data', str(data), '--space', str(space), '--trials', '3',
                  '--seeds', '0,1', '--sampler-seed', '1', *FAST, '--out', str(out))
    assert res.returncode == 0, res.stderr
    with open(out / 'trials.csv') as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 and all(r['state'] == 'COMPLETE' for r in rows)
    # every value is the mean of the seeds' own metrics.json (validation, never test)
    means = {}
    for r in rows:
        per_seed = [json.loads((out / 'trials' / 'lightgcn-mm' / f"{int(r['number']):04d}" / f'seed-{s}' / 'metrics.json')
                               .read_text())['valid']['recall@20'] for s in (0, 1)]
        assert [float(r['value_seed0']), float(r['value_seed1'])] == pytest.approx(per_seed)
        assert float(r['value']) == pytest.approx(statistics.fmean(per_seed))
        assert int(r['epochs_trained']) == 6
        means[int(r['number'])] = statistics.fmean(per_seed)
    best = max(means, key=means.get)
    assert f'best trial {best}:' in res.stderr
    assert (out / 'history.png').stat().st_size > 0
    # best.yaml trains with `train --config` to the best trial's setting
    run = tmp_path / 'again'
    res = run_cli('train', '--config', str(out / 'best.yaml'), '--quiet', '--out', str(run))
    assert res.returncode == 0, res.stderr
    import yaml
    cfg = yaml.safe_load((run / 'config.yaml').read_text())
    row = next(r for r in rows if int(r['number']) == best)
    assert cfg['model']['name'] == 'lightgcn' and cfg['model']['num_layers'] == int(row['model.num_layers'])
    assert cfg['model']['reg_weight'] == pytest.approx(float(row['model.reg_weight']))
    assert cfg['model']['embedding_dim'] == 4 and cfg['train']['epochs'] == 3
    # the same command again: the study is complete, nothing is trained
    res = run_cli('tune', '--model', 'lightgcn', '--data', str(data), '--space', str(space), '--trials', '3',
                  '--seeds', '0,1', *FAST, '--out', str(out))
    assert res.returncode == 0 and '3 of 3 trials finished' in res.stderr and 'trial 3' not in res.stderr
    # other seeds on the same study are refused
    res = run_cli('tune', '--model', 'lightgcn', '--data', str(data), '--space', str(space), '--trials', '3',
                  '--seeds', '0,2', *FAST, '--out', str(out))
    assert res.returncode == 2 and 'was started with other seeds' in res.stderr


class FakeTrial:
    """What the objective uses of an Optuna trial, with a pruner that says 'prune' from epoch 2 of seed 1."""
    def __init__(self):
        self.number, self.params, self.user_attrs, self.reports = 0, {}, {}, []
        self.study = type('Study', (), {'study_name': 'fake'})()

    def suggest_int(self, key, low, high, step=1, log=False):
        self.params[key] = low
        return low

    def set_user_attr(self, key, value):
        self.user_attrs[key] = value

    def report(self, value, step):
        self.reports.append((step, value))

    def should_prune(self):
        return self.reports[-1][0] >= SEED_STRIDE + 2


def test_pruning_ends_a_run_like_an_early_stop_and_reports_each_seed_at_its_offset(data, tmp_path):
    from pyg_diffcl.training.tune import Param
    spec = TuneSpec('lightgcn', str(data), [0, 1], ['model.embedding_dim=4', 'train.batch_size=16',
                                                    'train.epochs=5'],
                    {'model.num_layers': Param('model.num_layers', 'int', 1, 2)}, 'space.yaml')
    trial = FakeTrial()
    objective = make_objective(spec, tmp_path, 'recall@20', prune_warmup=2, log=lambda *a: None)
    with pytest.raises(optuna.TrialPruned):
        objective(trial)
    steps = [s for s, _ in trial.reports]
    assert steps == [1, 2, 3, 4, 5, SEED_STRIDE + 1, SEED_STRIDE + 2]
    # the reported value is the best validation value so far of that seed's run
    for seed, rng in ((0, slice(0, 5)), (1, slice(5, 7))):
        with open(tmp_path / 'trials' / 'fake' / '0000' / f'seed-{seed}' / 'log.csv') as f:
            curve = [float(r['valid_recall@20']) for r in csv.DictReader(f)]
        assert [v for _, v in trial.reports[rng]] == pytest.approx(
            [max(curve[:i + 1]) for i in range(len(curve))])
    pruned = json.loads((tmp_path / 'trials' / 'fake' / '0000' / 'seed-1' / 'metrics.json').read_text())
    assert pruned['pruned'] is True and pruned['epochs_run'] == 2 and pruned['test']['recall@20'] is not None
    assert 'pruned' not in json.loads((tmp_path / 'trials' / 'fake' / '0000' / 'seed-0' / 'metrics.json').read_text())
    assert trial.user_attrs['epochs'] == [5, 2] and trial.user_attrs['trained'] == [5, 2]


def trials_in(out: Path, name: str):
    storage = optuna.storages.RDBStorage(f'sqlite:///{out / "study.db"}')
    return optuna.load_study(study_name=name, storage=storage).get_trials()


def test_a_killed_search_continues_and_retries_the_interrupted_trial(data, tmp_path):
    """SIGKILL while the second trial trains: started again, the first trial is kept, the killed one is
    marked failed and its setting retried, resuming its run directory from the last epoch."""
    space = write_space(tmp_path / 'space.yaml', 'model.num_layers: {low: 1, high: 3}\n')
    out = tmp_path / 'study'
    args = ['tune', '--model', 'lightgcn', '--data', str(data), '--space', str(space), '--trials', '2',
            '--seeds', '0', '--heartbeat', '1', '--pruner', 'none', '--set', 'model.embedding_dim=4',
            '--set', 'train.batch_size=16', '--set', 'train.epochs=40', '--set', 'train.patience=1000',
            '--out', str(out)]
    proc = subprocess.Popen([sys.executable, '-m', 'pyg_diffcl', *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    second = out / 'trials' / 'lightgcn-mm' / '0001' / 'seed-0'
    deadline = time.time() + 300
    while time.time() < deadline and not (second / 'last.pt').is_file():
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # after the second trial's first epoch: its heartbeat is recorded
    proc.wait()
    assert (second / 'last.pt').is_file() and not (second / 'metrics.json').exists()
    with open(second / 'log.csv') as f:
        done_before = len(list(csv.DictReader(f)))
    assert 1 <= done_before < 40
    time.sleep(2.5)  # the dead trial's heartbeat is now older than the grace period
    res = run_cli(*args)
    assert res.returncode == 0, res.stderr
    trials = {t.number: t for t in trials_in(out, 'lightgcn-mm')}
    assert trials[0].state.name == 'COMPLETE' and trials[1].state.name == 'FAIL'
    retries = [t for t in trials.values() if t.user_attrs.get('retry_of') == 1]
    assert len(retries) == 1 and retries[0].state.name == 'COMPLETE'
    assert retries[0].params == trials[1].params
    # the retry continued trial 1's run: every epoch once, the first ones from before the kill
    with open(second / 'log.csv') as f:
        epochs = [int(r['epoch']) for r in csv.DictReader(f)]
    assert epochs == list(range(1, 41))
    assert json.loads((second / 'metrics.json').read_text())['epochs_run'] == 40
    assert not (out / 'trials' / 'lightgcn-mm' / f'{retries[0].number:04d}').exists()
    # the epochs trained in all: trial 0's, and trial 1's run once (the copy counts the resumed run whole)
    with open(out / 'trials.csv') as f:
        trained = sum(int(r['epochs_trained'] or 0) for r in csv.DictReader(f))
    assert trained == 80


def test_two_processes_share_one_study(data, tmp_path):
    space = write_space(tmp_path / 'space.yaml', 'model.num_layers: {low: 1, high: 4}\n'
                                                 'model.reg_weight: {low: 1.0e-5, high: 1.0e-1, log: true}\n')
    out = tmp_path / 'study'
    out.mkdir()
    args = [sys.executable, '-m', 'pyg_diffcl', 'tune', '--model', 'lightgcn', '--data', str(data), '--space',
            str(space), '--trials', '6', '--seeds', '0', '--pruner', 'none', '--set', 'model.embedding_dim=4',
            '--set', 'train.batch_size=16', '--set', 'train.epochs=15', '--set', 'train.patience=1000',
            '--out', str(out)]
    env = dict(os.environ, OMP_NUM_THREADS='1')
    procs = [subprocess.Popen(args + ['--sampler-seed', str(s)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True, env=env) for s in (1, 2)]
    logs = [p.communicate(timeout=600)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), logs
    ran = [{int(line.split()[2].rstrip(':')) for line in log.splitlines() if line.startswith('[tune] trial ')}
           for log in logs]
    assert ran[0] and ran[1] and not ran[0] & ran[1], ran
    trials = trials_in(out, 'lightgcn-mm')
    assert sorted(ran[0] | ran[1]) == sorted(t.number for t in trials)
    assert sum(t.state.name == 'COMPLETE' for t in trials) >= 6


@pytest.mark.parametrize('text,match', [
    ('model.hidden_size: {low: 1, high: 4}\n', "model.hidden_size: unknown config key"),
    ('model.num_layers: {low: 4, high: 1}\n', 'low must be below high'),
    ('model.reg_weight: {low: 0.0, high: 1.0, log: true}\n', 'a log scale needs low > 0'),
    ('model.name: {choices: [mf]}\n', 'cannot be searched'),
    ('lr: {low: 0.1, high: 0.2}\n', 'a key must be section.key'),
    ('model.num_layers: {choices: [2, two]}\n', 'model.num_layers'),
])
def test_a_bad_space_is_refused(data, tmp_path, text, match):
    from pyg_diffcl.errors import ConfigError
    space = write_space(tmp_path / 'space.yaml', text)
    with pytest.raises(ConfigError, match=match) as info:
        TuneSpec('lightgcn', str(data), [0], [], load_space(space), str(space)).check()
    assert str(space) in str(info.value) and '\n' not in str(info.value)


def test_the_command_refuses_a_bad_space_before_any_trial(data, tmp_path):
    space = write_space(tmp_path / 'space.yaml', 'model.hidden_size: {low: 1, high: 4}\n')
    out = tmp_path / 'study'
    res = run_cli('tune', '--model', 'lightgcn', '--data', str(data), '--space', str(space), '--trials', '1',
                  '--out', str(out))
    lines = [l for l in res.stderr.splitlines() if l.startswith('pyg-diffcl: error')]
    assert res.returncode == 2 and len(lines) == 1 and 'model.hidden_size: unknown config key' in lines[0]
    assert not (out / 'trials').exists() and not (out / 'study.db').exists()


def test_the_metric_selects_each_run_and_is_checked():
    from pyg_diffcl.errors import ConfigError
    from pyg_diffcl.training.tune import Param
    space = {'model.num_layers': Param('model.num_layers', 'int', 1, 2)}
    spec = TuneSpec('lightgcn', 'tiktok', [0], [], space, 'space.yaml', metric='ndcg@20')
    assert spec.check() == 'ndcg@20' and spec.layers({}, 0)[-1]['eval'] == {'metric': 'ndcg@20'}
    with pytest.raises(ConfigError, match='metric'):
        TuneSpec('lightgcn', 'tiktok', [0], [], space, 'space.yaml', metric='recall@7').check()


def test_an_interrupted_setting_is_retried_at_most_three_times():
    from pyg_diffcl.training.tune import MAX_RETRIES, _retry
    study = optuna.create_study()
    dist = {'x': optuna.distributions.IntDistribution(0, 9)}
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL, params={'x': 3},
                                              distributions=dist))
    for _ in range(6):
        failed = study.trials[-1]
        _retry(study, failed)
        _retry(study, failed)  # twice: the second finds the copy queued
        waiting = [t for t in study.trials if t.state.name == 'WAITING']
        if not waiting:
            break
        assert len(waiting) == 1
        trial = study.ask()
        assert trial.suggest_int('x', 0, 9) == 3 and trial.user_attrs['retry_of'] == 0
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    assert len(study.trials) == 1 + MAX_RETRIES == 4


def test_every_model_ships_a_space_its_configuration_accepts():
    from pyg_diffcl.models import MODELS
    from pyg_diffcl.training.tune import space_path
    for model in MODELS:
        space = load_space(space_path(model))
        spec = TuneSpec(model, 'tiktok', [0], [], space, str(space_path(model)))
        assert spec.check() == 'recall@20'


def test_without_optuna_one_line_and_exit_2(tmp_path):
    code = ("import sys; sys.modules['optuna'] = None; from pyg_diffcl.cli import main; "
            "sys.exit(main(['tune', '--model', 'lightgcn', '--out', %r]))" % str(tmp_path / 'x'))
    res = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and res.stderr.strip().splitlines() == [
        "pyg-diffcl: error: pyg-diffcl tune needs Optuna: pip install 'pyg-diffcl[tune]' (or: pip install optuna)"]


def test_startup_trials_set_when_the_pruner_and_the_sampler_start_to_act():
    """With ``startup_trials=1`` a poor run is pruned once one trial has completed; with the default (5) or 2
    it is not; TPE is given N as its number of random start-up trials (Optuna's 10 by default)."""
    from pyg_diffcl.training.tune import _pruner, _sampler

    def poor_trial_pruned(startup):
        study = optuna.create_study(direction='maximize', pruner=_pruner('median', startup))
        t = study.ask()  # one completed trial at 0.5
        for step in range(5):
            t.report(0.5, step)
        study.tell(t, 0.5)
        t = study.ask()
        for step in range(5):
            t.report(0.1, step)
        return t.should_prune()

    assert poor_trial_pruned(1)
    assert not poor_trial_pruned(None)
    assert not poor_trial_pruned(2)
    assert _sampler('tpe', {}, 0, 3)._n_startup_trials == 3
    assert _sampler('tpe', {}, 0)._n_startup_trials == 10


def test_stale_counts_the_trials_finished_after_the_best_one():
    """Hand-worked: trials finish in the order of their end times, not of their numbers (two processes), a
    pruned trial counts, a failed or running one does not, and a later best starts the count again."""
    import datetime
    from pyg_diffcl.training.tune import stale
    t0 = datetime.datetime(2026, 1, 1)
    dist = {'x': optuna.distributions.FloatDistribution(0, 1)}

    def study_of(rows):  # (value or None, state, minute it ended)
        study = optuna.create_study(direction='maximize')
        for value, state, end in rows:
            study.add_trial(optuna.trial.FrozenTrial(
                number=0, state=optuna.trial.TrialState[state], value=value, datetime_start=t0,
                datetime_complete=None if state == 'RUNNING' else t0 + datetime.timedelta(minutes=end),
                params={'x': 0.5}, distributions=dist, user_attrs={}, system_attrs={}, intermediate_values={},
                trial_id=0))
        return study

    assert not stale(study_of([(None, 'PRUNED', 1), (None, 'PRUNED', 2)]), 1)  # nothing complete yet
    rows = [(0.10, 'COMPLETE', 1), (0.30, 'COMPLETE', 5),   # trial 1 is the best, ended at minute 5
            (0.20, 'COMPLETE', 9), (0.25, 'COMPLETE', 4),   # trial 3 ended before it: not counted
            (None, 'PRUNED', 6), (None, 'FAIL', 7), (None, 'RUNNING', 0)]
    assert stale(study_of(rows), 2) and not stale(study_of(rows), 3)
    assert not stale(study_of(rows + [(0.31, 'COMPLETE', 10)]), 1)  # a new best: none after it
    assert stale(study_of(rows + [(0.29, 'COMPLETE', 10)]), 3)


def test_stale_trials_ends_the_study_that_many_trials_after_its_best(data, tmp_path):
    space = write_space(tmp_path / 'space.yaml', 'model.reg_weight: {low: 1.0e-5, high: 1.0, log: true}\n'
                                                 'train.lr: {low: 1.0e-4, high: 1.0e-1, log: true}\n')
    out = tmp_path / 'study'
    args = ['tune', '--model', 'lightgcn', '--data', str(data), '--space', str(space), '--trials', '30',
            '--seeds', '0', '--sampler', 'random', '--sampler-seed', '3', '--pruner', 'none', *FAST,
            '--out', str(out)]
    res = run_cli(*args, '--stale-trials', '3')
    assert res.returncode == 0, res.stderr
    with open(out / 'trials.csv') as f:
        values = [float(r['value']) for r in csv.DictReader(f)]
    # one process: the trials end in number order, and the study stops three after the best (30 is not reached)
    assert len(values) < 30 and len(values) - 1 - values.index(max(values)) == 3
    res = run_cli(*args, '--stale-trials', '3')  # continued: already over, nothing trained
    assert res.returncode == 0 and 'the study is over (--stale-trials)' in res.stderr
    res = run_cli(*args, '--stale-trials', '0')
    assert res.returncode == 2 and '--stale-trials: must be positive' in res.stderr
