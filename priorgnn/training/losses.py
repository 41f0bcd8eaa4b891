"""Losses on per-condition predictions, vectorised over the batch (no loop over perturbations).

``autofocus``
    GEARS's loss (Roohani et al. 2023): the error raised to the power ``2 + γ`` (γ = 2), averaged
    over each perturbation's cells and its loss genes (non-zero mean), then over perturbations. It is
    computed exactly, over every cell and every random control partner, from the residual moments in
    :mod:`priorgnn.training.targets`; ``γ`` must be an even integer (0 gives MSE), as GEARS's
    ``(pred − y)^(2+γ)`` has no absolute value.
``mse``
    The same with γ = 0.
direction term
    GEARS adds ``λ (sign(y − ctrl) − sign(ŷ − ctrl))²``, which has zero gradient almost everywhere.
    Here the signs are replaced by ``tanh(δ/τ)`` on the predicted and observed mean change, so the
    term is smooth and pulls a wrong-signed prediction towards the right sign.
uncertainty term (optional)
    A per-gene log-variance head ``s``: the Gaussian negative log-likelihood
    ``½ (s + E[(δ̂ − r)²] e^{−s})`` per gene, which is minimised by the expected squared error of the
    cells (so the head reports calibrated cell-level spread plus model error). GEARS's uncertainty
    loss lacks the ``s`` term and is minimised by an infinite variance.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

__all__ = ["LossOutput", "perturbation_loss", "expected_power_error"]


@dataclass
class LossOutput:
    """A loss with its parts, read by name by logging and tests."""

    loss: torch.Tensor
    parts: dict[str, torch.Tensor] = field(default_factory=dict)


def expected_power_error(pred: torch.Tensor, delta: torch.Tensor, c2: torch.Tensor, c3: torch.Tensor,
                         c4: torch.Tensor, power: int) -> torch.Tensor:
    """``E[(pred − r)^power]`` per entry, for ``r`` with mean ``delta`` and central moments ``c2..c4``.

    ``power`` is 2 or 4 (an even integer up to the moments supplied).
    """
    d = pred - delta
    if power == 2:
        return d * d + c2
    if power == 4:
        d2 = d * d
        return d2 * d2 + 6 * d2 * c2 - 4 * d * c3 + c4
    raise ValueError(f"power {power} unsupported: use gamma 0 (MSE) or 2 (GEARS's default)")


def perturbation_loss(
    pred: torch.Tensor,
    targets: dict[str, torch.Tensor],
    *,
    gamma: int = 2,
    direction_lambda: float = 0.1,
    direction_tau: float = 0.1,
    logvar: torch.Tensor | None = None,
    uncertainty_lambda: float = 1.0,
) -> LossOutput:
    """Loss of predicted deltas ``pred`` ``[U, G]`` against ``targets`` (tensors ``[U, G]``:
    ``delta, c2, c3, c4`` and bool ``retain``). Every condition weighs the same, as in GEARS."""
    if gamma % 2 or gamma < 0 or gamma > 2:
        raise ValueError("gamma must be 0 or 2")
    power = 2 + gamma
    retain = targets["retain"].to(pred.dtype)
    n_ret = retain.sum(1).clamp_min(1.0)
    err = expected_power_error(pred.double(), targets["delta"], targets["c2"], targets["c3"],
                               targets["c4"], power).to(pred.dtype)
    main = ((err * retain).sum(1) / n_ret).mean()
    parts = {"focus" if gamma else "mse": main}
    loss = main
    if direction_lambda:
        s_pred = torch.tanh(pred / direction_tau)
        s_obs = torch.tanh(targets["delta"].to(pred.dtype) / direction_tau)
        direction = ((((s_pred - s_obs) ** 2) * retain).sum(1) / n_ret).mean()
        parts["direction"] = direction
        loss = loss + direction_lambda * direction
    if logvar is not None:
        sq = expected_power_error(pred.double(), targets["delta"], targets["c2"], targets["c3"],
                                  targets["c4"], 2).to(pred.dtype)
        nll = 0.5 * (logvar + sq.detach() * torch.exp(-logvar))
        nll = ((nll * retain).sum(1) / n_ret).mean()
        parts["uncertainty"] = nll
        loss = loss + uncertainty_lambda * nll
    parts["loss"] = loss
    return LossOutput(loss, parts)

