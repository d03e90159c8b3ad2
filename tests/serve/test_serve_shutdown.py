"""A request still in progress when `imgclf serve`'s graceful shutdown runs out is answered as the API answers
everything else: JSON, here 503 with Retry-After. uvicorn's own answer was a plain-text 500, or, once it had
cancelled the request, nothing at all: the process ended first."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_upload_cut_off_by_sigterm_gets_a_json_503(tiny_run):
    port = _free_port()
    code = ("import imgclf.serve.app as a; a.GRACEFUL_SECONDS = 1; "  # the grace of 10 s, shortened for the test
            f"a.serve({str(tiny_run)!r}, port={port}, threads=1, allow_origins=['http://app.example'])")
    server = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              env={**os.environ, "HF_HUB_OFFLINE": "1"})
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                client = socket.create_connection(("127.0.0.1", port), timeout=20)
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, server.stdout.read().decode()
                time.sleep(0.2)
        boundary = "xyz"
        head = (f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n"
                "Origin: http://app.example\r\nContent-Length: 1000\r\n\r\n")
        part = f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="a.png"\r\n\r\n\x89PNG'
        client.sendall((head + part).encode("latin-1"))  # ... and the rest never comes
        time.sleep(0.5)
        server.send_signal(signal.SIGTERM)
        answer = b""
        while chunk := client.recv(65536):
            answer += chunk
        client.close()
        log = server.communicate(timeout=30)[0].decode()
    finally:
        server.kill()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0].startswith(b"HTTP/1.1 503"), (answer, log)
    assert b"content-type: application/json" in head.lower() and b"retry-after: 1" in head.lower(), head
    # a page of an allowed origin reads it as it reads the API's other answers (CORS headers on it too)
    assert b"access-control-allow-origin: http://app.example" in head.lower(), head
    said = json.loads(body)
    assert said["status"] == 503 and "shutting down" in said["error"], said
    assert "Traceback" not in log, log  # answered, not logged as the app's error
