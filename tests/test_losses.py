"""The loss terms: σ* minimises the Gaussian NLL, KLs agree, guards hold."""
import math

import pytest
import torch

from cvae_tutorial.flows import RealNVP
from cvae_tutorial.losses import (LOG_2PI, flow_prior_log_prob, gaussian_kl, gaussian_nll,
                                  monte_carlo_kl, optimal_log_sigma, sigma_optimal_nll)


def test_gaussian_nll_matches_torch_distributions():
    x, x_hat = torch.rand(4, 3, 8, 8), torch.rand(4, 3, 8, 8)
    expected = -torch.distributions.Normal(x_hat, 0.3).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(gaussian_nll(x, x_hat, math.log(0.3)), expected)


def test_sigma_star_minimises_the_gaussian_nll_over_a_grid():
    torch.manual_seed(0)
    x = torch.rand(8, 3, 16, 16)
    x_hat = (x + 0.1 * torch.randn_like(x)).clamp(0, 1)
    log_sigma_star = optimal_log_sigma(x, x_hat)
    mse = ((x - x_hat) ** 2).mean()
    torch.testing.assert_close(torch.exp(2 * log_sigma_star), mse, rtol=1e-4, atol=0)
    grid = log_sigma_star + torch.linspace(-1, 1, 201)
    nll = torch.stack([gaussian_nll(x, x_hat, s).mean() for s in grid])
    assert nll.argmin().item() == 100  # the middle of the grid: σ* itself
    assert (nll[:100] > nll[100]).all() and (nll[101:] > nll[100]).all()


def test_sigma_star_is_a_stationary_point_by_autograd():
    x, x_hat = torch.rand(4, 3, 8, 8), torch.rand(4, 3, 8, 8)
    log_sigma = optimal_log_sigma(x, x_hat).detach().requires_grad_()
    gaussian_nll(x, x_hat, log_sigma).sum().backward()
    assert abs(log_sigma.grad.item()) < 1e-2


def test_sigma_optimal_nll_closed_form():
    x, x_hat = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    nll, _ = sigma_optimal_nll(x, x_hat)
    pixels = 3 * 8 * 8
    mse_per_image = ((x - x_hat) ** 2).flatten(1).mean(1)
    batch_mse = mse_per_image.mean()
    expected = (pixels / 2 * (torch.log(batch_mse) + LOG_2PI)
                + pixels * mse_per_image / (2 * batch_mse))
    torch.testing.assert_close(nll, expected)
    torch.testing.assert_close(nll.mean(), pixels / 2 * (torch.log(batch_mse) + 1 + LOG_2PI))


def test_sigma_optimal_nll_is_finite_on_perfect_reconstructions():
    x = torch.rand(2, 3, 8, 8, requires_grad=True)
    x_hat = x.detach().clone().requires_grad_()
    nll, log_sigma = sigma_optimal_nll(x.detach(), x_hat)
    assert torch.isfinite(nll).all() and log_sigma.item() >= -6.0
    nll.sum().backward()
    assert torch.isfinite(x_hat.grad).all()


def test_gaussian_kl_matches_torch_distributions():
    mu_q, ls_q, mu_p, ls_p = (torch.randn(5, 7) for _ in range(4))
    expected = torch.distributions.kl_divergence(
        torch.distributions.Normal(mu_q, ls_q.exp()), torch.distributions.Normal(mu_p, ls_p.exp())
    ).sum(-1)
    torch.testing.assert_close(gaussian_kl(mu_q, ls_q, mu_p, ls_p), expected)


def test_monte_carlo_kl_with_identity_flow_matches_closed_form():
    torch.manual_seed(0)
    dim, samples = 4, 200_000
    mu_q, ls_q = torch.randn(1, dim), 0.3 * torch.randn(1, dim)
    mu_p, ls_p = torch.randn(1, dim), 0.3 * torch.randn(1, dim)
    flow = RealNVP(dim)  # zero-initialised: the identity
    z = mu_q + ls_q.exp() * torch.randn(samples, dim)
    kl = monte_carlo_kl(z, mu_q, ls_q, flow_prior_log_prob(z, flow, mu_p, ls_p))
    closed = gaussian_kl(mu_q, ls_q, mu_p, ls_p).item()
    standard_error = kl.std().item() / math.sqrt(samples)
    assert abs(kl.mean().item() - closed) < 4 * standard_error
    # the paper's sign slip (quadratic term with -) does not average to the KL
    u, logdet = flow(z)
    quadratic = (((u - mu_p) / ls_p.exp()) ** 2 / 2).sum(-1)
    eps2 = (((z - mu_q) / ls_q.exp()) ** 2 / 2).sum(-1)
    paper = (ls_p - ls_q).sum() - quadratic - eps2 - logdet
    assert abs(paper.mean().item() - closed) > 20 * standard_error


def test_flow_prior_log_prob_is_a_normalised_density():
    """Integrate p(z|y) on a grid in 2-D with a randomised flow: the mass is 1."""
    from test_flows import randomised
    flow = randomised(RealNVP(2, num_layers=2, hidden=8), scale=0.3).double()
    grid = torch.linspace(-8, 8, 401, dtype=torch.float64)
    zz = torch.cartesian_prod(grid, grid)
    mu = torch.tensor([[0.5, -0.5]], dtype=torch.float64)
    ls = torch.zeros(1, 2, dtype=torch.float64)
    with torch.no_grad():
        density = flow_prior_log_prob(zz, flow, mu, ls).exp()
    mass = density.sum().item() * (grid[1] - grid[0]).item() ** 2
    assert mass == pytest.approx(1.0, abs=1e-3)


def test_mse_kl_loss_is_the_recipes_formula():
    from torch.nn import functional as F

    from cvae_tutorial.losses import gaussian_kl, mse_kl_loss

    torch.manual_seed(0)
    x, x_hat = torch.rand(6, 3, 8, 8), torch.rand(6, 3, 8, 8)
    mu, log_sigma = torch.randn(6, 5), 0.3 * torch.randn(6, 5)
    log_var = 2 * log_sigma  # the recipe's encoder outputs log σ², ours log σ
    kld = torch.mean(-0.5 * torch.sum(1 + log_var - mu ** 2 - log_var.exp(), dim=1))
    expected = F.mse_loss(x_hat, x) + 0.00025 * kld
    kl = gaussian_kl(mu, log_sigma)  # the recipe's KL against N(0, I), per image
    torch.testing.assert_close(mse_kl_loss(x, x_hat, kl, 0.00025), expected)
    torch.testing.assert_close(mse_kl_loss(x, x_hat, kl, 0.0), F.mse_loss(x_hat, x))


def test_reparameterise_draws_from_n_mu_sigma_squared_and_passes_gradients():
    from cvae_tutorial.losses import reparameterise

    mu = torch.tensor([[1.0, -2.0]], requires_grad=True)
    log_sigma = torch.tensor([[0.5, 3.0]]).log().requires_grad_()
    eps = torch.randn(20_000, 2, generator=torch.Generator().manual_seed(0))
    z = reparameterise(mu, log_sigma, eps)
    torch.testing.assert_close(z.mean(0), torch.tensor([1.0, -2.0]), atol=0.05, rtol=0)
    torch.testing.assert_close(z.std(0), torch.tensor([0.5, 3.0]), rtol=0.03, atol=0)  # σ, not σ²
    z.sum().backward()
    torch.testing.assert_close(mu.grad, torch.full((1, 2), 20_000.0))
    expected = (log_sigma.exp() * eps).sum(0, keepdim=True).detach()  # dz/dlog σ = σ ε
    torch.testing.assert_close(log_sigma.grad, expected)
