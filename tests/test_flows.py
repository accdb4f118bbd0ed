"""Real NVP, with and without a context: invertibility, log|det| against autograd's Jacobian,
the density integrating to one, and a conditional flow that depends on its context."""
import pytest
import torch

from cvae_tutorial.flows import AffineCoupling, RealNVP


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
    with pytest.raises(ValueError,
                       match=r"RealNVP dim \(split in halves\) must be an int >= 2, got 1"):
        RealNVP(1)
    with pytest.raises(ValueError, match=r"expects a \[batch, 4\] tensor"):
        RealNVP(4)(torch.randn(3, 5))


def test_one_network_gives_scale_and_shift_and_starts_at_the_identity():
    coupling = AffineCoupling(torch.tensor([1, 0, 1, 0]), hidden=8, context_dim=3)
    assert coupling.net[0].in_features == 4 + 3 and coupling.net[-1].out_features == 2 * 4
    z, c = torch.randn(5, 4), torch.rand(5, 3)
    u, logdet = coupling(z, c)
    torch.testing.assert_close(u, z)
    torch.testing.assert_close(logdet, torch.zeros(5))


def conditional_flow(dim, context_dim=3, seed=0):
    return randomised(RealNVP(dim, num_layers=4, hidden=16, context_dim=context_dim),
                      seed=seed, scale=0.4).double()


@pytest.mark.parametrize("dim", [2, 5])
def test_conditional_flow_inverts_and_its_logabsdet_is_the_jacobians(dim):
    flow = conditional_flow(dim, seed=dim)
    generator = torch.Generator().manual_seed(dim)
    z = torch.randn(6, dim, dtype=torch.float64, generator=generator)
    c = torch.rand(6, 3, dtype=torch.float64, generator=generator)
    u, logdet = flow(z, c)
    z_back, logdet_back = flow.inverse(u, c)
    torch.testing.assert_close(z_back, z, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(logdet_back, -logdet, atol=1e-6, rtol=1e-6)
    for i in range(len(z)):  # the Jacobian in z at a fixed context
        jacobian = torch.autograd.functional.jacobian(
            lambda v, i=i: flow(v.unsqueeze(0), c[i:i + 1])[0][0], z[i])
        torch.testing.assert_close(logdet[i], torch.linalg.slogdet(jacobian).logabsdet)


def test_conditional_flow_depends_on_its_context_and_refuses_a_missing_one():
    flow = conditional_flow(4)
    z = torch.randn(8, 4, dtype=torch.float64)
    c = torch.zeros(8, 3, dtype=torch.float64)
    other = c.clone()
    other[:, 1] = 1
    assert (flow(z, c)[0] - flow(z, other)[0]).abs().max() > 1e-2
    assert (flow(z, c)[1] - flow(z, other)[1]).abs().max() > 1e-3  # the volume change too
    with pytest.raises(ValueError, match=r"conditional: pass a context of shape \[8, 3\]"):
        flow(z)
    with pytest.raises(ValueError, match="takes no context"):
        RealNVP(4)(z.float(), c.float())


@pytest.mark.parametrize("context", [None, (0.0, 1.0, 0.0), (1.0, 0.0, 1.0)])
def test_the_flow_density_integrates_to_one(context):
    # p(z) = N(f(z); 0, I) |det df/dz| on a 2-D grid: a Riemann sum over a box holding the mass
    flow = randomised(RealNVP(2, num_layers=4, hidden=16, context_dim=0 if context is None
                              else 3), seed=4, scale=0.2).double()
    side = torch.linspace(-9, 9, 361, dtype=torch.float64)
    grid = torch.cartesian_prod(side, side)
    c = None if context is None else torch.tensor(context, dtype=torch.float64).expand(
        len(grid), -1)
    with torch.no_grad():
        u, logdet = flow(grid, c)
    density = torch.exp(-0.5 * (u ** 2).sum(1) - torch.log(torch.tensor(2 * torch.pi)) + logdet)
    mass = density.sum() * (side[1] - side[0]) ** 2
    assert abs(mass.item() - 1) < 0.01, mass.item()
    assert (u - grid).abs().max() > 0.1  # a flow that moves mass, not the identity
