r"""Reading and validating a data set in MMRec's layout.

A data set is a directory with

* exactly one ``*.inter`` file: tab-separated, a header line naming at least the columns ``userID``,
  ``itemID`` and ``x_label`` (``0`` train, ``1`` validation, ``2`` test), optionally ``rating`` and
  ``timestamp``; IDs are 0-based non-negative integers;
* zero or more ``<modality>_feat.npy`` files: a 2-D float16/float32/float64 array whose row :math:`i`
  holds the features of item :math:`i`.

Every problem is reported as a :class:`~pyg_diffcl.errors.DataError` naming the file, the line (or the
feature row) and the value. Nothing here assumes a data set's size, modality names or dimensions.
"""
from __future__ import annotations

import hashlib
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..errors import DataError

REQUIRED_COLUMNS = ('userID', 'itemID', 'x_label')
OPTIONAL_COLUMNS = ('rating', 'timestamp')
SPLITS = ('train', 'valid', 'test')
#: IDs at or above this bound are rejected: they would make the embedding tables absurdly large.
MAX_ID = 2**31 - 1
_INT_RE = re.compile(r'^\s*\+?\d+\s*$')


def sha256_file(path: os.PathLike | str, chunk: int = 1 << 20) -> str:
    """The hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            h.update(block)
    return h.hexdigest()


@dataclass
class DataFiles:
    """The files of one data set directory."""
    root: Path
    inter: Path
    features: Dict[str, Path] = field(default_factory=dict)

    @property
    def available_modalities(self) -> List[str]:
        return sorted(self.features)

    def select(self, modalities: Optional[Sequence[str]]) -> 'DataFiles':
        """Keep the requested modalities (:obj:`None`: all of them; an empty list: none)."""
        if modalities is None:
            return self
        unknown = [m for m in modalities if m not in self.features]
        if unknown:
            avail = ', '.join(self.available_modalities) or 'none'
            raise DataError(f"unknown modality {unknown[0]!r}: no {unknown[0]}_feat.npy "
                            f"(available: {avail})", self.root)
        if len(set(modalities)) != len(modalities):
            raise DataError(f'modality listed twice: {list(modalities)}', self.root)
        return DataFiles(self.root, self.inter, {m: self.features[m] for m in modalities})


def find_data_files(root: os.PathLike | str) -> DataFiles:
    """Locate the ``*.inter`` file and the ``<modality>_feat.npy`` files of a data set directory."""
    root = Path(root)
    if not root.is_dir():
        raise DataError('not a data set directory (expected a directory with one *.inter file)', root)
    inters = sorted(p for p in root.glob('*.inter') if p.is_file())
    if not inters:
        raise DataError('no *.inter file in the data set directory', root)
    if len(inters) > 1:
        names = ', '.join(p.name for p in inters)
        raise DataError(f'more than one *.inter file ({names}): keep exactly one', root)
    feats = {p.name[:-len('_feat.npy')]: p for p in sorted(root.glob('*_feat.npy')) if p.is_file()}
    for name, p in feats.items():
        if not name:
            raise DataError('feature file without a modality name (expected <modality>_feat.npy)', p)
        if '.' in name:  # the name keys the models' per-modality modules, where PyTorch reserves '.'
            raise DataError(f"modality name {name!r} cannot name a module ('.' is reserved by PyTorch): rename "
                            f"the file, e.g. to {name.replace('.', '_')}_feat.npy", p)
    return DataFiles(root, inters[0], feats)


@dataclass
class InteractionTable:
    """The validated interactions of a ``*.inter`` file, duplicates removed.

    Attributes:
        user, item, split (np.ndarray): int64 arrays of equal length; ``split`` is 0/1/2.
        rating, timestamp (np.ndarray, optional): float64 / int64 columns when present in the file.
        num_users, num_items (int): ``max(ID) + 1`` over all splits.
        num_duplicates (int): Duplicate ``(userID, itemID)`` rows that were dropped.
    """
    user: np.ndarray
    item: np.ndarray
    split: np.ndarray
    num_users: int
    num_items: int
    rating: Optional[np.ndarray] = None
    timestamp: Optional[np.ndarray] = None
    num_duplicates: int = 0

    def mask(self, split: str) -> np.ndarray:
        return self.split == SPLITS.index(split)


def _bad_int_row(values: np.ndarray) -> int:
    """Index of the first entry that is not a plain non-negative integer string."""
    ok = np.fromiter((isinstance(v, str) and bool(_INT_RE.match(v)) for v in values),
                     dtype=bool, count=len(values))
    return int(np.flatnonzero(~ok)[0]) if (~ok).any() else -1


def _parse_int_column(df, col: str, path: Path) -> np.ndarray:
    """Parse a column of non-negative integers, or report the first bad line."""
    import pandas as pd

    raw = df[col]
    if pd.api.types.is_integer_dtype(raw.dtype):
        values = raw.to_numpy(dtype=np.int64)
    else:
        strings = raw.to_numpy(dtype=object)
        bad = _bad_int_row(strings)
        if bad >= 0:
            value = strings[bad]
            if not isinstance(value, str):  # NaN from a short row or an empty field
                raise DataError(f"column {col!r}: missing value", path, bad + 2)
            raise DataError(f'column {col!r}: not a non-negative integer', path, bad + 2, value)
        try:
            values = np.array([int(v) for v in strings], dtype=np.int64)
        except OverflowError:  # pragma: no cover - caught by the bound below for realistic inputs
            values = np.array([min(int(v), MAX_ID + 1) for v in strings], dtype=np.int64)
    neg = np.flatnonzero(values < 0)
    if neg.size:
        raise DataError(f'column {col!r}: negative value', path, int(neg[0]) + 2, int(values[neg[0]]))
    big = np.flatnonzero(values > MAX_ID)
    if big.size:
        raise DataError(f'column {col!r}: value too large (IDs must be below 2^31)', path,
                        int(big[0]) + 2, int(values[big[0]]))
    return values


def read_interactions(path: os.PathLike | str) -> InteractionTable:
    r"""Read and validate a ``*.inter`` file.

    Checks: the header names ``userID``, ``itemID`` and ``x_label``; IDs are non-negative integers below
    :math:`2^{31}`; ``x_label`` is in :math:`\{0, 1, 2\}`; the training split is not empty; optional
    ``rating`` / ``timestamp`` columns are numeric. Duplicate ``(userID, itemID)`` pairs are dropped with a
    warning, keeping the row of the earliest split (train before validation before test), so that an
    interaction never counts as both training and held-out.
    """
    import pandas as pd

    path = Path(path)
    try:
        with open(path, 'r', encoding='utf-8-sig', newline='') as f:  # a leading BOM (Excel) is skipped
            header = f.readline()
    except UnicodeDecodeError as e:
        raise DataError(f'not a UTF-8 text file ({e.reason})', path, 1) from None
    except OSError as e:
        raise DataError(f'cannot read: {e.strerror}', path) from None
    if not header.strip():
        raise DataError('empty file (expected a tab-separated header with userID, itemID, x_label)', path, 1)
    columns = [c.strip() for c in header.rstrip('\r\n').split('\t')]
    for col in REQUIRED_COLUMNS:
        if col not in columns:
            raise DataError(f'missing column {col!r} in the tab-separated header', path, 1,
                            header.rstrip('\r\n'))
    usecols = [c for c in REQUIRED_COLUMNS + OPTIONAL_COLUMNS if c in columns]
    fast = {'userID': np.int64, 'itemID': np.int64, 'x_label': np.int64}
    try:
        df = pd.read_csv(path, sep='\t', usecols=usecols, dtype=fast, engine='c', encoding='utf-8-sig')
    except (ValueError, OverflowError, pd.errors.ParserError):
        # Slow path only to find the offending line.
        try:
            df = pd.read_csv(path, sep='\t', usecols=usecols, dtype=str, engine='c', encoding='utf-8-sig',
                             keep_default_na=False, na_values=[''])
        except pd.errors.ParserError as e:
            m = re.search(r'line (\d+)', str(e))
            raise DataError(f'malformed line ({e})', path, int(m.group(1)) if m else None) from None
    if len(df) == 0:
        raise DataError('no interactions after the header', path, 2)

    user = _parse_int_column(df, 'userID', path)
    item = _parse_int_column(df, 'itemID', path)
    split = _parse_int_column(df, 'x_label', path)
    bad = np.flatnonzero(split > 2)
    if bad.size:
        raise DataError("column 'x_label': must be 0 (train), 1 (validation) or 2 (test)", path,
                        int(bad[0]) + 2, int(split[bad[0]]))
    if not (split == 0).any():
        raise DataError('empty training split: no row has x_label 0', path)

    extra: Dict[str, np.ndarray] = {}
    for col, dtype in (('rating', np.float64), ('timestamp', np.float64)):
        if col not in df:
            continue
        values = pd.to_numeric(df[col], errors='coerce').to_numpy(dtype=np.float64)
        nonfinite = np.flatnonzero(~np.isfinite(values))
        if nonfinite.size:
            i = int(nonfinite[0])
            raise DataError(f'column {col!r}: not a finite number', path, i + 2, df[col].iloc[i])
        extra[col] = values.astype(dtype)

    # Drop duplicate (user, item) pairs, keeping the earliest split.
    key = user * (int(item.max()) + 1) + item
    order = np.lexsort((split, key))  # by key, then by split
    sorted_key = key[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = sorted_key[1:] != sorted_key[:-1]
    num_dup = int((~first).sum())
    keep = np.sort(order[first])
    if num_dup:
        first_dup = int(np.sort(order[~first])[0])
        warnings.warn(f'{path}: dropped {num_dup} duplicate (userID, itemID) interaction(s), keeping the '
                      f'earliest split; the first is on line {first_dup + 2}', UserWarning, stacklevel=2)
        user, item, split = user[keep], item[keep], split[keep]
        extra = {k: v[keep] for k, v in extra.items()}

    return InteractionTable(
        user=user, item=item, split=split,
        num_users=int(user.max()) + 1, num_items=int(item.max()) + 1,
        rating=extra.get('rating'),
        timestamp=extra['timestamp'].astype(np.int64) if 'timestamp' in extra else None,
        num_duplicates=num_dup,
    )


def read_features(path: os.PathLike | str, num_items: Optional[int]) -> np.ndarray:
    r"""Load and validate one ``<modality>_feat.npy`` file as a float32 ``[num_items, dim]`` array (any
    number of rows when :obj:`num_items` is :obj:`None`).

    The array is cast to float32 *before* any arithmetic (sums of float16 values overflow). Pickled
    (object) arrays are never loaded.
    """
    path = Path(path)
    try:
        with open(path, 'rb') as f:
            magic = f.read(6)
    except OSError as e:
        raise DataError(f'cannot read: {e.strerror}', path) from None
    if magic != b'\x93NUMPY':
        raise DataError('not a readable .npy array (no NumPy header)', path)
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as e:
        msg = str(e)
        if 'allow_pickle' in msg or 'Object arrays' in msg:
            raise DataError('holds Python objects (pickled data is never loaded)', path) from None
        raise DataError(f'not a readable .npy array ({msg.splitlines()[0] if msg else "bad file"})',
                        path) from None
    except (OSError, EOFError) as e:
        raise DataError(f'not a readable .npy array ({e})', path) from None
    if not isinstance(arr, np.ndarray):
        raise DataError('not a single .npy array (an .npz archive?)', path)
    if arr.ndim != 2:
        raise DataError(f'expected a 2-D array [items, dim], got shape {tuple(arr.shape)}', path)
    if arr.dtype.kind != 'f':
        raise DataError(f'expected float16/float32/float64 features, got dtype {arr.dtype}', path)
    if num_items is not None and arr.shape[0] != num_items:
        raise DataError(f'has {arr.shape[0]} rows but the interactions have {num_items} items '
                        f'(max itemID + 1): row i must hold the features of item i', path)
    if arr.shape[1] == 0:
        raise DataError('has zero feature columns', path)
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    finite = np.isfinite(arr)
    if not finite.all():
        r, c = map(int, np.argwhere(~finite)[0])
        raise DataError(f'non-finite feature at row {r}, column {c}', path, None, float(arr[r, c]))
    return arr
