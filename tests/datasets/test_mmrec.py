import numpy as np
import pytest
import torch

from pyg_diffcl.datasets import MMRecDataset
from pyg_diffcl.datasets.mmrec import EDGE_TYPE, REV_EDGE_TYPE
from pyg_diffcl.errors import DataError

from tests.helpers import write_dataset


def read_rows(path):
    lines = path.read_text().strip().split('\n')[1:]
    return [tuple(int(float(v)) for v in line.split('\t')[:3]) for line in lines]


def test_heterodata_layout(tmp_path):
    root = write_dataset(tmp_path / 'd', num_users=12, num_items=9, modalities={'image': 4, 'txt': 3},
                         extra_columns=True)
    ds = MMRecDataset(root, root=str(tmp_path / 'cache'))
    data = ds[0]
    rows = read_rows(root / 'toy.inter')
    assert data['user'].num_nodes == 12 and data['item'].num_nodes == 9
    assert ds.modalities == ['image', 'txt']
    assert data['item'].x_image.shape == (9, 4) and data['item'].x_image.dtype == torch.float32
    expected = np.load(root / 'image_feat.npy').astype(np.float32)
    assert torch.equal(data['item'].x_image, torch.from_numpy(expected))
    for split, label in (('edge_index', 0), ('valid_edge_label_index', 1), ('test_edge_label_index', 2)):
        got = sorted(map(tuple, data[EDGE_TYPE][split].t().tolist()))
        assert got == sorted((u, i) for u, i, x in rows if x == label)
    assert torch.equal(data[REV_EDGE_TYPE].edge_index, data[EDGE_TYPE].edge_index.flip(0))
    assert data[EDGE_TYPE].rating.numel() == data[EDGE_TYPE].edge_index.size(1)
    assert ds.meta['interactions'] == {'train': sum(x == 0 for *_, x in rows),
                                       'valid': sum(x == 1 for *_, x in rows),
                                       'test': sum(x == 2 for *_, x in rows)}
    assert set(ds.meta['sha256']) == {'toy.inter', 'image_feat.npy', 'txt_feat.npy'}
    assert repr(ds).startswith('MMRecDataset(d, users=12, items=9')
    split = ds.split('test')
    assert torch.equal(split[EDGE_TYPE].edge_label_index, data[EDGE_TYPE].test_edge_label_index)


def test_modalities_selection(tmp_path):
    root = write_dataset(tmp_path / 'd', modalities={'a': 2, 'b': 3})
    assert MMRecDataset(root, modalities=[], root=str(tmp_path / 'c')).modalities == []
    ds = MMRecDataset(root, modalities=['b'], root=str(tmp_path / 'c'))
    assert ds.modalities == ['b'] and 'x_a' not in ds[0]['item']
    with pytest.raises(DataError, match="unknown modality 'c'"):
        MMRecDataset(root, modalities=['c'], root=str(tmp_path / 'c'))


def test_no_features(tmp_path):
    root = write_dataset(tmp_path / 'd', modalities={})
    ds = MMRecDataset(root, root=str(tmp_path / 'c'))
    assert ds.modalities == [] and ds.features() == {}


def test_cache_is_not_stale(tmp_path):
    root = write_dataset(tmp_path / 'd', modalities={'a': 2})
    cache = str(tmp_path / 'c')
    first = MMRecDataset(root, root=cache)
    x = np.load(root / 'a_feat.npy')
    np.save(root / 'a_feat.npy', (x.astype(np.float32) + 1).astype(x.dtype))
    second = MMRecDataset(root, root=cache)
    assert second.processed_dir != first.processed_dir
    assert torch.allclose(second[0]['item'].x_a, first[0]['item'].x_a + 1, atol=1e-2)
    # A feature file that became invalid is reported, never served from the cache.
    arr = np.load(root / 'a_feat.npy').astype(np.float32)
    arr[0, 0] = np.nan
    np.save(root / 'a_feat.npy', arr)
    with pytest.raises(DataError, match='non-finite'):
        MMRecDataset(root, root=cache)


def test_cache_sees_content_replaced_under_the_old_modification_time(tmp_path):
    """``cp -p`` / ``rsync -a`` / ``touch -r`` can give new content of the same size the old modification
    time: the cache key's status-change time still tells, so neither the features nor the recorded
    checksums are stale."""
    import os
    root = write_dataset(tmp_path / 'd', modalities={'a': 2})
    cache = str(tmp_path / 'c')
    first = MMRecDataset(root, root=cache)
    path = root / 'a_feat.npy'
    st = path.stat()
    x = np.load(path)
    np.save(path, (x.astype(np.float32) + 1).astype(x.dtype))  # same shape and dtype: same size
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns
    second = MMRecDataset(root, root=cache)
    assert torch.allclose(second[0]['item'].x_a, first[0]['item'].x_a + 1, atol=1e-2)
    assert second.meta['sha256']['a_feat.npy'] != first.meta['sha256']['a_feat.npy']


def test_feature_rows_must_match_items(tmp_path):
    root = write_dataset(tmp_path / 'd', num_items=10, modalities={'a': 2})
    np.save(root / 'a_feat.npy', np.zeros((11, 2), np.float32))
    with pytest.raises(DataError, match='a_feat.npy: has 11 rows but the interactions have 10 items'):
        MMRecDataset(root, root=str(tmp_path / 'c'))


def test_embedded_tiktok_matches_its_readme():
    ds = MMRecDataset('tiktok')
    data = ds[0]
    assert (ds.num_users, ds.num_items) == (9308, 6710)
    assert ds.meta['interactions'] == {'train': 59541, 'valid': 3051, 'test': 6130}
    assert {m: tuple(data['item'][f'x_{m}'].shape) for m in ds.modalities} == {
        'audio': (6710, 128), 'image': (6710, 128)}
    assert data['item'].x_audio.dtype == torch.float32
    train_items = set(data[EDGE_TYPE].edge_index[1].tolist())
    assert len(train_items) == 6245
    held = data[EDGE_TYPE].test_edge_label_index[1].tolist() + data[EDGE_TYPE].valid_edge_label_index[1].tolist()
    assert sum(i not in train_items for i in held) == 449 + 223
