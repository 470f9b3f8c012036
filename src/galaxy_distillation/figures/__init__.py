"""Every figure of the project (no Kedro, no pyplot state, no ``matplotlib.use``), by family:

* :mod:`~galaxy_distillation.figures.canvas`: the headless canvas and the text every figure shares
  (the mock-sky note, accuracy text, an empty figure).
* :mod:`~galaxy_distillation.figures.images`: curated galaxies by class, the distilled sets
  (the paper's Figures 1 and 4), the confusion matrices.
* :mod:`~galaxy_distillation.figures.curves`: one distillation's curves, the MTT/STM comparison
  and the lambda ablation (the paper's Figures 2 and 3).

The nodes call these with plain tables and tensors.
"""
