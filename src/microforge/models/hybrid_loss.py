"""The variational term of the improved-DDPM hybrid loss (Nichol & Dhariwal 2021), used by the
Lee & Yun DDPM baseline: ``L_hybrid = L_simple + lambda * L_vlb`` with a learned variance.

Written here because diffusers ships the schedulers (including ``variance_type="learned_range"``
for sampling) but no training losses. The model predicts the noise and ``v`` in [-1, 1]; its
variance is ``exp(frac log beta_t + (1 - frac) log beta~_t)`` with ``frac = (v + 1) / 2``. In
``L_vlb`` the mean comes from the noise prediction with gradients stopped, so ``L_vlb`` trains
the variance only (as in the paper).
"""

from __future__ import annotations

import math

import torch
from diffusers import DDPMScheduler


def _gather(values: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.to(like.device, like.dtype)[t].view(-1, *([1] * (like.ndim - 1)))


def normal_kl(mean1: torch.Tensor, logvar1: torch.Tensor, mean2: torch.Tensor, logvar2: torch.Tensor) -> torch.Tensor:
    """KL(N(mean1, e^logvar1) || N(mean2, e^logvar2)), elementwise, in nats."""
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def discretized_gaussian_log_likelihood(x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """Log-probability, elementwise, of 8-bit data ``x`` in [-1, 1] under a Gaussian integrated
    over each pixel's bin (width 2/255); the end bins take the tails."""
    std_normal = torch.distributions.Normal(0.0, 1.0)
    centred, inv_std = x - mean, torch.exp(-log_scale)
    cdf_plus = std_normal.cdf(inv_std * (centred + 1.0 / 255.0))
    cdf_min = std_normal.cdf(inv_std * (centred - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    log_delta = torch.log((cdf_plus - cdf_min).clamp(min=1e-12))
    return torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_min, log_delta))


def vlb_loss(
    scheduler: DDPMScheduler, x0: torch.Tensor, xt: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, v: torch.Tensor
) -> torch.Tensor:
    """``L_vlb`` per sample ``(B,)`` in bits per dimension: the KL between the true posterior
    ``q(x_{t-1} | x_t, x_0)`` and the model's ``p(x_{t-1} | x_t)`` for ``t > 0``, and the
    discretised decoder NLL for ``t = 0``. ``eps`` should be detached by the caller."""
    ac = scheduler.alphas_cumprod.to(torch.float64)
    ac_prev = torch.cat([torch.ones(1, dtype=torch.float64), ac[:-1]])
    betas = scheduler.betas.to(torch.float64)
    post_var = betas * (1.0 - ac_prev) / (1.0 - ac)
    post_logvar = torch.log(torch.cat([post_var[1:2], post_var[1:]]))  # clipped: beta~_0 = 0
    coef1 = betas * torch.sqrt(ac_prev) / (1.0 - ac)
    coef2 = (1.0 - ac_prev) * torch.sqrt(1.0 - betas) / (1.0 - ac)
    g = lambda values: _gather(values, t, x0)  # noqa: E731
    mean_q = g(coef1) * x0 + g(coef2) * xt
    logvar_q = g(post_logvar)
    x0_pred = (xt - torch.sqrt(1.0 - g(ac)) * eps) / torch.sqrt(g(ac))
    mean_p = g(coef1) * x0_pred + g(coef2) * xt
    frac = (v + 1.0) / 2.0
    logvar_p = frac * g(torch.log(betas)) + (1.0 - frac) * logvar_q
    kl = normal_kl(mean_q, logvar_q, mean_p, logvar_p).flatten(1).mean(1) / math.log(2.0)
    nll = -discretized_gaussian_log_likelihood(x0, mean_p, 0.5 * logvar_p).flatten(1).mean(1) / math.log(2.0)
    return torch.where(t == 0, nll, kl)


def hybrid_loss(simple: torch.Tensor, vlb_t: torch.Tensor, weight: float, num_timesteps: int) -> torch.Tensor:
    """``L_simple + weight * L_vlb``, with ``L_vlb = sum_t L_t`` estimated without bias from one
    uniformly drawn ``t`` as ``T * L_t`` (Nichol & Dhariwal's eq. 16 with lambda = 0.001).

    ``simple`` and ``vlb_t`` are scalars (the batch means of the MSE and of ``L_t`` in bits per
    dimension); ``num_timesteps`` is T."""
    return simple + weight * num_timesteps * vlb_t
