"""Early stopping: the rule (patience on a trailing mean, a floor of epochs) against hand-worked curves, and the
trainer stopping where the rule says on a scripted validation curve."""
import pytest
import torch

from pyg_diffcl.datasets.mmrec import EDGE_TYPE
from pyg_diffcl.training import Trainer, early_stop, prepare
from pyg_diffcl.training.config import parse_set, resolve_config
from pyg_diffcl.training.trainer import smoothed
from tests.helpers import write_dataset


def test_smoothed_is_the_trailing_mean():
    values = [0.1, 0.3, 0.2, 0.25, 0.2]
    # Window 2 by hand: 0.1, (0.1 + 0.3) / 2, (0.3 + 0.2) / 2, (0.2 + 0.25) / 2, (0.25 + 0.2) / 2.
    assert smoothed(values, 2) == pytest.approx([0.1, 0.2, 0.25, 0.225, 0.225])
    # Window 3: the first two epochs average what there is.
    assert smoothed(values, 3) == pytest.approx([0.1, 0.2, 0.2, 0.25, 0.65 / 3])
    assert smoothed(values, 1) == values
    assert smoothed(values, 10) == pytest.approx([sum(values[:i + 1]) / (i + 1) for i in range(5)])


def test_raw_rule_is_the_usual_patience():
    curve = [0.1, 0.3, 0.2, 0.25, 0.2]  # best at epoch 2
    assert not early_stop(curve[:4], patience=3)  # 4 - 2 = 2 epochs without a better value
    assert early_stop(curve, patience=3)          # 5 - 2 = 3
    assert not early_stop(curve[:2], patience=0)  # the best epoch itself never stops
    assert early_stop(curve[:3], patience=0)
    assert not early_stop([], patience=0)
    # Ties keep the first epoch of the best value.
    assert early_stop([0.1, 0.3, 0.3, 0.3], patience=2)


def test_window_counts_from_the_best_trailing_mean():
    curve = [0.1, 0.3, 0.2, 0.25, 0.2]
    # Window 2: the trailing means peak at epoch 3 (0.25), so after 5 epochs only 2 have passed.
    assert not early_stop(curve, patience=3, window=2)
    assert early_stop(curve + [0.2], patience=3, window=2)
    # One lucky epoch on a plateau: the raw rule counts from it, the window does not.
    plateau = [0.05, 0.08, 0.12, 0.08, 0.08, 0.09, 0.09, 0.10, 0.10]
    assert early_stop(plateau, patience=6)                   # raw best at epoch 3, 9 - 3 = 6
    assert not early_stop(plateau, patience=6, window=3)     # means peak at epoch 9 ((0.09 + 0.10 + 0.10) / 3)


def test_floor_of_epochs():
    curve = [0.3, 0.2, 0.2, 0.2, 0.2]
    assert early_stop(curve, patience=2)
    assert not early_stop(curve, patience=2, min_epochs=6)
    assert early_stop(curve + [0.2], patience=2, min_epochs=6)
    assert early_stop(curve, patience=2, min_epochs=5)


class Scripted:
    """A validation evaluator that returns a fixed curve, one value per call."""
    def __init__(self, curve):
        self.curve, self.calls = list(curve), 0

    def evaluate(self, scores, rank=0, world_size=1):
        value = self.curve[self.calls]
        self.calls += 1
        return {'recall@20': value}


# A lucky epoch (3) early, then a plateau and a climb to 0.4 at epochs 8-10. By hand: the raw rule stops at
# 6 (best epoch 3, patience 3); the floor of 7 at 7; the window-3 means (0.1, 0.15, 0.267, 0.3, 0.333, 0.267,
# 0.317, 0.35, 0.383, 0.4, 0.367, 0.333, 0.3, ...) peak at epoch 10, so it stops at 13.
CURVE = [0.1, 0.2, 0.5, 0.2, 0.3, 0.3, 0.35, 0.4, 0.4, 0.4, 0.3, 0.3, 0.3, 0.3]


@pytest.mark.parametrize('settings,expected', [({'patience_window': 1}, 6), ({'patience_window': 1, 'min_epochs': 7}, 7),
                                               ({'patience_window': 3}, 13)])
def test_trainer_stops_where_the_rule_says(tmp_path, settings, expected):
    curve = CURVE
    data = write_dataset(tmp_path / 'mm', num_users=12, num_items=10, per_user=4, modalities={})
    config = resolve_config('mf', [parse_set([f'data.name={data}', 'model.embedding_dim=4', 'train.epochs=14'])])
    prep = prepare(config)
    sampler = prep.model.make_sampler(prep.dataset[0][EDGE_TYPE].edge_index, 16, 0)
    valid = Scripted(curve)
    torch.manual_seed(0)
    trainer = Trainer(prep.model, prep.adj, sampler, valid, epochs=14, patience=3, show_progress=False,
                      handle_sigint=False, **settings)
    result = trainer.fit()
    assert result.epochs_run == expected == valid.calls
    # The kept epoch is the best raw validation epoch among those run, whatever decided the stop.
    assert result.best_epoch == 3
