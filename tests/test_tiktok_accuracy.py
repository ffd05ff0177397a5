"""Slow accuracy runs on the embedded TikTok data (skipped unless --runslow): LightGCN and DiffCL with the
packaged configuration, validation-selected. The bounds sit about one seed-std under the README's 3-seed
figures, so a single seed passes unless the model really regressed."""
import json

import pytest

from tests.helpers import run_cli


@pytest.mark.slow
def test_lightgcn_tiktok_reaches_target(tmp_path):
    res = run_cli('train', '--model', 'lightgcn', '--data', 'tiktok', '--seed', '0', '--out', str(tmp_path / 'r'),
                  '--quiet', timeout=1800)
    assert res.returncode == 0, res.stderr
    m = json.loads((tmp_path / 'r' / 'metrics.json').read_text())
    assert m['selection'] == 'valid'
    assert m['test']['recall@20'] >= 0.0851 - 0.004
    assert m['test']['ndcg@20'] >= 0.0405 - 0.002
    assert m['seconds_per_epoch'] < 1.5


@pytest.mark.slow
def test_diffcl_tiktok_beats_diffmm_validation_selected(tmp_path):
    """DiffCL with the packaged tiktok settings, seed 0 (README: 0.1047 ± 0.0007 / 0.0450 ± 0.0009 over seeds
    0-2; seed 0 gave 0.1049 / 0.0460). The bounds are DiffMM's released code run here with validation
    selection (0.1020 / 0.0429), raised to one-and-a-half seed-stds under the mean for NDCG."""
    res = run_cli('train', '--model', 'diffcl', '--data', 'tiktok', '--seed', '0', '--out', str(tmp_path / 'r'),
                  '--quiet', timeout=3600)
    assert res.returncode == 0, res.stderr
    m = json.loads((tmp_path / 'r' / 'metrics.json').read_text())
    assert m['selection'] == 'valid'
    assert m['test']['recall@20'] >= 0.1020
    assert m['test']['ndcg@20'] >= 0.0450 - 0.0015


@pytest.mark.slow
def test_ld4mrec_tiktok_beats_popularity_validation_selected(tmp_path):
    """LD4MRec with the packaged tiktok settings, seed 0, against an independent baseline computed here:
    ranking every user's unseen items by training popularity (README "LD4MRec on tiktok")."""
    import torch
    from pyg_diffcl.datasets import MMRecDataset
    from pyg_diffcl.evaluation import FullRankingEvaluator

    res = run_cli('train', '--model', 'ld4mrec', '--data', 'tiktok', '--seed', '0', '--out', str(tmp_path / 'r'),
                  '--quiet', timeout=3600)
    assert res.returncode == 0, res.stderr
    m = json.loads((tmp_path / 'r' / 'metrics.json').read_text())
    assert m['selection'] == 'valid'
    store = MMRecDataset('tiktok')[0]['user', 'rates', 'item']
    pop = torch.bincount(store.edge_index[1], minlength=m['data']['items']).float()
    ev = FullRankingEvaluator(store.test_edge_label_index, store.edge_index, m['data']['users'], m['data']['items'])
    base = ev.evaluate(lambda users: pop.expand(len(users), -1).clone())
    assert m['test']['recall@20'] > base['recall@20'] + 0.005
    assert m['test']['ndcg@20'] > base['ndcg@20'] + 0.003
