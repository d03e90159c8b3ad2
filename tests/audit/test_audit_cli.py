"""`imgclf audit` on the command line, and `imgclf inspect` showing the audit's counts while it is fresh."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from typer.testing import CliRunner

from audit_fixtures import make_blob_folder
from imgclf.cli import app


def test_audit_command_writes_its_files_and_inspect_shows_the_counts_until_the_folder_changes(tmp_path):
    data = make_blob_folder(tmp_path / "data")
    shutil.copyfile(data / "train" / "cat" / "cat_000.png", data / "test" / "cat" / "leaked.png")
    out = tmp_path / "audit"
    runner = CliRunner()
    result = runner.invoke(app, ["audit", str(data), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "audit.json").is_file() and (out / "audit.html").is_file()
    assert "leakage: 1 val/test images with a copy or near-copy in an earlier split (1 groups: train-test 1)" \
        in result.output
    assert f"page: {out / 'audit.html'}" in result.output
    # labels judged on pixels: the summary and the page point to --run, which finds far more of the real errors
    record = json.loads((out / "audit.json").read_text())
    assert record["features"]["source"] == "pixels" and record["features"]["folds"] > 0
    assert "--run RUN" in result.output and "--run RUN</code>" in (out / "audit.html").read_text()
    assert '<span class="split test">test</span> · cat' in (out / "audit.html").read_text()  # each copy's split
    flat = shutil.copytree(data / "train", tmp_path / "flat")  # one folder per class: no splits to name
    shutil.copyfile(flat / "cat" / "cat_000.png", flat / "cat" / "again.png")
    assert runner.invoke(app, ["audit", str(flat), "--out", str(tmp_path / "flat-audit")]).exit_code == 0
    page = (tmp_path / "flat-audit" / "audit.html").read_text()
    assert "again.png" in page and 'class="split' not in page and "all · " not in page

    shown = runner.invoke(app, ["inspect", str(data)])
    assert shown.exit_code == 0, shown.output
    assert f"({out / 'audit.json'}):" in shown.output and "duplicates: 1 group (1 exact, 0 near)" in shown.output
    assert ", on the images' pixels (" in " ".join(shown.output.split())  # which features judged it: no run here
    as_json = json.loads(runner.invoke(app, ["inspect", str(data), "--json"]).output)
    assert as_json["audit"]["status"] == "fresh" and as_json["audit"]["counts"]["leaked_images"] == 1

    leaked = data / "test" / "cat" / "leaked.png"
    stat = leaked.stat()
    os.utime(leaked, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))  # the folder changed
    stale = runner.invoke(app, ["inspect", str(data)])
    assert "is stale: the folder changed since" in stale.output and "duplicates:" not in stale.output
    # the cache's pointer to the audit is read through its type: one of another shape is no audit, not a traceback
    from imgclf.audit.freshness import pointer_path
    from imgclf.data.cache_records import AuditPointer

    pointer = pointer_path(data)
    assert AuditPointer.model_validate_json(pointer.read_text()).audit == str(out / "audit.json")
    for broken in ('["not", "a", "pointer"]', '{"root": "x", "audit": 3, "extra": 1}', "{"):
        pointer.write_text(broken)
        shown = runner.invoke(app, ["inspect", str(data)])
        assert shown.exit_code == 0 and str(out / "audit.json") not in shown.output, (broken, shown.output)


def test_audit_json_option_prints_the_counts(tmp_path):
    data = make_blob_folder(tmp_path / "data", classes=("a", "b"), per_split={"train": 6})
    result = CliRunner().invoke(app, ["audit", str(data), "--out", str(tmp_path / "out"), "--json"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    assert printed["counts"]["images"] == 12 and printed["counts"]["duplicate_groups"] == 0 and printed["audit"].endswith("audit.json")


def test_a_class_too_small_to_judge_leaves_the_others_checked_and_says_so(tmp_path):
    """A class of 1 or 2 images used to switch label errors off for the whole folder while the console and the
    JSON said 0. Now the other classes are still judged (a planted flip is found) and the note names the small
    class; with fewer than 2 judgeable classes the console says 'not checked', never 0."""
    from PIL import Image

    from conftest import make_image_folder

    data = make_image_folder(tmp_path / "data", per_class=12)  # a class: a bar at its own place, plus noise
    shutil.move(data / "fox" / "fox_000.png", data / "cat" / "flipped.png")
    (data / "solo").mkdir()
    Image.linear_gradient("L").resize((16, 16)).save(data / "solo" / "only.png")
    runner = CliRunner()
    result = runner.invoke(app, ["audit", str(data), "--out", str(tmp_path / "a"), "--json"])
    assert result.exit_code == 0, result.output
    said = json.loads(result.output)
    assert said["label_errors_checked"] and "fewer than 3 images: solo" in said["note"]
    record = json.loads((tmp_path / "a" / "audit.json").read_text())
    flagged = [i["path"] for i in record["label_issues"]]
    assert flagged[:1] == ["cat/flipped.png"] and not any("solo" in p for p in flagged), flagged
    assert "fewer than 3 images: solo" in (tmp_path / "a" / "audit.html").read_text()

    for extra in sorted((data / "dog").iterdir())[2:] + sorted((data / "fox").iterdir())[2:]:
        extra.unlink()  # cat alone keeps 3 or more
    result = runner.invoke(app, ["audit", str(data), "--out", str(tmp_path / "b")], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "likely label errors: not checked: needs at least 2 classes with 3 or more images each (this data " \
           "has 1)" in " ".join(result.output.split())
    page = (tmp_path / "b" / "audit.html").read_text()
    assert "Likely label errors (not checked)" in page and "Label errors not checked: needs at least 2" in page


def test_the_page_summary_counts_copies_within_a_class():
    """It said "No duplicates, leakage, likely label errors or outliers found." beside a count of duplicate
    groups when every copy was within one class and one split."""
    from types import SimpleNamespace

    from imgclf.audit.report import _findings

    counts = dict(leakage_groups=0, leaked_images=0, conflicting_label_groups=0, label_issues=0, outliers=0,
                  pixel_issues=0, duplicate_groups=2, redundant_images=3)
    record = SimpleNamespace(counts=SimpleNamespace(**counts), leakage={},
                             features=SimpleNamespace(folds=5, note=""))
    said = " ".join(_findings(record))
    assert "2 duplicate group(s) within a class (3 redundant images)" in said and "No duplicates" not in said
    record.counts.duplicate_groups = record.counts.redundant_images = 0
    assert _findings(record) == ["No duplicates, leakage, likely label errors or outliers found."]


def test_the_default_output_keeps_another_folder_s_audit_and_says_what_it_replaces(tmp_path, monkeypatch):
    """audits/<folder name> is shared by every folder of that name: auditing b/data overwrote a/data's audit
    without a word. It goes to audits/data-2 now, and a re-audit of a/data says it replaces the earlier one."""
    first = make_blob_folder(tmp_path / "a" / "data", classes=("a", "b"), per_split={"train": 6})
    second = make_blob_folder(tmp_path / "b" / "data", classes=("a", "b"), per_split={"train": 6})
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    runner = CliRunner()
    outputs = []
    for data in (first, second, first):
        result = runner.invoke(app, ["audit", str(data), "--json"])
        assert result.exit_code == 0, result.output
        outputs.append(json.loads(result.output))
    audits = tmp_path / "work" / "audits"
    assert [o["audit"] for o in outputs] == [os.path.join("audits", name, "audit.json")
                                             for name in ("data", "data-2", "data")]
    assert [o["replaced"] for o in outputs[:2]] == [None, None] and outputs[2]["replaced"] is not None
    for folder, data in (("data", first), ("data-2", second)):
        assert json.loads((audits / folder / "audit.json").read_text())["root"] == str(data)
    created = json.loads((audits / "data" / "audit.json").read_text())["created"]
    assert f"(replaces the audit of {created} there)" in runner.invoke(app, ["audit", str(first)]).output
    # an explicit --out holding another folder's audit: whose audit it replaced is said
    created = json.loads((audits / "data-2" / "audit.json").read_text())["created"]
    said = " ".join(runner.invoke(app, ["audit", str(first), "--out", str(audits / "data-2")]).output.split())
    assert f"(replaces the audit of {created}, of {second} there)" in said


def test_an_output_inside_the_data_folder_is_refused_before_any_work(tmp_path, monkeypatch):
    """Run from inside the data folder, the default audits/ (and runs/) would land among the class folders,
    and the next scan would take them for one."""
    data = make_blob_folder(tmp_path / "data", classes=("a", "b"), per_split={"train": 6})
    monkeypatch.chdir(data)
    runner = CliRunner()
    for command in (["audit", "."], ["audit", str(data), "--out", str(data / "train" / "report")],
                    ["train", ".", "--model", "simple_cnn", "--img-size", "16", "--epochs", "1"]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2, result.output
        assert "must be a folder outside the data folder" in result.output and "inside the data folder" in result.output
    assert sorted(p.name for p in data.iterdir()) == ["train"]


def test_an_output_folder_that_cannot_be_made_is_refused_before_any_work(tmp_path):
    if not os.path.isdir("/proc/self"):
        pytest.skip("needs /proc, where no folder can be made")
    data = make_blob_folder(tmp_path / "data", classes=("a", "b"), per_split={"train": 6})
    result = CliRunner().invoke(app, ["audit", str(data), "--out", "/proc/imgclf-audit"])
    assert result.exit_code == 2, result.output
    assert "out must be a folder to write into" in result.output and "cannot write in /proc" in result.output


def test_inspect_finds_the_audit_through_a_link_to_the_folder(tmp_path):
    data = make_blob_folder(tmp_path / "data", classes=("a", "b"), per_split={"train": 6})
    (tmp_path / "link").symlink_to(data, target_is_directory=True)
    runner = CliRunner()
    assert runner.invoke(app, ["audit", str(tmp_path / "link"), "--out", str(tmp_path / "out")]).exit_code == 0
    for folder in (tmp_path / "link", data):
        shown = json.loads(runner.invoke(app, ["inspect", str(folder), "--json"]).output)
        assert shown["audit"]["status"] == "fresh", folder


def test_a_val_image_copied_into_test_leaks_the_test_image_only(tmp_path):
    """As training counts leaks: an image is leaked by a copy in a split before its own."""
    data = make_blob_folder(tmp_path / "data", per_split={"train": 10, "val": 4, "test": 4})
    shutil.copyfile(data / "val" / "cat" / "cat_000.png", data / "test" / "cat" / "from_val.png")
    record = json.loads(CliRunner().invoke(app, ["audit", str(data), "--out", str(tmp_path / "a"), "--json"]).output)
    assert record["counts"]["leaked_images"] == 1 and record["counts"]["leakage_groups"] == 1


def test_fewer_folds_than_asked_are_named_on_the_terminal_and_the_page(tmp_path):
    data = make_blob_folder(tmp_path / "data", classes=("a", "b"), per_split={"train": 6})
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["audit", str(data), "--out", str(out), "--folds", "1000"])
    assert result.exit_code == 0, result.output
    used = json.loads((out / "audit.json").read_text())["features"]["folds"]
    assert 2 <= used < 1000
    said = " ".join(result.output.split())
    assert f"label errors from {used} folds, not the 1000 asked" in said
    assert f"not the 1000 folds asked: a fold needs an image of every class, and the smallest has {used}" in \
        " ".join((out / "audit.html").read_text().split())


def test_an_empty_class_folder_is_audited_without_and_said(tmp_path):
    """The audit refused the folder with a hint to --drop-classes, which only training takes."""
    data = make_blob_folder(tmp_path / "data")
    (data / "train" / "empty").mkdir()
    result = CliRunner().invoke(app, ["audit", str(data), "--out", str(tmp_path / "audit")])
    assert result.exit_code == 0, result.output
    assert "warning class folder 'empty' holds no image: audited without it" in result.stderr
    record = json.loads((tmp_path / "audit" / "audit.json").read_text())
    assert "empty" not in record["classes"] and len(record["classes"]) >= 2
    # an empty test/ class folder is that class missing from test/, as everywhere: its train images are audited
    shutil.rmtree(data / "train" / "empty")
    for image in (data / "test" / "cat").iterdir():
        image.unlink()
    result = CliRunner().invoke(app, ["audit", str(data), "--out", str(tmp_path / "audit2")])
    assert result.exit_code == 0 and "audited without" not in result.stderr, result.output
    assert "cat" in json.loads((tmp_path / "audit2" / "audit.json").read_text())["classes"]


def test_a_near_group_holding_exact_copies_counts_them_and_never_reads_as_identical(tmp_path):
    """A group joined by a near link is "near" even where two of its files are byte-identical: the audit said
    "0 exact" while training's dataset.json counted the identical files. Its similarity is cut, not rounded:
    0.99996 printed as 1.000 read as an exact copy."""
    from PIL import Image, ImageEnhance

    from imgclf.audit.report import similarity_text

    data = make_blob_folder(tmp_path / "data", per_split={"train": 10, "test": 4})
    original = data / "train" / "cat" / "cat_001.png"
    shutil.copyfile(original, data / "test" / "cat" / "same.png")
    ImageEnhance.Brightness(Image.open(original)).enhance(1.08).save(data / "test" / "cat" / "brighter.png")
    out = tmp_path / "a"
    result = CliRunner().invoke(app, ["audit", str(data), "--out", str(out)])
    assert result.exit_code == 0, result.output
    record = json.loads((out / "audit.json").read_text())
    group = next(g for g in record["duplicate_groups"]
                 if "test/cat/same.png" in [m["path"] for m in g["members"]])
    assert group["kind"] == "near" and len(group["members"]) == 3 and group["identical"] == 2
    assert record["counts"]["identical_images"] == 2
    assert "2 byte-identical" in (out / "audit.html").read_text()
    assert similarity_text(0.99996) == "0.9999" and similarity_text(0.98) == "0.9800"
    # audit.json cut it too: a near copy at 0.999998 was stored as 1.0, and the page showed 1.0000
    from imgclf.audit.pipeline import stored_similarity

    assert stored_similarity("near", 0.9999999) == 0.999999 and similarity_text(stored_similarity("near", 0.999998)) \
        == "0.9999"
    assert stored_similarity("exact", 1.0) == 1.0


def test_the_leakage_card_of_a_flat_folder_says_there_are_no_splits_and_pair_counts_say_they_overlap(tmp_path):
    """A flat folder's card read "0 val/test images with a copy", as if checked and clean; and a group spanning
    train, val and test counted in each of its three pairs, which added up to more than the groups, unexplained."""
    data = make_blob_folder(tmp_path / "split", per_split={"train": 8, "val": 3, "test": 3})
    original = data / "train" / "cat" / "cat_001.png"
    for split in ("val", "test"):
        shutil.copyfile(original, data / split / "cat" / "copy.png")
    flat = tmp_path / "flat"
    shutil.copytree(data / "train", flat)
    pages, terminal = {}, {}
    for name, folder in (("split", data), ("flat", flat)):
        result = CliRunner().invoke(app, ["audit", str(folder), "--out", str(tmp_path / f"a-{name}")])
        assert result.exit_code == 0, result.output
        pages[name] = " ".join((tmp_path / f"a-{name}" / "audit.html").read_text().split())
        terminal[name] = " ".join(result.output.split())
    assert "leakage: none to find: a flat folder has no splits" in terminal["flat"]
    assert "leakage: 2 val/test images" in terminal["split"]
    assert "no splits in a flat folder" in pages["flat"] and "no splits in a flat folder" not in pages["split"]
    assert "(a group in three splits counts in each pair: 1 groups in all)" in pages["split"]
