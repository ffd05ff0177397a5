"""The bad-input suite: malformed data sets and configurations driven through the CLI as subprocesses.
Each must exit with status 2 and one line on stderr that names the file and line (or the option) and the
value, never a traceback, and must leave no run directory that looks complete."""
import numpy as np
import pytest
import torch

from tests.helpers import run_cli, write_dataset

HEADER = 'userID\titemID\tx_label\n'


def _inter(text):
    return lambda d: (d / 'toy.inter').write_text(text)


def _feat(array):
    return lambda d: np.save(d / 'img_feat.npy', array)


def _raw_feat(data: bytes):
    return lambda d: (d / 'img_feat.npy').write_bytes(data)


def _truncated(d):
    full = (d / 'img_feat.npy').read_bytes()
    (d / 'img_feat.npy').write_bytes(full[:len(full) // 2])


def _second_inter(d):
    (d / 'other.inter').write_text((d / 'toy.inter').read_text())


def _cold_user(d):
    header, rest = (d / 'toy.inter').read_text().split('\n', 1)
    (d / 'toy.inter').write_text(f'{header}\n10\t3\t2\n{rest}')  # user 10: one test item, nothing in training


def _pickled(d):
    np.save(d / 'img_feat.npy', np.array([{'a': 1}] * 12, dtype=object), allow_pickle=True)


DATA_CASES = [
    ('missing column', _inter('userID\titemID\n0\t1\n'), ["toy.inter:1", "missing column 'x_label'"]),
    ('wrong header', _inter('user\titem\tlabel\n0\t1\t0\n'), ["toy.inter:1", "missing column 'userID'"]),
    ('non-integer id', _inter(HEADER + '0\t1\t0\n0\tx1\t1\n'), ["toy.inter:3", "column 'itemID'", "'x1'"]),
    ('negative id', _inter(HEADER + '0\t1\t0\n-4\t2\t0\n'), ["toy.inter:3", "column 'userID'", '-4']),
    ('huge id', _inter(HEADER + '0\t1\t0\n0\t1099511627776\t0\n'), ["toy.inter:3", 'too large']),
    ('x_label 3', _inter(HEADER + '0\t1\t0\n0\t2\t3\n'), ["toy.inter:3", "column 'x_label'", '3']),
    ('empty file', _inter(''), ["toy.inter:1", 'empty file']),
    ('header only', _inter(HEADER), ["toy.inter:2", 'no interactions']),
    ('empty train split', _inter(HEADER + '0\t1\t1\n1\t2\t2\n'), ['toy.inter', 'empty training split']),
    ('fewer feature rows', _feat(np.zeros((5, 4), np.float32)), ['img_feat.npy', 'has 5 rows']),
    ('more feature rows', _feat(np.zeros((40, 4), np.float32)), ['img_feat.npy', 'has 40 rows']),
    ('integer features', _feat(np.zeros((12, 4), np.int64)), ['img_feat.npy', 'dtype int64']),
    ('1-D features', _feat(np.zeros(12, np.float32)), ['img_feat.npy', 'expected a 2-D array', '(12,)']),
    ('3-D features', _feat(np.zeros((12, 4, 2), np.float32)), ['img_feat.npy', '(12, 4, 2)']),
    ('NaN feature', _feat(np.where(np.eye(12, 4) > 0, np.nan, 0).astype(np.float32)),
     ['img_feat.npy', 'non-finite feature at row 0, column 0', 'nan']),
    ('Inf feature', _feat(np.where(np.arange(48).reshape(12, 4) == 9, np.inf, 0).astype(np.float32)),
     ['img_feat.npy', 'row 2, column 1', 'inf']),
    ('truncated npy', _truncated, ['img_feat.npy', 'not a readable .npy array']),
    ('not a npy file', _raw_feat(b'itemID,f0\n0,0.5\n'), ['img_feat.npy', 'no NumPy header']),
    ('pickled npy', _pickled, ['img_feat.npy', 'pickled data is never loaded']),
    ('two inter files', _second_inter, ['more than one *.inter file']),
    ('user with only test items', _cold_user, ['toy.inter:2', 'user 10 has validation/test interactions but none '
                                               'in training', 'data.cold_users=keep']),
]


@pytest.mark.parametrize('case,mutate,expect', DATA_CASES, ids=[c[0] for c in DATA_CASES])
def test_bad_data(tmp_path, case, mutate, expect):
    d = write_dataset(tmp_path / 'bad', num_users=10, num_items=12, modalities={'img': 4})
    mutate(d)
    out = tmp_path / 'run'
    res = run_cli('train', '--model', 'lightgcn', '--data', str(d), '--epochs', '1', '--out', str(out))
    _check_clean(res, expect, out)


OPTION_CASES = [
    ('unknown model', ['--model', 'transformer'], ["invalid choice: 'transformer'"]),
    ('unknown config key', ['--set', 'model.num_layerz=2'], ["unknown config key 'model.num_layerz'"]),
    ('value of the wrong type', ['--set', 'train.batch_size=big'], ['train.batch_size: expected an integer',
                                                                   "'big'"]),
    ('negative epochs', ['--epochs', '-3'], ['train.epochs: must be positive', '-3']),
    ('negative K', ['--set', 'eval.ks=[-5,20]'], ['eval.ks', '-5']),
    ('unknown modality', ['--modalities', 'smell'], ["unknown modality 'smell'"]),
    ('unknown section', ['--set', 'optim.lr=1'], ["unknown config section 'optim'"]),
    ('learning rate not a number', ['--set', 'train.lr=abc'], ['train.lr: expected a number', "'abc'"]),
    ('metric not computed', ['--set', 'eval.metric=recall@7'], ['eval.metric', "'recall@7'"]),
    ('unknown device', ['--device', 'tpu'], ['train.device', "'tpu'"]),
]


@pytest.mark.parametrize('case,args,expect', OPTION_CASES, ids=[c[0] for c in OPTION_CASES])
def test_bad_options(tmp_path, case, args, expect):
    d = write_dataset(tmp_path / 'ok', num_users=10, num_items=12, modalities={'img': 4})
    out = tmp_path / 'run'
    base = ['train', '--data', str(d), '--epochs', '1', '--out', str(out)]
    if '--model' not in args:
        base += ['--model', 'lightgcn']
    _check_clean(run_cli(*base, *args), expect, out)


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the no-CUDA message')
def test_cuda_without_cuda(tmp_path):
    d = write_dataset(tmp_path / 'ok', num_users=10, num_items=12, modalities={})
    out = tmp_path / 'run'
    res = run_cli('train', '--model', 'mf', '--data', str(d), '--device', 'cuda', '--out', str(out))
    _check_clean(res, ['--device cuda', 'CUDA is not available'], out)


def test_unwritable_output_directory(tmp_path):
    d = write_dataset(tmp_path / 'ok', num_users=10, num_items=12, modalities={})
    blocker = tmp_path / 'a_file'
    blocker.write_text('not a directory')
    out = blocker / 'run'  # a directory cannot be created under a regular file, even by root
    res = run_cli('train', '--model', 'mf', '--data', str(d), '--epochs', '1', '--out', str(out))
    _check_clean(res, ['--out', 'not writable'], out)


def _check_clean(res, expect, out):
    assert res.returncode == 2, res.stderr
    assert 'Traceback' not in res.stderr
    lines = [line for line in res.stderr.strip().split('\n') if line.strip()]
    assert len(lines) == 1, res.stderr
    for text in expect:
        assert text in lines[0], (text, lines[0])
    assert not (out / 'metrics.json').exists()


def test_a_dotted_modality_name_is_one_line_for_the_feature_models(tmp_path):
    d = write_dataset(tmp_path / 'ok', num_users=10, num_items=12, modalities={'img': 4})
    (d / 'img_feat.npy').rename(d / 'clip.v2_feat.npy')
    out = tmp_path / 'run'
    res = run_cli('train', '--model', 'diffcl', '--data', str(d), '--epochs', '1', '--out', str(out))
    _check_clean(res, ['clip.v2_feat.npy', "modality name 'clip.v2'", 'rename the file, e.g. to clip_v2_feat.npy'],
                 out)


def test_evaluate_an_empty_split_and_recommend_into_a_directory(tmp_path):
    """``evaluate`` on a data set without test interactions says so (all-zero metrics would read as a model
    that missed everything); ``recommend --out`` naming a directory is refused before any work."""
    d = write_dataset(tmp_path / 'ok', num_users=10, num_items=12, modalities={})
    inter = d / 'toy.inter'
    header, *rows = inter.read_text().strip().split('\n')
    rows = ['\t'.join(r.split('\t')[:2] + ['0' if r.split('\t')[2] == '2' else r.split('\t')[2]]) for r in rows]
    inter.write_text('\n'.join([header] + rows) + '\n')
    run = tmp_path / 'run'
    res = run_cli('train', '--model', 'mf', '--data', str(d), '--epochs', '1', '--out', str(run), '--quiet')
    assert res.returncode == 0, res.stderr
    res = run_cli('evaluate', str(run), '--split', 'test')
    _check_clean(res, ['toy.inter', 'the test split is empty: there is nothing to evaluate'], tmp_path / 'none')
    res = run_cli('evaluate', str(run), '--split', 'valid')
    assert res.returncode == 0 and 'recall@20' in res.stdout, res.stderr
    res = run_cli('recommend', str(run), '--k', '5', '--out', str(tmp_path))
    _check_clean(res, [f'--out {tmp_path}: is a directory'], tmp_path / 'none')
