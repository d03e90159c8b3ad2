"""`imgclf cache list` / `imgclf cache clear`: what the cache holds, and removing what no run has used lately."""

import os
import time

import numpy as np
import pytest
from typer.testing import CliRunner

import imgclf.data.cache as cache_mod
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
    assert contents.size >= 12 * 8 * 8 * 3 + 6 * 12 * 12 and contents.kept == {"downloads": 5000}

    _age(cache.iterdir(), 40 * DAY)  # both built 40 days ago ...
    decode_all(cats, 8, "rgb", cache_dir=cache, progress=False)  # ... and the cats opened again today
    result = CliRunner().invoke(app, ["cache", "clear", "--older-than", "30d", "--cache-dir", str(cache)])
    assert result.exit_code == 0, result.output
    assert "removed 1 entries unused for 30d" in result.output and "1 kept" in result.output
    assert [e.key for e in cache_contents(cache).entries] == [cat_key]
    assert sorted(p.name for p in cache.iterdir()) == sorted([f"{cat_key}.json", f"{cat_key}.npy", "downloads"])
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
    for path in (reserved, unrecorded):
        path.write_bytes(b"\0" * 4096)
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
    result = CliRunner().invoke(app, ["cache", "clear", "--cache-dir", str(cache)])
    assert result.exit_code == 2 and "Permission denied" in result.output and "cache_dir" in result.output
    # its record stays with its pixels: never an entry recorded without them, nor pixels nothing lists
    assert (cache / f"{cat_key}.json").exists() and (cache / f"{cat_key}.npy").exists()


@pytest.mark.parametrize("text, seconds", [("30d", 30 * DAY), ("1d12h", 36 * 3600), ("90m", 5400)])
def test_older_than_reads_days_hours_and_minutes(text, seconds):
    from imgclf.data.cache_admin import parse_age

    assert parse_age(text) == seconds
