"""Codex CLI for real: `codex exec` against Sluice, with the real local model of the e2e suite
(deploy/local-llm.sh's default, SmolLM2-135M-Instruct) on llama-server behind it, bridged from the Responses API through chat completions, and natively to llama-server's own
`/v1/responses` (a deployment with `supports: [..., responses]`).

Codex (npm `@openai/codex`, installed by tests/e2e/run.sh under ~/.cache/sluice/codex, or
$SLUICE_CODEX) is configured through CODEX_HOME with a custom `model_providers` entry
(`wire_api = "responses"`). Its prompt (instructions, tools) is about 4,500 tokens, so this test
runs its own llama-server with an 8k context (the model's most), and its own Sluice in front of it (the request
log in the test's folder). The `x-sluice-mode: reproducible` header makes the answer greedy.
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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import LISTEN_TIMEOUT_S, first_stdout_line, model_id, sluice_bin, start_llama, stop_pid

CODEX_TIMEOUT_S = 900


def codex_bin() -> str:
    path = Path(
        os.environ.get("SLUICE_CODEX")
        or Path.home() / ".cache" / "sluice" / "codex" / "node_modules" / ".bin" / "codex"
    )
    if not path.is_file():
        pytest.fail(f"no codex at {path}: tests/e2e/run.sh installs @openai/codex there")
    return str(path)


@pytest.fixture(scope="module")
def llama_codex(tmp_path_factory):
    server = start_llama(tmp_path_factory.mktemp("llama-codex"), "--ctx", "8192", name="llama-server-codex")
    yield server
    stop_pid(server.pid)


@contextlib.contextmanager
def running_sluice(workdir: Path, deployment_url: str, model: str, native: bool = False, extra: str = ""):
    """`sluice serve` on a free port with one deployment `local-codex` behind model `default`
    (`native`: with the `responses` capability, so Responses requests go to llama-server's own
    `/v1/responses`), `extra` deployments and models appended, its request log in `workdir`;
    yields {"base", "workdir", "config", "env"}."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "sluice.yaml"
    responses = ", responses" if native else ""
    config.write_text(
        "log:\n  path: ./sluice.db\n"
        "deployments:\n"
        f"  - name: local-codex\n    provider: openai\n    base_url: {deployment_url}\n"
        f"    model: {model}\n"
        f"    supports: [top_k, seed, tools, json_schema, parallel_tool_calls, content_parts, cache_prompt{responses}]\n"
        f"{extra}"
        "models:\n  - name: default\n    deployments: [local-codex]\n"
        "policies:\n  - name: reproducible\n    when: {header: {x-sluice-mode: reproducible}}\n"
        "    require: {hosting: local}\n    sampling: {deterministic: true, seed: 42}\n"
    )
    env = dict(os.environ, RUST_LOG="info", NO_PROXY="127.0.0.1")
    stderr = open(workdir / "sluice.stderr", "w")
    proc = subprocess.Popen(
        [sluice_bin(), "serve", "--config", str(config), "--listen", "127.0.0.1:0"],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )
    try:
        line = first_stdout_line(proc).get(timeout=LISTEN_TIMEOUT_S)
    except queue.Empty:
        line = f"(no line within {LISTEN_TIMEOUT_S} s)"
    if line is None or "listening on http://" not in line:
        proc.kill()
        proc.wait(timeout=30)
        stderr.close()
        pytest.fail(f"sluice serve did not start: {line!r}\n{(workdir / 'sluice.stderr').read_text()}")
    base = line.split("listening on ", 1)[1].split()[0]
    try:
        yield {"base": base, "workdir": workdir, "config": config, "env": env}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
        stderr.close()


@pytest.fixture(scope="module")
def sluice_codex(tmp_path_factory, llama_codex):
    with running_sluice(tmp_path_factory.mktemp("sluice-codex"), llama_codex.base_url, model_id(llama_codex)) as s:
        yield s


def run_codex(tmp_path: Path, base: str, prompt: str) -> subprocess.CompletedProcess:
    """`codex exec PROMPT` with CODEX_HOME pointing its `sluice` provider at `base`."""
    home = tmp_path / "codex-home"
    home.mkdir()
    (home / "config.toml").write_text(
        'model_provider = "sluice"\nmodel = "default"\n\n'
        "[model_providers.sluice]\n"
        'name = "Sluice"\n'
        f'base_url = "{base}/v1"\n'
        'env_key = "SLUICE_API_KEY"\n'
        'wire_api = "responses"\n'
        "request_max_retries = 0\n"
        "stream_max_retries = 0\n"
        "stream_idle_timeout_ms = 600000\n"
        'http_headers = { "x-sluice-mode" = "reproducible" }\n'
    )
    work = tmp_path / "work"
    work.mkdir()
    env = dict(os.environ, CODEX_HOME=str(home), SLUICE_API_KEY="unused", NO_PROXY="127.0.0.1")
    return subprocess.run(
        [codex_bin(), "exec", "--skip-git-repo-check", prompt],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=CODEX_TIMEOUT_S,
    )


def responses_rows(s, at_least: int = 1) -> list[dict]:
    """The log rows of Responses requests, newest first, once there are `at_least` (the
    writer batches; wait for them, at most 15 s)."""
    deadline = time.monotonic() + 15
    while True:
        out = subprocess.run(
            [sluice_bin(), "logs", "--json", "--limit", "50", "--config", str(s["config"])],
            cwd=s["workdir"],
            env=s["env"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        rows = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
        rows = [r for r in rows if r["endpoint"] == "responses"]
        if len(rows) >= at_least or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def routes(s) -> list[tuple]:
    """(endpoint, route, status) of every row, read from the log database itself."""
    with contextlib.closing(sqlite3.connect(s["workdir"] / "sluice.db")) as c:
        return c.execute("SELECT endpoint, route, status FROM requests ORDER BY seq").fetchall()


CUT = "Incomplete response returned, reason: max_output_tokens"


def assert_outcome(out: subprocess.CompletedProcess, row: dict) -> None:
    """Codex's outcome agrees with the logged answer `row`. The prompt holds the date and the
    working folder, so even greedy, what the 135M model says changes from day to day: a text
    answer (`stop`) is printed by `codex exec`, which exits 0; an answer cut at the context's
    end (`length`, sent to Codex as `response.incomplete` with reason `max_output_tokens`)
    makes Codex exit 1 with that reason (the cut itself is tested exactly with a mock below)."""
    detail = f"codex exited {out.returncode}\nstdout:\n{out.stdout}\nstderr:\n{out.stderr[-4000:]}"
    if row["finish_reason"] == "length":
        assert out.returncode == 1, detail
        assert CUT in out.stdout + out.stderr, detail
        return
    assert row["finish_reason"] == "stop", row
    assert out.returncode == 0, detail
    answer = row["response_content"].strip()
    assert answer, row
    # `codex exec` prints the model's last message on stdout.
    assert answer in out.stdout, f"answer {answer!r} not on stdout:\n{out.stdout}"


def test_codex_exec_answers_natively(tmp_path, llama_codex):
    """The same task with Responses going natively to llama-server's `/v1/responses`."""
    with running_sluice(tmp_path / "sluice", llama_codex.base_url, model_id(llama_codex), native=True) as s:
        out = run_codex(tmp_path, s["base"], "Say hello in one short sentence.")
        rows = responses_rows(s)
        assert [r["status"] for r in rows] == [200], rows
        assert {r[1] for r in routes(s) if r[0] == "responses"} == {"native"}, routes(s)
    # The policy's greedy sampling reached the backend.
    assert rows[0]["sampling"]["temperature"] == 0, rows[0]["sampling"]
    assert_outcome(out, rows[0])


def test_codex_exec_answers_through_sluice(tmp_path, sluice_codex):
    before = {r["id"] for r in responses_rows(sluice_codex, at_least=0)}
    out = run_codex(tmp_path, sluice_codex["base"], "Say hello in one short sentence.")
    rows = [r for r in responses_rows(sluice_codex, at_least=len(before) + 1) if r["id"] not in before]
    assert [(r["status"], r["deployment"]) for r in rows] == [(200, "local-codex")], rows
    assert rows[0]["sampling"]["temperature"] == 0, rows[0]["sampling"]
    assert_outcome(out, rows[0])


class ChatMock:
    """A chat-completions backend on 127.0.0.1 that streams a shell call (`exec_command`
    running `echo sluice-tool-ok`) first, then, once a tool result came back, a text naming
    it. Keeps every request body."""

    def __init__(self, cut: bool = False):
        """`cut`: answer every request with text cut short (`finish_reason: length`)."""
        self.bodies: list[dict] = []
        mock = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                mock.bodies.append(body)
                tool = [m for m in body["messages"] if m["role"] == "tool"]
                meta = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "mock"}

                def chunk(delta, finish=None):
                    return dict(meta, choices=[{"index": 0, "delta": delta, "finish_reason": finish}])

                if cut:
                    chunks = [chunk({"role": "assistant", "content": "Hello, I am"}), chunk({}, "length")]
                elif tool:
                    said = "sluice-tool-ok" if "sluice-tool-ok" in tool[-1]["content"] else "nothing"
                    chunks = [chunk({"role": "assistant", "content": "The command printed "}), chunk({"content": said + "."}), chunk({}, "stop")]
                else:
                    args = json.dumps({"cmd": "echo sluice-tool-ok"})
                    call = {"index": 0, "id": "call_echo", "type": "function", "function": {"name": "exec_command", "arguments": args}}
                    chunks = [chunk({"role": "assistant", "content": None, "tool_calls": [call]}), chunk({}, "tool_calls")]
                chunks.append(dict(meta, choices=[], usage={"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}))
                data = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("content-length", str(len(data.encode())))
                self.end_headers()
                self.wfile.write(data.encode())

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def codex_with_mock(tmp_path: Path, mock: ChatMock, prompt: str) -> tuple[subprocess.CompletedProcess, list[dict]]:
    """`codex exec PROMPT` through a Sluice whose one deployment is `mock`; Codex's outcome
    and the Responses log rows. Stops the mock."""
    try:
        with running_sluice(tmp_path / "sluice", mock.base_url, "mock") as s:
            out = run_codex(tmp_path, s["base"], prompt)
            return out, responses_rows(s)
    finally:
        mock.stop()


def test_codex_runs_a_tool_call_bridged_from_chat(tmp_path):
    """Codex executes a function call that a chat backend streamed through Sluice, sends its
    output back as a `function_call_output` item, and prints the final answer."""
    mock = ChatMock()
    out, rows = codex_with_mock(tmp_path, mock, "Run `echo sluice-tool-ok` and tell me what it printed.")
    assert out.returncode == 0, f"codex exited {out.returncode}\nstdout:\n{out.stdout}\nstderr:\n{out.stderr[-4000:]}"
    assert "The command printed sluice-tool-ok." in out.stdout, out.stdout
    assert len(mock.bodies) == 2, mock.bodies
    second = mock.bodies[1]["messages"]
    assert second[-2]["tool_calls"][0]["function"]["name"] == "exec_command"
    assert second[-1]["role"] == "tool" and second[-1]["tool_call_id"] == "call_echo"
    assert "sluice-tool-ok" in second[-1]["content"]
    assert [r["status"] for r in rows] == [200, 200], rows


def test_codex_reports_an_answer_cut_at_max_output_tokens(tmp_path):
    """A chat answer cut short (`finish_reason: length`) reaches Codex as a Responses
    `response.incomplete` with reason `max_output_tokens`: Codex names that reason and exits 1,
    and the log keeps the cut answer as a 200 with finish `length`."""
    mock = ChatMock(cut=True)
    out, rows = codex_with_mock(tmp_path, mock, "Say hello.")
    assert out.returncode == 1, f"codex exited {out.returncode}\nstdout:\n{out.stdout}\nstderr:\n{out.stderr[-4000:]}"
    assert CUT in out.stdout + out.stderr, out.stderr[-4000:]
    assert len(mock.bodies) == 1, mock.bodies
    assert [(r["status"], r["finish_reason"], r["response_content"]) for r in rows] == [(200, "length", "Hello, I am")], rows
