"""kill -9 during a write leaves the previous file intact (temp file + rename everywhere)."""

import subprocess
import sys
import textwrap

from imgclf.io import atomic_write_bytes


def test_killed_writer_leaves_previous_file(tmp_path):
    target = tmp_path / "last.ckpt"
    atomic_write_bytes(target, b"previous")
    script = textwrap.dedent(f"""
        import os, sys
        import imgclf.io as io_mod
        real_fsync = os.fsync
        def slow_fsync(fd):
            sys.stdout.write("writing\\n"); sys.stdout.flush()
            import time; time.sleep(30)
        os.fsync = slow_fsync
        io_mod.atomic_write_bytes({str(target)!r}, b"x" * 50_000_000)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    proc.kill()
    proc.wait()
    assert target.read_bytes() == b"previous"
    leftovers = [p for p in tmp_path.iterdir() if p.name != "last.ckpt"]
    assert leftovers and all(p.name.startswith(".last.ckpt.") for p in leftovers)  # temp, never the real name
    atomic_write_bytes(target, b"next")  # the next write of the same file removes what the killed one left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"] and target.read_bytes() == b"next"


def test_checkpoint_io_is_atomic(tmp_path, monkeypatch):
    import os

    from imgclf.train.callbacks import AtomicCheckpointIO

    target = tmp_path / "last.ckpt"
    target.write_bytes(b"previous")

    def boom(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    try:
        AtomicCheckpointIO().save_checkpoint({"a": 1}, target)
    except OSError:
        pass
    assert target.read_bytes() == b"previous"
    assert list(tmp_path.iterdir()) == [target], "the temp file is cleaned up"


def test_resume_removes_temp_files_of_an_interrupted_write(tiny_run, tmp_path):
    import shutil

    import imgclf

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    left = [run / ".report.html.k3j.tmp", run / "checkpoints" / ".last.ckpt.x9q.tmp", run / ".history.csv.a1.tmp"]
    for p in left:
        p.write_bytes(b"half a file")
    imgclf.fit(resume=str(run), epochs=6, report=False)
    assert not [p for p in left if p.exists()]
    assert not list(run.rglob("*.tmp"))


def test_run_files_get_the_umask_permissions(tiny_run):
    import os

    mask = os.umask(0)
    os.umask(mask)
    files = [p for p in tiny_run.rglob("*") if p.is_file()]
    assert any(p.name == "model.safetensors" for p in files) and any(p.suffix == ".ckpt" for p in files)
    modes = {p.relative_to(tiny_run).as_posix(): oct(p.stat().st_mode & 0o777) for p in files}
    assert set(modes.values()) == {oct(0o666 & ~mask)}, modes
