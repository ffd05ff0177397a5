r"""The ``pyg-diffcl`` command line (also ``python -m pyg_diffcl``)::

    pyg-diffcl train --model {mf,lightgcn,diffcl,ld4mrec} --data {tiktok|DIR} [--modalities a,b|none]
                     [--config FILE.yaml] [--set section.key=value ...] [--epochs N] [--patience P] [--seed S]
                     [--device cpu|cuda] [--deterministic] --out RUN_DIR [--overwrite] [--quiet]
    pyg-diffcl train --resume RUN_DIR [--epochs N] [--patience P] [--quiet]
    torchrun --nproc_per_node=N -m pyg_diffcl train ...      (data-parallel; see pyg_diffcl.training.distributed)
    pyg-diffcl evaluate RUN_DIR [--split valid|test]
    pyg-diffcl recommend RUN_DIR --k 20 --out recs.tsv
    pyg-diffcl prepare RAW.csv|.tsv|.parquet --user-col C --item-col C [--time-col C] [--rating-col C
                       --min-rating R] [--features NAME=FILE ...] [--split random|chronological|global-time
                       --ratios 8,1,1 --seed S] [--k-core K] --out DIR
    pyg-diffcl data DIR [--json]
    pyg-diffcl reproduce TABLE [--seeds 0,1,2] [--rows a,b] [--out DIR] [--write-readme]

Bad input or configuration: exit status 2 and one line on stderr (a traceback only with ``--debug``). A
non-finite loss, or a file of the run that cannot be written (a full disk): exit status 1. A run directory
that another live process writes to: exit status 2. Ctrl-C (SIGINT) during training: the state is saved, exit
status 130, and ``train --resume RUN_DIR`` continues the run to the same result.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import warnings
from typing import Any, Dict, List, Optional, Sequence

PROG = 'pyg-diffcl'


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit status 2)."""
    def error(self, message: str):  # type: ignore[override]
        sys.stderr.write(f'{self.prog}: error: {message}\n')
        raise SystemExit(2)


def _build_parser() -> argparse.ArgumentParser:
    from .models import MODELS

    parser = _Parser(prog=PROG, description='PyG-native multimodal recommendation.')
    parser.add_argument('--debug', action='store_true', help='show tracebacks')
    sub = parser.add_subparsers(dest='command', required=True, parser_class=_Parser)

    t = sub.add_parser('train', help='train and evaluate a model; writes RUN_DIR')
    t.add_argument('--model', choices=sorted(MODELS), help='the model')
    t.add_argument('--data', default=None, help="an embedded data set's name (tiktok) or a data set directory "
                                               "(default: tiktok)")
    t.add_argument('--modalities', default=None,
                   help="comma-separated modality names, or 'none' (default: every *_feat.npy)")
    t.add_argument('--config', default=None, help='a YAML file with model/data/train/eval sections')
    t.add_argument('--set', action='append', default=[], metavar='SECTION.KEY=VALUE',
                   help='override one configuration value (repeatable)')
    t.add_argument('--epochs', type=int, default=None, help='maximum epochs')
    t.add_argument('--patience', type=int, default=None, help='early-stopping patience (epochs)')
    t.add_argument('--seed', type=int, default=None, help='random seed')
    t.add_argument('--device', default=None, help='cpu or cuda[:N]')
    t.add_argument('--deterministic', action='store_true', default=None,
                   help='deterministic kernels (for CUDA; CPU runs are reproducible without it)')
    t.add_argument('--out', default=None, help='the run directory to write')
    t.add_argument('--resume', default=None, metavar='RUN_DIR',
                   help='continue an interrupted run (only --epochs, --patience and --quiet may be given)')
    t.add_argument('--overwrite', action='store_true', help='replace a completed or interrupted run in --out')
    t.add_argument('--quiet', action='store_true', help='no progress bars or per-epoch lines')
    t.add_argument('--debug', action='store_true', help=argparse.SUPPRESS)

    e = sub.add_parser('evaluate', help="evaluate a run's selected checkpoint; prints JSON")
    e.add_argument('run_dir', help='a finished run directory (config.yaml and best.pt)')
    e.add_argument('--split', choices=['valid', 'test'], default='test', help='the split to score (default: test)')
    e.add_argument('--debug', action='store_true', help=argparse.SUPPRESS)

    r = sub.add_parser('recommend', help='write the top-K items of every user')
    r.add_argument('run_dir', help='a finished run directory (config.yaml and best.pt)')
    r.add_argument('--k', type=int, default=20, help='items per user (default: 20)')
    r.add_argument('--out', required=True, help='output TSV (userID, itemID, rank)')
    r.add_argument('--debug', action='store_true', help=argparse.SUPPRESS)

    pr = sub.add_parser('prepare', help="turn a raw interaction log into a data set directory (MMRec's layout)")
    pr.add_argument('raw', help='the log: .csv, .tsv or .parquet, one row per interaction')
    pr.add_argument('--user-col', required=True, help='the column of user ids')
    pr.add_argument('--item-col', required=True, help='the column of item ids')
    pr.add_argument('--time-col', default=None, help='the column of timestamps (needed by the time splits)')
    pr.add_argument('--rating-col', default=None, help='the column of ratings (for --min-rating)')
    pr.add_argument('--min-rating', type=float, default=None, help='keep rows with rating >= R')
    pr.add_argument('--features', action='append', default=[], metavar='NAME=FILE',
                    help='item features: a table with an item id column, or FEATS.npy:IDS.txt (repeatable)')
    pr.add_argument('--feature-id-col', default=None, help='the item id column of feature tables '
                                                           '(default: --item-col)')
    pr.add_argument('--fill', choices=['mean', 'zero'], default='mean',
                    help='features of items without a row (default: the mean row)')
    pr.add_argument('--split', choices=['random', 'chronological', 'global-time'], default='random',
                    help='random per user, each user\'s latest last, or one global time cut (default: random)')
    pr.add_argument('--ratios', default='8,1,1', help='train,valid,test (default: 8,1,1)')
    pr.add_argument('--seed', type=int, default=0, help='seed of the random split (default: 0)')
    pr.add_argument('--k-core', type=int, default=0, help='drop users and items with fewer interactions')
    pr.add_argument('--out', required=True, help='the data set directory to write')
    pr.add_argument('--overwrite', action='store_true', help='replace an existing --out')
    pr.add_argument('--debug', action='store_true', help=argparse.SUPPRESS)

    rp = sub.add_parser('reproduce', help="rerun a results table (README or docs) and compare with the stated figures")
    from .training.config import CONFIG_DIR
    tables = ', '.join(sorted(p.stem for p in (CONFIG_DIR / 'tables').glob('*.yaml')))
    rp.add_argument('table', help=f'a packaged table name ({tables}) or a table YAML file')
    rp.add_argument('--out', default=None, help='where the run directories go (default: runs/reproduce-TABLE)')
    rp.add_argument('--seeds', default=None, help="comma-separated seeds (default: the table's; 0-4 for a table "
                                                   "that names none)")
    rp.add_argument('--rows', default=None, help='comma-separated row names, or their lower-case hyphenated '
                                                   'keys (default: all)')
    rp.add_argument('--set', action='append', default=[], metavar='SECTION.KEY=VALUE',
                    help='an override for every run (repeatable)')
    rp.add_argument('--readme', default=None, help='the file holding the stated table (default: README.md or '
                                                   'the docs/ page with its block)')
    rp.add_argument('--write-readme', action='store_true', help="replace the stated table with this one")
    rp.add_argument('--debug', action='store_true', help=argparse.SUPPRESS)

    tu = sub.add_parser('tune', help='validation-only hyper-parameter search (Optuna): multi-seed, pruned, '
                                     'resumable, shareable across processes and machines')
    tu.add_argument('--model', required=True, choices=sorted(MODELS), help='the model')
    tu.add_argument('--data', default='tiktok', help="an embedded data set's name or a data set directory "
                                                     "(default: tiktok)")
    tu.add_argument('--space', default=None, help="the search space YAML (default: the model's packaged one, "
                                                  "pyg_diffcl/configs/spaces/MODEL.yaml)")
    tu.add_argument('--trials', type=int, default=20, help='finished trials (complete or pruned) the study should '
                                                           'hold; a continued study runs only the rest (default: 20)')
    tu.add_argument('--seeds', default='0,1,2', help='comma-separated seeds each trial trains (default: 0,1,2)')
    tu.add_argument('--metric', default=None, help="the validation metric to maximise (default: the config's "
                                                   "eval.metric, recall@20)")
    tu.add_argument('--storage', default=None, help='an Optuna storage URL (default: sqlite:///OUT/study.db; a '
                                                    'PostgreSQL or MySQL URL shares the study across machines)')
    tu.add_argument('--study', default=None, help='the study name (default: MODEL-DATA)')
    tu.add_argument('--set', action='append', default=[], metavar='SECTION.KEY=VALUE',
                    help='fix one value outside the space for every run (repeatable)')
    tu.add_argument('--pruner', default='median', choices=['median', 'percentile', 'none'],
                    help='stops poor trials from their validation curves (default: median)')
    tu.add_argument('--prune-warmup', type=int, default=10, metavar='EPOCHS',
                    help='no run is pruned before this epoch (default: 10)')
    tu.add_argument('--sampler', default='tpe', choices=['tpe', 'random', 'grid'],
                    help='how settings are drawn (default: tpe; grid: every combination of the choices)')
    tu.add_argument('--sampler-seed', type=int, default=None, help="the sampler's seed (default: none; give "
                                                                   "each process of a shared study its own)")
    tu.add_argument('--startup-trials', type=int, default=None, metavar='N',
                    help="TPE draws the first N trials at random and the pruner prunes nothing before N trials "
                         "have completed (default: Optuna's 10 and 5)")
    tu.add_argument('--stale-trials', type=int, default=None, metavar='N',
                    help='also end the study once N trials (complete or pruned) have finished since the best one '
                         '(default: run all --trials)')
    tu.add_argument('--heartbeat', type=float, default=60.0, metavar='SECONDS',
                    help="a trial whose process has not sent a heartbeat for twice this is taken as dead and "
                         "retried (default: 60)")
    tu.add_argument('--out', required=True, help='the study directory: trials/, study.db, best.yaml, trials.csv')
    tu.add_argument('--debug', action='store_true', help=argparse.SUPPRESS)

    dt = sub.add_parser('data', help='summarise a data set directory (or an embedded data set)')
    dt.add_argument('dir')
    dt.add_argument('--json', action='store_true', help='print JSON')
    dt.add_argument('--debug', action='store_true', help=argparse.SUPPRESS)
    return parser


def _tune(args: argparse.Namespace) -> int:
    from .errors import ConfigError
    from .training.tune import TuneSpec, load_space, require_optuna, space_path, tune
    require_optuna()
    try:
        seeds = [int(v) for v in args.seeds.split(',') if v.strip()]
    except ValueError:
        raise ConfigError(f'--seeds {args.seeds}: expected comma-separated integers') from None
    path = args.space or space_path(args.model)
    if args.space is None and not space_path(args.model).is_file():
        raise ConfigError(f'--space: model {args.model} ships no search space; give one')
    spec = TuneSpec(args.model, args.data, seeds, list(args.set), load_space(path), str(path), args.metric)
    tune(spec, args.out, args.trials, args.storage, args.study, args.pruner, args.sampler, args.sampler_seed,
         args.prune_warmup, args.heartbeat, log=lambda *a: print(*a, file=sys.stderr, flush=True),
         startup_trials=args.startup_trials, stale_trials=args.stale_trials)
    return 0


def _features_arg(items: List[str]) -> Dict[str, str]:
    from .errors import ConfigError
    out: Dict[str, str] = {}
    for item in items:
        name, sep, spec = item.partition('=')
        if not sep or not name or not spec:
            raise ConfigError(f'--features {item}: expected NAME=FILE')
        if name in out:
            raise ConfigError(f'--features: modality {name!r} given twice')
        out[name] = spec
    return out


def _ratios_arg(text: str) -> List[float]:
    from .errors import ConfigError
    try:
        return [float(v) for v in text.split(',')]
    except ValueError:
        raise ConfigError(f'--ratios {text}: expected three numbers, e.g. 8,1,1') from None


def _train_layers(args: argparse.Namespace) -> List[Dict[str, Any]]:
    from .training.config import load_yaml, merge_layers, packaged_for, parse_set

    user_layers = [load_yaml(args.config) if args.config else {}, parse_set(args.set)]
    flags: Dict[str, Dict[str, Any]] = {'model': {}, 'data': {}, 'train': {}}
    if args.model:
        flags['model']['name'] = args.model
    if args.data:
        flags['data']['name'] = args.data
    if args.modalities is not None:
        mods = args.modalities.strip()
        flags['data']['modalities'] = [] if mods.lower() == 'none' else [m.strip() for m in mods.split(',')
                                                                         if m.strip()]
    for key in ('epochs', 'patience', 'seed', 'device', 'deterministic'):
        if getattr(args, key) is not None:
            flags['train'][key] = getattr(args, key)
    user_layers.append({k: v for k, v in flags.items() if v})
    # The packaged tuned settings of an embedded data set go under the user's layers.
    merged = merge_layers(user_layers)
    model = (merged.get('model') or {}).get('name') if isinstance(merged.get('model'), dict) else None
    data = (merged.get('data') or {}).get('name', 'tiktok') if isinstance(merged.get('data'), dict) \
        else 'tiktok'
    return [packaged_for(str(data), model)] + user_layers


def _run(args: argparse.Namespace) -> int:
    try:
        return _dispatch(args)
    finally:
        from .training.distributed import shutdown_distributed
        shutdown_distributed()


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == 'train' and args.resume is not None:
        from .errors import ConfigError
        from .training import resume_run
        fixed = [f'--{k}' for k in ('model', 'data', 'modalities', 'config', 'seed', 'device', 'out',
                                    'deterministic') if getattr(args, k) is not None]
        fixed += ['--set'] * bool(args.set) + ['--overwrite'] * args.overwrite
        if fixed:
            raise ConfigError(f'--resume continues the run with its own configuration: {", ".join(fixed)} cannot '
                              f'be given with it (only --epochs, --patience, --quiet)')
        resume_run(args.resume, epochs=args.epochs, patience=args.patience, quiet=args.quiet)
        return 0
    if args.command == 'train':
        from .errors import ConfigError
        from .training import resolve_config, train_run
        if args.out is None:
            raise ConfigError('train: --out RUN_DIR is required (or --resume RUN_DIR)')
        config = resolve_config(layers=_train_layers(args))
        train_run(config, args.out, overwrite=args.overwrite, quiet=args.quiet)
        return 0
    if args.command == 'tune':
        return _tune(args)
    if args.command == 'evaluate':
        from .training import evaluate_run
        print(json.dumps(evaluate_run(args.run_dir, args.split), indent=2))
        return 0
    if args.command == 'recommend':
        from .training import recommend_run
        rows = recommend_run(args.run_dir, args.k, args.out)
        print(f'[pyg-diffcl] wrote {rows} recommendations to {args.out}', file=sys.stderr)
        return 0
    if args.command == 'prepare':
        from .datasets.prepare import prepare_dataset
        try:
            rep = prepare_dataset(args.raw, args.out, args.user_col, args.item_col, args.time_col, args.rating_col,
                                  args.min_rating, _features_arg(args.features), args.split,
                                  _ratios_arg(args.ratios), args.seed, args.k_core, args.feature_id_col, args.fill,
                                  args.overwrite)
        except ValueError as e:
            raise _in_flags(e, PREPARE_FLAGS) from None
        inter = rep.interactions
        print(f'[pyg-diffcl] {args.out}: {rep.users} users, {rep.items} items, train {inter["train"]} / valid '
              f'{inter["valid"]} / test {inter["test"]} (read {rep.rows_read} rows; dropped '
              f'{rep.below_min_rating} below --min-rating, {rep.duplicates_dropped} repeated pairs, '
              f'{rep.k_core_dropped} by the k-core; {rep.users_kept_in_train} users wholly in training)',
              file=sys.stderr)
        return 0
    if args.command == 'reproduce':
        from pathlib import Path

        from .training.reproduce import (block, compare, find_pages, format_comparison, load_table, markdown,
                                         merge_table, run_table, stated, write_readme)
        name, spec = load_table(args.table)
        seeds = None
        if args.seeds:
            try:
                seeds = [int(v) for v in args.seeds.split(',') if v.strip()]
            except ValueError:
                from .errors import ConfigError
                raise ConfigError(f'--seeds {args.seeds}: expected comma-separated integers') from None
        rows = [r.strip() for r in args.rows.split(',')] if args.rows else None
        results = run_table(args.table, args.out, seeds, rows, args.set,
                            log=lambda *a: print(*a, file=sys.stderr))
        table = markdown(results, spec['timing'])
        print(table)
        pages = [Path(args.readme)] if args.readme else find_pages(name)
        readme = pages[0]
        checks = compare(results, stated(readme, name))
        print()
        print(format_comparison(checks))
        if args.write_readme:
            for page in pages:
                # some rows regenerated: the page's other rows stay
                merged = merge_table(block(page, name), table, [r['name'] for r in spec['rows']]) if rows else table
                write_readme(page, name, merged)
                print(f'[pyg-diffcl] wrote the {name} table into {page}', file=sys.stderr)
            return 0
        failed = [c for c in checks if c[4] is False]
        if failed:
            print(f'{len(failed)} of {len(checks)} figures outside the stated std', file=sys.stderr)
            return 1
        return 0
    if args.command == 'data':
        from .datasets.prepare import summarize
        info = summarize(args.dir)
        if args.json:
            print(json.dumps(info, indent=2))
            return 0
        inter = info['interactions']
        mods = ', '.join(f'{m} ({d})' for m, d in info['modalities'].items()) or 'none'
        lines = [
            f"data set      {info['path']}",
            f"users         {info['users']}  (cold: {info['cold_users']} with held-out but no training "
            f"interactions; {info['users_without_interactions']} ids without any)",
            f"items         {info['items']}  ({info['items_never_in_training']} never in training)",
            f"interactions  train {inter['train']}, valid {inter['valid']}, test {inter['test']}"
            f"  (density {info['density']:.3g}; {info['duplicates_dropped']} repeated pairs dropped)",
            f"modalities    {mods}",
            f"id maps       {'user_map.tsv, item_map.tsv' if info['id_maps'] else 'none (ids are the indices)'}",
        ] + [f"sha256        {name}  {digest}" for name, digest in info['sha256'].items()]
        print('\n'.join(lines))
        return 0
    raise AssertionError(args.command)  # pragma: no cover


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    sys.stderr.write(f'{PROG}: warning: {message}\n')


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``pyg-diffcl`` console script; returns the exit status."""
    try:
        return _main(argv)
    except KeyboardInterrupt:  # Ctrl-C while torch and PyG are still being imported, before any work
        sys.stderr.write(f'{PROG}: interrupted\n')
        return 130


#: The flags of ``prepare`` for the Python arguments of :func:`~pyg_diffcl.datasets.prepare.prepare_dataset`.
PREPARE_FLAGS = {'user_col': '--user-col', 'item_col': '--item-col', 'time_col': '--time-col',
                 'rating_col': '--rating-col', 'min_rating': '--min-rating', 'features': '--features',
                 'split': '--split', 'ratios': '--ratios', 'seed': '--seed', 'k_core_min': '--k-core',
                 'feature_id_col': '--feature-id-col', 'fill': '--fill', 'out': '--out',
                 'overwrite=True': '--overwrite'}


def _in_flags(error: ValueError, flags: Dict[str, str]) -> Exception:
    """The library's error, which names Python arguments, reworded with the command's flags: a leading
    ``name:`` and every mention of an argument whose name has an underscore (or ``name=True``)."""
    from .errors import ConfigError, DataError
    text = str(error)
    head, sep, rest = text.partition(': ')
    if sep and head in flags:
        text = f'{flags[head]}: {rest}'
    for name, flag in flags.items():
        if '_' in name or '=' in name:
            text = re.sub(rf'(?<![\w-]){re.escape(name)}(?![\w=])', flag, text)
    return DataError(text) if isinstance(error, DataError) else ConfigError(text)


def _flush_denormals() -> None:
    """Treat denormal floats as zero on CPU (x86 FTZ/DAZ, ARM FZ), for this process: the command's own
    setting, before any worker thread starts (new threads inherit it).

    Late in an LD4MRec run a few gradient entries fall below float32's smallest normal number (about
    1.2e-38): the per-entry gradients of a loss averaged over users x items are about 1e-10 before they pass
    through saturated tanh and sigmoid units. Arithmetic on such numbers takes a slow path in the CPU, and
    the epochs grew several times slower; flushed to zero they stay as fast as the first ones, and the
    losses agree to the digits logged. A library user training such a model in their own loop can call
    ``torch.set_flush_denormal(True)`` the same way."""
    import torch
    torch.set_flush_denormal(True)


def _main(argv: Optional[Sequence[str]]) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    from .ops import tune_allocator
    tune_allocator()
    _flush_denormals()
    debug = bool(getattr(args, 'debug', False))
    if not debug:
        warnings.showwarning = _one_line_warning
    if os.environ.get('RANK', '0') not in ('', '0'):  # under torchrun: rank 0 speaks for all
        warnings.simplefilter('ignore')
    from .errors import TrainingDiverged, TrainingInterrupted, UserInputError
    from .training.lock import RunWriteError
    try:
        return _run(args)
    except UserInputError as e:
        if debug:
            raise
        msg = ' '.join(str(e).split('\n'))
        sys.stderr.write(f'{PROG}: error: {msg}\n')
        return 2
    except TrainingInterrupted as e:
        sys.stderr.write(f'{PROG}: {e}\n')
        return 130
    except KeyboardInterrupt:
        sys.stderr.write(f'{PROG}: interrupted\n')
        return 130
    except (TrainingDiverged, RunWriteError) as e:
        if debug:
            raise
        sys.stderr.write(f'{PROG}: error: {e}\n')
        return 1


if __name__ == '__main__':  # pragma: no cover
    sys.exit(main())
