import pytest
import torch
import torch.nn.functional as F

from pyg_diffcl.nn import CGBlock, CNet, PGBlock, timestep_embedding


def _randomise(module, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)


def test_cg_block_matches_its_equations():
    blk = CGBlock(6, 4, 5, 3)
    _randomise(blk)
    h, z, c = torch.randn(7, 6), torch.randn(7, 3), torch.randn(7, 4)
    W_h, b_h = blk.lin_h.weight, blk.lin_h.bias
    h1 = torch.tanh(torch.cat([h, z], 1) @ W_h.t() + b_h)
    c1 = torch.tanh(c @ blk.lin_c.weight.t() + blk.lin_c.bias)
    g = torch.sigmoid(z @ blk.lin_g.weight.t() + blk.lin_g.bias)
    assert torch.allclose(blk(h, z, c), g * h1 + (1 - g) * c1, atol=1e-6)
    # The 'step' gate depends on z only: a gate of ~1 passes the behaviour branch and ignores c.
    with torch.no_grad():
        blk.lin_g.bias.fill_(50.0)
    assert torch.allclose(blk(h, z, c), blk(h, z, torch.randn(7, 4)), atol=1e-6)
    full = CGBlock(6, 4, 5, 3, gate='all')
    assert full.lin_g.in_features == 2 * 5 + 3 and full(h, z, c).shape == (7, 5)
    with pytest.raises(ValueError):
        CGBlock(6, 4, 5, 3, gate='h')


def test_pg_block_starts_as_identity_and_modulates_featurewise():
    blk = PGBlock(5, 3, hidden_channels=4)
    h, p = torch.randn(6, 5), torch.randn(6, 3)
    assert torch.allclose(blk(h, p), h)
    _randomise(blk, 1)
    gamma = blk.gamma[1](F.leaky_relu(blk.gamma[0](p)))
    beta = p @ blk.beta[0].weight.t() + blk.beta[0].bias
    beta = F.leaky_relu(beta) @ blk.beta[1].weight.t() + blk.beta[1].bias
    assert torch.allclose(blk(h, p), gamma * h + beta, atol=1e-6)


def test_cnet_shapes_ablations_and_step_offset():
    torch.manual_seed(0)
    net = CNet(12, 4, [3, 2], fc_dim=8, hidden=6, time_dim=4, dropout=0.0)
    x, t = torch.rand(5, 12), torch.tensor([0, 1, 2, 3, 4])
    c, prefs = torch.randn(5, 4), [torch.randn(5, 3), torch.randn(5, 2)]
    out = net(x, t, c, prefs)
    assert out.shape == (5, 12)
    # An offset is added to the sinusoidal embedding before the step's linear map.
    off = torch.randn(5, 4)
    expect = net.time_lin(timestep_embedding(t, 4) + off)
    assert torch.allclose(net.step_embedding(t, off), expect)
    assert not torch.allclose(net(x, t, c, prefs, off), out)
    no_pg = CNet(12, 4, [3, 2], fc_dim=8, hidden=6, time_dim=4, use_pg=False)
    assert len(no_pg.pg) == 0 and no_pg(x, t, c).shape == (5, 12)
    no_cg = CNet(12, 0, [3, 2], fc_dim=8, hidden=6, time_dim=4, use_cg=False)
    assert no_cg(x, t, None, prefs).shape == (5, 12)
    with pytest.raises(ValueError, match='preference'):
        net(x, t, c, prefs[:1])
    with pytest.raises(ValueError, match='collaborative'):
        net(x, t, None, prefs)
    with pytest.raises(ValueError):
        CNet(12, 4, [], use_pg=True)


def test_cnet_stacks_fc_cg_pg_cg_fc_in_order():
    torch.manual_seed(1)
    net = CNet(12, 4, [3, 2], fc_dim=8, hidden=6, time_dim=4, dropout=0.0)
    _randomise(net, 2)
    x, t = torch.rand(5, 12), torch.tensor([0, 1, 2, 3, 4])
    c, prefs = torch.randn(5, 4), [torch.randn(5, 3), torch.randn(5, 2)]
    z = net.time_lin(timestep_embedding(t, 4))
    h = torch.tanh(x @ net.fc_in.weight.t() + net.fc_in.bias)
    h = net.block1(h, z, c)
    h = F.leaky_relu(net.pg[0](h, prefs[0]))
    h = F.leaky_relu(net.pg[1](h, prefs[1]))
    h = net.block2(h, z, c)
    assert torch.allclose(net(x, t, c, prefs), h @ net.fc_out.weight.t() + net.fc_out.bias, atol=1e-5)
