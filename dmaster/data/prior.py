"""What the training data draws: how often each effect is on, a share of items with nothing to fix, and
presence labelled by audibility.

With the specs' own presence probabilities almost every item has some effect on, so a model never hears
what "nothing to fix" sounds like, and many draws change the music by less than anyone could hear while
their label says "present". :class:`DrawPrior` moves the presence probabilities, switches every effect off
for a share of the items, and switches off (in the audio and in the label alike) an effect whose
contribution to the degraded audio stays below a threshold.

The default ``DrawPrior()`` draws exactly what :meth:`dmaster.effects.Chain.sample_params` draws.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..effects import Chain, ChainParams

__all__ = ["DrawPrior", "contributions_db", "parse_pairs", "parse_presence"]

Tensor = torch.Tensor
FLOOR = 1e-20


@dataclass(frozen=True)
class DrawPrior:
    """How degradations are drawn for training.

    Args:
        presence: how often each named effect is on (0–1), where not its spec's ``presence_probability``.
        clean_share: the share of items (0–1) with every effect off.
        audible_db: an effect whose contribution to the degraded audio (:func:`contributions_db`) is below
            this many dB relative to the degraded audio is switched off, in the audio and the label;
            ``None`` keeps every draw.

    >>> chain = Chain(44100)
    >>> params = DrawPrior(clean_share=1.0).sample(chain, 3, torch.Generator().manual_seed(0))
    >>> sum(float(effect["present"].sum()) for effect in params.values())
    0.0
    """

    presence: dict[str, float] = field(default_factory=dict)
    clean_share: float = 0.0
    audible_db: float | None = None

    def __post_init__(self) -> None:
        for name, value in {**self.presence, "clean_share": self.clean_share}.items():
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"prior: {name} must lie in [0, 1], got {value}")

    def sample(self, chain: Chain, batch_size: int, generator: torch.Generator | None = None) -> ChainParams:
        """Draw ``batch_size`` parameter sets (CPU, presence 0 or 1)."""
        params = chain.sample_params(batch_size, generator, self.presence)
        if self.clean_share > 0:
            keep = (torch.rand(batch_size, generator=generator) >= self.clean_share).float()
            params = {name: {**effect, "present": effect["present"] * keep} for name, effect in params.items()}
        return params

    @torch.no_grad()
    def degrade(self, chain: Chain, clean: Tensor, generator: torch.Generator | None = None
                ) -> tuple[Tensor, ChainParams]:
        """Degrade ``clean`` ``(batch, channels, samples)`` with parameters drawn from this prior.

        Returns:
            The degraded audio and its parameters (on the CPU), presence labelled by audibility when
            ``audible_db`` is set.
        """
        params = self.sample(chain, clean.shape[0], generator)
        if self.audible_db is not None:
            audible = contributions_db(chain, clean, params).cpu() >= self.audible_db  # (batch, effects)
            params = {name: {**effect, "present": effect["present"] * audible[:, index].float()}
                      for index, (name, effect) in enumerate(params.items())}
        return chain(clean, params), params


@torch.no_grad()
def contributions_db(chain: Chain, clean: Tensor, params: ChainParams) -> Tensor:
    """How much each effect contributes to the degraded audio: the energy of the difference between the
    degraded audio and the same degradation without that effect, in dB relative to the degraded audio's.

    Args:
        chain: the chain.
        clean: ``(batch, channels, samples)``.
        params: :data:`ChainParams` for the batch.

    Returns:
        ``(batch, effects)`` dB, in the chain's effect order; ``-inf`` where an effect is off.
    """
    names = chain.effect_names
    variants = [{name: {**effect, "present": effect["present"] * (name != left_out)}
                 for name, effect in params.items()} for left_out in names]
    stacked = {name: {key: torch.cat([variant[name][key] for variant in variants]) for key in params[name]}
               for name in names}
    degraded = chain(clean, params)
    without = chain(clean.repeat(len(names), 1, 1), stacked).reshape(len(names), *clean.shape)
    difference = (degraded[None] - without).square().mean((-1, -2))  # (effects, batch)
    level = degraded.square().mean((-1, -2)).clamp_min(FLOOR)
    contribution = 10 * torch.log10(difference.clamp_min(FLOOR) / level).T
    on = torch.stack([params[name]["present"] > 0 for name in names], dim=1).to(contribution.device)
    return contribution.masked_fill(~on, float("-inf"))


def parse_presence(text: str) -> dict[str, float]:
    """``"eq=0.5,gain=0.4"`` → ``{"eq": 0.5, "gain": 0.4}`` (a flag's spelling of :attr:`DrawPrior.presence`).

    >>> parse_presence("eq=0.5, gain=0.4")
    {'eq': 0.5, 'gain': 0.4}
    """
    return parse_pairs(text, "presence", "EFFECT=PROBABILITY")


def parse_pairs(text: str, setting: str, form: str) -> dict[str, float]:
    """A flag's ``"NAME=NUMBER,..."`` as ``{name: number}``; ``setting`` and ``form`` name it in the error.

    >>> parse_pairs("a=1, b=2.5", "scales", "PREFIX=SCALE")
    {'a': 1.0, 'b': 2.5}
    """
    pairs = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, value = item.partition("=")
        try:
            pairs[name.strip()] = float(value)
        except ValueError:
            raise ValueError(f"{setting}: {item!r} is not {form}") from None
    return pairs
