"""Real local HTTP servers for evaluator tests: llama.cpp's OpenAI-compatible server, and misbehaving ones."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# llama-cpp-python's server loads models with llama.cpp's default parameters, whose extra CPU buffer types
# segfault on AMX machines (see sda_local.runtime.backend.use_extra_buffer_types).  The server has no option for it,
# so the test starts it through this shim, which applies the same choice sda-local's own backend makes.
_SERVER_SHIM = """
import runpy, sys
import llama_cpp.llama_cpp as C
from sda_local.runtime.backend import use_extra_buffer_types
_default = C.llama_model_default_params
def _params():
    p = _default()
    p.use_extra_bufts = use_extra_buffer_types()
    return p
C.llama_model_default_params = _params
sys.argv[0] = "llama_cpp.server"
runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
"""


@contextmanager
def llama_server(model_path: str, timeout: float = 120.0):
    """``python -m llama_cpp.server`` on a free 127.0.0.1 port; yields its base URL (…/v1)."""
    port = free_port()
    cmd = [sys.executable, "-c", _SERVER_SHIM, "--model", str(model_path), "--host", "127.0.0.1",
           "--port", str(port), "--n_ctx", "2048", "--verbose", "false"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ})
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.time() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited: {proc.stdout.read().decode()[-2000:]}")
            try:
                with urllib.request.urlopen(url + "/models", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.time() > deadline:
                raise RuntimeError("llama_cpp.server did not answer /v1/models in time")
            time.sleep(0.5)
        yield url
    finally:
        stop_process(proc)


def stop_process(proc: subprocess.Popen, grace: float = 20) -> None:
    """Terminate a child process; kill it if it has not exited after ``grace`` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _handler(behaviour: str):
    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):  # keep test output clean
            pass

        def do_POST(self):  # noqa: N802
            n = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(n)
            auth = self.headers.get("Authorization", "")
            if behaviour == "401":
                body = json.dumps({"error": {"message": f"Incorrect API key provided: {auth}", "type": "invalid_request_error",
                                             "code": "invalid_api_key"}}).encode()
                self.send_response(401)
                self.send_header("Content-Type", "application/json")
            elif behaviour == "garbage":
                body = f"<html><body>not an API: {auth}</body></html>".encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
            elif behaviour == "bad-score":
                body = json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": "m",
                                   "choices": [{"index": 0, "finish_reason": "stop",
                                                "message": {"role": "assistant", "content": '{"score": 250}'}}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
            else:  # "hang": never answer
                time.sleep(30)
                return
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return H


@contextmanager
def bad_server(behaviour: str):
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _handler(behaviour))
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
    finally:
        srv.shutdown()
        srv.server_close()
