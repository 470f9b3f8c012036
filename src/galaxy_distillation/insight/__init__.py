"""Discover, not only distil: measure prototypes the way astronomers measure galaxies.

Kedro-free (usable from a notebook). :mod:`.measure` (one image -> diagnostics; statmorph is
optional), :mod:`.stats` (percentiles, robust z, bootstrap, Benjamini-Hochberg, AUC),
:mod:`.analyse` (many images, the tidy table), :mod:`.claims` (claims as data -> verdicts),
:mod:`.figures` and :mod:`.report`. The ``insight`` pipeline wires them (docs/method.md).
"""
