"""Experiment grids built from ordinary runs: each cell is a normal run directory made by `imgclf.fit`."""
