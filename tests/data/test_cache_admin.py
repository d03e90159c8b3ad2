"""`imgclf cache list` / `imgclf cache clear`: what the cache holds, and removing what no run has used lately."""

import errno
import os
import time

import numpy as np
import pytest
from typer.testing import CliRunner

import imgclf.data.cache as cache_mod
import imgclf.data.cache_usage as cache_usage
from conftest import make_image_folder
from imgclf.cli import app
from imgclf.data.cache import cache_key, decode_all
from imgclf.data.cache_admin import cache_contents, entries_unused_for, remove_entries
from imgclf.io import STALE_SECONDS

DAY = 86400


def _age(paths, seconds):
    for path in paths:
        os.utime(path, (time.time() - seconds,) * 2)


def _two_entries(tmp_path):
    make_image_folder(tmp_path / "cats", per_class=4)
    make_image_folder(tmp_path / "dogs", classes=("a", "b"), per_class=3, mode="L")
    cats = sorted(str(p) for p in (tmp_path / "cats").rglob("*.png"))
    dogs = sorted(str(p) for p in (tmp_path / "dogs").rglob("*.png"))
    cache = tmp_path / "cache"
    decode_all(cats, 8, "rgb", cache_dir=cache, progress=False)
    decode_all(dogs, 12, "grayscale", cache_dir=cache, progress=False)
    return cache, cats, dogs


def test_the_listing_says_what_each_entry_holds_and_clear_keeps_what_a_run_opened_lately(tmp_path, monkeypatch):
    cache, cats, dogs = _two_entries(tmp_path)
    (cache / "downloads").mkdir()
    (cache / "downloads" / "fashion.gz").write_bytes(b"x" * 5000)
    contents = cache_contents(cache)
    described = {e.key: e.what for e in contents.entries}
    cat_key, dog_key = cache_key(cats, 8, "rgb", "bilinear"), cache_key(dogs, 12, "grayscale", "bilinear")
    assert described == {cat_key: f"12 images at 8x8 rgb, from {tmp_path / 'cats'}",
                         dog_key: f"6 images at 12x12 grayscale, from {tmp_path / 'dogs'}"}
    on_disk = (cache / "downloads" / "fashion.gz").stat().st_blocks * 512  # counted as the entries are: disk blocks
    assert contents.size >= 12 * 8 * 8 * 3 + 6 * 12 * 12 and contents.kept == {"downloads": on_disk} and on_disk >= 5000

    _age(cache.iterdir(), 40 * DAY)  # both built 40 days ago ...
    decode_all(cats, 8, "rgb", cache_dir=cache, progress=False)  # ... and the cats opened again today
    result = CliRunner().invoke(app, ["cache", "clear", "--older-than", "30d", "--cache-dir", str(cache)])
    assert result.exit_code == 0, result.output
    assert "removed 1 entry unused for 30d" in result.output and "1 kept" in result.output
    assert [e.key for e in cache_contents(cache).entries] == [cat_key]
    assert sorted(p.name for p in cache.iterdir()) == sorted([f"{cat_key}.json", f"{cat_key}.npy", "downloads",
                                                               "CACHEDIR.TAG"])
    # what was cleared is decoded again when wanted, and the kept entry is opened without decoding
    calls = []
    real = cache_mod._decode_chunk
    monkeypatch.setattr(cache_mod, "_decode_chunk", lambda task: calls.append(task) or real(task))
    decode_all(cats, 8, "rgb", cache_dir=cache, progress=False)
    assert calls == []
    again = decode_all(dogs, 12, "grayscale", cache_dir=cache, progress=False)
    assert len(calls) == 1 and np.asarray(again.pixels).any()


def test_a_build_in_progress_is_left_alone_and_a_killed_ones_leftovers_go(tmp_path):
    cache, cats, _ = _two_entries(tmp_path)
    key = "0123456789abcdef01234567"
    reserved, unrecorded = cache / f".{key}.k1.npy", cache / f"{key}.npy"  # a build's temp; an array without record
    reserved.write_bytes(b"\0" * 4096)
    np.save(unrecorded, np.zeros((2, 8, 8, 3), np.uint8))  # renamed into place; killed before its record
    # a complete entry being built again (a file readable since): its builder renames this temp file when done
    rebuilding = cache / f".{cache_key(cats, 8, 'rgb', 'bilinear')}.r2.npy"
    rebuilding.write_bytes(b"\0" * 4096)
    assert key not in [e.key for e in entries_unused_for(cache_contents(cache), None)]
    CliRunner().invoke(app, ["cache", "clear", "--cache-dir", str(cache)])
    assert reserved.exists() and unrecorded.exists() and rebuilding.exists()
    assert len(cache_contents(cache).entries) == 1  # only the young build
    _age([reserved, unrecorded], STALE_SECONDS + 60)  # the build was killed: nothing will rename or record them
    [entry] = cache_contents(cache).entries
    assert not entry.complete and entry.what.startswith("incomplete")
    result = CliRunner().invoke(app, ["cache", "clear", "--cache-dir", str(cache)])
    assert result.exit_code == 0 and not reserved.exists() and not unrecorded.exists()


def test_dry_run_removes_nothing_and_a_bare_number_of_days_is_refused(tmp_path):
    cache, _, _ = _two_entries(tmp_path)
    before = sorted(cache.iterdir())
    result = CliRunner().invoke(app, ["cache", "clear", "--dry-run", "--cache-dir", str(cache)])
    assert result.exit_code == 0 and result.output.count("would remove images") == 2
    assert sorted(cache.iterdir()) == before
    result = CliRunner().invoke(app, ["cache", "clear", "--older-than", "30", "--cache-dir", str(cache)])
    assert result.exit_code == 2 and "older_than" in result.output and "'30'" in result.output
    assert "a duration with its unit such as 30d" in result.output and sorted(cache.iterdir()) == before
    listing = CliRunner().invoke(app, ["cache", "list", "--cache-dir", str(cache)], env={"COLUMNS": "250"})
    assert listing.exit_code == 0 and "2 entries" in listing.output and "12 images at 8x8 rgb" in listing.output


def test_a_file_this_user_may_not_remove_is_reported_and_its_entry_kept(tmp_path, monkeypatch):
    """A shared cache holds other users' entries: their files stay, the command says so and fails."""
    cache, cats, _ = _two_entries(tmp_path)
    cat_key = cache_key(cats, 8, "rgb", "bilinear")
    real_unlink = type(cache).unlink

    def unlink(self, *args, **kwargs):
        if self.name == f"{cat_key}.npy":
            raise PermissionError(13, "Permission denied")
        return real_unlink(self, *args, **kwargs)

    monkeypatch.setattr(type(cache), "unlink", unlink)
    removal = remove_entries(cache_contents(cache).entries)
    assert [e.key for e in removal.removed] != [] and cat_key not in [e.key for e in removal.removed]
    assert {p.name.split(".")[0] for p, _ in removal.failed} == {cat_key}
    monkeypatch.setenv("IMGCLF_CACHE", str(cache))  # the folder named by the variable: the error names it
    result = CliRunner().invoke(app, ["cache", "clear"])
    assert result.exit_code == 2 and "Permission denied" in result.output and "IMGCLF_CACHE must be" in result.output
    assert "as the user who owns them" in result.output
    # its record stays with its pixels: never an entry recorded without them, nor pixels nothing lists
    assert (cache / f"{cat_key}.json").exists() and (cache / f"{cat_key}.npy").exists()

    def busy(self, *args, **kwargs):
        raise OSError(errno.EBUSY, "Device or resource busy")

    monkeypatch.setattr(type(cache), "unlink", busy)
    result = CliRunner().invoke(app, ["cache", "clear", "--cache-dir", str(cache)])
    assert "cache_dir (--cache-dir) must be" in result.output and "Clear again once what holds them" in result.output


@pytest.mark.parametrize("text, seconds", [("30d", 30 * DAY), ("1d12h", 36 * 3600), ("12h", 12 * 3600)])
def test_older_than_reads_days_and_hours(text, seconds):
    from imgclf.data.cache_admin import parse_age

    assert parse_age(text) == seconds


def test_a_users_own_files_named_like_entries_are_never_taken_for_them(tmp_path):
    """Photos named by their database id (24 hex digits, as MongoDB's) with their annotations beside them: given
    as --cache-dir by mistake, or sitting in the cache folder, `clear` deleted them."""
    cache, cats, _ = _two_entries(tmp_path)
    ids = ["64b7f0c2e4a1d3f5a6b7c8d9", "64b7f0c2e4a1d3f5a6b7c8da", "64b7f0c2e4a1d3f5a6b7c8db", "5f8d0d55b54764421b7156c9"]
    theirs = {cache / f"{ids[0]}.png": b"\x89PNG not ours", cache / f"{ids[0]}.json": b'{"label": "cat"}',
              cache / f"{ids[1]}.npy": b"an array of theirs, not a .npy",
              cache / f"{ids[3]}.json": b'{"_id": "x", "count": null}'}  # an imgclf field, of no imgclf type
    (cache / "features").mkdir()
    theirs[cache / "features" / f"{ids[2]}.json"] = b'{"shape": [3, 4]}'
    for path, data in theirs.items():
        path.write_bytes(data)
    np.save(cache / f"{ids[2]}.npy", np.zeros((3, 4), np.float64))  # a .npy, but no array imgclf writes there
    theirs[cache / f"{ids[2]}.npy"] = (cache / f"{ids[2]}.npy").read_bytes()
    _age(theirs, 40 * DAY)
    listing = CliRunner().invoke(app, ["cache", "list", "--cache-dir", str(cache)], env={"COLUMNS": "250"})
    assert listing.exit_code == 0 and "2 entries" in listing.output and not any(i in listing.output for i in ids)
    result = CliRunner().invoke(app, ["cache", "clear", "--cache-dir", str(cache)])
    assert result.exit_code == 0 and "removed 2 entries" in result.output
    assert all(path.read_bytes() == data for path, data in theirs.items())
    # ... while a record of imgclf's that was damaged (a crash of the disk) beside its array is an entry to clear
    make_image_folder(tmp_path / "more", per_class=2)
    more = sorted(str(p) for p in (tmp_path / "more").rglob("*.png"))
    decode_all(more, 8, "rgb", cache_dir=cache, progress=False)
    (cache / f"{cache_key(more, 8, 'rgb', 'bilinear')}.json").write_text('{"version": 6, "si')
    [entry] = cache_contents(cache).entries
    assert entry.what.startswith("damaged record") and len(entry.files) == 2
    CliRunner().invoke(app, ["cache", "clear", "--cache-dir", str(cache)])
    assert cache_contents(cache).entries == [] and all(path.exists() for path in theirs)


def test_a_duplicate_memo_left_after_its_entry_was_cleared_is_listed_and_cleared(tmp_path):
    """A clear during a training took the entry's pixels; the run then wrote the entry's duplicate groups memo,
    which no listing showed, counted or cleared (490 KB left for good)."""
    cache, cats, _ = _two_entries(tmp_path)
    orphan = cache / "0123456789abcdef01234567.groups-side.npz"
    np.savez(orphan, groups=np.zeros(3, np.int64))
    described = {e.key: e.what for e in cache_contents(cache).entries}
    assert described["0123456789abcdef01234567"] == "duplicate groups of an entry removed since"
    result = CliRunner().invoke(app, ["cache", "clear", "--cache-dir", str(cache)])
    assert result.exit_code == 0 and "removed 3 entries" in result.output, result.output
    assert not orphan.exists() and cache_contents(cache).entries == []


def test_listing_makes_no_folder_and_a_missing_one_given_is_named(tmp_path, monkeypatch):
    missing = tmp_path / "typo" / "cache"
    result = CliRunner().invoke(app, ["cache", "list", "--cache-dir", str(missing)])
    assert result.exit_code == 2 and "cache_dir" in result.output and "not found" in result.output
    assert not (tmp_path / "typo").exists()
    monkeypatch.delenv("IMGCLF_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # a user who never cached anything
    result = CliRunner().invoke(app, ["cache", "clear", "--dry-run"])
    assert result.exit_code == 0 and "would remove 0 entries" in result.output
    assert not (tmp_path / "home").exists()


def test_the_age_shown_is_rounded_down_as_older_than_counts(tmp_path):
    cache, cats, dogs = _two_entries(tmp_path)
    _age(cache.iterdir(), 36 * 3600)
    listing = CliRunner().invoke(app, ["cache", "list", "--cache-dir", str(cache)], env={"COLUMNS": "250"})
    assert listing.output.count("1 d ago") == 2 and "2 d ago" not in listing.output
    kept = CliRunner().invoke(app, ["cache", "clear", "--older-than", "2d", "--dry-run", "--cache-dir", str(cache)])
    assert "would remove 0 entries" in kept.output


@pytest.mark.parametrize("text", ["6M", "90m", "3600s", "1d30m"])
def test_older_than_in_minutes_or_seconds_is_refused(text):
    """`6M` read as six minutes, and cleared all but the last few minutes' entries of someone meaning months."""
    from imgclf.data.cache_admin import parse_age
    from imgclf.errors import ImgclfError

    with pytest.raises(ImgclfError, match=rf"older_than must be days or hours such as 30d.*'{text}'"):
        parse_age(text)


def test_a_cache_grown_past_its_notice_size_says_how_to_trim_it(tmp_path, monkeypatch, caplog):
    """Nothing removes an entry by itself: a build that takes the cache past LARGE_CACHE_BYTES says so, with the
    commands; an entry opened again (no growth) says nothing."""
    import logging

    make_image_folder(tmp_path / "d", per_class=4)
    paths = sorted(str(p) for p in (tmp_path / "d").rglob("*.png"))
    with caplog.at_level(logging.WARNING, logger="imgclf"):
        decode_all(paths, 8, "rgb", cache_dir=tmp_path / "c", progress=False)
    assert not [r for r in caplog.records if "imgclf cache clear" in r.getMessage()]  # 2 KB: far below it
    monkeypatch.setattr(cache_usage, "LARGE_CACHE_BYTES", 1000)
    monkeypatch.setattr(cache_usage, "_said_large", False)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="imgclf"):
        decode_all(paths, 8, "rgb", cache_dir=tmp_path / "c", progress=False)  # opened again: no growth
        assert not caplog.records
        decode_all(paths, 12, "rgb", cache_dir=tmp_path / "c", progress=False)  # a new entry
        decode_all(paths, 10, "rgb", cache_dir=tmp_path / "c", progress=False)  # another: said once a process
    [said] = [r.getMessage() for r in caplog.records]
    assert said.startswith(f"the decoded-image cache in {tmp_path / 'c'} holds ")
    assert "`imgclf cache list`" in said and "`imgclf cache clear --older-than 30d`" in said


def test_another_users_reading_of_an_entry_counts_as_a_use(tmp_path):
    """In a shared cache only the record's owner may stamp it; another user's runs read the array, which moves its
    access time: the owner's `clear --older-than 30d` removed entries others used every day."""
    cache, cats, dogs = _two_entries(tmp_path)
    _age(cache.iterdir(), 40 * DAY)
    cat_array = cache / f"{cache_key(cats, 8, 'rgb', 'bilinear')}.npy"
    os.utime(cat_array, (time.time(), cat_array.stat().st_mtime))  # read today by someone who may not stamp it
    kept = [e.key for e in cache_contents(cache).entries if e not in entries_unused_for(cache_contents(cache), 30 * DAY)]
    assert kept == [cache_key(cats, 8, "rgb", "bilinear")]


def test_a_clear_that_takes_an_entry_just_built_leaves_its_build_the_pixels(tmp_path, monkeypatch):
    """A clear between the array's rename and the build's return (it sees a complete entry) crashed the training
    that built it: FileNotFoundError reopening the array by its name."""
    make_image_folder(tmp_path / "d", per_class=4)
    paths = sorted(str(p) for p in (tmp_path / "d").rglob("*.png"))
    cache = tmp_path / "c"

    def clear_now(folder):  # what a concurrent `imgclf cache clear` does at that moment
        remove_entries(cache_contents(folder).entries)

    monkeypatch.setattr(cache_mod, "say_if_large", clear_now)
    built = decode_all(paths, 8, "rgb", cache_dir=cache, progress=False)
    assert cache_contents(cache).entries == [] and np.asarray(built.pixels).shape == (12, 8, 8, 3)
    assert np.asarray(built.pixels).any()


def test_the_cache_folder_is_tagged_for_backup_tools_and_the_tag_is_no_entry(tmp_path):
    cache, cats, _ = _two_entries(tmp_path)
    tag = (cache / "CACHEDIR.TAG").read_text()
    assert tag.startswith("Signature: 8a477f597d28d172789f06886806bc55")  # the standard's exact first line
    assert len(cache_contents(cache).entries) == 2
    # a cache made before the tag, which only ever serves hits, gets it too
    (cache / "CACHEDIR.TAG").unlink()
    decode_all(cats, 8, "rgb", cache_dir=cache, progress=False)
    assert (cache / "CACHEDIR.TAG").exists()
    CliRunner().invoke(app, ["cache", "clear", "--cache-dir", str(cache)])
    assert (cache / "CACHEDIR.TAG").exists() and cache_contents(cache).entries == []


def test_a_folder_holding_anything_else_is_never_tagged(tmp_path):
    """`--cache-dir .` in a project folder: tagged, its data and runs fell out of every backup honouring the tag."""
    project = tmp_path / "project"
    make_image_folder(project / "data", per_class=3)
    paths = sorted(str(p) for p in (project / "data").rglob("*.png"))
    decode_all(paths, 8, "rgb", cache_dir=project, progress=False)
    decode_all(paths, 8, "rgb", cache_dir=project, progress=False)
    assert not (project / "CACHEDIR.TAG").exists() and len(cache_contents(project).entries) == 1
