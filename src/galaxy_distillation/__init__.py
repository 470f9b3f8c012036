"""galaxy-distillation: curate Galaxy Zoo 2 and distil it with trajectory matching."""

__version__ = "0.1.0"
