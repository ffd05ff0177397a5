import pytest

from pyg_diffcl.errors import ConfigError
from pyg_diffcl.models import LightGCNConfig
from pyg_diffcl.training.config import load_yaml, parse_set, resolve_config


def test_defaults_and_layer_order(tmp_path):
    cfg = resolve_config('lightgcn')
    assert cfg.model == LightGCNConfig() and cfg.train.batch_size == 2048 and cfg.train.patience == 50 and cfg.train.patience_window == 5
    f = tmp_path / 'c.yaml'
    f.write_text('model: {num_layers: 3, reg_weight: 1e-3}\ntrain: {lr: 0.01}\n')
    cfg = resolve_config('lightgcn', [load_yaml(f), parse_set(['train.lr=0.05', 'eval.ks=5,20'])])
    assert cfg.model.num_layers == 3 and cfg.model.reg_weight == pytest.approx(1e-3)  # YAML '1e-3' string
    assert cfg.train.lr == pytest.approx(0.05) and cfg.eval.ks == [5, 20]


def test_round_trip():
    cfg = resolve_config('mf', [parse_set(['model.embedding_dim=16', 'data.modalities=[]'])])
    again = resolve_config(layers=[cfg.to_dict()])
    assert again == cfg and again.data.modalities == []


@pytest.mark.parametrize('items,expect', [
    (['model.embedding_dim=1.5'], 'model.embedding_dim: expected an integer'),
    (['train.patience=-1'], 'train.patience: must be non-negative'),
    (['eval.mask_valid_for_test=maybe'], 'expected true or false'),
    (['other.x=1'], "unknown config section 'other'"),
    (['lr=1'], 'the key must be section.key'),
    (['train.lr'], 'expected section.key=value'),
    (['train.backend=fast'], 'train.backend'),
    (['model.name=bert'], "unknown model 'bert'"),
    (['train.seed=-1'], 'train.seed: must be in 0'),
    (['train.seed=99999999999999999999'], 'train.seed: must be in 0'),
    (['train.lr=inf'], 'train.lr: must be a positive number'),
    (['train.weight_decay=nan'], 'train.weight_decay: must be a non-negative number'),
    (['train.neighbor_negatives=hard'], 'train.neighbor_negatives: expected one of unseen, any'),
    (['train.negative_pool=seen'], 'train.negative_pool: expected one of all, trained'),
    (['train.negative_pool=trained', 'train.loader=neighbor'], 'train.negative_pool: trained applies to loader: full'),
])
def test_bad_values(items, expect):
    with pytest.raises(ConfigError, match=expect.replace('(', r'\(').replace(')', r'\)')):
        resolve_config('lightgcn', [parse_set(items)])


def test_bad_yaml_file(tmp_path):
    f = tmp_path / 'c.yaml'
    f.write_text('model: [unclosed\n')
    with pytest.raises(ConfigError, match='c.yaml:.*not valid YAML'):
        load_yaml(f)
    f.write_text('- 1\n- 2\n')
    with pytest.raises(ConfigError, match='mapping of sections'):
        load_yaml(f)


def test_ld4mrec_preset_and_packaged_section_resolve():
    from pyg_diffcl.training.config import load_yaml, packaged_config, resolve_config
    cfg = resolve_config(layers=[load_yaml('ld4mrec-paper')])
    assert cfg.model_name == 'ld4mrec' and cfg.train.batch_size == 400
    assert (cfg.model.fc_dim, cfg.model.hidden_dim, cfg.model.time_dim) == (1000, 100, 10)
    assert (cfg.model.soft_prob, cfg.model.soft_smooth) == (0.01, 0.01)
    packaged = resolve_config('ld4mrec', [packaged_config('tiktok', 'ld4mrec')])
    assert packaged.train.batch_size == 400


def test_a_config_file_older_than_a_key_reads_as_its_run_was():
    """Sampled runs written before ``train.neighbor_negatives`` existed drew PyG's single negative: their
    ``config.yaml`` reads as ``any``; a whole-graph run's, and any new run, get the default."""
    from pyg_diffcl.training.config import from_dict
    new = resolve_config('lightgcn', [parse_set(['train.loader=neighbor'])])
    assert new.train.neighbor_negatives == 'unseen'
    old = new.to_dict()
    del old['train']['neighbor_negatives']
    assert from_dict(old).train.neighbor_negatives == 'any'
    full = resolve_config('lightgcn').to_dict()
    del full['train']['neighbor_negatives']
    assert from_dict(full).train.neighbor_negatives == 'unseen'
    assert from_dict(new.to_dict()) == new  # a file with the key keeps it
