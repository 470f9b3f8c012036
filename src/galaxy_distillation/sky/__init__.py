"""Mock Galaxy Zoo 2 sky: synthetic cutouts and votes in the exact real file layout."""

from .columns import HART16_COLUMNS
from .properties import draw_properties
from .render import render_galaxy, render_properties
from .votes import simulate_votes
from .writer import RealDataProtectedError, simulate_catalogue, write_mock_sky

__all__ = [
    "HART16_COLUMNS",
    "RealDataProtectedError",
    "draw_properties",
    "render_galaxy",
    "render_properties",
    "simulate_catalogue",
    "simulate_votes",
    "write_mock_sky",
]
