"""GAN inversion: the latents whose images are closest to given images.

For target images x (in G's [-1, 1] range) and a fixed generator G, Adam minimises over z

    loss(G(ψ·z), x) + prior term,

ψ the sampling spec's truncation (1 when none), `loss` the mean squared error over pixels or
over the features of a given network (the digit classifier's trunk for MNIST), and the prior
term depending on the prior:

- Gaussian: λ·(‖z‖²/dim - 1)². A Gaussian latent in dim dimensions lies near the shell of
  radius √dim (‖z‖²/dim → 1), and the generator saw almost nothing elsewhere; the negative
  log-density ‖z‖²/2 would instead pull z to the origin, the least typical latent of all.
- Uniform: no term; z = tanh(w) is optimised through w, so z stays inside the open box
  (-1, 1)^dim the generator was trained on whatever the step size (clamping would stall
  coordinates on the faces with zero gradient).

stylegan2 (`worker/gan/style_space.py`): ψ truncates in W, G(z) with w ↦ w_avg + ψ·(w - w_avg);
and with `space` "w" the free variable is w itself (StyleGAN2's projector), started from the
w of the prior draws, with λ·mean((w - w_avg)²) as the prior term, a pull towards the tracked
mean w; the result's latents are then the w drawn (truncation applied).

Restarts: every image is optimised from `restarts` prior draws side by side (one batch; the
objective is a sum over candidates, so they do not interact), and the candidate with the
lowest objective is kept, at its best iterate. The generator is neither changed nor given
gradients (`torch.autograd.grad` asks for the latents' alone), so a generator kept warm
between jobs is left exactly as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from shared.specs import LatentSpec
from worker.gan.priors import sample_latents
from worker.gan.style_space import draw_truncated, from_w, is_style, mean_w, to_w

# Progress goes out every this many steps (and at the last): a hundred points on a 1,000-step
# curve, and the callback's `.item()` syncs a GPU rarely enough not to matter.
REPORT_EVERY = 10
# tanh(w) = ±1 needs an infinite w: uniform starts are pulled this far inside the box first.
_UNIFORM_EDGE = 1 - 1e-6


@dataclass(frozen=True)
class InversionSettings:
    """How to optimise (see `shared.specs.inversion.InversionSpec`)."""

    steps: int
    lr: float
    prior_weight: float = 0.0
    restarts: int = 1
    seed: int = 0
    truncation: float | None = None
    space: str = "z"  # "w": stylegan2's W (module docstring)


@dataclass(frozen=True)
class InversionProgress:
    """Where an inversion stands after `step` of `total_steps` Adam steps: means over every
    image and restart of the current loss (in the loss's space) and objective."""

    step: int
    total_steps: int
    loss: float
    objective: float


@dataclass(frozen=True)
class InversionResult:
    """Per image, the kept candidate: `latents` and `initial_latents` are the latents drawn
    (after truncation) at its best iterate and at step 0; `loss` and `initial_loss` the loss
    there (in the loss's space); `restart` which start it came from."""

    latents: Tensor  # float32 [n, dim], CPU
    initial_latents: Tensor  # float32 [n, dim], CPU
    loss: Tensor  # float64 [n]
    initial_loss: Tensor  # float64 [n]
    objective: Tensor  # float64 [n]
    restart: Tensor  # int64 [n]
    steps_done: int
    stopped: bool


# Called with the progress every REPORT_EVERY steps; True stops the run early (cancelled).
OnProgress = Callable[[InversionProgress], bool]


def prior_penalty(latent: LatentSpec, z: Tensor) -> Tensor:
    """The prior term per latent before its weight: (‖z‖²/dim - 1)² for a Gaussian prior, 0
    for a uniform one (kept in its box by the tanh parametrisation instead)."""
    if latent.prior != "gaussian":
        return torch.zeros(len(z), device=z.device, dtype=z.dtype)
    return (z.pow(2).sum(dim=1) / latent.dim - 1).pow(2)


def invert(
    generator: nn.Module,
    latent: LatentSpec,
    targets: Tensor,
    settings: InversionSettings,
    features: nn.Module | None = None,
    on_progress: OnProgress | None = None,
) -> InversionResult:
    """The latents of `targets` [n, ...] (G's output shape, range [-1, 1]) under `generator`
    (in eval mode, on the device the targets are on); see the module docstring."""
    device, count, restarts = targets.device, len(targets), settings.restarts
    psi = settings.truncation if settings.truncation is not None else 1.0
    measure = features if features is not None else nn.Identity()
    with torch.no_grad():
        wanted = measure(targets).flatten(start_dim=1).repeat(restarts, 1)
    starts = sample_latents(latent, restarts * count, torch.Generator().manual_seed(settings.seed))
    space = _Space(generator, latent, settings.space, psi)
    with torch.no_grad():
        starts = space.start(starts.to(device))
    w = space.to_free(starts).requires_grad_(True)
    optimiser = torch.optim.Adam([w], lr=settings.lr)

    def evaluate(free: Tensor) -> tuple[Tensor, Tensor]:
        z = space.from_free(free)
        got = measure(space.draw(z)).flatten(start_dim=1)
        loss = (got - wanted).pow(2).mean(dim=1)
        return loss, loss + settings.prior_weight * space.prior(z)

    best_w = w.detach().clone()
    best_objective = torch.full((restarts * count,), torch.inf, device=device)
    best_loss = torch.full_like(best_objective, torch.inf)
    initial_loss = best_loss
    step, stopped = 0, False
    while True:
        loss, objective = evaluate(w)
        better = objective.detach() < best_objective
        best_w[better] = w.detach()[better]
        best_objective = torch.where(better, objective.detach(), best_objective)
        best_loss = torch.where(better, loss.detach(), best_loss)
        if step == 0:
            initial_loss = loss.detach()
        if step == settings.steps or stopped:
            break
        (gradient,) = torch.autograd.grad(objective.sum(), [w])
        w.grad = gradient
        optimiser.step()
        step += 1
        if on_progress is not None and (step % REPORT_EVERY == 0 or step == settings.steps):
            progress = InversionProgress(
                step, settings.steps, float(loss.detach().mean()), float(objective.detach().mean())
            )
            stopped = on_progress(progress)
    return _keep_best(
        space, restarts, count, starts, best_w, best_loss, initial_loss, best_objective,
        step, stopped,
    )  # fmt: skip


def render(generator: nn.Module, latents: Tensor, settings: InversionSettings) -> Tensor:
    """The images of an inversion's result latents (which come truncated, except a
    stylegan2's z, which G truncates in W)."""
    if settings.space == "w":
        return from_w(generator, latents)
    if is_style(generator):
        return draw_truncated(generator, latents, psi=settings.truncation)
    return generator(latents)  # type: ignore[no-any-return]


class _Space:
    """What inversion optimises: z (through tanh for a uniform prior) or stylegan2's w; how
    its images are drawn with truncation ψ, its prior term, and the latents it reports."""

    def __init__(self, generator: nn.Module, latent: LatentSpec, space: str, psi: float) -> None:
        self.generator, self.latent, self.space, self.psi = generator, latent, space, psi
        self.style = is_style(generator)
        self.w_avg = mean_w(generator) if space == "w" else None

    def start(self, z: Tensor) -> Tensor:
        """The starting latents of prior draws z: z, or their w."""
        return to_w(self.generator, z) if self.space == "w" else z

    def to_free(self, latents: Tensor) -> Tensor:
        return latents.clone() if self.space == "w" else _to_free(self.latent, latents)

    def from_free(self, free: Tensor) -> Tensor:
        return free if self.space == "w" else _from_free(self.latent, free)

    def draw(self, latents: Tensor) -> Tensor:
        if self.space == "w":
            return from_w(self.generator, latents, self.psi)
        if self.style:
            return draw_truncated(self.generator, latents, psi=self.psi)
        return self.generator(self.psi * latents)  # type: ignore[no-any-return]

    def prior(self, latents: Tensor) -> Tensor:
        if self.w_avg is None:
            return prior_penalty(self.latent, latents)
        return (latents - self.w_avg.to(latents.device)).square().mean(dim=1)

    def drawn(self, latents: Tensor) -> Tensor:
        """The latents as reported: truncated where the truncation applies to them (ψ·z, or
        a w moved towards w_avg); a stylegan2's z as it is (G truncates in W)."""
        if self.w_avg is not None:
            return self.w_avg.to(latents.device).lerp(latents, self.psi)
        return latents if self.style else self.psi * latents


def _keep_best(
    space: _Space,
    restarts: int,
    count: int,
    starts: Tensor,
    best_w: Tensor,
    best_loss: Tensor,
    initial_loss: Tensor,
    best_objective: Tensor,
    steps_done: int,
    stopped: bool,
) -> InversionResult:
    """Per image, the restart with the lowest objective (candidates are laid out restart by
    restart: candidate r·n + i is restart r of image i)."""
    objective = best_objective.detach().reshape(restarts, count)
    restart = objective.argmin(dim=0)
    chosen = restart * count + torch.arange(count, device=restart.device)
    z = space.from_free(best_w[chosen]).detach()

    def pick(values: Tensor) -> Tensor:
        return values.detach()[chosen].to("cpu", torch.float64)

    return InversionResult(
        latents=space.drawn(z).to("cpu", torch.float32),
        initial_latents=space.drawn(starts[chosen]).to("cpu", torch.float32),
        loss=pick(best_loss),
        initial_loss=pick(initial_loss),
        objective=pick(best_objective),
        restart=restart.cpu(),
        steps_done=steps_done,
        stopped=stopped,
    )


def _to_free(latent: LatentSpec, z: Tensor) -> Tensor:
    """The free variable w whose image is z: z itself, or atanh(z) for a uniform prior."""
    if latent.prior == "uniform":
        return torch.atanh(z.clamp(-_UNIFORM_EDGE, _UNIFORM_EDGE))
    return z.clone()


def _from_free(latent: LatentSpec, w: Tensor) -> Tensor:
    return torch.tanh(w) if latent.prior == "uniform" else w
