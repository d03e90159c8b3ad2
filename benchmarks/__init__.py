"""imgclf's speed and accuracy benchmarks, run from the repository root as `python -m benchmarks.<name>`.

Every benchmark module has `build_parser()` and `main(argv=None)`, takes `--smoke` (its smallest mode: tiny
generated data, one epoch, one repeat, no peer venvs, everything written under a temporary folder) and imports
its shared plumbing from `benchmarks.common` only. `make bench` runs them all through `benchmarks.run_all`;
tests/benchmarks/test_benchmarks_smoke.py runs every module's smoke mode in the normal test suite.
The scripts under `peers/` run inside the peers' own venvs and are not modules of this package.
"""
