"""Values that passed the argument checks and then failed far from them (a review fuzzing every argument): each
is now the usual one-line error naming the argument."""

from __future__ import annotations

import math

import pytest

import imgclf
from imgclf.errors import ImgclfError


@pytest.mark.parametrize("penalty", [math.nan, math.inf, True])
def test_an_l2_penalty_must_be_a_finite_number(penalty):
    """nan trained to a NaN loss blamed on the learning rate; true was recorded as 1.0."""
    from imgclf.config import make_config

    with pytest.raises(ImgclfError, match=r"^l2 conv must be a finite number >= 0 \(a penalty\)"):
        make_config(data="x", l2={"conv": penalty})


@pytest.mark.parametrize("limit", [math.nan, math.inf, True])
def test_a_duration_must_be_a_finite_number_of_seconds(limit):
    """tune read nan and True as 1 s a trial and inf as a search whose every trial failed."""
    from imgclf.config_text import parse_seconds

    with pytest.raises(ImgclfError, match=r"^time_limit must be a duration such as 90s"):
        parse_seconds(limit)
    with pytest.raises(ImgclfError, match=r"^time_limit must be a duration"):
        imgclf.tune(data="x", trials=1, time_limit=limit)


@pytest.mark.parametrize("flag, value", [("model_args", "width=4,width=8"), ("l2", "conv=1e-4,conv=1"),
                                         ("per_class_max", "train=3,train=4")])
def test_a_key_given_twice_is_refused(flag, value):
    """The last one won without a word, where a config file's repeated key is refused."""
    from imgclf.config_text import parse_mapping

    with pytest.raises(ImgclfError, match=rf"^{flag} must be each key once, .*is given twice"):
        parse_mapping(flag, value)


def test_an_empty_image_path_is_refused_not_read_as_the_current_folder(tiny_run, tmp_path, monkeypatch):
    """predict('') predicted every image under the current folder (the command line refused it)."""
    monkeypatch.chdir(tmp_path)
    clf = imgclf.load(tiny_run)
    with pytest.raises(ImgclfError, match=r"^images must be image files or folders \('\.' for the current folder\)"):
        clf.predict("")


def test_forward_threads_are_capped_before_torch_crashes():
    """serve --threads 100000: torch.set_num_threads then the next tensor ended the process, segfault, no word."""
    from imgclf.backends import MAX_THREADS, load_classifier

    with pytest.raises(ImgclfError, match=rf"^threads must be a whole number from 1 to {MAX_THREADS:,}"):
        load_classifier("no-such-run", threads=100_000)


@pytest.mark.parametrize("threads", [2.5, "x", 0, True])
def test_load_onnx_refuses_threads_and_a_run_that_are_not_ones_by_name(threads):
    """onnxruntime's binding raised a bare TypeError for 2.5 or "x"; load_onnx(None) Path's own."""
    from imgclf.backends import load_classifier
    from imgclf.export import load_onnx

    for load in (load_onnx, lambda run, threads: load_classifier(run, "onnx", threads)):
        with pytest.raises(ImgclfError, match=r"^threads must be a whole number from 1 to"):
            load("no-such-run", threads=threads)
    import numpy as np

    from imgclf.backends import check_threads

    assert check_threads(np.int64(2)) == 2 and type(check_threads(np.int64(2))) is int  # numpy's whole numbers too
    with pytest.raises(ImgclfError, match=r"^run must be a run directory, a folder holding model\.onnx or an "
                                          r"\.onnx file \(str or os\.PathLike\)\. Received: an object of type NoneType"):
        load_onnx(None)
