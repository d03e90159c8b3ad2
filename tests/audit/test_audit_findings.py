"""`imgclf.audit.audit` on a folder with planted problems: each detector finds what was planted (issue 21 item 1).

Every test names the planted files it expects and fails when its detector is broken: the duplicate search (a
perturbation kind that is not found), the group flags, the confident-learning rule, the outlier score and the
pixel checks.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from jsonschema import Draft202012Validator

from audit_fixtures import NEAR_KINDS, audited, planted  # noqa: F401 (fixtures)
from imgclf.records import AuditRecord, json_schemas

ROOT = Path(__file__).resolve().parents[2]


def _group_of(record, path):
    for group in record.duplicate_groups:
        if path in [m.path for m in group.members]:
            return group
    return None


@pytest.mark.parametrize("kind", ["exact", *NEAR_KINDS])
def test_each_planted_copy_is_grouped_with_its_original_and_flagged_as_leakage(audited, kind):
    planted, result = audited
    original, copy = planted.copies[kind]
    group = _group_of(result.record, copy)
    assert group is not None, f"{kind} copy {copy} is in no duplicate group"
    assert original in [m.path for m in group.members]
    assert "leakage" in group.flags and len(group.splits) >= 2
    assert group.kind == ("exact" if kind == "exact" else "near")


def test_the_same_picture_under_two_classes_is_conflicting_labels(audited):
    planted, result = audited
    original, copy = planted.conflict
    group = _group_of(result.record, copy)
    assert group is not None and original in [m.path for m in group.members]
    assert "conflicting_labels" in group.flags and len(group.classes) == 2
    assert result.record.counts.conflicting_label_groups >= 1


def test_leakage_counts_name_the_splits_and_count_the_leaked_images(audited):
    planted, result = audited
    record = result.record
    assert record.leakage.get("train-test", 0) >= 8 and record.leakage.get("train-val", 0) >= 1
    before = {"val": {"train"}, "test": {"train", "val"}}
    leaked = [m for g in record.duplicate_groups if "leakage" in g.flags for m in g.members
              if before.get(m.split, set()) & set(g.splits)]
    assert record.counts.leaked_images == len(leaked) >= len(planted.copies)


def test_planted_label_flips_are_flagged_and_ranked_first(audited):
    planted, result = audited
    ranked = [issue.path for issue in result.record.label_issues]
    assert set(planted.flips) <= set(ranked), f"not flagged: {sorted(set(planted.flips) - set(ranked))}"
    # above the last planted flip: the picture under two classes and at most two clean images; the noise and
    # black pictures look like no class: they are pixel issues, never "looks like 5 (1.00)"
    assert not {planted.noise, planted.black} & set(ranked)
    others = {planted.conflict[1]}
    above = ranked[:max(ranked.index(f) for f in planted.flips)]
    assert len([p for p in above if p not in others and p not in planted.flips]) <= 2, ranked[:12]
    confidences = [i.self_confidence for i in result.record.label_issues]
    assert confidences == sorted(confidences)  # lowest probability of the given label first
    assert set(ranked[:3]) <= set(planted.flips) | others
    issue = next(i for i in result.record.label_issues if i.path == planted.flips[0])
    assert issue.suggested != issue.label and issue.suggested_probability > issue.self_confidence


def test_noise_picture_and_black_picture_fail_the_pixel_checks_and_are_listed_there_only(audited):
    """Each listed once, under what is wrong with its pixels: counted as outliers too, 4 distinct images read as
    3 outliers and 3 near-empty ones."""
    planted, result = audited
    record = result.record
    assert not {planted.noise, planted.black} & {o.path for o in record.outliers}
    black = [p for p in record.pixel_issues if p.path == planted.black]
    assert black and set(black[0].issues) == {"dark", "low_variance", "near_empty"}
    # static: its neighbouring pixels are uncorrelated (an outlier here, on the planted set's few clean images,
    # but on Fashion-MNIST-sized data noise scored under the outlier z; the pixel check catches it either way)
    noise = [p for p in record.pixel_issues if p.path == planted.noise]
    assert noise and noise[0].issues == ["noise_like"]
    assert {p.path for p in record.pixel_issues} == {planted.black, planted.noise}  # no clean image


def test_the_noise_check_tells_static_from_pictures():
    """Static at the decode size is flagged, RGB too; pictures with noise on them, 1-px diagonal line art, a dot
    grid (strongly structured, negatively correlated) and a flat frame with a little sensor noise are not."""
    from imgclf.audit.outliers import pixel_stats, quality_issues

    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (20, 28, 28, 3), dtype=np.uint8)
    ramp = np.tile(np.linspace(0, 255, 28, dtype=np.float32), (28, 1))
    pictures = [np.clip(ramp * (1 + k / 50) + rng.normal(0, 20, (28, 28)), 0, 255) for k in range(10)]
    lines = np.full((28, 28), 255.0)
    for offset in range(-28, 28, 4):
        for i in range(28):
            if 0 <= i + offset < 28:
                lines[i, i + offset] = 0
    dots = np.full((28, 28), 255.0)
    dots[::2, ::2] = 0
    sensor = 128 + rng.normal(0, 6, (28, 28))
    grey = np.stack([*pictures, lines, dots, sensor]).astype(np.uint8)
    images = np.concatenate([noise, np.repeat(grey[..., None], 3, axis=-1)])
    flagged = {i for i, why in quality_issues(pixel_stats(images)) if "noise_like" in why}
    assert flagged == set(range(20))


def test_broken_file_is_skipped_and_listed(audited):
    planted, result = audited
    # relative to the data folder, as every other path of the audit, wherever the audit was run from
    assert [(s.path, s.reason) for s in result.record.skipped] == [(planted.broken, "not a recognised image format")]
    assert result.record.counts.skipped == len(result.record.skipped)


def test_audit_json_matches_its_record_and_schema(audited):
    _, result = audited
    raw = json.loads(result.json_path.read_text())
    AuditRecord.model_validate(raw)
    Draft202012Validator(json_schemas()["audit.json"]).validate(raw)
    assert raw["schema_version"] == 1 and raw["settings"]["run"] is None and raw["features"]["source"] == "pixels"
    with pytest.raises(ValueError, match="surprise"):
        AuditRecord.model_validate({**raw, "surprise": 1})


def test_group_ids_keep_every_duplicate_group_together(audited):
    _, result = audited
    ids = result.duplicates.group_ids()
    assert len(ids) == len(result.images)
    for g, group in enumerate(result.duplicates.groups):
        assert len(set(ids[group.members].tolist())) == 1
    alone = result.duplicates.group_of < 0
    assert len(set(ids[alone].tolist())) == int(alone.sum())  # singletons never share an id


def test_static_enlarged_to_the_decode_size_is_still_found(tmp_path):
    """Checked as decoded, 16 px static enlarged to 32 px was smooth and passed (a run at 32 px audited its own
    28 px images: none of the 4 planted noise files flagged)."""
    from PIL import Image

    from conftest import make_image_folder
    from imgclf.audit import audit

    data = make_image_folder(tmp_path / "d", per_class=12, size=16)
    noise = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(noise).save(data / "cat" / "static.png")
    record = audit(data, img_size=32, out=tmp_path / "audit", page=False).record
    assert record.settings.img_size == 32
    assert [(p.path, p.issues) for p in record.pixel_issues] == [("cat/static.png", ["noise_like"])]


def test_an_outlier_is_not_also_a_likely_label_error(audited, tmp_path, monkeypatch):
    """An image far from every class (a rainbow gradient among textures) came first among the label errors,
    "labelled rings (0.00), looks like checks (1.00)": it is like no class, and listed as an outlier only."""
    from imgclf.audit import audit, pipeline
    from imgclf.audit.outliers import Outliers

    planted, result = audited
    first = result.record.label_issues[0].path  # the top suspect, made far from every class here
    found, real = [], pipeline.find_label_issues_among

    def seen(*args, **kwargs):
        found.append(real(*args, **kwargs))
        return found[-1]

    def first_suspect_is_far(distance, residual):
        out = real_outliers(distance, residual)
        flagged = out.flagged.copy()
        top = int(found[-1][0].ranking[0])
        flagged[top] = True
        score = out.score.copy()
        score[top] = float(score.max()) + 10
        return Outliers(score, out.distance_z, out.residual_z, flagged, np.flatnonzero(flagged))

    real_outliers = pipeline.feature_outliers
    monkeypatch.setattr(pipeline, "find_label_issues_among", seen)
    monkeypatch.setattr(pipeline, "feature_outliers", first_suspect_is_far)
    record = audit(planted.root, out=tmp_path / "a").record
    assert first in {o.path for o in record.outliers}
    assert first not in {i.path for i in record.label_issues}
    assert [i.path for i in record.label_issues] == [i.path for i in result.record.label_issues][1:]


def test_the_page_says_when_it_shows_only_the_first_pixel_issues(audited, monkeypatch, tmp_path):
    """The console, audit.json and the summary said 35 pixel issues, the page showed 24 cards and no word of the
    rest, where its duplicate and label-error sections say "the first N of M are shown"."""
    import imgclf.audit.report as report

    _, result = audited
    assert len(result.record.pixel_issues) == 2
    monkeypatch.setattr(report, "SHOWN_OUTLIERS", 1)
    from dataclasses import replace

    page = " ".join(report.write_audit_page(replace(result, folder=tmp_path)).read_text().split())
    assert "The first 1 of 2 are shown; all are in audit.json." in page
    # the method line states every rule that accepts a near-duplicate pair, the margin rule too
    from imgclf.duplicates.verify import DETAIL_THRESHOLD, DISTINCT_DETAIL, DISTINCT_MARGIN, SAME_PIXELS

    assert (f"≥ {DETAIL_THRESHOLD} (≥ {DISTINCT_DETAIL} for a pair whose correlation stands {DISTINCT_MARGIN} or "
            f"more above either image's next closest), or plain correlation ≥ {SAME_PIXELS}") in page


def test_a_label_error_list_from_a_model_at_chance_is_cautioned(audited, tmp_path):
    """Two classes of five images: 2 "likely label errors" at 50 % out-of-fold accuracy, a list of noise shown as
    findings. Near the largest class's share the list now carries a caution; on learnable data it does not."""
    from PIL import Image

    from imgclf.audit import audit
    from imgclf.audit.label_errors import near_chance

    assert "near chance" in near_chance(0.55, np.array([0] * 5 + [1] * 5))
    assert near_chance(0.75, np.array([0] * 5 + [1] * 5)) == ""
    assert "near chance" in near_chance(0.85, np.array([0] * 8 + [1] * 2))  # 80 % by saying the larger class
    # features that were a run's already: not told to pass --run
    with_run = near_chance(0.55, np.array([0] * 5 + [1] * 5), with_run=True)
    assert "--run" not in with_run and "the run's features do not tell these classes apart" in with_run
    _, result = audited
    assert result.record.features.accuracy > 0.8 and "near chance" not in result.record.features.note
    rng = np.random.default_rng(0)
    for cls in ("a", "b", "c"):  # the same kind of picture under every label: nothing to learn
        (tmp_path / "d" / cls).mkdir(parents=True)
        for k in range(10):
            Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8)).save(tmp_path / "d" / cls / f"{k}.png")
    record = audit(tmp_path / "d", out=tmp_path / "a").record
    assert "near chance" in record.features.note and record.features.near_chance
    assert not result.record.features.near_chance
    page = " ".join((tmp_path / "a" / "audit.html").read_text().split())
    # the summary's card and line, not only the section's grey note: the card was highlighted as a finding
    assert "unreliable: judged by a model near chance" in page
    assert record.counts.label_issues  # the planted data leaves some listed
    assert "are listed as likely label errors, but the quick model that judged them scored near chance" in page
    assert "look like another class than their label" not in page


def test_a_copy_under_another_class_is_the_label_error_not_its_correctly_labelled_original(tmp_path):
    """red/001.png copied into green/: out-of-fold, the copy sat in the folds fitted for the original, which it
    handed its label: red/001.png was listed as 'labelled red (0.00), looks like green (1.00)'. Duplicates are
    held out together now, so each is judged by the other images of its look."""
    from PIL import Image

    from imgclf.audit import audit

    rng = np.random.default_rng(0)
    for c, channel in (("red", 0), ("green", 1), ("blue", 2)):
        (tmp_path / "d" / c).mkdir(parents=True)
        for i in range(12):
            pixels = rng.integers(0, 60, (16, 16, 3)).astype(np.uint8)
            pixels[..., channel] = rng.integers(190, 255, (16, 16))
            Image.fromarray(pixels).save(tmp_path / "d" / c / f"{i:03d}.png")
    (tmp_path / "d" / "green" / "copy-of-red-001.png").write_bytes((tmp_path / "d" / "red" / "001.png").read_bytes())
    record = audit(tmp_path / "d", out=tmp_path / "a", page=False).record
    flagged = {issue.path: issue.suggested for issue in record.label_issues}
    assert flagged.get("green/copy-of-red-001.png") == "red" and "red/001.png" not in flagged, flagged


def test_numpy_whole_numbers_are_taken_and_recorded_as_ints(tmp_path):
    """A notebook's np.int64 (a value from an array or a sweep) was refused as 'not a whole number' for folds, seed
    and img_size, where train and predict take it; taken, it must reach audit.json as a plain int."""
    from conftest import make_image_folder
    from imgclf.audit import audit
    from imgclf.errors import ImgclfError

    data = make_image_folder(tmp_path / "d", per_class=12, size=16)
    out = tmp_path / "audit"
    record = audit(data, img_size=np.int64(16), folds=np.int32(3), seed=np.uint8(1), out=out, page=False).record
    assert (record.settings.img_size, record.settings.folds, record.settings.seed) == (16, 3, 1)
    settings = json.loads((out / "audit.json").read_text())["settings"]
    assert [type(settings[k]) for k in ("img_size", "folds", "seed")] == [int, int, int]
    with pytest.raises(ImgclfError, match=r"^folds must be a whole number >= 2\. Received: folds=True$"):
        audit(data, folds=True, out=tmp_path / "other", page=False)
