"""kill -9 during a write leaves the previous file intact (temp file + rename everywhere)."""

import subprocess
import sys
import textwrap
import time

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
    assert all(p.name.startswith(".last.ckpt.") for p in leftovers)  # a temp file, never the real name


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
