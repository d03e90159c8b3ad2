"""`audit(data, run=RUN)`: the run's model gives the features, and its card the decode size and colour mode."""

from __future__ import annotations

import json

from imgclf.audit import audit
from imgclf.records import load_card


def test_audit_with_a_run_uses_its_penultimate_features_and_its_preprocessing(image_folder, tiny_run, tmp_path):
    card = load_card(tiny_run)
    result = audit(image_folder, run=tiny_run, out=tmp_path / "audit")
    record = result.record
    assert record.features.source == "run" and card.architecture in record.features.description
    assert record.settings.run == str(tiny_run.resolve())
    assert (record.settings.img_size, record.settings.color) == (card.img_size, card.color)
    assert result.images.pixels.shape[1:] == (card.img_size, card.img_size, card.in_chans)
    # the run learned the classes, so its features separate them out of fold
    assert record.features.accuracy is not None and record.features.accuracy >= 0.9
    assert json.loads(result.json_path.read_text())["features"]["source"] == "run"
    assert "--run RUN" not in result.html_path.read_text()  # the hint is for audits on pixels only


def test_a_run_trained_on_other_classes_is_warned(image_folder, tiny_run, tmp_path, capsys):
    import shutil

    audit(image_folder, run=tiny_run, out=tmp_path / "same", page=False)
    assert "trained on other classes" not in capsys.readouterr().err
    other = tmp_path / "other"
    shutil.copytree(image_folder, other)
    (other / "cat").rename(other / "lynx")
    audit(other, run=tiny_run, out=tmp_path / "audit", page=False)
    err = " ".join(capsys.readouterr().err.split())
    assert "warning the run was trained on other classes (3, 2 of them among the folder's 3)" in err
    # images the run never saw (neither its files nor copies of them): its split says nothing of them
    from conftest import make_image_folder

    fresh = make_image_folder(tmp_path / "fresh", seed=7)
    record = audit(fresh, run=tiny_run, out=tmp_path / "fresh-audit", page=False).record
    err = " ".join(capsys.readouterr().err.split())
    assert "leakage is judged on the folder's own split, not the run's: none of these images is in its split, by " \
           "path or as a copy of its folder" in err
    assert record.settings.splits == "folder"


def test_with_a_run_leakage_is_judged_on_the_runs_own_split(tmp_path, capsys):
    """A flat folder has no split of its own; the run drew one (here without keeping copies together), and the
    audit with --run counts the copies that straddle that split: the leaks that inflate the run's scores."""
    import shutil

    import imgclf

    from conftest import make_image_folder

    data = make_image_folder(tmp_path / "data", per_class=16)
    for name in ("cat", "dog", "fox"):
        for j in range(6):
            shutil.copy(data / name / f"{name}_{j:03d}.png", data / name / f"{name}_copy{j}.png")
    run = imgclf.fit({"data": str(data), "model": "simple_cnn", "img_size": 16, "epochs": 1, "batch_size": 16,
                      "out": str(tmp_path / "run"), "progress": False, "seed": 0, "model_args": {"width": 4},
                      "val_split": 0.25, "test_split": 0.25, "group_duplicates": False})
    dataset = json.loads((run.path / "dataset.json").read_text())
    where = {f: split for split, s in dataset["splits"].items() for f in s["files"]}
    order = {"train": 0, "val": 1, "test": 2}
    assert any(where[f"{n}/{n}_{j:03d}.png"] != where[f"{n}/{n}_copy{j}.png"]
               for n in ("cat", "dog", "fox") for j in range(6))  # the premise: the run's split separates copies

    (data / "cat" / "added_later.png").write_bytes((data / "cat" / "cat_010.png").read_bytes())
    capsys.readouterr()
    record = audit(data, run=run.path, out=tmp_path / "audit").record
    assert record.settings.splits == "run"
    members = [m for g in record.duplicate_groups for m in g.members]
    assert {m.path: m.split for m in members if m.path != "cat/added_later.png"} == \
        {m.path: where[m.path] for m in members if m.path != "cat/added_later.png"}
    assert [m.split for m in members if m.path == "cat/added_later.png"] == ["unused"]
    expected = 0  # a member is leaked by a copy in a split before its own, in the run's split
    for group in record.duplicate_groups:
        ranks = [order[where[m.path]] for m in group.members if m.path in where]
        expected += sum(rank > min(ranks) for rank in ranks)
    assert expected > 0 and record.counts.leaked_images == expected
    for group in record.duplicate_groups:  # an image the run never saw leaks nothing, nor is leaked
        assert ("leakage" in group.flags) == (len({where[m.path] for m in group.members if m.path in where}) > 1)
    assert record.counts.leakage_groups > 0 and "train-test" in record.leakage
    err = " ".join(capsys.readouterr().err.split())
    assert "1 of the 67 images is not in the run's split" in err
    page = (tmp_path / "audit" / "audit.html").read_text()
    assert "splits: the run's" in page and "earlier split of the run" in page

    # the folder's own (flat) split has none
    assert audit(data, out=tmp_path / "pixels", page=False).record.counts.leaked_images == 0
    # a copy of the folder the run trained on is matched file by file (place and bytes), as evaluate --data finds it
    import shutil as _shutil

    copy = _shutil.copytree(data, tmp_path / "copy")
    (copy / "cat" / "added_later.png").unlink()
    capsys.readouterr()
    copied = audit(copy, run=run.path, out=tmp_path / "copy-audit", page=False).record
    assert "66 of the 66 images are copies of the run's files" in " ".join(capsys.readouterr().err.split())
    assert copied.settings.splits == "run" and copied.counts.leaked_images == record.counts.leaked_images
    # with the originals gone, the copy cannot be matched to them: said so, not "none of these is in its split"
    _shutil.rmtree(data)
    gone = audit(copy, run=run.path, out=tmp_path / "gone-audit").record
    err = " ".join(capsys.readouterr().err.split())
    assert f"its own files, under {data}, cannot be read (moved or deleted?)" in err
    assert gone.settings.splits == "folder"
    # what the summary then says of leakage: not judged (it said "a flat folder has no splits (--run RUN checks a
    # run's)" to a user who had given --run)
    from rich.console import Console

    from imgclf.audit.summary import render_counts

    console = Console(record=True, width=200)
    render_counts(gone, console)
    said = " ".join(console.export_text().split())
    assert "leakage: not judged: the run's split could not be used here" in said and "--run RUN checks" not in said
    page = " ".join((tmp_path / "gone-audit" / "audit.html").read_text().split())
    assert "not judged: the run's split could not be used here" in page and "--run RUN checks" not in page


def test_a_copy_of_one_folder_of_a_merged_run_takes_the_runs_split(tmp_path):
    """A merged run lists its files relative to the folders' common parent (a/cat/x.png): a copy of one of its
    folders (cat/x.png) matched none of them."""
    import shutil

    import imgclf

    from conftest import make_image_folder

    a = make_image_folder(tmp_path / "src" / "a", per_class=8, seed=1)
    b = make_image_folder(tmp_path / "src" / "b", per_class=8, seed=2)
    from imgclf.audit.run_split import run_split
    from imgclf.duplicates.hashing import content_digests

    a = make_image_folder(tmp_path / "src" / "a", per_class=8, seed=1)
    b = make_image_folder(tmp_path / "src" / "b", per_class=8, seed=2)
    run = imgclf.fit({"data": [str(a), str(b)], "model": "simple_cnn", "img_size": 16, "epochs": 1,
                      "batch_size": 16, "out": str(tmp_path / "run"), "progress": False, "model_args": {"width": 4},
                      "val_split": 0.25, "test_split": 0.25}, report=False)
    dataset = json.loads((run.path / "dataset.json").read_text())
    where = {f: split for split, s in dataset["splits"].items() for f in s["files"]}
    copy = shutil.copytree(a, tmp_path / "copy-of-a")
    assert audit(copy, run=run.path, out=tmp_path / "audit").record.settings.splits == "run"
    files = sorted(copy.rglob("*.png"))
    found = run_split(run.path, [str(p) for p in files], content_digests([str(p) for p in files]), copy)
    assert found.matched == 24 and found.by_content
    assert list(found.splits) == [where[f"a/{p.relative_to(copy).as_posix()}"] for p in files]


def test_a_test_image_linked_to_a_training_image_keeps_each_path_in_its_own_split(tmp_path):
    """A file the run lists twice (test/cat/link.png a link to train/cat/x.png) was one key once links were followed:
    the last split listed won, and the training copy read as test, hiding the leak."""
    import imgclf
    from conftest import make_image_folder
    from imgclf.audit.run_split import run_split

    data = make_image_folder(tmp_path / "data", layout="splits", per_split={"train": 8, "test": 3})
    source = data / "train" / "cat" / "cat_000.png"
    link = data / "test" / "cat" / "link.png"
    link.symlink_to(source)
    run = imgclf.fit({"data": str(data), "model": "simple_cnn", "img_size": 16, "epochs": 1, "batch_size": 16,
                      "out": str(tmp_path / "run"), "progress": False, "model_args": {"width": 4},
                      "val_split": 0.25, "group_duplicates": False}, report=False)
    dataset = json.loads((run.path / "dataset.json").read_text())
    held = "val" if "train/cat/cat_000.png" in dataset["splits"]["val"]["files"] else "train"
    found = run_split(run.path, [str(source), str(link)])
    assert list(found.splits) == [held, "test"]
    # through a link to the whole folder, each file is still found by the file it leads to
    (tmp_path / "alias").symlink_to(data, target_is_directory=True)
    other = data / "test" / "dog" / "dog_000.png"
    alias = run_split(run.path, [str(tmp_path / "alias" / "test" / "dog" / "dog_000.png")])
    assert list(alias.splits) == ["test"] and other.exists()


def test_a_run_without_its_weights_is_refused_before_any_work(image_folder, tiny_run, tmp_path, monkeypatch):
    """The run's network gives the features: a run without model.safetensors was refused only after the decode, the
    hashes and the duplicate search (minutes on a large folder)."""
    import shutil

    import pytest

    from imgclf.audit import audit, pipeline
    from imgclf.errors import ImgclfError

    run = shutil.copytree(tiny_run, tmp_path / "run")
    (run / "model.safetensors").unlink()

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded before the run was checked")

    monkeypatch.setattr(pipeline, "load_images", no_decoding)
    with pytest.raises(ImgclfError, match=r"run must be a run directory containing model.safetensors.*no "
                                          r"model.safetensors"):
        audit(image_folder, run=run, out=tmp_path / "a")


def test_inspect_calls_an_audit_stale_once_its_run_is_trained_again(image_folder, tiny_run, tmp_path, monkeypatch):
    """An audit judged with --run reads the run's features and split: after the run was trained again (a new split,
    other weights) inspect still showed its leakage, 23 where a new audit found 0."""
    import json
    import os
    import shutil

    from typer.testing import CliRunner

    from imgclf.cli import app

    monkeypatch.setenv("IMGCLF_CACHE", str(tmp_path / "cache"))
    run = shutil.copytree(tiny_run, tmp_path / "run")
    runner = CliRunner()
    audited = runner.invoke(app, ["audit", str(image_folder), "--run", str(run), "--out", str(tmp_path / "a")])
    assert audited.exit_code == 0, audited.output
    shown = json.loads(runner.invoke(app, ["inspect", str(image_folder), "--json"]).output)["audit"]
    assert shown["status"] == "fresh" and "counts" in shown
    # scored again, model.json rewritten (evaluate, calibrate): the weights and split the audit read are the same
    card = run / "model.json"
    os.utime(card, ns=(card.stat().st_atime_ns, card.stat().st_mtime_ns + 2_000_000_000))
    assert runner.invoke(app, ["evaluate", str(run)]).exit_code == 0
    assert json.loads(runner.invoke(app, ["inspect", str(image_folder), "--json"]).output)["audit"]["status"] == \
        "fresh"
    # trained again: other weights, recorded with their digest
    from safetensors.torch import load_file, save_file

    from imgclf.records import RunDir

    tensors = load_file(str(run / "model.safetensors"))
    save_file({k: v + 0.01 if v.is_floating_point() else v for k, v in tensors.items()}, str(run / "model.safetensors"))
    RunDir(run).write_card(RunDir(run).read_card())
    stale = runner.invoke(app, ["inspect", str(image_folder)])
    assert f"is stale: run {run} was trained again since" in " ".join(stale.output.split())
    assert "duplicates:" not in stale.output
    assert json.loads(runner.invoke(app, ["inspect", str(image_folder), "--json"]).output)["audit"]["status"] == \
        "stale"
    shutil.rmtree(run)  # not "trained again": gone
    gone = runner.invoke(app, ["inspect", str(image_folder)]).output
    assert f"is stale: its run {run} is gone" in " ".join(gone.split())


def test_a_multilabel_run_is_refused_and_a_linked_tree_is_told_as_the_multilabel_layout(image_folder, tiny_run,
                                                                                         tmp_path, monkeypatch,
                                                                                         capsys):
    """A folder tree of links (one file under each of its labels) was listed as conflicting labels without a word
    of links, and a multi-label run's split was taken, its linked files called 'not in the run's split'."""
    import os
    import shutil

    import pytest

    import imgclf.records
    from imgclf.errors import ImgclfError

    tree = tmp_path / "tree"
    shutil.copytree(image_folder, tree)
    for source in sorted((tree / "cat").iterdir())[:2]:
        os.link(source, tree / "dog" / f"also-{source.name}")
    shutil.copyfile(sorted((tree / "cat").iterdir())[2], tree / "fox" / "copied.png")  # a copy is a conflict
    result = audit(tree, out=tmp_path / "a", page=False)
    assert result.record.counts.conflicting_label_groups == 3
    err = " ".join(capsys.readouterr().err.split())
    assert "2 pictures are one file linked into several class folders: a multi-label layout" in err

    multilabel = load_card(tiny_run).model_copy(update={"task": "multilabel"})
    monkeypatch.setattr(imgclf.records, "load_card", lambda run: multilabel)
    with pytest.raises(ImgclfError, match=r"^run must be a single-label run: the audit reads class folders"):
        audit(tree, run=tiny_run, out=tmp_path / "b", page=False)
    assert not (tmp_path / "b").exists()


def test_a_folder_sharing_a_few_files_with_the_runs_is_not_taken_for_a_copy_of_it(tmp_path):
    """Two placeholder images at the same paths in two folders of alike names made the other folder 'a copy of
    the one it trained on', and its leakage read as a clean 0 over images the run never listed."""
    import shutil

    import imgclf
    from conftest import make_image_folder
    from imgclf.audit.run_split import run_split
    from imgclf.duplicates.hashing import content_digests

    trained = make_image_folder(tmp_path / "trained", per_class=8, seed=1)
    other = make_image_folder(tmp_path / "other", per_class=8, seed=2)  # the same file names, other pictures
    for name in ("cat/cat_000.png", "dog/dog_000.png"):
        shutil.copyfile(trained / name, other / name)
    run = imgclf.fit({"data": str(trained), "model": "simple_cnn", "img_size": 16, "epochs": 1, "batch_size": 16,
                      "out": str(tmp_path / "run"), "progress": False, "model_args": {"width": 4}}, report=False)
    files = [str(p) for p in sorted(other.rglob("*.png"))]
    found = run_split(run.path, files, content_digests(files), other)
    assert found.splits is None and "only 2 of the 24 images at its files' paths hold the same bytes" in found.why_not


def test_a_suspect_the_run_never_trained_on_shows_the_runs_own_answer(tmp_path):
    """The quick model's per-image probabilities sit at 0 and 1 (calibrated on average only), so a flagged image
    read "labelled dog (0.00), looks like cat (1.00)" with nothing else to weigh. For an image of the run's val or
    test split the run's own answer is a second opinion; a training image has none (the run learnt its label)."""
    import shutil

    import imgclf
    from conftest import make_image_folder

    data = make_image_folder(tmp_path / "data", layout="splits", per_split={"train": 24, "val": 8, "test": 8})
    flipped_test = data / "test" / "dog" / "cat_moved.png"
    shutil.move(data / "test" / "cat" / "cat_000.png", flipped_test)
    flipped_train = data / "train" / "dog" / "cat_moved.png"
    shutil.move(data / "train" / "cat" / "cat_000.png", flipped_train)
    run = imgclf.fit({"data": str(data), "model": "simple_cnn", "img_size": 16, "epochs": 4, "batch_size": 16,
                      "out": str(tmp_path / "run"), "progress": False, "seed": 0, "model_args": {"width": 8}},
                     report=False)
    out = tmp_path / "audit"
    record = audit(data, run=run.path, out=out).record
    assert record.settings.splits == "run"
    suspects = {s.path: s for s in record.label_issues}
    test_suspect = suspects["test/dog/cat_moved.png"]
    assert (test_suspect.label, test_suspect.suggested) == ("dog", "cat")
    assert test_suspect.run_label == "cat" and test_suspect.run_probability > 0.5, test_suspect
    assert all(s.run_label is None for s in record.label_issues if s.split == "train")
    assert all(s.run_label is not None for s in record.label_issues if s.split in ("val", "test"))
    page = " ".join((out / "audit.html").read_text().split())
    assert f"the run, not trained on it: cat ({test_suspect.run_probability:.2f})" in page
    stored = json.loads((out / "audit.json").read_text())["label_issues"]
    assert {s["path"]: s.get("run_label") for s in stored}["test/dog/cat_moved.png"] == "cat"
