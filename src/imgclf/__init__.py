"""imgclf: a folder of labelled images -> a trained, evaluated, explained and servable classifier.

    import imgclf
    run = imgclf.fit({"data": "data/flowers", "model": "model_s", "img_size": 32, "epochs": 30})
    clf = imgclf.load(run.path)
    clf.predict(["photo.jpg"])
    imgclf.evaluate(run.path)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import notices as _notices
from ._version import __version__

_notices.install()  # at import, so the modules' own loggers print the same way before and after the first warning

__all__ = ["Classifier", "ImgclfError", "TrainConfig", "calibrate", "compare", "evaluate", "explain", "fit",
           "list_models", "list_runs", "load", "lr_find", "report", "tune", "__version__"]

if TYPE_CHECKING:
    import os
    from collections.abc import Mapping

    from pathlib import Path

    from .config import TrainConfig
    from .evaluation.compare import Comparison
    from .evaluation.explain import Explanation
    from .inference import Classifier
    from .pipeline import Run
    from .pipeline.folds import Folds
    from .pipeline.lr_find import LRFindResult
    from .records import MetricsRecord, ModelCard
    from .runs import RunRow
    from .search.search import TuneResult


def fit(config: "TrainConfig | Mapping[str, Any] | None" = None, *, recipe: str | None = None,
        config_file: "str | os.PathLike | None" = None, overwrite: bool = False,
        resume: "str | os.PathLike | None" = None, report: bool = True, **values: Any) -> "Run | Folds":
    """Train and write a run directory; returns an `imgclf.pipeline.Run` (with `folds=K`: a
    `imgclf.pipeline.folds.Folds` of K runs).

    Settings (every field of `imgclf.TrainConfig`, e.g. `data=`, `model=`, `epochs=`) layer as: the defaults,
    then `recipe=` (see `imgclf recipes`), then `config_file=` (YAML), then `config` (a mapping or TrainConfig)
    and keyword values. A recipe's value is unset with the word "none" (`time_limit="none"`); `None` means "not
    given". `resume="runs/x"` continues an interrupted or finished run (keyword values override its stored
    config, e.g. more epochs); `overwrite=True` replaces the run in `out`; `report=False` skips report.html (and
    removes a resumed run's earlier one).
    Ctrl-C stops it with a KeyboardInterrupt saying how to resume (`from imgclf.train.fit import
    TrainingInterrupted`). Bad settings raise `imgclf.ImgclfError` (a ValueError) naming the setting.
    The global random generators, environment and log levels are as before the call when it returns."""
    from .caller_state import kept_caller_state
    from .pipeline import fit as _fit

    _refuse_a_folder_as_config(config)
    with kept_caller_state():
        return _fit(config, recipe=recipe, config_file=config_file, overwrite=overwrite, resume=resume,
                    report=report, **values)


def _refuse_a_folder_as_config(config: Any, function: str = "fit") -> None:
    """`imgclf.fit("data/")`, the natural first try, names `data=` (in the call of `function`, which took it)."""
    import os

    if isinstance(config, (str, os.PathLike)):
        from .errors import invalid

        raise invalid("config", config, "a TrainConfig, a mapping of settings or None",
                      hint=f"Give the image folder as data= (imgclf.{function}(data={str(config)!r}, ...)), a YAML "
                           "file as config_file=")


def _names_run_dir(function: Any) -> Any:
    """An error about the run given names this API's keyword, `run_dir`, where the readers deeper in name the
    command line's RUN (`imgclf.load("data")` said "run must be a run directory")."""
    import functools

    @functools.wraps(function)
    def with_keyword(*args: Any, **kwargs: Any) -> Any:
        from .errors import ImgclfError, renamed

        try:
            return function(*args, **kwargs)
        except ImgclfError as exc:
            named = renamed(exc, "run", "run_dir")
            if named is exc:
                raise
            raise named from None

    return with_keyword


@_names_run_dir
def evaluate(run_dir: Any, data: Any = None, split: str = "test", tta: "bool | str | None" = None,
             precision: str = "auto", progress: bool = True, backend: str = "torch") -> "MetricsRecord":
    """Evaluate a run on its test split (or another folder); writes predictions.csv and metrics.json and returns
    the metrics as an `imgclf.records.MetricsRecord`. tta: also score test-time augmentation over the views the
    run's training made (True refuses a run that made none; "auto" then skips it; None, the default: "auto" for the
    run's own test split, as training evaluated it and `imgclf evaluate` does, else off). precision: as for `load`; a
    loaded Classifier given as the run keeps its own unless another is asked.
    progress=False: no progress lines. backend="onnx": the run's export/model.onnx answers (fp32, or int8 for
    `export --quantize int8`), its scores written to RUN/evaluations/onnx-*."""
    from .pipeline import evaluate as _evaluate

    _check_run_dir(run_dir)
    _refuse_onnx(run_dir, "evaluate")
    if backend == "torch":  # a loaded Classifier's own precision is its network's, not the export's
        precision = _precision_of(run_dir, precision)
    metrics = _evaluate(run_dir, data=data, split=split, tta=tta, precision=precision, progress=progress,
                        backend=backend)
    _refresh(run_dir)
    return metrics


def _refresh(run: Any) -> None:
    """A `Run` given to a function that rewrote its files shows them (`Run.refresh`); a loaded `Classifier`
    predicts with them (`Classifier.reload_card`)."""
    from .inference import Classifier
    from .pipeline.run import Run

    if isinstance(run, Run):
        run.refresh()
    elif isinstance(run, Classifier):
        run.reload_card()


def _precision_of(run: Any, precision: str) -> str:
    """A loaded Classifier given as the run stands for its own precision where none is asked: evaluate(clf) of a
    clf loaded at precision "32" scored at bf16, and explain(clf) predicted other probabilities than clf did."""
    from .inference import Classifier

    return run.precision if isinstance(run, Classifier) and precision == "auto" else precision


@_names_run_dir
def load(run_dir: Any, device: str = "cpu", precision: str = "auto", fold_batch_norm: bool = True) -> "Classifier":
    """Load a trained run for prediction. precision: auto (bf16 where the CPU has it natively, mixed on a GPU),
    32, bf16-mixed or 16-mixed. fold_batch_norm: batch norms folded into the convolutions before them (faster;
    the network can then only predict); False keeps the trained network as it is."""
    from .inference import load as _load

    _check_run_dir(run_dir, uses_its_weights=False)  # the folder's own, as it is now
    return _load(run_dir, device, precision=precision, fold_batch_norm=fold_batch_norm)


@_names_run_dir
def explain(run_dir: Any, images: Any, label: str | None = None, out: Any = None, unknown: bool = True,
            precision: str = "auto") -> "list[Explanation]":
    """Grad-CAM for any images (files, folders, PIL images, arrays, as `Classifier.predict` takes them): where in
    each image the run's network found the evidence for its predicted class, or for `label` on every image.
    Returns one `imgclf.evaluation.explain.Explanation` each (prediction, heatmap, pixels; an unreadable file its
    error), and draws the first 48 readable ones as a grid to `out` (a PNG) when given. precision: of the
    predictions, as for `load`; the heatmaps are computed in fp32."""
    from .evaluation.explain import explain_images, figure_path, plot_explanations
    from .inference import load as _load

    _check_run_dir(run_dir)
    if out is not None:
        out = figure_path("out", out)  # before the work, not after it ("~/why.png" expanded)
        import os

        from .pipeline.run_folder import refuse_run_file

        refuse_run_file("out", out, run_dir)

        from .inputs import expand_inputs, output_among_inputs, warn_of_left_out

        # out= one of the image files named: the figure overwrote the user's photo (as explain -o did)
        given = list(images) if isinstance(images, (list, tuple)) else [images]
        named = [os.fspath(g) for g in given if isinstance(g, (str, os.PathLike))]
        if len(named) == len(given):  # paths alone: the folders walked here, less an earlier call's figure in them
            empty: list[str] = []  # (explained as one more image of the folder, as the command line does not)
            others: list[str] = []
            unread: list[str] = []
            images = output_among_inputs("out", out, expand_inputs(named, empty, others, unread), named)
            warn_of_left_out(empty, others, unread)
        else:  # arrays too: the folders among the paths walked for the check (a photo in them was replaced)
            output_among_inputs("out", out, expand_inputs(named, [], []), named)
    clf = _load(run_dir, precision=_precision_of(run_dir, precision), fold_batch_norm=False)
    explanations = explain_images(clf, images, label=label, unknown=unknown)
    if out is not None:
        if not any(e.heatmap is not None for e in explanations):
            # a figure was asked for: without one, `out` would still show an earlier call's maps as these
            from .errors import Described, invalid

            errors = sorted({e.prediction.error for e in explanations if e.prediction.error})
            raise invalid("images", Described(f"{len(explanations)} image(s), none readable" if explanations
                                              else "no image"), "at least one readable image to draw into out",
                          note="; ".join(errors[:3]) or None, also={"out": str(out)})
        plot_explanations(explanations, out, label=label, multilabel=clf.card.task == "multilabel",
                          classes=clf.classes)
    return explanations


def list_models(pattern: str = "*") -> list[str]:
    """The registered architectures whose names match the glob `pattern` (`imgclf models` shows their details)."""
    from .models import list_models as _list

    return _list(pattern)


def list_runs(folder: Any = "runs", sort: str = "created", reverse: bool = False) -> "list[RunRow]":
    """One `imgclf.runs.RunRow` per run directory under `folder` (name, model, data, epochs, val and test
    accuracy, macro F1, time, when, status: completed, running, pruned, interrupted or failed with its reason)."""
    from .runs import list_runs as _list_runs

    return _list_runs(folder, sort=sort, reverse=reverse)


def lr_find(config: Any = None, **values: Any) -> "LRFindResult":
    """Lightning's LR range test on a data folder with a run's settings (as `fit` takes them), no run trained:
    returns an `LRFindResult` (.suggestion, .lrs, .losses) and writes lr_find.png and lr_find.json to `out`.
    `imgclf.fit(..., lr="auto")` runs the same finder inside a training run."""
    from .caller_state import kept_caller_state
    from .pipeline.lr_find import lr_find as _lr_find

    _refuse_a_folder_as_config(config, "lr_find")
    with kept_caller_state():
        return _lr_find(config, **values)


def tune(config: Any = None, *, trials: int, **kwargs: Any) -> "TuneResult":
    """Hyper-parameter search with Optuna: `trials` ordinary runs (settings as `fit` takes them) under one search
    folder, selected on the validation split, the best tested; `time_limit=` is the whole search's budget,
    `space=` a YAML file or mapping of field -> range (default: the model family's), `resume=True, out=FOLDER`
    continues a killed search. Returns an `imgclf.search.TuneResult`; see `imgclf.search.search.tune`."""
    from .caller_state import kept_caller_state

    _refuse_a_folder_as_config(config, "tune")
    with kept_caller_state():  # the first import of optuna (rich) draws from the caller's `random`
        from .search import tune as _tune

        return _tune(config, trials=trials, **kwargs)


def compare(runs: Any, out: Any = None) -> "Comparison":
    """Compare finished runs (`imgclf compare`): run paths (or Runs, loaded Classifiers), or folders standing for
    the runs under them, one path alone included. Groups runs that differ only in seed; returns an
    `imgclf.evaluation.compare.Comparison` and writes compare.html to `out` (an .html path) when given."""
    from .evaluation.compare import compare_runs

    if out is not None:
        from .evaluation.compare_render import page_path

        page_path("out", out)  # before the work, not after it
    comparison = compare_runs(runs)
    if out is not None:
        from .evaluation.compare_render import write_compare_html

        write_compare_html(comparison, out)
    return comparison


@_names_run_dir
def calibrate(run_dir: Any, *, report: bool = True, **settings: Any) -> "ModelCard":
    """Refit a finished run's temperature and unknown detector on its own train and val images, without training
    (`imgclf calibrate`): `calibrate=`, `unknown_detector=`, `unknown_acceptance=` (the run's own where not
    given). Rewrites its model.json and scores; returns the new `imgclf.records.ModelCard`."""
    from .pipeline.recalibrate import recalibrate

    _check_run_dir(run_dir)
    _refuse_onnx(run_dir, "calibrate")
    card = recalibrate(run_dir, report=report, **settings)
    _refresh(run_dir)
    return card


@_names_run_dir
def report(run_dir: Any, explain: bool = True, samples: int = 12) -> "Path":
    """Redraw a run's figures and write its report.html (`imgclf report`); returns the page's path. samples:
    images in the grid of sample predictions (S3 shows 20)."""
    from .evaluation.report import write_report
    from .pipeline.run_folder import not_while_training

    _check_run_dir(run_dir, uses_its_weights=False)  # the folder's own, as it is now
    with not_while_training(run_dir, "report"):
        return write_report(run_dir, explain=explain, samples=samples)


def _check_run_dir(run_dir: Any, uses_its_weights: bool = True) -> None:
    """A run that is not a path, or a path to nothing, is refused naming this API's keyword (`run_dir`), not the
    command line's RUN (the readers deeper in name `run`)."""
    from .errors import bad_path
    from .records.run_dir import run_path

    path = run_path(run_dir, "run_dir")
    if not path.exists() and not path.is_symlink():
        raise bad_path("run_dir", path, "a run directory containing model.json", "no such folder")
    import sys

    inference = sys.modules.get(f"{__name__}.inference")  # a Classifier exists only once it is imported
    if uses_its_weights and inference is not None and type(run_dir) is inference.Classifier:  # (ONNX: refused)
        run_dir.refuse_other_weights()  # its folder must still hold its weights


def _refuse_onnx(run_dir: Any, command: str) -> None:
    """An ONNX classifier (`imgclf.export.load_onnx`) given as the run: evaluate scored the run's torch weights,
    not the graph, and both rewrote the run's files, then failed (the session has no torch head to reload)."""
    import sys

    from .errors import Described, invalid

    export = sys.modules.get(f"{__name__}.export")  # an OnnxClassifier exists only once it is imported
    if export is not None and isinstance(run_dir, export.OnnxClassifier):
        from pathlib import Path

        # loaded from RUN, or from RUN/export/model.onnx (another .onnx file stands alone: no run to name)
        given = Path(run_dir.run_dir)
        run = given if (given / "model.json").is_file() else export.exported_from(
            given / "model.onnx" if given.is_dir() else given)
        then = ("; then export it again: the ONNX file keeps the old temperature and threshold"
                if command == "calibrate" else " to score its export (without backend: the run's network)")
        raise invalid("run_dir", Described("an ONNX classifier (imgclf.export.load_onnx)"),
                      "a run directory, a Run or a Classifier loaded with imgclf.load",
                      hint=(f"Pass its run directory: imgclf.{command}({str(run)!r}"
                            + (", backend='onnx')" if command == "evaluate" else ")") if run is not None else
                            f"Pass the run directory it was exported from to imgclf.{command}"
                            + (" with backend='onnx'" if command == "evaluate" else "")) + then)


# Names a user tries first, after the command line's verbs, and where the thing is.
_ELSEWHERE = {
    "train": "imgclf.fit(data=..., ...) trains a run (the command line's imgclf train)",
    "predict": "imgclf.load(RUN).predict(images) predicts (a Classifier: load once, predict many times)",
    "export_run": "from imgclf.export import export_run (the command line's imgclf export)",
}


def __getattr__(name: str) -> Any:
    # Heavy modules (torch, lightning) load on first use, so `import imgclf` and the CLI's --help stay fast.
    if name == "Classifier":
        from .inference import Classifier

        return Classifier
    if name == "ImgclfError":  # what every refusal of the user's input raises: `except imgclf.ImgclfError`
        from .errors import ImgclfError

        return ImgclfError
    if name == "TrainConfig":
        from .config import TrainConfig

        return TrainConfig
    if name in ("audit", "export", "serve"):  # subpackages: imgclf.audit.audit(DATA), imgclf.export.export_run(RUN),
        # imgclf.serve.create_app(RUN) (a FastAPI app)
        import importlib

        return importlib.import_module(f".{name}", __name__)
    hint = f": {_ELSEWHERE[name]}" if name in _ELSEWHERE else ""
    raise AttributeError(f"module 'imgclf' has no attribute {name!r}{hint}")
