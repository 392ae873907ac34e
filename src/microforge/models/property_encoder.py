"""Property encoders: a normalised property vector becomes the cross-attention context.

Two encoders, as in TiM3:

* :class:`PropertyEncoder` with ``kind="mlp"``: the ablation baseline, a plain MLP.
* :class:`PropertyEncoder` with ``kind="gmm"``: the probabilistic encoder. An MLP ``phi_f``
  maps the K properties to a D-dim feature; two heads ``phi_mu`` and ``phi_sigma`` predict the
  means and log-variances of a U-component diagonal Gaussian mixture over the context. Training
  draws one component per sample and reparameterises ``g = mu_u + sigma_u * eps``; inference
  uses the paper's eq. 6, ``g = mean_u mu_u + mean_u sigma_u * eps_u``.

Context layout (our choice, documented in docs/tim3.md): ``n_tokens`` learned tokens. The
encoder's output of size ``n_tokens * dim`` is cut into ``n_tokens`` tokens of width ``dim`` and a
learned position embedding is added to each, so cross-attention sees a short sequence rather
than one vector. A learned null context (``n_tokens x dim``) stands for "no condition" in
classifier-free guidance.
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from ..errors import MicroforgeError

LOGVAR_RANGE = (-10.0, 4.0)  # clamp: keeps sigma in [0.007, 7.4]


class PropertyEncoder(ModelMixin, ConfigMixin):
    """``(B, n_properties)`` in [-1, 1] -> context ``(B, n_tokens, dim)``.

    Parameters
    ----------
    n_properties : K, the length of the property vector.
    kind : ``"gmm"`` (probabilistic, TiM3) or ``"mlp"`` (baseline).
    hidden : width of the MLP layers.
    dim : width of one context token (the UNet's ``cross_attention_dim``).
    n_tokens : context tokens.
    n_components : U, mixture components (``gmm`` only).
    """

    @register_to_config
    def __init__(
        self,
        n_properties: int,
        kind: str = "gmm",
        hidden: int = 128,
        dim: int = 64,
        n_tokens: int = 4,
        n_components: int = 4,
    ) -> None:
        super().__init__()
        if kind not in ("gmm", "mlp"):
            raise MicroforgeError(f"property encoder kind must be 'gmm' or 'mlp', got {kind!r}")
        out = n_tokens * dim
        self.features = nn.Sequential(nn.Linear(n_properties, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU())
        if kind == "gmm":
            self.mu = nn.Linear(hidden, n_components * out)
            self.logvar = nn.Linear(hidden, n_components * out)
            nn.init.constant_(self.logvar.bias, -4.0)  # start nearly deterministic
            nn.init.zeros_(self.logvar.weight)
        else:
            self.project = nn.Linear(hidden, out)
        self.position = nn.Parameter(torch.randn(n_tokens, dim) * 0.02)
        self.null_context = nn.Parameter(torch.randn(n_tokens, dim) * 0.02)

    def mixture(self, props: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Means and log-variances ``(B, U, n_tokens * dim)`` of the mixture (``gmm`` only)."""
        if self.config.kind != "gmm":
            raise MicroforgeError("only the gmm encoder has a mixture")
        h = self.features(props)
        shape = (props.shape[0], self.config.n_components, -1)
        return self.mu(h).view(shape), self.logvar(h).view(shape).clamp(*LOGVAR_RANGE)

    def forward(
        self,
        props: torch.Tensor,
        sample: bool | None = None,
        generator: torch.Generator | None = None,
        drop: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Encode properties.

        ``drop`` ``(B,)`` bool: samples whose context is replaced by the learned null context
        (classifier-free guidance training); done here so that it runs inside the module's
        forward, where distributed training synchronises its gradient.

        ``sample``: draw from the mixture (``gmm``); default: in training mode, the
        reparameterised draw of one random component per sample; in eval mode, eq. 6.
        ``sample=False`` in eval mode returns the deterministic mean of the component means.
        """
        if props.ndim != 2 or props.shape[1] != self.config.n_properties:
            raise MicroforgeError(
                f"expected properties of shape (B, {self.config.n_properties}), got {tuple(props.shape)}"
            )
        b, t, d = props.shape[0], self.config.n_tokens, self.config.dim
        if self.config.kind == "mlp":
            g = self.project(self.features(props))
        else:
            mu, logvar = self.mixture(props)
            sigma = torch.exp(0.5 * logvar)
            # random draws come from ``generator`` on the CPU, then move: reproducible anywhere
            if self.training:
                u = torch.randint(0, mu.shape[1], (b,), generator=generator).to(props.device)
                pick = torch.arange(b, device=props.device)
                eps = torch.randn(mu[pick, u].shape, generator=generator).to(props.device)
                g = mu[pick, u] + sigma[pick, u] * eps
            elif sample is False:
                g = mu.mean(1)
            else:
                eps = torch.randn(mu.shape, generator=generator).to(props.device)
                g = mu.mean(1) + (sigma * eps).mean(1)
        ctx = g.view(b, t, d) + self.position
        if drop is not None:
            ctx = torch.where(drop[:, None, None].to(ctx.device), self.null(b), ctx)
        return ctx

    def null(self, batch: int) -> torch.Tensor:
        """The learned unconditional context, ``(batch, n_tokens, dim)``."""
        return self.null_context.unsqueeze(0).expand(batch, -1, -1)
