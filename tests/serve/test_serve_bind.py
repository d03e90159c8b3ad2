"""`imgclf serve` with a host it cannot listen on, or a port already taken, fails with the usual one-line error
naming the option, before the model loads (not uvicorn's log lines and exit code 3)."""

from __future__ import annotations

import socket

from typer.testing import CliRunner

from imgclf.cli import app


def test_a_port_in_use_and_an_unknown_host_are_refused_naming_the_option(tiny_run):
    runner = CliRunner()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = runner.invoke(app, ["serve", str(tiny_run), "--host", "127.0.0.1", "--port", str(port)])
        assert result.exit_code == 2, result.output
        assert f"port must be a free port (0: any free one). Received: port={port} (in use on 127.0.0.1)" in \
            " ".join(result.output.split())
    result = runner.invoke(app, ["serve", str(tiny_run), "--host", "999.1.1.1", "--port", "0"])
    assert result.exit_code == 2, result.output
    assert "host must be a name or address of this machine" in " ".join(result.output.split())
    assert "host='999.1.1.1'" in result.output
