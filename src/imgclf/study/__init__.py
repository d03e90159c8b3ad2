"""Experiment grids built from ordinary runs: each cell is a normal run directory made by `imgclf.fit`."""

DEFAULT_MODEL = "caltech_cnn"  # S4's network: what a study trains when neither --model nor a recipe names one
