r"""Validation-only hyper-parameter search on `Optuna <https://optuna.org>`_: ``pyg-diffcl tune``.

A *study* searches a model's *space* (a YAML file of ``section.key`` ranges and choices, one per model in
``pyg_diffcl/configs/spaces/``). Each *trial* draws a setting and trains it once per seed, each run a
run directory of its own (``DIR/trials/STUDY/NNNN/seed-S``, evaluable like any run); the trial's value is
the mean validation metric over the seeds (Recall@20 by default). The test split is never read for a
decision.

**Pruning.** After every epoch a run reports its best validation value so far. The seeds run one after the
other, and seed :math:`k`'s epoch :math:`e` is reported at step :math:`k \cdot 10^5 + e`, so the pruner
compares a trial's seed-:math:`k` curve with the other trials' seed-:math:`k` curves at the same epoch.
From epoch :obj:`prune_warmup` on, a run that the pruner (median by default) judges poor is ended there, as
an early stop ends it (its run directory is complete, ``"pruned": true`` in its ``metrics.json``), and the
trial stops without its remaining seeds.

**Interruption and sharing.** The study lives in an RDB storage, ``sqlite:///DIR/study.db`` by default, so a
search killed in any way continues when started again with the same arguments: finished trials are kept.
Runs send Optuna heartbeats; a trial whose process died (SIGKILL, a lost machine) is marked failed once its
heartbeat is :obj:`heartbeat` x 2 seconds old (when any process of the study next starts a trial), and a copy
with the same setting is queued; the copy resumes the dead trial's run directories from their last epoch
(``train --resume``), so no finished epoch is trained twice. A trial stopped by SIGINT is
retried the same way at the next start. Several processes, on one machine or many, may run one study at
once (the same ``--storage`` and ``--study``): each draws its own trials, and the search ends when the study
holds :obj:`trials` finished ones (complete or pruned), or, with :obj:`stale_trials`, once that many have
finished since the best one.
"""
from __future__ import annotations

import csv
import io
import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ..datasets.files import atomic_write
from ..errors import ConfigError, TrainingDiverged, TrainingInterrupted
from .config import CONFIG_DIR, SECTIONS, load_yaml, packaged_for, parse_set, resolve_config
from .lock import RunDirectoryBusy
from .reproduce import mean_std
from .run import RESUME_CHECKPOINT, held_config, resume_run, train_run

#: Where each model's search space lives.
SPACE_DIR = CONFIG_DIR / 'spaces'
#: The step offset between seeds in a trial's reported curve.
SEED_STRIDE = 100_000
PRUNERS = ('median', 'percentile', 'none')
SAMPLERS = ('tpe', 'random', 'grid')
INSTALL_HINT = "pyg-diffcl tune needs Optuna: pip install 'pyg-diffcl[tune]' (or: pip install optuna)"


def require_optuna() -> Any:
    """Optuna, or a :class:`~pyg_diffcl.errors.ConfigError` saying how to install it (one line)."""
    try:
        import optuna
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    return optuna


@dataclass
class Param:
    """One dimension of a search space: a float or int range (``log`` scale, ``step``) or ``choices``."""
    key: str
    kind: str
    low: Any = None
    high: Any = None
    log: bool = False
    step: Any = None
    choices: Optional[List[Any]] = None

    def values_to_check(self) -> List[Any]:
        return list(self.choices) if self.kind == 'categorical' else [self.low, self.high]

    def suggest(self, trial: Any) -> Any:
        if self.kind == 'categorical':
            return trial.suggest_categorical(self.key, self.choices)
        if self.kind == 'int':
            return trial.suggest_int(self.key, self.low, self.high, step=self.step or 1, log=self.log)
        return trial.suggest_float(self.key, self.low, self.high, step=self.step, log=self.log)

    def describe(self) -> str:
        if self.kind == 'categorical':
            return f'{self.key} in {self.choices}'
        return f"{self.key} {self.kind} [{self.low}, {self.high}]{' log' if self.log else ''}"


def space_path(model: str) -> Path:
    """The packaged search space of :obj:`model`."""
    return SPACE_DIR / f'{model}.yaml'


def load_space(path: str | Path) -> Dict[str, Param]:
    """Read a search space file: a mapping ``section.key: {low, high[, log][, step][, type]}`` or
    ``section.key: {choices: [...]}``. Raises :class:`ConfigError` naming the file and the key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f'--space {path}: no such file')
    raw = load_yaml(path)
    if not raw:
        raise ConfigError(f'{path}: the search space is empty')
    space: Dict[str, Param] = {}
    for key, spec in raw.items():
        where = f'{path}: {key}'
        parts = str(key).split('.')
        if len(parts) != 2 or parts[0] not in SECTIONS or not parts[1]:
            raise ConfigError(f'{where}: a key must be section.key with a section of {", ".join(SECTIONS)}')
        if parts[1] == 'name' or parts[0] == 'train' and parts[1] == 'seed':
            raise ConfigError(f'{where}: cannot be searched (the model, the data set and the seeds are fixed)')
        if not isinstance(spec, dict):
            raise ConfigError(f'{where}: expected a mapping with low/high or choices, got {spec!r}')
        unknown = set(spec) - {'low', 'high', 'log', 'step', 'type', 'choices'}
        if unknown:
            raise ConfigError(f'{where}: unknown field(s) {sorted(unknown)} (low, high, log, step, type, choices)')
        if 'choices' in spec:
            choices = spec['choices']
            if not isinstance(choices, list) or not choices or set(spec) - {'choices'}:
                raise ConfigError(f'{where}: choices must be a non-empty list, alone')
            space[key] = Param(key, 'categorical', choices=choices)
            continue
        if 'low' not in spec or 'high' not in spec:
            raise ConfigError(f'{where}: needs low and high (or choices)')
        low, high = spec['low'], spec['high']
        kind = spec.get('type') or ('int' if isinstance(low, int) and isinstance(high, int)
                                    and not isinstance(low, bool) else 'float')
        if kind not in ('int', 'float') or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                   for v in (low, high)):
            raise ConfigError(f'{where}: low and high must be numbers and type int or float')
        if not low < high:
            raise ConfigError(f'{where}: low must be below high, got {low} and {high}')
        log = bool(spec.get('log', False))
        if log and low <= 0:
            raise ConfigError(f'{where}: a log scale needs low > 0, got {low}')
        if log and spec.get('step') is not None:
            raise ConfigError(f'{where}: step and log cannot be combined')
        if kind == 'int':
            low, high = int(low), int(high)
        else:
            low, high = float(low), float(high)
        space[key] = Param(key, kind, low, high, log, spec.get('step'))
    return space


def params_layer(params: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    """``{'model.num_layers': 3}`` -> ``{'model': {'num_layers': 3}}``."""
    out: Dict[str, Dict[str, Any]] = {}
    for key, value in params.items():
        section, name = key.split('.', 1)
        out.setdefault(section, {})[name] = value
    return out


@dataclass
class TuneSpec:
    """What a study searches: the model, the data set, the seeds, the fixed settings and the space."""
    model: str
    data: str
    seeds: List[int]
    sets: List[str]
    space: Dict[str, Param]
    space_file: str
    metric: Optional[str] = None

    def layers(self, params: Dict[str, Any], seed: int) -> List[Dict[str, Any]]:
        """The configuration layers of one run: the data set's packaged settings, the fixed ``--set`` values,
        the trial's setting, then the model, data set and seed."""
        last = self.identity()
        last['train'] = {'seed': seed}
        return [packaged_for(self.data, self.model), parse_set(self.sets), params_layer(params), last]

    def identity(self) -> Dict[str, Dict[str, Any]]:
        """The layer that names the model and the data set (and ``eval.metric`` when the search has its
        own: each run selects its epoch on the metric the search maximises); last in every run's
        configuration and in ``best.yaml``."""
        last: Dict[str, Dict[str, Any]] = {'model': {'name': self.model}, 'data': {'name': self.data}}
        if self.metric:
            last['eval'] = {'metric': self.metric}
        return last

    def check(self) -> str:
        """Refuse, before any trial, a space key the model does not have or a value its configuration
        rejects; returns the selection metric."""
        base = resolve_config(layers=self.layers({}, self.seeds[0]))
        for p in self.space.values():
            for value in p.values_to_check():
                try:
                    resolve_config(layers=self.layers({p.key: value}, self.seeds[0]))
                except ConfigError as e:
                    raise ConfigError(f'{self.space_file}: {p.key}: {e}') from None
        return base.eval.metric

    def attrs(self) -> Dict[str, Any]:
        """What identifies the search (kept in the study, checked when it is continued)."""
        return {'model': self.model, 'data': self.data, 'seeds': self.seeds, 'sets': sorted(self.sets),
                'space': {k: p.describe() for k, p in sorted(self.space.items())}, 'metric': self.metric}


def _best_so_far(run: Path, metric: str) -> float:
    """The best validation value in a run's ``log.csv`` (read at a run's first epoch report, when the file
    holds its curve so far: a resumed run's earlier epochs and this one), or -inf."""
    log = run / 'log.csv'
    best = -math.inf
    if log.is_file():
        with open(log) as f:
            for row in csv.DictReader(f):
                try:
                    best = max(best, float(row[f'valid_{metric}']))
                except (KeyError, ValueError):
                    pass
    return best


def _root(trial: Any) -> int:
    """The trial whose run directories this one continues: itself, or the interrupted trial it retries."""
    retry = trial.user_attrs.get('retry_of')
    return int(retry) if retry is not None else trial.number


#: How many times the setting of an interrupted trial is tried again.
MAX_RETRIES = 3


def _retry(study: Any, trial: Any) -> None:
    """Queue a copy of the interrupted :obj:`trial` (its setting, ``retry_of`` its first trial) unless one is
    queued, running or finished already, or the setting was retried :data:`MAX_RETRIES` times. Optuna's
    heartbeat calls it for a trial whose process died; :func:`tune` for a trial stopped by SIGINT."""
    root = _root(trial)
    copies = [t for t in study.get_trials(deepcopy=False) if _root(t) == root and t.number != root]
    if any(t.number > trial.number for t in copies) or len(copies) >= MAX_RETRIES:
        return
    study.enqueue_trial(trial.params, user_attrs={'retry_of': root}, skip_if_exists=False)


def make_objective(spec: TuneSpec, out: Path, metric: str, prune_warmup: int, log: Callable[..., Any]
                   ) -> Callable[[Any], float]:
    """The study's objective: train the trial's setting once per seed, report each epoch, return the mean
    validation :obj:`metric`."""
    import optuna

    def objective(trial: Any) -> float:
        params = {k: p.suggest(trial) for k, p in spec.space.items()}
        root = _root(trial)
        _refuse_duplicate(trial, root)
        trial.set_user_attr('seeds', spec.seeds)
        values: List[float] = []
        epochs: List[int] = []
        trained: List[int] = []
        for k, seed in enumerate(spec.seeds):
            run = out / 'trials' / _safe(trial.study.study_name) / f'{root:04d}' / f'seed-{seed}'
            config = resolve_config(layers=spec.layers(params, seed))
            best = [None]

            def should_stop(record: Any, k: int = k, best: List[Any] = best, run: Path = run) -> bool:
                if best[0] is None:  # the first report: log.csv now holds the curve so far, this epoch included
                    best[0] = _best_so_far(run, metric)
                best[0] = max(best[0], record.valid[metric])
                trial.report(best[0], k * SEED_STRIDE + record.epoch)
                return record.epoch >= prune_warmup and trial.should_prune()

            _check_same_config(run, config)
            new = 0
            try:
                if (run / 'metrics.json').is_file():
                    metrics = json.loads((run / 'metrics.json').read_text())
                elif (run / RESUME_CHECKPOINT).is_file():
                    metrics = resume_run(run, quiet=True, log=lambda *a, **kw: None, should_stop=should_stop)
                    new = int(metrics['epochs_run'])
                else:
                    metrics = train_run(config, run, overwrite=True, quiet=True, log=lambda *a, **kw: None,
                                        should_stop=should_stop)
                    new = int(metrics['epochs_run'])
            except (TrainingInterrupted, KeyboardInterrupt):
                trial.set_user_attr('interrupted', True)
                raise
            values.append(float(metrics['valid'][metric]))
            epochs.append(int(metrics['epochs_run']))
            trained.append(new)
            trial.set_user_attr('values', values)
            trial.set_user_attr('epochs', epochs)
            trial.set_user_attr('trained', trained)
            if metrics.get('pruned'):
                log(f'[tune] trial {trial.number}: pruned at epoch {metrics["epochs_run"]} of seed {seed} '
                    f'(valid {metric} {values[-1]:.4f})')
                raise optuna.TrialPruned()
        mean, std = mean_std(values)
        trial.set_user_attr('std', std)
        log(f'[tune] trial {trial.number}: valid {metric} {mean:.4f} ± {std:.4f} over seeds '
            f'{",".join(map(str, spec.seeds))}, epochs {epochs}  {params}')
        return mean

    return objective


class DuplicateTrial(RuntimeError):
    """Another trial already runs or ran the setting this copy was queued to retry."""


def _refuse_duplicate(trial: Any, root: int) -> None:
    """A retry copy gives way when another copy of the same interrupted trial is running or finished (two
    processes that started together may both have queued one): it fails at once, without being retried."""
    if root == trial.number:
        return
    import optuna
    live = (optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    for t in trial.study.get_trials(deepcopy=False, states=live):
        if t.number != trial.number and t.number != root and _root(t) == root:
            raise DuplicateTrial(f'trial {t.number} already retries trial {root}')


def _safe(name: str) -> str:
    """A study name as a directory name."""
    return ''.join(c if c.isalnum() or c in '-_.' else '_' for c in name) or 'study'


def _check_same_config(run: Path, config: Any) -> None:
    """Refuse to reuse or resume a run directory that holds another configuration (a study recreated under
    the same name and ``--out``, say)."""
    if not (run / 'config.yaml').is_file() or not ((run / 'metrics.json').is_file()
                                                   or (run / RESUME_CHECKPOINT).is_file()):
        return
    if held_config(run) != config.to_dict():
        raise ConfigError(f'{run}: holds a run of another configuration than this trial\'s (a study recreated '
                          f'with the same name and --out?); move it away or give another --out')


def _storage(url: str, heartbeat: float) -> Any:
    import optuna
    from optuna.storages import RDBStorage
    kwargs: Dict[str, Any] = {}
    if url.startswith('sqlite'):
        kwargs['engine_kwargs'] = {'connect_args': {'timeout': 60}}  # several processes on one file
    import inspect
    # Optuna 4.9 renamed the callback of a trial whose heartbeat stopped
    name = ('heartbeat_stale_trial_callback' if 'heartbeat_stale_trial_callback'
            in inspect.signature(RDBStorage.__init__).parameters else 'failed_trial_callback')
    kwargs[name] = _retry
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', optuna.exceptions.ExperimentalWarning)
        return RDBStorage(url, heartbeat_interval=int(max(1, heartbeat)), grace_period=int(max(2, 2 * heartbeat)),
                          **kwargs)


def _open_study(url: str, name: str, heartbeat: float, sampler: Any, pruner: Any, attempts: int = 5) -> Any:
    """Create or load the study. Processes started together race to create the storage's tables and the
    study; the loser's error is transient, so it tries again."""
    import time

    import optuna
    from sqlalchemy.exc import IntegrityError, OperationalError
    for attempt in range(attempts):
        try:
            return optuna.create_study(study_name=name, storage=_storage(url, heartbeat), direction='maximize',
                                       sampler=sampler, pruner=pruner, load_if_exists=True)
        except (OperationalError, IntegrityError, optuna.exceptions.DuplicatedStudyError) as e:
            if attempt == attempts - 1 or 'locked' not in str(e) and 'exists' not in str(e) \
                    and not isinstance(e, (IntegrityError, optuna.exceptions.DuplicatedStudyError)):
                raise ConfigError(f'--storage {url}: {type(e).__name__}: {str(e).splitlines()[0]}') from None
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError('unreachable')


def _pruner(name: str, startup_trials: Optional[int] = None) -> Any:
    """The pruner :obj:`name`; it prunes nothing until :obj:`startup_trials` trials (default 5) have
    completed."""
    import optuna
    startup = 5 if startup_trials is None else startup_trials
    if name == 'median':
        return optuna.pruners.MedianPruner(n_startup_trials=startup)
    if name == 'percentile':
        return optuna.pruners.PercentilePruner(25.0, n_startup_trials=startup)
    return optuna.pruners.NopPruner()


def _sampler(name: str, space: Dict[str, Param], seed: Optional[int], startup_trials: Optional[int] = None
             ) -> Any:
    """The sampler :obj:`name`; TPE draws its first :obj:`startup_trials` trials (default Optuna's 10) at
    random."""
    import optuna
    if name == 'grid':
        bad = [k for k, p in space.items() if p.kind != 'categorical']
        if bad:
            raise ConfigError(f'--sampler grid: every space entry must be a list of choices ({", ".join(bad)} '
                              f'is a range)')
        return optuna.samplers.GridSampler({k: p.choices for k, p in space.items()}, seed=seed)
    if name == 'random':
        return optuna.samplers.RandomSampler(seed=seed)
    if startup_trials is None:
        return optuna.samplers.TPESampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup_trials)


def _retry_interrupted(study: Any) -> None:
    """Queue a copy of every trial stopped by SIGINT that has none yet (one whose process died is queued by
    the heartbeat, through :func:`_retry`)."""
    import optuna
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,)):
        if t.user_attrs.get('interrupted'):
            _retry(study, t)


def tune(spec: TuneSpec, out: str | Path, trials: int = 20, storage: Optional[str] = None,
         study_name: Optional[str] = None, pruner: str = 'median', sampler: str = 'tpe',
         sampler_seed: Optional[int] = None, prune_warmup: int = 10, heartbeat: float = 60.0,
         log: Callable[..., Any] = print, startup_trials: Optional[int] = None,
         stale_trials: Optional[int] = None) -> Dict[str, Any]:
    """Run (or continue) a study until it holds :obj:`trials` finished trials, or until :obj:`stale_trials`
    trials have finished since the best one (:func:`stale`), whichever comes first; write ``best.yaml``,
    ``trials.csv`` and the plots under :obj:`out`; return the best trial's summary."""
    optuna = require_optuna()
    if trials < 1:
        raise ConfigError(f'--trials: must be positive, got {trials}')
    if not spec.seeds:
        raise ConfigError('--seeds: at least one seed')
    if pruner not in PRUNERS:
        raise ConfigError(f'--pruner: expected one of {", ".join(PRUNERS)}, got {pruner!r}')
    if sampler not in SAMPLERS:
        raise ConfigError(f'--sampler: expected one of {", ".join(SAMPLERS)}, got {sampler!r}')
    if startup_trials is not None and startup_trials < 0:
        raise ConfigError(f'--startup-trials: must be 0 or more, got {startup_trials}')
    if stale_trials is not None and stale_trials < 1:
        raise ConfigError(f'--stale-trials: must be positive, got {stale_trials}')
    metric = spec.check()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    url = storage or f'sqlite:///{(out / "study.db").resolve()}'
    name = study_name or f'{spec.model}-{Path(spec.data).name}'
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = _open_study(url, name, heartbeat, _sampler(sampler, spec.space, sampler_seed, startup_trials),
                        _pruner(pruner, startup_trials))
    attrs = dict(spec.attrs(), metric=metric)
    held = study.user_attrs.get('spec')
    if held is None:
        study.set_user_attr('spec', attrs)
    elif held != json.loads(json.dumps(attrs)):
        diff = sorted(k for k in attrs if held.get(k) != json.loads(json.dumps(attrs[k])))
        raise ConfigError(f'--study {name}: the study in {url} was started with other {", ".join(diff)}; '
                          f'continue it with the same arguments or give another --study')
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    _retry_interrupted(study)
    done = len(study.get_trials(deepcopy=False, states=finished))
    log(f'[tune] study {name!r} in {url}: {done} of {trials} trials finished; space '
        f'{"; ".join(p.describe() for p in spec.space.values())}; seeds {spec.seeds}; valid {metric}')
    if stale_trials is not None and stale(study, stale_trials):
        log(f'[tune] {stale_trials} trials have finished since the best one: the study is over (--stale-trials)')
    elif done < trials and not (sampler == 'grid' and _grid_done(study, spec.space)):
        objective = make_objective(spec, out, metric, prune_warmup, log)
        callbacks = [optuna.study.MaxTrialsCallback(trials, states=finished)]
        if stale_trials is not None:
            callbacks.append(lambda study, trial: study.stop() if stale(study, stale_trials) else None)
        try:
            study.optimize(objective, callbacks=callbacks, catch=(TrainingDiverged, DuplicateTrial, RunDirectoryBusy),
                           gc_after_trial=True)
        except (TrainingInterrupted, KeyboardInterrupt):
            raise TrainingInterrupted(f'tune interrupted; the study is kept in {url}: run the same command again to '
                                      f'continue (the interrupted trial resumes where it stopped)') from None
    return write_outputs(study, spec, out, metric, log)


def stale(study: Any, n: int) -> bool:
    """Whether at least :obj:`n` trials (complete or pruned) finished after the best complete trial did: the
    study's stop rule ``--stale-trials``. Read from the storage, so that every process of a shared study
    applies it to the same trials; a process stops after its trial in progress."""
    import optuna
    state = optuna.trial.TrialState
    complete = study.get_trials(deepcopy=False, states=(state.COMPLETE,))
    if not complete:
        return False
    best = max(complete, key=lambda t: t.value)
    finished = study.get_trials(deepcopy=False, states=(state.COMPLETE, state.PRUNED))
    return sum(t.datetime_complete > best.datetime_complete for t in finished) >= n


def _grid_done(study: Any, space: Dict[str, Param]) -> bool:
    """Every combination of a grid has a trial that is not waiting to be retried (Optuna's grid sampler would
    otherwise draw a duplicate when a diverged trial left the study short of ``--trials``)."""
    import optuna
    seen = {tuple(sorted(t.params.items())) for t in study.get_trials(deepcopy=False)
            if t.state != optuna.trial.TrialState.WAITING and not t.user_attrs.get('interrupted')}
    return len(seen) >= math.prod(len(p.choices or []) for p in space.values())


def write_outputs(study: Any, spec: TuneSpec, out: Path, metric: str, log: Callable[..., Any] = print
                  ) -> Dict[str, Any]:
    """``best.yaml`` (for ``train --config``), ``trials.csv`` and the plots; returns the best trial's
    summary."""
    import optuna
    import yaml
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    _write_trials_csv(out / 'trials.csv', trials, spec)
    _write_plots(study, out, log)
    if not complete:
        raise ConfigError(f'{out}: no trial of the study has completed (see trials.csv)')
    best = max(complete, key=lambda t: t.value)
    values = best.user_attrs.get('values', [best.value])
    std = mean_std(values)[1]
    fixed = parse_set(spec.sets)
    layer = params_layer(best.params)
    merged: Dict[str, Dict[str, Any]] = {}
    for part in (fixed, layer, spec.identity()):
        for section, vals in part.items():
            merged.setdefault(section, {}).update(vals)
    body = {s: merged[s] for s in SECTIONS if s in merged}
    header = (f'# pyg-diffcl tune: study {study.study_name!r}, trial {best.number}, selected on validation '
              f'{metric}\n# {best.value:.4f} +- {std:.4f} over seeds {",".join(map(str, spec.seeds))}; '
              f'use: pyg-diffcl train --config {out / "best.yaml"} --out RUN_DIR\n')
    text = (header + yaml.safe_dump(body, sort_keys=False)).encode()
    atomic_write(out / 'best.yaml', lambda f: f.write(text))
    pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in trials)
    summary = {'study': study.study_name, 'trial': best.number, 'params': best.params, 'value': best.value,
               'std': std, 'values': values, 'seeds': spec.seeds, 'metric': metric, 'complete': len(complete),
               'pruned': pruned, 'epochs': sum(sum(t.user_attrs.get('trained', [])) for t in trials)}
    log(f'[tune] best trial {best.number}: valid {metric} {best.value:.4f} ± {std:.4f} over seeds '
        f'{",".join(map(str, spec.seeds))}  {best.params}\n[tune] {len(complete)} complete, {pruned} pruned, '
        f'{summary["epochs"]} epochs trained -> {out / "best.yaml"}, {out / "trials.csv"}')
    return summary


def _write_trials_csv(path: Path, trials: Sequence[Any], spec: TuneSpec) -> None:
    keys = list(spec.space)
    header = (['number', 'state', 'value', 'std'] + [f'value_seed{s}' for s in spec.seeds]
              + [f'epochs_seed{s}' for s in spec.seeds] + ['epochs_trained'] + keys + ['retry_of', 'seconds'])
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    for t in trials:
        values = list(t.user_attrs.get('values', []))
        epochs = list(t.user_attrs.get('epochs', []))
        trained = list(t.user_attrs.get('trained', []))
        pad = lambda xs: xs + [''] * (len(spec.seeds) - len(xs))  # noqa: E731
        seconds = (t.datetime_complete - t.datetime_start).total_seconds() \
            if t.datetime_complete and t.datetime_start else ''
        w.writerow([t.number, t.state.name, '' if t.value is None else t.value,
                    t.user_attrs.get('std', '')] + pad(values) + pad(epochs) + [sum(trained)]
                   + [t.params.get(k, '') for k in keys] + [t.user_attrs.get('retry_of', ''), seconds])
    data = buf.getvalue().encode()
    atomic_write(path, lambda f: f.write(data))


def _write_plots(study: Any, out: Path, log: Callable[..., Any]) -> None:
    """Optuna's matplotlib views: the optimisation history and, with two or more complete trials, the
    parameter importances."""
    import optuna
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        log('[tune] no plots: matplotlib is not installed')
        return
    from optuna.visualization import matplotlib as ovm
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    plots: List[Tuple[str, Callable[[], Any]]] = [('history.png', lambda: ovm.plot_optimization_history(study))]
    if len(complete) >= 2 and len({tuple(sorted(t.params.items())) for t in complete}) >= 2:
        plots.append(('importances.png', lambda: ovm.plot_param_importances(study)))
    for name, make in plots:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            try:
                ax = make()
            except (ValueError, RuntimeError) as e:  # e.g. importances of a parameter that never varied
                log(f'[tune] no {name}: {e}')
                continue
        fig = ax.figure if hasattr(ax, 'figure') else ax.flat[0].figure
        fig.set_size_inches(7, 4)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format='png', dpi=100)
        plt.close(fig)
        data = buf.getvalue()
        atomic_write(out / name, lambda f: f.write(data))
