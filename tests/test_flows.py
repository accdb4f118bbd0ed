"""Real NVP: invertibility and log|det| against autograd's Jacobian."""
import pytest
import torch

from cvae_tutorial.flows import AffineCoupling, RealNVP, mlp, soft_clamp


def randomised(flow, seed=0, scale=0.5):
    """Give the zero-initialised last layers random weights so the flow is not the identity."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in flow.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * scale)
    return flow


@pytest.mark.parametrize("dim", [2, 3, 8, 17])
def test_inverse_undoes_forward(dim):
    flow = randomised(RealNVP(dim, num_layers=4, hidden=32)).double()
    z = torch.randn(64, dim, dtype=torch.float64, generator=torch.Generator().manual_seed(dim))
    u, logdet_forward = flow(z)
    z_back, logdet_inverse = flow.inverse(u)
    assert not torch.allclose(u, z), "randomised flow should not be the identity"
    torch.testing.assert_close(z_back, z, atol=1e-5, rtol=1e-5)
    # the inverse re-evaluates s at recomputed inputs: round-off grows through the expansive
    # random layers (up to ~1e-6 for some z in float64), so the same tolerance as z_back
    torch.testing.assert_close(logdet_inverse, -logdet_forward, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("dim", [2, 5, 8])
def test_logabsdet_matches_autograd_jacobian(dim):
    flow = randomised(RealNVP(dim, num_layers=3, hidden=16), seed=dim).double()
    z = torch.randn(6, dim, dtype=torch.float64)
    _, logdet = flow(z)
    for i in range(len(z)):
        jacobian = torch.autograd.functional.jacobian(lambda v: flow(v.unsqueeze(0))[0][0], z[i])
        torch.testing.assert_close(logdet[i], torch.linalg.slogdet(jacobian).logabsdet)
        inverse_jacobian = torch.autograd.functional.jacobian(
            lambda v: flow.inverse(v.unsqueeze(0))[0][0], flow(z[i:i + 1])[0][0])
        torch.testing.assert_close(flow.inverse(flow(z[i:i + 1])[0])[1][0],
                                   torch.linalg.slogdet(inverse_jacobian).logabsdet)


def test_new_flow_is_identity():
    flow = RealNVP(6)
    z = torch.randn(10, 6)
    u, logdet = flow(z)
    torch.testing.assert_close(u, z)
    torch.testing.assert_close(logdet, torch.zeros(10))


def test_coupling_keeps_conditioning_half_and_bounds_scale():
    mask = torch.tensor([1, 0, 1, 0])
    coupling = randomised(AffineCoupling(mask, hidden=8, scale_bound=2.0), scale=50.0)
    z = torch.randn(100, 4) * 10
    u, logdet = coupling(z)
    torch.testing.assert_close(u[:, [0, 2]], z[:, [0, 2]])
    assert logdet.abs().max() <= 2 * 2.0 + 1e-5  # two free coordinates, each |s| <= bound


def test_bad_dimension_is_a_clear_error():
    with pytest.raises(ValueError, match=r"RealNVP dim \(split in halves\) must be an int >= 2, got 1"):
        RealNVP(1)
    with pytest.raises(ValueError, match=r"expects a \[batch, 4\] tensor"):
        RealNVP(4)(torch.randn(3, 5))


def two_mlp_coupling(coupling, scale_net, shift_net, z):
    """The coupling written out with its s and t as two separate MLPs (``mlp``)."""
    mask, free = coupling.mask, 1 - coupling.mask
    z1 = z * mask
    s = soft_clamp(scale_net(z1), coupling.scale_bound) * free
    t = shift_net(z1) * free
    return z1 + free * (z * torch.exp(s) + t), s.sum(-1)


def test_fused_scale_and_shift_nets_equal_two_mlps():
    # one TwinMLP gives s and t together; same seed, same draws: the two MLPs it replaces
    mask = torch.tensor([1, 0, 1, 0, 1])
    torch.manual_seed(3)
    scale_net, shift_net = mlp(5, 8, 5), mlp(5, 8, 5)
    torch.manual_seed(3)
    coupling = AffineCoupling(mask, hidden=8, scale_bound=2.0)
    for net, reference in ((coupling.scale_net, scale_net), (coupling.shift_net, shift_net)):
        for view, parameter in zip(net.parameters(), reference.parameters()):
            assert torch.equal(view, parameter)  # initialised exactly as the two MLPs were
    randomised(scale_net, seed=1), randomised(shift_net, seed=2)
    with torch.no_grad():  # the views write through to the fused parameters
        for net, reference in ((coupling.scale_net, scale_net), (coupling.shift_net, shift_net)):
            for view, parameter in zip(net.parameters(), reference.parameters()):
                view.copy_(parameter)
    z = torch.randn(32, 5)
    for actual, expected in zip(coupling(z), two_mlp_coupling(coupling, scale_net, shift_net, z)):
        torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)
    # and a state dict saved with the two MLPs loads into the fused nets
    old = {"mask": coupling.mask,
           **{f"scale_net.{k}": v for k, v in scale_net.state_dict().items()},
           **{f"shift_net.{k}": v for k, v in shift_net.state_dict().items()}}
    fresh = AffineCoupling(mask, hidden=8, scale_bound=2.0)
    fresh.load_state_dict(old)
    for (name, a), b in zip(fresh.state_dict().items(), coupling.state_dict().values()):
        assert torch.equal(a, b), name


def test_fused_nets_call_half_the_operators():
    from collections import Counter
    from torch.profiler import profile
    mask = torch.arange(6) % 2
    coupling = randomised(AffineCoupling(mask, hidden=8))
    scale_net, shift_net = mlp(6, 8, 6), mlp(6, 8, 6)
    z = torch.randn(4, 6)

    def matmuls(function):
        with profile() as trace:
            function()
        names = Counter(event.name for event in trace.events())
        return sum(names[n] for n in ("aten::addmm", "aten::baddbmm", "aten::mm", "aten::bmm"))

    assert matmuls(lambda: coupling.nets(z)) == 3
    assert matmuls(lambda: (scale_net(z), shift_net(z))) == 6
