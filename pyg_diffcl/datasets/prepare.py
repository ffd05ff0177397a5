r"""From a raw interaction log to MMRec's layout: ``pyg-diffcl prepare``.

A raw log is a CSV / TSV (or Parquet, with :mod:`pyarrow`) table with one row per interaction, in the user's
own ids (any strings). :func:`prepare_dataset` writes a data set directory that
:class:`~pyg_diffcl.datasets.MMRecDataset` reads:

* ``<DIR>/<name>.inter``: ``userID  itemID  x_label`` (``0`` train, ``1`` validation, ``2`` test), with
  ``rating`` / ``timestamp`` columns when the log has them;
* ``<DIR>/<modality>_feat.npy``: float32 ``[items, dim]``, row :math:`i` the features of item :math:`i`;
* ``<DIR>/user_map.tsv`` and ``<DIR>/item_map.tsv``: ``original_id -> userID / itemID`` (``pyg-diffcl
  recommend`` writes the original ids back when they are there).

Steps, in order (each reported with its count):

1. keep the rows whose rating is at least ``min_rating`` (when a rating column is given);
2. drop repeated (user, item) pairs, keeping the earliest (by time when a time column is given, else the first
   row);
3. the :math:`K`-core: repeatedly drop users and items with fewer than :math:`K` interactions until none
   is left (``k_core`` 0 or 1: nothing dropped);
4. new ids ``0..n-1`` in the sorted order of the original ids (as strings), so that they do not depend on the
   row order of the log;
5. the split, with ratios train : valid : test (default 8 : 1 : 1):

   * ``random``: each user's interactions shuffled (seeded), the user's last :math:`\max(1,
     \mathrm{round}(n r_t))` to test and the :math:`\max(1, \mathrm{round}(n r_v))` before them to
     validation (a zero ratio gives none), the rest, at least one, to training;
   * ``chronological``: the same per user, in time order (needs the time column): each user's latest
     interactions are held out;
   * ``global-time``: one cut over all interactions in time order: the earliest share trains, the latest
     tests. Users and items may then appear only after the cut (reported: ``data.cold_users`` decides at
     training time).

   Under ``random`` and ``chronological`` a user with fewer interactions than the split needs (one per
   non-zero share) keeps them all in training: counted and reported, never dropped silently.

Feature files, ``--features NAME=FILE``: a table (CSV / TSV / Parquet) whose column :obj:`feature_id_col`
(default: the item column's name) holds the original item ids and whose other columns are the features, or
``NAME=FEATS.npy:IDS.txt``, a matrix whose row :math:`r` belongs to the item on line :math:`r` of the id file.
Items of the log without features get the mean feature row of the items that have them (``fill='mean'``) or
zeros (``fill='zero'``), with a warning giving their number; feature rows of items not in the log are
ignored. The whole procedure is deterministic for a seed.
"""
from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import ConfigError, DataError

SPLIT_MODES = ('random', 'chronological', 'global-time')
FILLS = ('mean', 'zero')


@dataclass
class PrepareReport:
    """What :func:`prepare_dataset` did (also written as ``prepare.json`` in the output directory)."""
    rows_read: int = 0
    below_min_rating: int = 0
    duplicates_dropped: int = 0
    k_core_dropped: int = 0
    users: int = 0
    items: int = 0
    interactions: Dict[str, int] = field(default_factory=dict)
    users_kept_in_train: int = 0
    items_without_features: Dict[str, int] = field(default_factory=dict)
    feature_rows_unused: Dict[str, int] = field(default_factory=dict)
    files: List[str] = field(default_factory=list)


def _read_table(path: Path, what: str):
    import pandas as pd
    if not path.is_file():
        raise DataError(f'{what}: no such file', path)
    suffix = path.suffix.lower()
    try:
        if suffix == '.parquet':
            try:
                return pd.read_parquet(path)
            except ImportError:
                raise ConfigError(f'{path}: reading Parquet needs the pyarrow package (pip install pyarrow), or '
                                  f'give a CSV / TSV') from None
        sep = '\t' if suffix in ('.tsv', '.tab', '.txt') else ','
        return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, na_values=[], encoding='utf-8-sig')
    except (ValueError, OSError) as e:
        if isinstance(e, ConfigError):
            raise
        raise DataError(f'not a readable {what} table ({e})', path) from None


def _column(df, name: Optional[str], path: Path, argument: str):
    if name is None:
        return None
    if name not in df.columns:
        raise DataError(f"{argument} {name!r}: no such column (columns: {', '.join(map(str, df.columns))})", path, 1)
    return df[name]


def _numeric(col, path: Path, name: str) -> np.ndarray:
    import pandas as pd
    values = pd.to_numeric(col, errors='coerce')
    bad = np.flatnonzero(values.isna().to_numpy())
    if bad.size:
        raise DataError(f"column {name!r}: not a number", path, int(bad[0]) + 2, col.iloc[int(bad[0])])
    return values.to_numpy(dtype=np.float64)


def k_core(user: np.ndarray, item: np.ndarray, k: int) -> np.ndarray:
    """Mask of the interactions left after repeatedly dropping users and items with fewer than :obj:`k`."""
    keep = np.ones(len(user), dtype=bool)
    if k <= 1:
        return keep
    while True:
        u, i = user[keep], item[keep]
        _, u_inv, u_cnt = np.unique(u, return_inverse=True, return_counts=True)
        _, i_inv, i_cnt = np.unique(i, return_inverse=True, return_counts=True)
        ok = (u_cnt[u_inv] >= k) & (i_cnt[i_inv] >= k)
        if ok.all():
            return keep
        idx = np.flatnonzero(keep)
        keep[idx[~ok]] = False


def split_labels(user: np.ndarray, order_key: np.ndarray, ratios: Sequence[float], mode: str, seed: int
                 ) -> Tuple[np.ndarray, int]:
    """``x_label`` of every interaction and the number of users kept wholly in training (module docstring)."""
    r = np.asarray(ratios, dtype=np.float64)
    r = r / r.sum()
    n = len(user)
    labels = np.zeros(n, dtype=np.int64)
    if mode == 'global-time':
        order = np.argsort(order_key, kind='stable')
        n_train = int(round(n * r[0]))
        n_valid = int(round(n * r[1]))
        labels[order[n_train:n_train + n_valid]] = 1
        labels[order[n_train + n_valid:]] = 2
        return labels, 0
    if mode == 'random':
        rng = np.random.default_rng(seed)
        key = rng.permutation(n)  # a random position per interaction: shuffles within each user
    else:
        key = order_key
    order = np.lexsort((key, user))  # by user, then by the shuffled / time key
    u_sorted = user[order]
    starts = np.flatnonzero(np.r_[True, u_sorted[1:] != u_sorted[:-1]])
    ends = np.r_[starts[1:], n]
    need = 1 + int(r[1] > 0) + int(r[2] > 0)
    kept = 0
    for s, e in zip(starts, ends):
        m = e - s
        if m < need:
            kept += 1
            continue
        n_test = max(1, int(round(m * r[2]))) if r[2] > 0 else 0
        n_valid = max(1, int(round(m * r[1]))) if r[1] > 0 else 0
        while m - n_test - n_valid < 1:  # keep at least one for training
            if n_valid > 1:
                n_valid -= 1
            else:
                n_test -= 1
        idx = order[s:e]
        labels[idx[m - n_test:]] = 2
        labels[idx[m - n_test - n_valid:m - n_test]] = 1
    return labels, kept


def _load_features(name: str, spec: str, item_ids: np.ndarray, id_col: str, fill: str
                   ) -> Tuple[np.ndarray, int, int]:
    """``(matrix [items, dim], items without features, unused feature rows)`` for one ``NAME=SPEC``."""
    index = {orig: k for k, orig in enumerate(item_ids)}
    if ':' in spec and spec.split(':', 1)[0].lower().endswith('.npy'):
        npy, ids_file = (Path(p) for p in spec.split(':', 1))
        from .io import read_features
        x = read_features(npy, None)
        if not ids_file.is_file():
            raise DataError('id file of the feature matrix: no such file', ids_file)
        ids = [line.rstrip('\r\n') for line in open(ids_file, encoding='utf-8')]
        while ids and ids[-1] == '':
            ids.pop()
        if len(ids) != x.shape[0]:
            raise DataError(f'has {len(ids)} ids but {npy.name} has {x.shape[0]} rows', ids_file)
        source, rows = ids_file, ids
        line_offset = 1
    else:
        path = Path(spec)
        df = _read_table(path, f'features {name!r}')
        if id_col not in df.columns:
            raise DataError(f"no item id column {id_col!r} (columns: {', '.join(map(str, df.columns))}; "
                            f"feature_id_col names it)", path, 1)
        rows = df[id_col].astype(str).tolist()
        values = df.drop(columns=[id_col])
        if values.shape[1] == 0:
            raise DataError('no feature columns besides the item id', path, 1)
        x = np.empty(values.shape, dtype=np.float32)
        for c, col in enumerate(values.columns):
            x[:, c] = _numeric(values[col], path, str(col))
        source, line_offset = path, 2
    seen: Dict[str, int] = {}
    out = np.zeros((len(item_ids), x.shape[1]), dtype=np.float32)
    have = np.zeros(len(item_ids), dtype=bool)
    unused = 0
    for r, orig in enumerate(rows):
        if orig in seen:
            raise DataError(f'item id {orig!r} appears twice (first on line {seen[orig] + line_offset})', source,
                            r + line_offset)
        seen[orig] = r
        k = index.get(orig)
        if k is None:
            unused += 1
            continue
        out[k] = x[r]
        have[k] = True
    if not np.isfinite(out[have]).all():
        r, c = np.argwhere(~np.isfinite(out[have]))[0]
        raise DataError(f'non-finite feature value in column {c}', source)
    missing = int((~have).sum())
    if missing:
        if not have.any():
            raise DataError(f'none of the {len(item_ids)} items of the log has a row (are the ids the log\'s '
                            f'item ids?)', source)
        if fill == 'mean':
            out[~have] = out[have].mean(axis=0)
        warnings.warn(f'{source}: {missing} of {len(item_ids)} items have no {name!r} features; filled with '
                      f'{"the mean feature row" if fill == "mean" else "zeros"} (fill)', UserWarning)
    return out, missing, unused


def prepare_dataset(raw: str | os.PathLike, out: str | os.PathLike, user_col: str, item_col: str,
                    time_col: Optional[str] = None, rating_col: Optional[str] = None,
                    min_rating: Optional[float] = None, features: Optional[Dict[str, str]] = None,
                    split: str = 'random', ratios: Sequence[float] = (8, 1, 1), seed: int = 0, k_core_min: int = 0,
                    feature_id_col: Optional[str] = None, fill: str = 'mean', overwrite: bool = False
                    ) -> PrepareReport:
    """Write MMRec's layout for a raw interaction log (module docstring). Returns what was done."""
    raw, out = Path(raw), Path(out)
    if split not in SPLIT_MODES:
        raise ValueError(f"split: must be one of {', '.join(SPLIT_MODES)}, got {split!r}")
    if fill not in FILLS:
        raise ValueError(f"fill: must be one of {', '.join(FILLS)}, got {fill!r}")
    if len(ratios) != 3 or any(r < 0 for r in ratios) or ratios[0] <= 0:
        raise ValueError(f'ratios: expected three non-negative numbers, the first positive (train,valid,test), '
                          f'got {list(ratios)}')
    if not 0 <= seed < 2**63:
        raise ValueError(f'seed: must be in 0..2^63-1, got {seed}')
    if split in ('chronological', 'global-time') and time_col is None:
        raise ValueError(f'time_col: split={split!r} needs time_col')
    if min_rating is not None and rating_col is None:
        raise ValueError('min_rating: needs rating_col')
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ValueError(f'out: {out} exists and is not empty; pass overwrite=True to replace its files')
    report = PrepareReport()
    df = _read_table(raw, 'interaction')
    report.rows_read = len(df)
    if not len(df):
        raise DataError('no interactions (the table is empty)', raw)
    users = _column(df, user_col, raw, 'user_col').astype(str).to_numpy()
    items = _column(df, item_col, raw, 'item_col').astype(str).to_numpy()
    times = _numeric(_column(df, time_col, raw, 'time_col'), raw, time_col) if time_col else None
    ratings = _numeric(_column(df, rating_col, raw, 'rating_col'), raw, rating_col) if rating_col else None
    for name, col in ((user_col, users), (item_col, items)):
        empty = np.flatnonzero(np.char.str_len(col.astype(str)) == 0)
        if empty.size:
            raise DataError(f'column {name!r}: empty id', raw, int(empty[0]) + 2)
    keep = np.ones(len(df), dtype=bool)
    if min_rating is not None:
        keep &= ratings >= min_rating
        report.below_min_rating = int((~keep).sum())
    # Duplicates: the earliest (by time, else by row) of each (user, item) pair.
    idx = np.flatnonzero(keep)
    order = idx[np.argsort(times[idx], kind='stable')] if times is not None else idx
    pair = np.char.add(np.char.add(users[order].astype(str), '\x00'), items[order].astype(str))
    _, first = np.unique(pair, return_index=True)
    dedup = np.zeros(len(df), dtype=bool)
    dedup[order[first]] = True
    report.duplicates_dropped = int(keep.sum() - dedup.sum())
    keep = dedup
    idx = np.flatnonzero(keep)
    core = k_core(users[idx], items[idx], k_core_min)
    report.k_core_dropped = int((~core).sum())
    idx = idx[core]
    if idx.size == 0:
        raise DataError('no interactions left after the rating filter, duplicates and the k-core', raw)
    user_ids, uidx = np.unique(users[idx], return_inverse=True)
    item_ids, iidx = np.unique(items[idx], return_inverse=True)
    order_key = times[idx] if times is not None else np.arange(idx.size, dtype=np.float64)
    labels, kept = split_labels(uidx, order_key, ratios, split, seed)
    report.users, report.items = len(user_ids), len(item_ids)
    report.users_kept_in_train = kept
    report.interactions = {s: int((labels == k).sum()) for k, s in enumerate(('train', 'valid', 'test'))}
    if kept:
        warnings.warn(f'{raw}: {kept} user(s) have fewer interactions than the {split} split needs; all of their '
                      f'interactions are in training', UserWarning)

    feats: Dict[str, np.ndarray] = {}
    for name, spec in (features or {}).items():
        if not name.isidentifier():
            raise ValueError(f'features: the modality name {name!r} (of {spec}) must be a word (letters, digits, _)')
        x, missing, unused = _load_features(name, spec, item_ids, feature_id_col or item_col, fill)
        feats[name] = x
        report.items_without_features[name] = missing
        report.feature_rows_unused[name] = unused

    out.mkdir(parents=True, exist_ok=True)
    for old in list(out.glob('*.inter')) + list(out.glob('*_feat.npy')):
        old.unlink()
    name = out.resolve().name or 'data'
    cols = {'userID': uidx, 'itemID': iidx, 'x_label': labels}
    if ratings is not None:
        cols['rating'] = ratings[idx]
    if times is not None:
        cols['timestamp'] = times[idx]
    import pandas as pd
    table = pd.DataFrame(cols).sort_values(['userID', 'x_label', 'itemID'], kind='stable')
    for c in ('rating', 'timestamp'):
        if c in table and np.all(np.mod(table[c].to_numpy(), 1) == 0):
            table[c] = table[c].astype(np.int64)
    files = [f'{name}.inter', 'user_map.tsv', 'item_map.tsv', 'prepare.json']
    table.to_csv(out / f'{name}.inter', sep='\t', index=False)
    pd.DataFrame({'original_id': user_ids, 'userID': np.arange(len(user_ids))}).to_csv(
        out / 'user_map.tsv', sep='\t', index=False)
    pd.DataFrame({'original_id': item_ids, 'itemID': np.arange(len(item_ids))}).to_csv(
        out / 'item_map.tsv', sep='\t', index=False)
    for m, x in feats.items():
        np.save(out / f'{m}_feat.npy', x, allow_pickle=False)
        files.append(f'{m}_feat.npy')
    report.files = sorted(files)
    (out / 'prepare.json').write_text(json.dumps({
        'source': str(raw.resolve()), 'split': split, 'ratios': list(ratios), 'seed': seed, 'k_core': k_core_min,
        'min_rating': min_rating, 'fill': fill, **report.__dict__}, indent=2))
    return report


def read_id_map(path: Path) -> List[str]:
    """The original ids of ``user_map.tsv`` / ``item_map.tsv``, indexed by the new id."""
    import pandas as pd
    df = pd.read_csv(path, sep='\t', dtype=str, keep_default_na=False, na_values=[])
    col = [c for c in df.columns if c != 'original_id'][0]
    ids = df[col].astype(np.int64).to_numpy()
    out = [''] * (int(ids.max()) + 1 if ids.size else 0)
    for k, orig in zip(ids, df['original_id']):
        out[k] = orig
    return out


def summarize(data: str | os.PathLike, modalities: Optional[Sequence[str]] = None) -> Dict[str, object]:
    """``pyg-diffcl data DIR``: what a data set directory holds, from the validated files.

    Users, items, interactions per split, density (training interactions over users x items), modality names
    and dimensions, items never seen in training, users without training interactions that have held-out
    ones ("cold"), users with no interaction at all (ids skipped), whether id maps are present, and the sha256
    of every file."""
    from .mmrec import MMRecDataset
    ds = MMRecDataset(data, modalities=modalities)
    u, i = ds.num_users, ds.num_items
    trained, held = ds.user_masks()
    m = ds.meta
    root = Path(m['path'])
    return {
        'path': m['path'],
        'users': u,
        'items': i,
        'interactions': m['interactions'],
        'density': m['interactions']['train'] / max(u * i, 1),
        'modalities': m['modalities'],
        'items_never_in_training': m['items_without_training_interactions'],
        'cold_users': int((held & ~trained).sum()),
        'users_without_interactions': int((~held & ~trained).sum()),
        'duplicates_dropped': m['duplicates_dropped'],
        'id_maps': all((root / f).is_file() for f in ('user_map.tsv', 'item_map.tsv')),
        'sha256': m['sha256'],
    }
