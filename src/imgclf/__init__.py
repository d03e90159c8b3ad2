"""imgclf: a folder of labelled images -> a trained, evaluated, explained and servable classifier.

    import imgclf
    run = imgclf.fit({"data": "data/flowers", "model": "model_s", "img_size": 32, "epochs": 30})
    clf = imgclf.load(run.path)
    clf.predict(["photo.jpg"])
    imgclf.evaluate(run.path)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__
__all__ = ["Classifier", "TrainConfig", "evaluate", "fit", "list_models", "list_runs", "load", "lr_find", "tune",
           "__version__"]

if TYPE_CHECKING:
    from .config import TrainConfig
    from .inference import Classifier


def fit(config: Any = None, **kwargs: Any):
    """Train and write a run directory. Settings: `imgclf.config.TrainConfig`; layering (defaults, recipe=,
    config_file=, then explicit values) and resume=: `imgclf.pipeline.fit`."""
    from .pipeline import fit as _fit

    return _fit(config, **kwargs)


def evaluate(run_dir: Any, data: Any = None, split: str = "test", tta: bool = False, precision: str = "auto"):
    """Evaluate a run on its test split (or another folder); writes predictions.csv and metrics.json and returns
    them as an `imgclf.records.MetricsRecord`. precision: as for `load`."""
    from .pipeline import evaluate as _evaluate

    return _evaluate(run_dir, data=data, split=split, tta=tta, precision=precision)


def load(run_dir: Any, device: str = "cpu", precision: str = "auto", fold_batch_norm: bool = True) -> "Classifier":
    """Load a trained run for prediction. precision: auto (bf16 where the CPU has it natively, mixed on a GPU),
    32, bf16-mixed or 16-mixed. fold_batch_norm: batch norms folded into the convolutions before them (faster;
    the network can then only predict); False keeps the trained network as it is."""
    from .inference import load as _load

    return _load(run_dir, device, precision=precision, fold_batch_norm=fold_batch_norm)


def list_models(pattern: str = "*") -> list[str]:
    from .models import list_models as _list

    return _list(pattern)


def list_runs(folder: Any = "runs", sort: str = "created", reverse: bool = False):
    """One `imgclf.runs.RunRow` per run directory under `folder` (name, model, data, epochs, val and test
    accuracy, macro F1, time, when, status: completed, pruned, interrupted or failed with its reason)."""
    from .runs import list_runs as _list_runs

    return _list_runs(folder, sort=sort, reverse=reverse)


def lr_find(config: Any = None, **values: Any):
    """Lightning's LR range test on a data folder with a run's settings (as `fit` takes them), no run trained:
    returns an `LRFindResult` (.suggestion, .lrs, .losses) and writes lr_find.png and lr_find.json to `out`.
    `imgclf.fit(..., lr="auto")` runs the same finder inside a training run."""
    from .pipeline.lr_find import lr_find as _lr_find

    return _lr_find(config, **values)


def tune(config: Any = None, *, trials: int, **kwargs: Any):
    """Hyper-parameter search with Optuna: `trials` ordinary runs (settings as `fit` takes them) under one search
    folder, selected on the validation split, the best tested; `time_limit=` is the whole search's budget,
    `space=` a YAML file or mapping of field -> range (default: the model family's), `resume=True, out=FOLDER`
    continues a killed search. Returns an `imgclf.search.TuneResult`; see `imgclf.search.search.tune`."""
    from .search import tune as _tune

    return _tune(config, trials=trials, **kwargs)


def __getattr__(name: str) -> Any:
    # Heavy modules (torch, lightning) load on first use, so `import imgclf` and the CLI's --help stay fast.
    if name == "Classifier":
        from .inference import Classifier

        return Classifier
    if name == "TrainConfig":
        from .config import TrainConfig

        return TrainConfig
    raise AttributeError(f"module 'imgclf' has no attribute {name!r}")
