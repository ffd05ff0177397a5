"""``pyg-diffcl prepare`` / ``data``: a raw log with string ids and timestamps to MMRec's layout, then train and
recommend in the original ids; the split, k-core and feature alignment against independent computations."""
import json

import numpy as np
import pandas as pd
import pytest

from pyg_diffcl.datasets.prepare import k_core, prepare_dataset, split_labels
from pyg_diffcl.errors import DataError
from tests.helpers import run_cli


def _ratings(path, users=40, items=30, per_user=9, seed=0):
    """A MovieLens-style ratings.csv: string ids, 1-5 ratings, unix timestamps; some repeated pairs."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(users):
        for n, i in enumerate(rng.choice(items, size=per_user, replace=False)):
            rows.append((f'u{u:03d}', f'movie-{i}', int(rng.integers(1, 6)), 1_600_000_000 + 1000 * u + n))
    rows.append(rows[0][:2] + (5, 1_500_000_000))  # the same pair, earlier: this row is the one kept
    df = pd.DataFrame(rows, columns=['user', 'movie', 'stars', 'ts'])
    df.to_csv(path, index=False)
    return df


def _feature_table(path, items=30, dim=5, missing=(), seed=1):
    rng = np.random.default_rng(seed)
    ids = [f'movie-{i}' for i in range(items) if i not in missing] + ['movie-unknown']
    x = rng.normal(size=(len(ids), dim))
    df = pd.DataFrame(x, columns=[f'f{c}' for c in range(dim)])
    df.insert(0, 'movie', ids)
    df.to_csv(path, index=False)
    return dict(zip(ids, x))


def test_prepare_train_recommend_in_original_ids(tmp_path):
    raw = tmp_path / 'ratings.csv'
    df = _ratings(raw)
    feats = _feature_table(tmp_path / 'plot.csv', missing=(3,))
    out = tmp_path / 'movies'
    res = run_cli('prepare', str(raw), '--user-col', 'user', '--item-col', 'movie', '--time-col', 'ts',
                  '--rating-col', 'stars', '--features', f'plot={tmp_path / "plot.csv"}', '--split',
                  'chronological', '--out', str(out))
    assert res.returncode == 0, res.stderr
    assert "1 of 30 items have no 'plot' features" in res.stderr
    umap = pd.read_csv(out / 'user_map.tsv', sep='\t', dtype=str)
    imap = pd.read_csv(out / 'item_map.tsv', sep='\t', dtype=str)
    assert list(umap.original_id) == sorted(df.user.unique()) and list(umap.userID) == [str(k) for k in range(40)]
    assert list(imap.original_id) == sorted(df.movie.unique())
    inter = pd.read_csv(out / 'movies.inter', sep='\t')
    assert list(inter.columns) == ['userID', 'itemID', 'x_label', 'rating', 'timestamp']
    assert len(inter) == 40 * 9  # the repeated pair counted once
    # Chronological: each user's latest interaction is the test one, the one before it validation.
    for u, g in inter.groupby('userID'):
        g = g.sort_values('timestamp')
        assert list(g.x_label) == [0] * 7 + [1, 2]
    # The repeated pair kept its earlier row.
    first = inter[(inter.userID == 0) & (inter.itemID == int(imap.set_index('original_id').loc[df.movie[0],
                                                                                              'itemID']))]
    assert first.timestamp.tolist() == [1_500_000_000] and first.rating.tolist() == [5]
    # Features aligned to the new item ids; the missing item filled with the mean of the others.
    x = np.load(out / 'plot_feat.npy')
    known = [k for k, orig in enumerate(imap.original_id) if orig in feats]
    for k in known:
        assert np.allclose(x[k], feats[imap.original_id[k]], atol=1e-6)
    gap = [k for k, orig in enumerate(imap.original_id) if orig not in feats]
    assert len(gap) == 1 and np.allclose(x[gap[0]], x[known].mean(0), atol=1e-6)

    res = run_cli('data', str(out), '--json')
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert info['users'] == 40 and info['items'] == 30 and info['interactions'] == {'train': 280, 'valid': 40,
                                                                                     'test': 40}
    assert info['modalities'] == {'plot': 5} and info['id_maps'] and info['cold_users'] == 0
    assert info['density'] == pytest.approx(280 / 1200)
    assert set(info['sha256']) == {'movies.inter', 'plot_feat.npy'}

    run = tmp_path / 'run'
    res = run_cli('train', '--model', 'lightgcn', '--data', str(out), '--epochs', '2', '--out', str(run), '--quiet')
    assert res.returncode == 0, res.stderr
    recs = tmp_path / 'recs.tsv'
    res = run_cli('recommend', str(run), '--k', '5', '--out', str(recs))
    assert res.returncode == 0, res.stderr
    got = pd.read_csv(recs, sep='\t', dtype=str)
    assert list(got.columns) == ['userID', 'itemID', 'rank']
    assert set(got.userID) == set(df.user) and set(got.itemID) <= set(df.movie)
    # No recommended item is one of the user's training items (in original ids).
    train = inter[inter.x_label == 0]
    seen = {(umap.original_id[u], imap.original_id[i]) for u, i in zip(train.userID, train.itemID)}
    assert not any((u, i) in seen for u, i in zip(got.userID, got.itemID))


def test_prepare_is_deterministic_for_a_seed(tmp_path):
    raw = tmp_path / 'r.csv'
    _ratings(raw, seed=3)
    outs = []
    for n, seed in enumerate((7, 7, 8)):
        out = tmp_path / f'o{n}'
        prepare_dataset(raw, out, 'user', 'movie', split='random', seed=seed)
        outs.append((out / f'o{n}.inter').read_bytes())
    assert outs[0] == outs[1] and outs[0] != outs[2]


def test_split_labels_random_per_user_shares():
    user = np.repeat(np.arange(5), [10, 3, 2, 1, 20])
    labels, kept = split_labels(user, np.arange(len(user), dtype=float), (8, 1, 1), 'random', seed=0)
    assert kept == 2  # the users with 2 and 1 interactions stay in training
    for u, (n_valid, n_test) in {0: (1, 1), 1: (1, 1), 4: (2, 2)}.items():
        lab = labels[user == u]
        assert (lab == 1).sum() == n_valid and (lab == 2).sum() == n_test
    assert (labels[(user == 2) | (user == 3)] == 0).all()
    # No validation share: nothing labelled 1, and a user needs only 2 interactions.
    labels, kept = split_labels(user, np.arange(len(user), dtype=float), (9, 0, 1), 'random', seed=0)
    assert not (labels == 1).any() and kept == 1


def test_split_labels_global_time_cut():
    t = np.array([5, 1, 9, 3, 7, 2, 8, 4, 6, 0], dtype=float)
    labels, _ = split_labels(np.zeros(10, dtype=int), t, (8, 1, 1), 'global-time', seed=0)
    assert labels[t < 8].tolist() == [0] * 8 and labels[t == 8].tolist() == [1] and labels[t == 9].tolist() == [2]


def test_k_core_against_brute_force():
    rng = np.random.default_rng(0)
    user, item = rng.integers(0, 30, 300), rng.integers(0, 20, 300)
    keep = k_core(user, item, 8)
    pairs = set(zip(user[keep], item[keep]))
    u_cnt = {u: int(((user == u) & keep).sum()) for u in set(user[keep])}
    i_cnt = {i: int(((item == i) & keep).sum()) for i in set(item[keep])}
    assert min(u_cnt.values()) >= 8 and min(i_cnt.values()) >= 8
    # Maximal: brute-force fixed point from the full set reaches the same set.
    alive = np.ones(300, dtype=bool)
    changed = True
    while changed:
        changed = False
        for arr in (user, item):
            for v in set(arr[alive]):
                if ((arr == v) & alive).sum() < 8:
                    alive &= arr != v
                    changed = True
    assert pairs == set(zip(user[alive], item[alive]))


def test_prepare_errors(tmp_path):
    raw = tmp_path / 'r.csv'
    _ratings(raw)
    with pytest.raises(DataError, match=r"r.csv:1: item_col 'item': no such column"):
        prepare_dataset(raw, tmp_path / 'o', 'user', 'item')
    with pytest.raises(ValueError, match="time_col: split='chronological' needs time_col"):
        prepare_dataset(raw, tmp_path / 'o', 'user', 'movie', split='chronological')
    (tmp_path / 'bad.csv').write_text('user,movie,ts\nu1,m1,100\nu2,m1,yesterday\n')
    with pytest.raises(DataError, match=r"bad.csv:3: column 'ts': not a number: 'yesterday'"):
        prepare_dataset(tmp_path / 'bad.csv', tmp_path / 'o', 'user', 'movie', time_col='ts')
    (tmp_path / 'f.csv').write_text('movie,a\nmovie-1,0.5\nmovie-1,0.7\n')
    with pytest.raises(DataError, match=r"f.csv:3: item id 'movie-1' appears twice \(first on line 2\)"):
        prepare_dataset(raw, tmp_path / 'o', 'user', 'movie', features={'f': str(tmp_path / 'f.csv')})
    prepare_dataset(raw, tmp_path / 'o', 'user', 'movie')
    with pytest.raises(ValueError, match='out: .* exists and is not empty; pass overwrite=True'):
        prepare_dataset(raw, tmp_path / 'o', 'user', 'movie')


def test_prepare_errors_on_the_command_line_name_the_flags(tmp_path):
    raw = tmp_path / 'r.csv'
    _ratings(raw)
    (tmp_path / 'o').mkdir()
    (tmp_path / 'o' / 'x').write_text('')
    cases = [
        (['--user-col', 'user', '--item-col', 'item'], "r.csv:1: --item-col 'item': no such column"),
        (['--user-col', 'user', '--item-col', 'movie', '--split', 'chronological'],
         "--time-col: split='chronological' needs --time-col"),
        (['--user-col', 'user', '--item-col', 'movie', '--min-rating', '3'], '--min-rating: needs --rating-col'),
        (['--user-col', 'user', '--item-col', 'movie', '--out', str(tmp_path / 'o')],
         'exists and is not empty; pass --overwrite to replace its files'),
    ]
    for extra, expect in cases:
        args = ['prepare', str(raw), *extra]
        if '--out' not in extra:
            args += ['--out', str(tmp_path / 'fresh')]
        res = run_cli(*args)
        assert res.returncode == 2, res.stderr
        assert expect in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr


def test_prepare_npy_features_with_id_file(tmp_path):
    raw = tmp_path / 'r.csv'
    _ratings(raw, items=12, per_user=5)
    ids = [f'movie-{i}' for i in range(12)][::-1]
    x = np.arange(24, dtype=np.float32).reshape(12, 2)
    np.save(tmp_path / 'img.npy', x)
    (tmp_path / 'img_ids.txt').write_text('\n'.join(ids) + '\n')
    out = tmp_path / 'o'
    rep = prepare_dataset(raw, out, 'user', 'movie', features={'img': f'{tmp_path / "img.npy"}:{tmp_path / "img_ids.txt"}'})
    assert rep.items_without_features == {'img': 0}
    got = np.load(out / 'img_feat.npy')
    imap = pd.read_csv(out / 'item_map.tsv', sep='\t', dtype=str)
    for k, orig in enumerate(imap.original_id):
        assert got[k].tolist() == x[ids.index(orig)].tolist()
