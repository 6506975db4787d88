"""Claude Code for real: the `claude` CLI (npm `@anthropic-ai/claude-code`, installed by
tests/e2e/run.sh under ~/.cache/sluice/claude, or $SLUICE_CLAUDE) with ANTHROPIC_BASE_URL
pointing at Sluice, answered by the real local model on llama-server through the Messages →
chat bridge (`--model smollm2-local` names the local deployment directly).

Claude Code sends `HEAD /`, then `POST /v1/messages?beta=true` with `stream: true`; when it
judges a stream broken it retries the same request without streaming. So besides the exit code
and the answer, each test checks the log: every Messages row is a 200 stream (no non-streaming
retry).

The small local model cannot follow Claude Code's tool protocol, and Claude Code's full agent
prompt (24 tool schemas and a ~6 KB system prompt) does not fit the e2e server's 2048-token
context, so the answer test runs Claude Code with its built-in tools off and a short system
prompt (`--tools "" --system-prompt …`): the exchange is Claude Code's own (headers, betas,
`thinking`, `context_management`, `metadata.user_id`, streaming), only smaller. The full default
request is covered by the golden corpus (tests/fixtures/messages/claude_code_prompt.json).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

import pytest

CLAUDE = Path(
    os.environ.get("SLUICE_CLAUDE")
    or Path.home() / ".cache" / "sluice" / "claude" / "node_modules" / ".bin" / "claude"
)


def run_claude(sluice, prompt: str, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    if not CLAUDE.exists():
        pytest.fail(f"no claude CLI at {CLAUDE}: tests/e2e/run.sh installs it from npm")
    home = tempfile.mkdtemp(prefix="sluice-claude-home-")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": home,
        "ANTHROPIC_BASE_URL": sluice.base_url.removesuffix("/v1"),
        "ANTHROPIC_API_KEY": "sk-unused",
        "DISABLE_TELEMETRY": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_ERROR_REPORTING": "1",
        # A short answer keeps the run quick on a 2-core machine.
        "CLAUDE_CODE_MAX_OUTPUT_TOKENS": "48",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    return subprocess.run(
        [str(CLAUDE), "-p", prompt, "--model", "smollm2-local", *args],
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def messages_rows(sluice) -> list[dict]:
    out = sluice.cli("logs", "--json", "--limit", "200")
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    return [r for r in rows if r.get("endpoint") == "messages"]


def wait_rows(sluice, before: set[str], at_least: int) -> list[dict]:
    """The Messages rows logged since `before` (ids); the batch writer lags a little."""
    import time

    deadline = time.monotonic() + 15
    while True:
        rows = [r for r in messages_rows(sluice) if r["id"] not in before]
        if len(rows) >= at_least or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def test_claude_code_answers_through_sluice_from_the_local_model(sluice):
    before = {r["id"] for r in messages_rows(sluice)}
    out = run_claude(
        sluice,
        "Say hello in one short sentence.",
        "--tools",
        "",
        "--system-prompt",
        "You are a friendly assistant. Answer in one short sentence.",
    )
    assert out.returncode == 0, f"claude failed ({out.returncode}):\n{out.stdout}\n{out.stderr}"
    answer = out.stdout.strip()
    assert answer, out.stderr
    rows = wait_rows(sluice, before, 1)
    assert rows, "no Messages row logged"
    # Every call Claude Code made was a streamed 200 from the local deployment: it never fell
    # back to a non-streaming retry.
    assert [(r["status"], r["stream"], r["deployment"]) for r in rows] == [(200, True, "smollm2-local")] * len(rows)
    # The answer on stdout is the model's text as logged (Claude Code prints the final text).
    assert answer == rows[0]["response_content"].strip()
    assert rows[0]["usage_estimated"] is False
    assert rows[0]["prompt_tokens"] > 0 and rows[0]["completion_tokens"] > 0
