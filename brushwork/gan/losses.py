"""GAN losses. The generator uses the non-saturating form: minimising log(1 - D(G(z))) as the
textbook minimax writes it gives vanishing gradients exactly when the generator is worst."""

from __future__ import annotations

import torch
import torch.nn.functional as F

LOSSES = ("hinge", "nonsaturating")


def discriminator_loss(kind: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    if kind == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    # -log sigmoid(real) - log(1 - sigmoid(fake))
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def generator_loss(kind: str, fake: torch.Tensor) -> torch.Tensor:
    if kind == "hinge":
        return -fake.mean()
    return F.softplus(-fake).mean()  # -log sigmoid(D(G(z))): non-saturating
