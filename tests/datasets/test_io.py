import warnings

import numpy as np
import pytest

from pyg_diffcl.datasets import find_data_files, read_features, read_interactions
from pyg_diffcl.errors import DataError


def write(tmp_path, text, name='d.inter'):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_reads_columns_and_sizes(tmp_path):
    p = write(tmp_path, 'userID\titemID\tx_label\n0\t3\t0\n2\t1\t1\n1\t0\t2\n0\t1\t0\n')
    t = read_interactions(p)
    assert t.num_users == 3 and t.num_items == 4
    assert t.user.tolist() == [0, 2, 1, 0]
    assert t.item.tolist() == [3, 1, 0, 1]
    assert t.split.tolist() == [0, 1, 2, 0]
    assert t.rating is None and t.timestamp is None


def test_a_byte_order_mark_before_the_header_is_skipped(tmp_path):
    """Spreadsheet programs export UTF-8 with a BOM: the first column is still 'userID'."""
    p = tmp_path / 'd.inter'
    p.write_bytes(b'\xef\xbb\xbfuserID\titemID\tx_label\n0\t3\t0\n2\t1\t1\n')
    t = read_interactions(p)
    assert t.user.tolist() == [0, 2] and t.item.tolist() == [3, 1] and t.split.tolist() == [0, 1]


def test_optional_columns_any_order(tmp_path):
    p = write(tmp_path, 'timestamp\titemID\trating\tuserID\tx_label\n100\t2\t4.5\t0\t0\n200\t1\t3\t1\t2\n')
    t = read_interactions(p)
    assert t.item.tolist() == [2, 1] and t.user.tolist() == [0, 1]
    assert t.rating.tolist() == [4.5, 3.0] and t.timestamp.tolist() == [100, 200]


@pytest.mark.parametrize('text,expect', [
    ('userID\titemID\n0\t1\n', "d.inter:1: missing column 'x_label'"),
    ('', 'd.inter:1: empty file'),
    ('userID\titemID\tx_label\n', 'd.inter:2: no interactions'),
    ('userID\titemID\tx_label\n0\t1\t0\n0\tabc\t0\n', "d.inter:3: column 'itemID': not a non-negative integer: 'abc'"),
    ('userID\titemID\tx_label\n0\t1\t0\n1.5\t1\t0\n', "d.inter:3: column 'userID': not a non-negative integer: '1.5'"),
    ('userID\titemID\tx_label\n0\t1\t0\n-3\t1\t0\n', "d.inter:3: column 'userID': negative value: -3"),
    ('userID\titemID\tx_label\n0\t1\t0\n0\t2\t3\n', "d.inter:3: column 'x_label': must be 0 (train), 1 (validation) or 2 (test): 3"),
    ('userID\titemID\tx_label\n0\t1\t1\n0\t2\t2\n', 'empty training split'),
    ('userID\titemID\tx_label\n0\t1\t0\n0\t99999999999\t0\n', "d.inter:3: column 'itemID': value too large"),
    ('userID\titemID\tx_label\n0\t1\t0\n0\t\t0\n', "d.inter:3: column 'itemID': missing value"),
    ('userID\titemID\tx_label\trating\n0\t1\t0\tfive\n', "d.inter:2: column 'rating': not a finite number: 'five'"),
])
def test_bad_interactions(tmp_path, text, expect):
    p = write(tmp_path, text)
    with pytest.raises(DataError) as e:
        read_interactions(p)
    assert expect in str(e.value)
    assert '\n' not in str(e.value)


def test_duplicates_dropped_keeping_earliest_split(tmp_path):
    p = write(tmp_path, 'userID\titemID\tx_label\n0\t1\t2\n0\t1\t0\n1\t1\t0\n1\t1\t0\n0\t2\t0\n')
    with pytest.warns(UserWarning, match='dropped 2 duplicate'):
        t = read_interactions(p)
    pairs = sorted(zip(t.user.tolist(), t.item.tolist(), t.split.tolist()))
    assert pairs == [(0, 1, 0), (0, 2, 0), (1, 1, 0)]
    assert t.num_duplicates == 2


def test_no_warning_without_duplicates(tmp_path):
    p = write(tmp_path, 'userID\titemID\tx_label\n0\t1\t0\n')
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        read_interactions(p)


def test_features_cast_to_float32_before_arithmetic(tmp_path):
    # 2 * 40000 overflows float16 (max 65504): a float16 sum would be inf.
    x = np.full((3, 2), 40000, dtype=np.float16)
    np.save(tmp_path / 'a_feat.npy', x)
    out = read_features(tmp_path / 'a_feat.npy', 3)
    assert out.dtype == np.float32
    assert np.isfinite(out.sum(0)).all() and out.sum(0)[0] == pytest.approx(120000, rel=1e-3)


@pytest.mark.parametrize('array,n,expect', [
    (np.zeros((4, 2), np.float32), 3, 'has 4 rows but the interactions have 3 items'),
    (np.zeros((2, 2), np.float32), 3, 'has 2 rows but the interactions have 3 items'),
    (np.zeros(3, np.float32), 3, 'expected a 2-D array'),
    (np.zeros((3, 2, 2), np.float32), 3, 'expected a 2-D array'),
    (np.zeros((3, 2), np.int64), 3, 'dtype int64'),
    (np.array([[0, 1], [np.nan, 0], [0, 0]], np.float32), 3, 'non-finite feature at row 1, column 0: nan'),
    (np.array([[0, 1], [0, 0], [0, np.inf]], np.float16), 3, 'non-finite feature at row 2, column 1: inf'),
    (np.array([[1], [2], [3]], dtype=object), 3, 'holds Python objects'),
])
def test_bad_features(tmp_path, array, n, expect):
    path = tmp_path / 'x_feat.npy'
    np.save(path, array, allow_pickle=True)
    with pytest.raises(DataError) as e:
        read_features(path, n)
    assert expect in str(e.value) and str(path) in str(e.value)


def test_truncated_and_non_numpy_files(tmp_path):
    path = tmp_path / 'x_feat.npy'
    np.save(path, np.zeros((10, 4), np.float32))
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataError, match='not a readable .npy'):
        read_features(path, 10)
    path.write_text('hello, not numpy')
    with pytest.raises(DataError, match='not a readable .npy'):
        read_features(path, 10)


def test_find_files(tmp_path):
    (tmp_path / 'a.inter').write_text('x')
    (tmp_path / 'image_feat.npy').write_bytes(b'')
    (tmp_path / 'text_feat.npy').write_bytes(b'')
    files = find_data_files(tmp_path)
    assert files.available_modalities == ['image', 'text']
    assert files.select([]).features == {}
    assert list(files.select(['text']).features) == ['text']
    with pytest.raises(DataError, match="unknown modality 'audio'.*available: image, text"):
        files.select(['audio'])
    (tmp_path / 'b.inter').write_text('x')
    with pytest.raises(DataError, match='more than one'):
        find_data_files(tmp_path)


def test_missing_directory(tmp_path):
    with pytest.raises(DataError, match='not a data set directory'):
        find_data_files(tmp_path / 'nope')
    with pytest.raises(DataError, match=r'no \*\.inter'):
        find_data_files(tmp_path)
