import math

import pytest
import torch

from pyg_diffcl.nn import StepSampler


def test_uniform_until_every_step_has_a_full_history():
    s = StepSampler(4, 'importance', history=3, record='example')
    assert not s.ready
    torch.manual_seed(0)
    t, w = s.sample(4000)
    assert t.min() == 0 and t.max() == 3 and torch.equal(w, torch.ones(4000))  # 0-based steps
    counts = torch.bincount(t, minlength=4).float() / 4000
    assert torch.allclose(counts, torch.full((4,), 0.25), atol=0.03)
    s.update(torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2]), torch.ones(9))
    assert not s.ready  # step 3 has no history yet
    s.update(torch.tensor([3, 3, 3]), torch.ones(3))
    assert s.ready


def test_importance_distribution_and_unbiased_weights():
    T, H, u = 3, 4, 0.001
    s = StepSampler(T, 'importance', history=H, uniform_prob=u, record='example')
    losses = {0: [1.0, 1.0, 1.0, 1.0], 1: [2.0, 0.0, 2.0, 0.0], 2: [3.0, 3.0, 3.0, 3.0]}
    for step, vals in losses.items():
        s.update(torch.full((H,), step), torch.tensor(vals))
    # Hand-worked: sqrt(mean(L^2)) = 1, sqrt(2), 3; normalised and mixed with the uniform share.
    raw = torch.tensor([1.0, math.sqrt(2.0), 3.0], dtype=torch.float64)
    expect = raw / raw.sum() * (1 - u) + u / T
    assert torch.allclose(s.probabilities(), expect)
    torch.manual_seed(1)
    t, w = s.sample(200_000)
    freq = torch.bincount(t, minlength=T).double() / t.numel()
    assert torch.allclose(freq, expect, atol=0.005)
    assert torch.allclose(w.double(), 1.0 / (T * expect[t]), rtol=1e-6)
    # Unbiased: the weighted mean of any per-step losses over the drawn steps is their uniform mean.
    L = torch.tensor([0.3, 1.7, 4.0], dtype=torch.float64)
    assert abs(float((w.double() * L[t]).mean()) - float(L.mean())) < 0.02


def test_history_is_first_in_first_out_and_saved_in_the_state_dict():
    s = StepSampler(2, history=3, record='example')
    s.update(torch.tensor([0, 0, 1, 0, 0]), torch.tensor([1.0, 2.0, 9.0, 3.0, 4.0]))
    assert s.loss_history[0].tolist() == [2.0, 3.0, 4.0]  # oldest (1.0) dropped
    assert s.loss_history[1, 0] == 9.0 and s.loss_count.tolist() == [4, 1]
    s2 = StepSampler(2, history=3, record='example')
    s2.load_state_dict(s.state_dict())
    assert torch.equal(s2.loss_history, s.loss_history) and torch.equal(s2.loss_count, s.loss_count)


def test_uniform_mode_never_records_and_bad_arguments():
    s = StepSampler(3, 'uniform', history=1)
    s.update(torch.tensor([0, 1, 2]), torch.ones(3))
    assert not s.ready and int(s.loss_count.sum()) == 0
    assert s.state_dict() == {}  # nothing saved: checkpoints of models without importance sampling unchanged
    with pytest.raises(ValueError):
        StepSampler(0)
    with pytest.raises(ValueError):
        StepSampler(3, 'weighted')
    with pytest.raises(ValueError):
        StepSampler(3, history=0)


def test_batch_record_keeps_one_mean_per_step_and_batch():
    s = StepSampler(2, history=2)
    s.update(torch.tensor([0, 0, 1, 0]), torch.tensor([1.0, 2.0, 10.0, 6.0]))
    s.update(torch.tensor([1, 1]), torch.tensor([4.0, 8.0]))
    assert s.loss_count.tolist() == [1, 2]
    assert s.loss_history[0, 0] == 3.0 and s.loss_history[1].tolist() == [10.0, 6.0]
    with pytest.raises(ValueError):
        StepSampler(2, record='user')
    with pytest.raises(ValueError, match='0-based'):
        s.update(torch.tensor([2]), torch.ones(1))
