"""The one helper for user errors (`imgclf.errors`) and a static check that messages go through it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from imgclf.errors import Described, ImgclfError, add_hint, bad_path, invalid, invalid_message

# ---------------------------------------------------------------------------------------------------------
# the helper
# ---------------------------------------------------------------------------------------------------------


def test_invalid_names_the_argument_lists_sorted_options_and_suggests():
    err = invalid("model", "resnt18", ["vgg16", "resnet18", "resnet34"])
    assert isinstance(err, ImgclfError) and isinstance(err, ValueError)
    assert str(err) == ("model must be one of {resnet18, resnet34, vgg16}. Did you mean: resnet18, resnet34? "
                        "Received: model='resnt18'")


def test_a_value_that_begins_an_option_is_offered_it():
    message = invalid_message("sort", "test", ["name", "test_accuracy", "val_accuracy", "train_seconds"])
    assert "Did you mean: test_accuracy?" in message  # imgclf runs --sort test offered nothing
    # beside a closer-spelt option, every option it begins comes first (test_map alone was offered)
    message = invalid_message("sort", "test", ["name", "test_accuracy", "test_map", "val_map"])
    assert "Did you mean: test_accuracy, test_map?" in message


def test_options_from_a_mapping_are_its_keys_and_far_values_get_no_suggestion():
    message = invalid_message("backend", "tensorflow", {"torch": 1, "onnx": 2})
    assert message == "backend must be one of {onnx, torch}. Received: backend='tensorflow'"


def test_value_is_echoed_with_repr_and_paths_as_plain_strings():
    assert invalid_message("rho", 0.5, "a ratio >= 1") == "rho must be a ratio >= 1. Received: rho=0.5"
    assert invalid_message("x", "1", ">= 1").endswith("Received: x='1'")  # a string is shown as one
    assert invalid_message("x", None, "given").endswith("Received: x=None")
    assert invalid_message("data", Path("/no/such"), "an existing folder").endswith("Received: data='/no/such'")
    long = invalid_message("minority", list(range(1000)), "classes of the data set")
    assert len(long) < 400 and long.endswith(" ...")


def test_where_note_hint_and_also():
    message = invalid_message("source", "x.tar", "cifar-10-binary.tar.gz", where="cifar10", note="no such path",
                              hint="Get it from https://example.org", also={"url": None})
    assert message == ("source for cifar10 must be cifar-10-binary.tar.gz. Received: source='x.tar', url=None "
                       "(no such path). Get it from https://example.org.")


def test_a_phrase_ending_in_a_full_stop_gets_no_second_one():
    assert invalid_message("a", 1, "odd.") == "a must be odd. Received: a=1"


def test_described_values_are_printed_as_they_are():
    message = invalid_message("upload", Described("more than 10 bytes"), "at most 10 bytes")
    assert message == "upload must be at most 10 bytes. Received: more than 10 bytes"
    # no suggestion is made from a description
    assert "Did you mean" not in invalid_message("item", Described("hflip"), ["hflip", "vflip"])


def test_bad_path_defaults_to_not_found():
    err = bad_path("path", Path("cat.jpg"), "an existing image file")
    assert str(err) == "path must be an existing image file. Received: path='cat.jpg' (not found)"


def test_every_user_error_survives_pickling_whole():
    """A process pool (data workers, DDP) re-raises an exception by pickling it: the message, the setting it names
    (which the command line turns into a flag), a ConfigError's lines (a line may hold a line break of its own),
    an interrupted run's exit status and an HTTP error's status and details come back as they were."""
    import pickle

    from imgclf.config import ConfigError
    from imgclf.search.interrupt import SearchInterrupted
    from imgclf.serve.uploads import ApiError
    from imgclf.train.fit import TrainingInterrupted

    def again(exc):
        return pickle.loads(pickle.dumps(exc))

    plain = again(add_hint(invalid("img_size", 2, ">= 4"), "Pass a larger --img-size"))
    assert (type(plain), str(plain), plain.argument) == (ImgclfError, "img_size must be >= 4. Received: "
                                                         "img_size=2. Pass a larger --img-size.", "img_size")
    found = [("batch_size", "batch_size must be >= 1"), (None, "a line\x0bwith\nbreaks")]
    config = again(ConfigError(found))
    assert config.found == found and config.arguments == ["batch_size", None] and str(config) == str(ConfigError(found))
    stopped = again(TrainingInterrupted("stopped", state="kept", exit_code=143))
    assert (str(stopped), stopped.state, stopped.exit_code) == ("stopped", "kept", 143)
    search = again(SearchInterrupted("search stopped", 2, 130))
    assert (str(search), search.trial, search.exit_code) == ("search stopped", 2, 130)
    api = again(ApiError(413, "too large", limit=10))
    assert (api.status, api.message, api.details) == (413, "too large", {"limit": 10})


def test_add_hint_keeps_the_message_and_adds_a_sentence():
    err = add_hint(invalid("url", "http://x/y.gz", "an address that can be reached"), "Use --source")
    assert isinstance(err, ImgclfError)
    assert str(err) == "url must be an address that can be reached. Received: url='http://x/y.gz'. Use --source."


# ---------------------------------------------------------------------------------------------------------
# the static check: no "Received:" message formatted by hand
# ---------------------------------------------------------------------------------------------------------
SRC = Path(__file__).resolve().parents[1] / "src" / "imgclf"

# Files (globs relative to src/imgclf) whose user errors must all be built by `imgclf.errors`. To bring more of
# the package under the check, add its files here once their messages go through the helper.
CHECKED = ("**/*.py",)  # every module but errors.py itself: a new module is covered without anyone listing it
HELPER = SRC / "errors.py"


def checked_files(patterns: tuple[str, ...] = CHECKED) -> list[Path]:
    files = sorted({p for pattern in patterns for p in SRC.glob(pattern)} - {HELPER})
    assert files, f"no file matches {patterns}"
    return files


def hand_made_messages(path: Path) -> list[str]:
    """'line N: ...' for every string literal (plain or f-string part) holding "Received:", and every direct
    `ImgclfError(...)` call: both mean a message formatted without the helper."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and "Received:" in node.value:
            found.append((node.lineno, "string with 'Received:'"))
        elif (isinstance(node, ast.Call) and isinstance(node.func, (ast.Name, ast.Attribute))
              and (node.func.id if isinstance(node.func, ast.Name) else node.func.attr) == "ImgclfError"):
            found.append((node.lineno, "ImgclfError(...) built directly"))
    return [f"line {line}: {what}" for line, what in sorted(found)]


@pytest.mark.parametrize("path", checked_files(), ids=lambda p: str(p.relative_to(SRC)))
def test_user_errors_are_built_by_the_helper(path):
    found = hand_made_messages(path)
    assert not found, (f"{path.relative_to(SRC)} formats user errors by hand ({'; '.join(found)}): use "
                       "imgclf.errors.invalid / bad_path / invalid_message")


def test_the_static_check_finds_hand_made_messages(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text('def f(x):\n    raise ValueError(f"x must be 1. Received: x={x}")\n\n'
                      'def g():\n    raise ImgclfError("no")\n')
    assert hand_made_messages(sample) == ["line 2: string with 'Received:'", "line 5: ImgclfError(...) built directly"]
    assert hand_made_messages(HELPER) != [], "the helper itself is where messages are built"


def test_a_long_list_of_options_is_cut_and_the_closest_still_offered():
    """`explain --label` on a run of 120 classes printed all 120 names, 3,000 characters, before "Did you mean"."""
    from imgclf.errors import invalid_message

    classes = [f"species_{i:03d}" for i in range(120)]
    text = invalid_message("label", "species_1177", classes)
    assert text.startswith("label must be one of {species_000, species_001, ") and "... 120 in all}." in text
    assert "species_080" not in text.split("Did you mean")[0] and "Did you mean: species_117" in text, text
    assert invalid_message("x", "c", ["a", "b"]).startswith("x must be one of {a, b}.")
