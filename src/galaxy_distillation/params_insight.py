"""Typed parameters of the ``insight`` group (``conf/base/parameters_insight.yml``): part of
:mod:`galaxy_distillation.params` (which registers them), in a file of their own for size."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, field_validator


def _flag_words(value: Any) -> Any:
    """The project's one boolean parser (:func:`galaxy_distillation.params.flag_words`; imported
    here when called: ``params`` imports this module)."""
    from galaxy_distillation.params import flag_words

    return flag_words(value)


#: A boolean parameter (:data:`galaxy_distillation.params.Flag`).
Flag = Annotated[StrictBool, BeforeValidator(_flag_words)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClaimParams(_Strict):
    """One hypothesis about the prototypes (``insight.claims``; see galaxy_distillation.insight.claims)."""

    id: str = Field(min_length=1)
    text: str = ""
    kind: Literal["compare", "within", "rank", "closer"]
    diagnostic: str = "colour"
    classes: list[Annotated[int, Field(ge=0)]] = Field(default_factory=list)
    versus: list[Annotated[int, Field(ge=0)]] = Field(default_factory=list)
    direction: Literal["lower", "higher"] = "higher"
    min_size: int = Field(0, ge=0)  # the smallest image side (px) at which the claim can be measured
    min_rho: float = Field(0.7, ge=-1, le=1)  # kind rank: the Spearman correlation needed
    min_shift: float = Field(0.25, ge=0, le=0.5)  # kind within: the median percentile's distance from 0.5 needed
    ipcs: list[int] = Field(default_factory=lambda: [1, 10], min_length=2, max_length=2)  # kind closer
    metric: Literal["envelope_share", "nn_closeness"] = "envelope_share"  # kind closer: higher = closer

    @field_validator("diagnostic")
    @classmethod
    def _known_diagnostic(cls, v: str) -> str:
        from galaxy_distillation.insight.measure import DIAGNOSTICS

        if v not in DIAGNOSTICS:
            raise ValueError(f"unknown diagnostic; known: {', '.join(DIAGNOSTICS)}")
        return v


class InsightParams(_Strict):
    """``insight``: measure the prototypes against the real galaxies of their class (docs/method.md)."""

    linearise_q: float = Field(5.0, gt=0)  # asinh softening undone for Fourier amplitudes (mock ~5, SDSS ~3.5)
    seg_nsigma: float = Field(2.0, gt=0)  # segmentation threshold, in the real images' sky noise
    ring_fraction: float = Field(0.12, gt=0, lt=0.5)  # outer ring (sky) width / image side
    min_segment_px: int = Field(6, gt=0)
    min_sky_px: int = Field(20, gt=0)
    max_segment_fraction: float = Field(0.6, gt=0, le=1)
    blue_threshold: float = 0.3  # blue pixel: -2.5 log10(B / R) below this (mag)
    bar_min_size: int = Field(96, gt=0)
    bar_phase_tol_deg: float = Field(12.0, gt=0)
    bar_min_annuli: int = Field(3, gt=1)
    smoothness_min_rpetro: float = Field(8.0, ge=0)
    profile_bins: int = Field(12, gt=1)
    statmorph: Flag = True
    statmorph_timeout_s: float = Field(10.0, gt=0)
    n_bootstrap: int = Field(1000, ge=0)
    seed: int = 0
    fdr_q: float = Field(0.10, gt=0, le=1)  # Benjamini-Hochberg level
    stability_max: float = Field(0.25, gt=0, le=1)  # flag 'unstable': percentile range over 8 rotations/flips
    gamut_max: float = Field(0.10, gt=0, le=1)  # flag 'gamut': percentile moved by clamping to [0, 1]
    stability: Flag = True  # measure the 8 rotations / flips of every prototype
    n_nearest: int = Field(3, gt=0)
    n_workers: int = Field(1, gt=0)
    progress: Flag = True
    card_diagnostics: list[str] = Field(default_factory=lambda: ["colour", "blue_fraction", "concentration",
                                                                 "asymmetry", "gini", "m20"])
    claims: list[ClaimParams] = Field(default_factory=list)

    def measure_config(self) -> Any:
        """The measurement settings as the Kedro-free :class:`~galaxy_distillation.insight.measure.MeasureConfig`."""
        from galaxy_distillation.insight.measure import MeasureConfig

        return MeasureConfig(
            linearise_q=self.linearise_q, seg_nsigma=self.seg_nsigma, ring_fraction=self.ring_fraction,
            min_segment_px=self.min_segment_px, min_sky_px=self.min_sky_px,
            max_segment_fraction=self.max_segment_fraction, blue_threshold=self.blue_threshold,
            bar_min_size=self.bar_min_size, bar_phase_tol_deg=self.bar_phase_tol_deg,
            bar_min_annuli=self.bar_min_annuli, smoothness_min_rpetro=self.smoothness_min_rpetro,
            profile_bins=self.profile_bins, statmorph_timeout_s=self.statmorph_timeout_s,
            use_statmorph=self.statmorph)
