import numpy as np
import pytest

import imgclf.data.cache as cache_mod
from conftest import make_image_folder
from imgclf.data.cache import cache_key, decode_all


def _paths(root):
    return sorted(str(p) for p in root.rglob("*.png"))


def test_cache_is_built_once_and_reused(tmp_path, monkeypatch):
    make_image_folder(tmp_path / "d", per_class=5)
    paths = _paths(tmp_path / "d")
    first = decode_all(paths, 8, "rgb", cache_dir=tmp_path / "c")
    assert first.pixels.shape == (15, 8, 8, 3) and first.pixels.dtype == np.uint8
    from imgclf.io import default_file_mode

    # readable as the JSON beside it is, by whoever shares the cache (mkstemp made it 0600)
    assert {p.stat().st_mode & 0o777 for p in (tmp_path / "c").iterdir()} == {default_file_mode()}
    calls = []
    monkeypatch.setattr(cache_mod, "_decode_chunk", lambda task: calls.append(task) or {})
    second = decode_all(paths, 8, "rgb", cache_dir=tmp_path / "c")
    assert calls == [], "a second run must not decode again"
    np.testing.assert_array_equal(np.asarray(first.pixels), np.asarray(second.pixels))
    assert isinstance(second.pixels, np.memmap)


def test_an_entry_a_later_release_recorded_with_more_fields_is_served_as_it_is(tmp_path, monkeypatch):
    """A cache is shared by every release a user runs: one that refused a record with a field it does not know
    would call the entry damaged and decode it again over the other release's."""
    import json

    make_image_folder(tmp_path / "d", per_class=5)
    paths = _paths(tmp_path / "d")
    decode_all(paths, 8, "rgb", cache_dir=tmp_path / "c")
    record = tmp_path / "c" / f"{cache_key(paths, 8, 'rgb', 'bilinear')}.json"
    record.write_text(json.dumps({**json.loads(record.read_text()), "decoded_by": "imgclf 9"}))
    calls = []
    monkeypatch.setattr(cache_mod, "_decode_chunk", lambda task: calls.append(task) or {})
    assert decode_all(paths, 8, "rgb", cache_dir=tmp_path / "c").pixels.shape == (15, 8, 8, 3)
    assert calls == [] and "decoded_by" in record.read_text()


@pytest.mark.parametrize("damage", ["truncated array", "garbled record", "record of another shape", "other shape"])
def test_a_damaged_cache_entry_is_decoded_again_with_a_warning(damage, tmp_path, caplog):
    """A truncated .npy (a crash of the disk or of a copy) failed every later run: 'mmap length is greater than
    file size', reported as an internal error."""
    import logging

    make_image_folder(tmp_path / "d", per_class=5)
    paths = _paths(tmp_path / "d")
    first = np.array(decode_all(paths, 8, "rgb", cache_dir=tmp_path / "c").pixels)
    key = cache_key(paths, 8, "rgb", "bilinear")
    array, record = tmp_path / "c" / f"{key}.npy", tmp_path / "c" / f"{key}.json"
    if damage == "truncated array":
        array.write_bytes(array.read_bytes()[:500])
    elif damage == "garbled record":
        record.write_text('{"version": 1, "si')
    elif damage == "record of another shape":  # valid JSON, not an entry's record: failures listed, not mapped
        record.write_text('{"version": 6, "size": 8, "color": "rgb", "count": 15, "failures": ["a.png"]}')
    else:
        np.save(array, np.zeros((15, 4, 4, 3), np.uint8))
    with caplog.at_level(logging.WARNING, logger="imgclf"):
        again = decode_all(paths, 8, "rgb", cache_dir=tmp_path / "c")
    np.testing.assert_array_equal(np.asarray(again.pixels), first)
    assert any("is damaged" in r.getMessage() and "decoding the images again" in r.getMessage()
               for r in caplog.records)
    np.testing.assert_array_equal(np.asarray(decode_all(paths, 8, "rgb", cache_dir=tmp_path / "c").pixels), first)


def test_a_cache_disk_without_room_is_named_before_any_pixel_is_written(tmp_path, monkeypatch):
    """A memory-mapped write past the space left killed training with SIGBUS and no word."""
    from imgclf.errors import ImgclfError

    make_image_folder(tmp_path / "d", per_class=5)

    def full(fd, offset, length):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache_mod.os, "posix_fallocate", full, raising=False)  # macOS has none
    with pytest.raises(ImgclfError, match=r"^cache_dir must be a folder with 3 KB free for the decoded images"
                                          r".*No space left on device.*imgclf cache clear --older-than 30d.*"
                                          r"--cache-budget 0"):
        decode_all(_paths(tmp_path / "d"), 8, "rgb", cache_dir=tmp_path / "c")
    assert list((tmp_path / "c").iterdir()) == []  # no temp file left
    # the folder named by $IMGCLF_CACHE, no option given: the error names what named it (it said cache_dir)
    monkeypatch.setenv("IMGCLF_CACHE", str(tmp_path / "c"))
    with pytest.raises(ImgclfError, match=r"^IMGCLF_CACHE must be a folder with 3 KB free for the decoded images"):
        decode_all(_paths(tmp_path / "d"), 8, "rgb")


def test_a_cache_folder_that_is_a_file_is_named_where_it_came_from(tmp_path, monkeypatch):
    """It was an internal error (FileExistsError from the mkdir), for --cache-dir and $IMGCLF_CACHE alike."""
    import imgclf
    from imgclf.errors import ImgclfError

    make_image_folder(tmp_path / "d", per_class=5)
    paths = _paths(tmp_path / "d")
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(ImgclfError, match=r"^cache_dir must be a folder to write into.*a_file.*\(a file\)"):
        decode_all(paths, 8, "rgb", cache_dir=tmp_path / "a_file")
    monkeypatch.setenv("IMGCLF_CACHE", str(tmp_path / "a_file" / "below"))
    with pytest.raises(ImgclfError, match=r"^IMGCLF_CACHE must be a folder to write into.*a_file is a file"):
        decode_all(paths, 8, "rgb")
    with pytest.raises(ImgclfError, match=r"^IMGCLF_CACHE must be a folder"):
        imgclf.fit(data=str(tmp_path / "d"), model="simple_cnn", img_size=8, epochs=1, out=str(tmp_path / "run"),
                   progress=False, report=False)
    assert not (tmp_path / "run").exists()  # refused before the run's folder was kept


def test_a_cache_that_takes_no_file_serves_what_it_holds_and_names_itself_for_the_rest(tmp_path, monkeypatch):
    """A shared cache on a read-only disk was refused before its lookup; a miss there is the user's error."""
    from imgclf.errors import ImgclfError

    make_image_folder(tmp_path / "d", per_class=5)
    paths = _paths(tmp_path / "d")
    built = decode_all(paths, 8, "rgb", cache_dir=tmp_path / "c")

    def read_only(*args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(cache_mod.tempfile, "mkstemp", read_only)
    monkeypatch.setattr(cache_mod.tempfile, "mkdtemp", read_only)
    served = decode_all(paths, 8, "rgb", cache_dir=tmp_path / "c")
    np.testing.assert_array_equal(np.asarray(built.pixels), np.asarray(served.pixels))
    with pytest.raises(ImgclfError, match=r"^cache_dir must be a folder this process can write the decoded images "
                                          r"in.*not cached there yet.*Read-only file system"):
        decode_all(paths, 10, "rgb", cache_dir=tmp_path / "c")
    monkeypatch.setenv("IMGCLF_CACHE", str(tmp_path / "c"))
    with pytest.raises(ImgclfError, match=r"^IMGCLF_CACHE must be a folder this process can write the decoded"):
        decode_all(paths, 10, "rgb")


def test_cache_key_changes_with_size_mode_and_files(tmp_path):
    make_image_folder(tmp_path, per_class=2)
    paths = _paths(tmp_path)
    k = cache_key(paths, 8, "rgb", "bilinear")
    assert k != cache_key(paths, 16, "rgb", "bilinear")
    assert k != cache_key(paths, 8, "grayscale", "bilinear")
    assert k != cache_key(paths[:-1], 8, "rgb", "bilinear")
    (tmp_path / "cat" / "cat_000.png").write_bytes((tmp_path / "dog" / "dog_000.png").read_bytes())
    assert k != cache_key(paths, 8, "rgb", "bilinear"), "a changed file must invalidate the cache"


def test_a_file_replaced_at_its_size_and_time_is_decoded_again(tmp_path):
    """Unpacking a new version of a data set (tar keeps mtimes), cp -p or rsync -t replace a fixed-size BMP with
    the size and modification time unchanged: the cache served the old pixels, and evaluate scored them."""
    import os

    from PIL import Image

    for name, value in (("a", 0), ("b", 255)):
        (tmp_path / "d" / name).mkdir(parents=True)
        Image.new("RGB", (8, 8), (value, value, value)).save(tmp_path / "d" / name / "x.bmp")
    paths = sorted(str(p) for p in (tmp_path / "d").rglob("*.bmp"))
    before = decode_all(paths, 8, "rgb", cache_dir=tmp_path / "c")
    assert int(np.asarray(before.pixels)[0].max()) == 0
    stat = os.stat(paths[0])
    (tmp_path / "d" / "a" / "x.bmp").write_bytes((tmp_path / "d" / "b" / "x.bmp").read_bytes())
    os.utime(paths[0], ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert os.stat(paths[0]).st_size == stat.st_size
    after = decode_all(paths, 8, "rgb", cache_dir=tmp_path / "c")
    assert int(np.asarray(after.pixels)[0].min()) == 255


def test_an_empty_imgclf_cache_is_unset_not_the_working_folder(tmp_path, monkeypatch):
    """IMGCLF_CACHE= (set but empty) wrote the cache files into the folder the command ran in."""
    make_image_folder(tmp_path / "d", per_class=2)
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("IMGCLF_CACHE", "")
    monkeypatch.chdir(tmp_path)
    decode_all(_paths(tmp_path / "d"), 8, "rgb")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "home"]
    assert any((home / ".cache" / "imgclf").iterdir())


def test_an_empty_home_is_the_password_database_s_home_not_the_root(monkeypatch):
    """HOME= (set but empty): Path.home() read it as "/", and the cache went to /.cache/imgclf."""
    import os
    import pwd
    from pathlib import Path

    from imgclf.data.cache import default_cache_dir

    monkeypatch.setenv("HOME", "")
    monkeypatch.delenv("IMGCLF_CACHE", raising=False)
    assert default_cache_dir() == Path(pwd.getpwuid(os.getuid()).pw_dir) / ".cache" / "imgclf"


def test_parallel_build_matches_in_process(tmp_path, monkeypatch):
    make_image_folder(tmp_path / "d", per_class=40)
    paths = _paths(tmp_path / "d")
    serial = np.asarray(decode_all(paths, 8, "rgb", cache_dir=tmp_path / "a", workers=1).pixels)
    monkeypatch.setattr(cache_mod, "_IN_PROCESS_BELOW", 0)
    monkeypatch.setattr(cache_mod, "_CHUNK", 32)
    parallel = np.asarray(decode_all(paths, 8, "rgb", cache_dir=tmp_path / "b", workers=2).pixels)
    np.testing.assert_array_equal(serial, parallel)


def test_over_budget_streams_without_storing_pixels(tmp_path):
    make_image_folder(tmp_path / "d", per_class=3)
    (tmp_path / "d" / "cat" / "broken.png").write_bytes(b"not an image")
    paths = _paths(tmp_path / "d")
    decoded = decode_all(paths, 8, "rgb", cache_dir=tmp_path / "c", budget_bytes=10)
    assert decoded.streamed and decoded.pixels is None
    assert list(decoded.failures.values()) == ["not a recognised image format"]
    assert not list((tmp_path / "c").glob("*.npy"))


def test_cache_build_progress_when_redirected_is_a_few_lines_with_the_counts(tmp_path, monkeypatch, capsys):
    """A long build (issue 26: 10k images decoded in silence) shows its progress; a log gets a handful of plain
    lines, however many chunks, never one per image."""
    import imgclf.progress as progress_mod

    monkeypatch.setattr(progress_mod, "SHOW_AFTER_SECONDS", 0.0)  # every build counts as long
    monkeypatch.setattr(cache_mod, "_CHUNK", 4)  # many chunks, so many updates
    make_image_folder(tmp_path / "d", per_class=20)
    (tmp_path / "d" / "cat" / "broken.png").write_bytes(b"not an image")
    paths = _paths(tmp_path / "d")
    decode_all(paths, 8, "rgb", cache_dir=tmp_path / "c", workers=1)
    lines = capsys.readouterr().err.splitlines()
    assert 2 <= len(lines) <= 5, lines
    assert all(line.startswith("decoding 61 images (8x8 rgb)") for line in lines), lines
    assert "61 images in" in lines[-1] and lines[-1].endswith("1 unreadable")
    decode_all(paths, 8, "rgb", cache_dir=tmp_path / "c", workers=1)
    assert capsys.readouterr().err == "", "opening a built cache is not a step to report"
    decode_all(paths, 8, "rgb", cache_dir=tmp_path / "q", workers=1, progress=False)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("guarded", [False, True])
def test_a_script_calling_imgclf_at_top_level_gets_the_guard_named_not_a_broken_pool(tmp_path, guarded):
    """Decode workers are spawned, and each imports the script that started it: unguarded top-level calls run
    again inside them, and they die. The error names num_workers and the `__main__` guard; guarded, it works."""
    import subprocess
    import sys
    from textwrap import indent

    from PIL import Image

    for i in range(4):
        Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(tmp_path / f"{i}.png")
    call = (f"import imgclf.data.cache as cache\ncache._IN_PROCESS_BELOW = 0\n"
            f"decoded = cache.decode_all([str(p) for p in sorted(pathlib.Path({str(tmp_path)!r}).glob('*.png'))], 8, "
            f"'rgb', cache_dir={str(tmp_path / 'cache')!r}, workers=2, progress=False)\nprint('decoded', "
            f"len(decoded.paths))\n")
    body = f"if __name__ == '__main__':\n{indent(call, '    ')}" if guarded else call
    script = tmp_path / "train_script.py"
    script.write_text("import pathlib\n" + body)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    if guarded:
        assert done.returncode == 0 and "decoded 4" in done.stdout, done.stderr
    else:
        assert done.returncode == 1
        last = done.stderr.strip().splitlines()[-1]
        assert "num_workers must be 1, or more with a script whose imgclf calls sit under" in last
        assert "__name__" in last and "train_script.py" in last


def test_a_default_run_folder_is_found_past_a_dangling_link_and_a_file_in_the_way_is_named(tmp_path):
    import os

    from imgclf.errors import ImgclfError
    from imgclf.io import make_free_dir

    (tmp_path / "runs").mkdir()
    os.symlink(tmp_path / "nowhere", tmp_path / "runs" / "m-1")  # the name is taken, by a link to nothing
    assert make_free_dir(tmp_path / "runs", "m") == tmp_path / "runs" / "m-2"
    (tmp_path / "file").write_text("")
    with pytest.raises(ImgclfError, match="out must be a folder to write into"):
        make_free_dir(tmp_path / "file", "m")


def test_a_file_skipped_for_want_of_permission_is_read_once_it_can_be(tmp_path, monkeypatch):
    """A chmod changes neither a file's size nor its time, which key the cache: the fixed file stayed skipped,
    and one user's failure was served to another who could read it, in a shared cache."""
    from imgclf.data.decode import PERMISSION_DENIED, DecodeError

    make_image_folder(tmp_path / "d", per_class=3)
    paths = _paths(tmp_path / "d")
    real = cache_mod.open_image

    def denied(path, *args, **kwargs):
        if path == paths[0]:
            raise DecodeError(PERMISSION_DENIED)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(cache_mod, "open_image", denied)
    assert decode_all(paths, 8, "rgb", cache_dir=tmp_path / "c").failures == {0: PERMISSION_DENIED}
    monkeypatch.setattr(cache_mod, "open_image", real)  # chmod a+r: readable now
    assert decode_all(paths, 8, "rgb", cache_dir=tmp_path / "c").failures == {}


def test_a_jpeg_with_an_embedded_preview_is_scaled_down_while_decoding_like_any_jpeg(tmp_path, monkeypatch):
    """Pillow opens a JPEG carrying an MPF index (a camera's preview) as "MPO": decoded at full size (13x slower at
    12 megapixels) and, above the pixel limit, refused as a bomb where the same photo as a plain JPEG was read."""
    from PIL import Image

    from imgclf.data.decode import open_image

    pixels = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "plain.jpg", quality=90)
    Image.fromarray(pixels).save(tmp_path / "preview.jpg", format="MPO", save_all=True, quality=90,
                                 append_images=[Image.fromarray(pixels[:16, :16])])
    assert Image.open(tmp_path / "preview.jpg").format == "MPO"
    plain, preview = (open_image(str(tmp_path / name), 32, "rgb") for name in ("plain.jpg", "preview.jpg"))
    assert np.array_equal(plain, preview)  # drafted alike: libjpeg's 1/8 scale, then resized
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 200_000)  # 307,200 pixels: a bomb whole, not at 1/2
    assert open_image(str(tmp_path / "preview.jpg"), 32, "rgb").shape == (32, 32, 3)
