"""Codex CLI for real: `codex exec` against Sluice, with the real local model of the e2e suite
(deploy/local-llm.sh's default, SmolLM2-135M-Instruct) on llama-server behind it, bridged from the Responses API through chat completions.

Codex (npm `@openai/codex`, installed by tests/e2e/run.sh under ~/.cache/sluice/codex, or
$SLUICE_CODEX) is configured through CODEX_HOME with a custom `model_providers` entry
(`wire_api = "responses"`). Its prompt (instructions, tools) is about 4,500 tokens, so this test
runs its own llama-server with an 8k context (the model's most), and its own Sluice in front of it (the request
log in the test's folder). The `x-sluice-mode: reproducible` header makes the answer greedy.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import time
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


@pytest.fixture(scope="module")
def sluice_codex(tmp_path_factory, llama_codex):
    workdir = tmp_path_factory.mktemp("sluice-codex")
    config = workdir / "sluice.yaml"
    config.write_text(
        "log:\n  path: ./sluice.db\n"
        "deployments:\n"
        f"  - name: local-codex\n    provider: openai\n    base_url: {llama_codex.base_url}\n"
        f"    model: {model_id(llama_codex)}\n"
        "    supports: [top_k, seed, tools, json_schema, parallel_tool_calls, content_parts, cache_prompt]\n"
        "models:\n  - name: default\n    deployments: [local-codex]\n"
        "policies:\n  - name: reproducible\n    when: {header: {x-sluice-mode: reproducible}}\n"
        "    require: {hosting: local}\n"
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
    yield {"base": base, "workdir": workdir, "config": config, "env": env}
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    stderr.close()


def responses_rows(s) -> list[dict]:
    """The log rows of Responses requests (the writer batches; wait for them, at most 15 s)."""
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
        if rows or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def test_codex_exec_answers_through_sluice(tmp_path, sluice_codex):
    home = tmp_path / "codex-home"
    home.mkdir()
    (home / "config.toml").write_text(
        'model_provider = "sluice"\nmodel = "default"\n\n'
        "[model_providers.sluice]\n"
        'name = "Sluice"\n'
        f'base_url = "{sluice_codex["base"]}/v1"\n'
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
    out = subprocess.run(
        [codex_bin(), "exec", "--skip-git-repo-check", "Say hello in one short sentence."],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=CODEX_TIMEOUT_S,
    )
    assert out.returncode == 0, f"codex exited {out.returncode}\nstdout:\n{out.stdout}\nstderr:\n{out.stderr[-4000:]}"
    rows = responses_rows(sluice_codex)
    assert rows, "no log row for Codex's Responses request"
    assert all(r["status"] == 200 and r["deployment"] == "local-codex" for r in rows), rows
    answer = rows[0]["response_content"].strip()
    assert answer, rows[0]
    # `codex exec` prints the model's last message on stdout.
    assert answer in out.stdout, f"answer {answer!r} not on stdout:\n{out.stdout}"
