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
    # a young temp file may be another process's write in progress: left alone (deleting it crashed that
    # process at its rename, 147 of 300 writes when two processes wrote one JSON file)
    atomic_write_bytes(target, b"next")
    assert all(p.exists() for p in leftovers) and target.read_bytes() == b"next"
    import os
    import time

    from imgclf.io import STALE_SECONDS

    old = time.time() - STALE_SECONDS - 60
    for p in leftovers:
        os.utime(p, (old, old))
    atomic_write_bytes(target, b"again")  # the next write of the same file removes what the killed one left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"] and target.read_bytes() == b"again"


def test_two_processes_writing_one_file_never_fail(tmp_path):
    """Each write deleted every temp file beside its target as a killed write's leftover, so another process's
    write in progress failed at its rename (two trainings building one cache entry crashed 23 times in 120)."""
    script = textwrap.dedent(f"""
        import imgclf.io as io_mod
        for i in range(200):
            io_mod.write_json({str(tmp_path / "shared.json")!r}, {{"i": i, "pad": "x" * 20000}})
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True) for _ in range(2)]
    errors = [p.communicate()[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    assert not list(tmp_path.glob(".*.tmp"))


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


def test_a_full_disk_is_named_by_the_file_being_written(tmp_path, monkeypatch):
    """write() raises ENOSPC without a file name: the message said "the disk written to", and a user with the
    cache and the run on two disks could not tell which to clear."""
    import errno
    import os

    from imgclf.errors import disk_problem

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    target = tmp_path / "runs" / "r" / "metrics.json"
    try:
        atomic_write_bytes(target, b"{}")
    except OSError as exc:
        said = disk_problem(exc)
    assert said.startswith(f"the disk holding {target.parent} has no space left")
    assert not list(target.parent.iterdir())  # nor any half-written file


def test_a_file_that_cannot_be_replaced_is_the_users_one_line(tmp_path, monkeypatch, tiny_run, image_folder):
    """predict -o over another user's file in /tmp (or an immutable one): written whole, the rename was refused,
    and that read 'internal error: PermissionError ... please report it'."""
    import errno
    import os

    from typer.testing import CliRunner

    from imgclf.cli import app

    real = os.replace

    def refused(src, dst, *args, **kwargs):
        if str(dst).endswith("theirs.csv"):
            raise PermissionError(errno.EPERM, "Operation not permitted", str(src), None, str(dst))
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", refused)
    target = tmp_path / "theirs.csv"
    image = next((image_folder / "cat").iterdir())
    result = CliRunner().invoke(app, ["predict", str(tiny_run), str(image), "-o", str(target)])
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {target} cannot be replaced (Operation not permitted): it belongs to "
                               "another user"), lines[0]
    assert not target.exists() and not list(tmp_path.iterdir())  # nor the temp file


def test_a_long_legal_file_name_is_written(tmp_path):
    """A name of 242 bytes or more, legal (255 is the limit), was refused: its temp name went past the limit."""
    target = tmp_path / ("p" * 250 + ".csv")
    atomic_write_bytes(target, b"a")
    atomic_write_bytes(target, b"b")
    assert target.read_bytes() == b"b" and [p.name for p in tmp_path.iterdir()] == [target.name]


def test_weights_written_to_a_full_disk_name_their_folder(tmp_path, monkeypatch):
    """safetensors' error quotes the OS's ("os error 28") and names no file."""
    import torch

    import imgclf.train.callbacks as callbacks
    from imgclf.errors import disk_problem

    def full(state, name):
        raise RuntimeError("Error while serializing: IoError(Os { code: 28, kind: StorageFull }) os error 28")

    monkeypatch.setattr(callbacks, "save_file", full)
    target = tmp_path / "run" / "model.safetensors"
    try:
        callbacks.save_weights(torch.nn.Linear(2, 2), target)
    except OSError as exc:
        said = disk_problem(exc)
    assert said.startswith(f"the disk holding {target.parent} has no space left")
    assert not list(target.parent.iterdir())
