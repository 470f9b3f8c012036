"""Curation of Galaxy Zoo 2 into the paper's balanced 9-class dataset.

Pure Python / numpy / PyTorch functions (no Kedro):

- :mod:`.catalogue`: read a Hart 2016 or Willett 2013 vote table by column name.
- :mod:`.labels`: 9-class decision-tree merge (leaf scores, argmax, confidence).
- :mod:`.selection`: top-K per class by confidence, seeded train/test split.
- :mod:`.images`: resolve, load, crop, rotate and resize the 424x424 cutouts.
- :mod:`.stats`: per-channel mean/std of a uint8 image tensor.
- :mod:`.report`: montage figure and a JSON-serialisable curation report.
- :mod:`.download`: resumable HTTP download of the public files.

Submodules are not imported here so that importing one (e.g. in an image-loading
worker process) stays cheap.
"""
