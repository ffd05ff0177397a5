r"""``pyg-diffcl reproduce TABLE``: run the models of a results table over its seeds and print the table beside
the figures the README states.

A table is a YAML file, ``pyg_diffcl/configs/tables/<name>.yaml`` (or any path)::

    data: tiktok                 # an embedded data set or a directory
    seeds: [0, 1, 2, 3, 4]       # optional; these five by default
    metrics: [recall@20, ndcg@20, recall@50, ndcg@50]   # the test columns (optional; these by default)
    timing: false                # true: a last column with each row's training seconds per epoch
    rows:
      - name: LightGCN           # the row's label in the table
        model: lightgcn          # the packaged settings of an embedded data set apply, then `set`
        set: []                  # extra section.key=value overrides

Every (row, seed) is one run directory ``OUT/<row>-s<seed>`` (default ``OUT = runs/reproduce-<name>``),
trained with the same code path as ``pyg-diffcl train`` (validation selects the epoch; test once, for the
selected weights). A finished run whose configuration is the one asked for is reused, an interrupted one
(``last.pt``) is resumed, so an interrupted reproduction continues where it stopped. Tables share runs: a
finished run of the same configuration in a sibling directory of ``OUT`` (another table's, say
``runs/reproduce-tiktok/diffcl-s0`` for the full model's row of an ablation table) is reused too, since the
configuration, seed included, determines a CPU run bit for bit. Where a run was trained (``train.device``) and
how often it saved its checkpoint (``train.checkpoint_every``) decide nothing it learns, so a finished run is
reused whatever they were (:data:`EXECUTION_KEYS`): a table may gather runs trained on a GPU and on the CPU,
which are draws of the same configuration though not the same bits; each run's ``metrics.json`` names its
device. An interrupted run resumes only under its own full configuration. The figures are
mean ± sample standard deviation (n - 1) over the seeds, and every table also shows its worst seed: the
lowest test figure of the first metric (recall@20 where the table has it) and the seed that gave it, so that
a reader sees what an unlucky seed costs, not only the spread.

The README (the headline table) or a documentation page (``docs/results.md``, ``docs/baselines.md``,
``docs/scaling.md``) holds each table between ``<!-- reproduce:NAME -->`` and ``<!-- /reproduce:NAME -->``
(:func:`find_pages`, or ``--readme FILE``); ``--write-readme`` replaces that block with the table just
computed (so the stated tables come from this command, never typed by hand), and without it the command reads
the block and reports, row by row, whether each reproduced test mean lies within the stated standard deviation
of the stated mean.
"""
from __future__ import annotations

import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import yaml

from ..datasets.files import atomic_write
from ..errors import ConfigError
from .config import CONFIG_DIR, RunConfig, packaged_for, parse_set, resolve_config

TABLES_DIR = CONFIG_DIR / 'tables'
#: The test metrics of a table, in column order, unless the table's ``metrics`` says otherwise.
TEST_KEYS = ('recall@20', 'ndcg@20', 'recall@50', 'ndcg@50')
#: The seeds of a table that names none, and of ``pyg-diffcl reproduce`` without ``--seeds``.
DEFAULT_SEEDS = (0, 1, 2, 3, 4)
#: The settings of a run that decide where and how it executes, not what it learns: a finished run is reused
#: whatever they were (see the module docstring).
EXECUTION_KEYS = (('train', 'device'), ('train', 'checkpoint_every'))
_METRIC = re.compile(r'(recall|ndcg|precision|map|hitrate)@[1-9][0-9]*')


@dataclass
class RowResult:
    name: str
    seeds: List[int]
    test: Dict[str, Tuple[float, float]]
    valid: Tuple[float, float]
    epochs: List[int]
    run_dirs: List[str] = field(default_factory=list)
    #: Each seed's test figures, in the order of :attr:`seeds`.
    per_seed: List[Dict[str, float]] = field(default_factory=list)
    #: Each seed's training seconds per epoch (``metrics.json``'s median), in the order of :attr:`seeds`.
    seconds: List[float] = field(default_factory=list)

    def worst(self, metric: str) -> Tuple[float, int]:
        """The lowest test :obj:`metric` over the seeds and the seed that gave it."""
        value, seed = min((m[metric], s) for m, s in zip(self.per_seed, self.seeds))
        return value, seed


def load_table(table: str) -> Tuple[str, Dict[str, Any]]:
    """``(name, spec)`` of a packaged table name or a YAML path, checked."""
    path = Path(table)
    if not path.is_file():
        path = TABLES_DIR / f'{table}.yaml'
    if not path.is_file():
        known = ', '.join(sorted(p.stem for p in TABLES_DIR.glob('*.yaml')))
        raise ConfigError(f'reproduce {table}: no such table (packaged: {known}; or give a YAML file)')
    spec = yaml.safe_load(path.read_text()) or {}
    check_spec(spec, str(path))
    return path.stem, spec


def check_spec(spec: Any, where: str) -> None:
    """Check a table (rows with a name and a model, names unique so that run directories do not collide,
    ``metrics``) and fill in its defaults (``seeds`` :data:`DEFAULT_SEEDS`, ``data`` tiktok, ``metrics``), in
    place."""
    if not isinstance(spec, dict) or not isinstance(spec.get('rows'), list) or not spec['rows']:
        raise ConfigError(f'{where}: a table needs data, seeds and a non-empty list of rows')
    for n, row in enumerate(spec['rows']):
        if not isinstance(row, dict) or 'name' not in row or 'model' not in row:
            raise ConfigError(f'{where}: row {n + 1} needs a name and a model')
    spec.setdefault('seeds', list(DEFAULT_SEEDS))
    seeds = spec['seeds']
    if (not isinstance(seeds, list) or not seeds
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in seeds)):
        raise ConfigError(f'{where}: seeds must be a non-empty list of non-negative integers, got {seeds!r}')
    spec.setdefault('data', 'tiktok')
    metrics = spec.setdefault('metrics', list(TEST_KEYS))
    if (not isinstance(metrics, list) or not metrics
            or not all(isinstance(m, str) and _METRIC.fullmatch(m) for m in metrics)):
        raise ConfigError(f"{where}: metrics must be a non-empty list like [recall@20, ndcg@20], got {metrics!r}")
    if not isinstance(spec.setdefault('timing', False), bool):
        raise ConfigError(f"{where}: timing must be true or false, got {spec['timing']!r}")
    keys = [row_key(str(r['name'])) for r in spec['rows']]
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        raise ConfigError(f'{where}: row names must differ (after lower-casing and dropping punctuation): {dup}')


def row_key(name: str) -> str:
    return re.sub(r'[^a-z0-9]+', '-', name.lower()).strip('-')


def row_config(spec: Dict[str, Any], row: Dict[str, Any], seed: int, extra: Sequence[str] = ()) -> RunConfig:
    """The run configuration of one (row, seed): packaged settings, the row's ``set``, then :obj:`extra`."""
    data, model = str(spec['data']), row['model']
    layers = [packaged_for(data, model)]
    layers += [parse_set(list(row.get('set') or []) + list(extra)),
               {'model': {'name': model}, 'data': {'name': data}, 'train': {'seed': int(seed)}}]
    return resolve_config(layers=layers)


def run_identity(config: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """A configuration dictionary without its :data:`EXECUTION_KEYS`: what two runs must share to be the same
    run of a table."""
    if config is None:
        return None
    out = {section: dict(values) if isinstance(values, dict) else values for section, values in config.items()}
    for section, key in EXECUTION_KEYS:
        if isinstance(out.get(section), dict):
            out[section].pop(key, None)
    return out


def _finished(run_dir: Path, wanted: Dict[str, Any], held: Optional[Dict[str, Any]] = None) -> bool:
    """Whether :obj:`run_dir` holds a finished run of :obj:`wanted` (a configuration dictionary), wherever and
    however it executed (:func:`run_identity`); :obj:`held` is its ``config.yaml`` when the caller has read it
    already (otherwise it is read, for a finished run only)."""
    if not (run_dir / 'metrics.json').is_file():
        return False
    if held is None:
        from .run import held_config
        held = held_config(run_dir)
    return run_identity(held) == run_identity(wanted)


def _same_run_elsewhere(out: Path, wanted: Dict[str, Any]) -> Optional[Path]:
    """A finished run of :obj:`wanted` (:func:`_finished`) in a sibling of :obj:`out` (another table's run
    directory)."""
    if not out.parent.is_dir():
        return None
    for other in sorted(out.parent.iterdir()):
        if other == out or not other.is_dir():
            continue
        for run_dir in sorted(other.iterdir()):
            if _finished(run_dir, wanted):
                return run_dir
    return None


def mean_std(values: Sequence[float]) -> Tuple[float, float]:
    """The mean and the sample standard deviation (0 for one value)."""
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def run_table(table: str, out: Optional[str | Path] = None, seeds: Optional[Sequence[int]] = None,
              rows: Optional[Sequence[str]] = None, extra: Sequence[str] = (), log=print) -> List[RowResult]:
    """Train (or reuse, or resume) every (row, seed) of a table; the aggregated rows."""
    name, spec = load_table(table)
    return run_spec(name, spec, out, seeds, rows, extra, log)


def run_spec(name: str, spec: Dict[str, Any], out: Optional[str | Path] = None,
             seeds: Optional[Sequence[int]] = None, rows: Optional[Sequence[str]] = None,
             extra: Sequence[str] = (), log=print) -> List[RowResult]:
    """:func:`run_table` for a table given as a dictionary (see the module docstring for its keys)."""
    import json
    import shutil

    from .run import RESUME_CHECKPOINT, held_config, resume_run, train_run
    spec = dict(spec)
    check_spec(spec, f'table {name}')
    out = Path(out) if out is not None else Path('runs') / f'reproduce-{name}'
    seeds = [int(s) for s in (seeds if seeds is not None else spec['seeds'])]
    chosen = [r for r in spec['rows'] if rows is None or r['name'] in rows or row_key(r['name']) in rows]
    if rows is not None and not chosen:
        raise ConfigError(f"--rows: none of {list(rows)} is a row of {name} "
                          f"({', '.join(r['name'] for r in spec['rows'])})")
    results = []
    for row in chosen:
        metrics = []
        dirs = []
        for seed in seeds:
            config = row_config(spec, row, seed, extra)
            wanted = config.to_dict()
            run_dir = out / f"{row_key(row['name'])}-s{seed}"
            dirs.append(str(run_dir))
            held = held_config(run_dir)
            done = _finished(run_dir, wanted, held)
            interrupted = (run_dir / RESUME_CHECKPOINT).is_file()
            # Resumed only when the interrupted run is of this very configuration, device included (a table
            # edited since, or another --set, leaves a run of another one: it is trained afresh).
            resumable = interrupted and held == wanted
            twin = None if done or resumable else _same_run_elsewhere(out, wanted)
            if twin is not None:
                # Copied, not linked: the table's directory stays whole if the other table's is deleted.
                log(f"[reproduce] {row['name']} seed {seed}: reusing {twin} (the same configuration) -> {run_dir}")
                if run_dir.exists():
                    shutil.rmtree(run_dir)
                shutil.copytree(twin, run_dir, ignore=shutil.ignore_patterns('last.pt', '*.tmp', '.lock'))
            elif done:
                where = held['train']['device']
                log(f"[reproduce] {row['name']} seed {seed}: reusing {run_dir}"
                    + (f' (trained on {where})' if where != wanted['train']['device'] else ''))
            elif resumable:
                log(f"[reproduce] {row['name']} seed {seed}: resuming {run_dir}")
                resume_run(run_dir, quiet=True, log=log)
            else:
                again = ' (it held an interrupted run of another configuration)' if interrupted else ''
                log(f"[reproduce] {row['name']} seed {seed}: training -> {run_dir}{again}")
                train_run(config, run_dir, overwrite=True, quiet=True, log=log)
            metrics.append(json.loads((run_dir / 'metrics.json').read_text()))
            missing = [k for k in spec['metrics'] if k not in metrics[-1]['test']]
            if missing:
                raise ConfigError(f"table {name}: {run_dir}/metrics.json has no test {', '.join(missing)} "
                                  f"(computed: {', '.join(metrics[-1]['test'])}); set eval.ks to include them")
        test = {k: mean_std([m['test'][k] for m in metrics]) for k in spec['metrics']}
        results.append(RowResult(row['name'], seeds, test, mean_std([m['valid']['recall@20'] for m in metrics]),
                                 [m['best_epoch'] for m in metrics], dirs,
                                 [{k: m['test'][k] for k in spec['metrics']} for m in metrics],
                                 [float(m['seconds_per_epoch']) for m in metrics]))
    return results


def worst_metric(keys: Sequence[str]) -> str:
    """The metric whose worst seed a table shows: ``recall@20`` where the table has it, else its first."""
    return 'recall@20' if 'recall@20' in keys else keys[0]


def seed_ranges(seeds: Sequence[int]) -> str:
    """Seeds as runs of consecutive numbers: ``[0, 1, 2, 3, 4, 7]`` is ``'0-4, 7'``."""
    parts: List[str] = []
    ordered = sorted(set(int(s) for s in seeds))
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if j == i else f'{ordered[i]}, {ordered[j]}' if j == i + 1
                     else f'{ordered[i]}-{ordered[j]}')
        i = j + 1
    return ', '.join(parts)


def seconds_cell(seconds: Sequence[float]) -> str:
    """Seconds per epoch over the seeds: the median, with the range when the seeds differ
    (``'4.70 (4.51-4.93)'``; two decimals below 10 s, one below 100 s, none above)."""
    def fmt(v: float) -> str:
        return f'{v:.2f}' if v < 10 else f'{v:.1f}' if v < 100 else f'{v:.0f}'
    lo, mid, hi = fmt(min(seconds)), fmt(statistics.median(seconds)), fmt(max(seconds))
    return mid if lo == hi else f'{mid} ({lo}-{hi})'


def markdown(results: Sequence[RowResult], timing: bool = False) -> str:
    """The table as the README shows it: mean ± std of each test metric, the worst seed, validation, epochs,
    and with :obj:`timing` (the table's ``timing``) the median (range) of the seeds' seconds per epoch."""
    keys = list(results[0].test) if results else list(TEST_KEYS)
    low = worst_metric(keys)
    head = ('| model | seeds | ' + ' | '.join(f'test {k}' for k in keys)
            + f' | worst seed: {low} | valid recall@20 | selected epochs |' + (' s / epoch |' if timing else ''))
    lines = [head, '|' + ' --- |' * (len(keys) + 5 + timing)]
    for r in results:
        one = len(r.seeds) == 1  # one seed: the figure alone (no spread to state)
        cell = (lambda m, s: f'{m:.4f}') if one else (lambda m, s: f'{m:.4f} ± {s:.4f}')
        cells = [cell(*r.test[k]) for k in keys]
        value, seed = r.worst(low)
        lines.append(f"| {r.name} | {seed_ranges(r.seeds)} | {' | '.join(cells)} | "
                     f"{value:.4f} (seed {seed}) | {cell(*r.valid)} | {', '.join(map(str, r.epochs))} |"
                     + (f' {seconds_cell(r.seconds)} |' if timing else ''))
    return '\n'.join(lines)


def _markers(name: str) -> Tuple[str, str]:
    return f'<!-- reproduce:{name} -->', f'<!-- /reproduce:{name} -->'


def stated(readme: Path, name: str) -> Dict[str, Dict[str, Tuple[float, float]]]:
    """``{row: {metric: (mean, std)}}`` of the table block a README states (empty if none)."""
    if not readme.is_file():
        return {}
    text = readme.read_text(encoding='utf-8')
    start, end = _markers(name)
    if start not in text or end not in text:
        return {}
    block = text.split(start, 1)[1].split(end, 1)[0]
    rows = [line for line in block.strip().splitlines() if line.startswith('|')]
    if len(rows) < 2:
        return {}
    header = [c.strip() for c in rows[0].strip('|').split('|')]
    out: Dict[str, Dict[str, Tuple[float, float]]] = {}
    for line in rows[2:]:
        cells = [c.strip() for c in line.strip('|').split('|')]
        values = {}
        for col, cell in zip(header, cells):
            m = re.fullmatch(r'([-+0-9.eE]+)(?:\s*±\s*([-+0-9.eE]+))?', cell)
            if m and col.startswith('test '):  # a figure without a std is one seed's: std 0
                values[col[5:]] = (float(m.group(1)), float(m.group(2) or 0.0))
        out[cells[0]] = values
    return out


def block(readme: Path, name: str) -> Optional[str]:
    """The text between a README's markers for table :obj:`name`, or :obj:`None` without them."""
    if not readme.is_file():
        return None
    text = readme.read_text(encoding='utf-8')
    start, end = _markers(name)
    if start not in text or end not in text:
        return None
    return text.split(start, 1)[1].split(end, 1)[0].strip('\n')


#: Where a table's stated block is looked for when no file is named: the README (the headline table) and the
#: documentation's results pages. A block may stand in several of them; each is rewritten.
PAGES = ('README.md', 'docs/results.md', 'docs/baselines.md', 'docs/scaling.md')


def find_pages(name: str, root: Path = Path('.')) -> List[Path]:
    """Every file of :data:`PAGES` under :obj:`root` whose text holds table :obj:`name`'s block, in that
    order; the README alone when none does."""
    start, end = _markers(name)
    found = [root / p for p in PAGES if (root / p).is_file()
             and start in (text := (root / p).read_text(encoding='utf-8')) and end in text]
    return found or [root / PAGES[0]]


def merge_table(old: Optional[str], new: str, order: Sequence[str]) -> str:
    """The table :obj:`new` (some rows regenerated) merged into the table :obj:`old` a README states: rows of
    :obj:`new` replace those of the same name, the others stay, in the table's row order :obj:`order`. When
    the two tables do not have the same columns, :obj:`new` alone."""
    if not old:
        return new
    old_lines, new_lines = old.strip().splitlines(), new.strip().splitlines()
    if old_lines[:2] != new_lines[:2]:
        return new

    def rows(lines: Sequence[str]) -> Dict[str, str]:
        return {line.split('|')[1].strip(): line for line in lines[2:] if line.startswith('|')}
    merged = {**rows(old_lines), **rows(new_lines)}
    names = [n for n in order if n in merged] + [n for n in merged if n not in order]
    return '\n'.join(new_lines[:2] + [merged[n] for n in names])


def write_readme(readme: Path, name: str, table: str) -> None:
    """Replace the README's block for :obj:`name` with :obj:`table` (the block must exist)."""
    text = readme.read_text(encoding='utf-8')
    start, end = _markers(name)
    if start not in text or end not in text:
        raise ConfigError(f'{readme}: no {start} ... {end} block to write the table into')
    before, rest = text.split(start, 1)
    after = rest.split(end, 1)[1]
    new = f'{before}{start}\n{table}\n{end}{after}'.encode('utf-8')
    atomic_write(readme, lambda f: f.write(new))  # an interruption never leaves a truncated README


def compare(results: Sequence[RowResult], claims: Dict[str, Dict[str, Tuple[float, float]]]
            ) -> List[Tuple[str, str, Optional[Tuple[float, float]], Tuple[float, float], Optional[bool]]]:
    """``(row, metric, stated, reproduced, within the stated std)`` for every row and test metric."""
    out = []
    for r in results:
        for k in r.test:
            claim = claims.get(r.name, {}).get(k)
            ok = None if claim is None else abs(r.test[k][0] - claim[0]) <= claim[1] + 5e-5  # 4-decimal rounding
            out.append((r.name, k, claim, r.test[k], ok))
    return out


def format_comparison(rows) -> str:
    lines = [f"{'row':44s} {'metric':10s} {'README states':>18s} {'reproduced':>18s}  within std"]
    for name, k, claim, got, ok in rows:
        c = '—' if claim is None else f'{claim[0]:.4f} ± {claim[1]:.4f}'
        verdict = 'n/a' if ok is None else ('yes' if ok else 'NO')
        lines.append(f'{name[:44]:44s} {k:10s} {c:>18s} {got[0]:.4f} ± {got[1]:.4f}  {verdict}')
    return '\n'.join(lines)

