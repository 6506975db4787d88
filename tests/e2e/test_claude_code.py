"""Claude Code for real: the `claude` CLI (npm `@anthropic-ai/claude-code`, installed by
tests/e2e/run.sh under ~/.cache/sluice/claude, or $SLUICE_CLAUDE) with ANTHROPIC_BASE_URL
pointing at Sluice, answered by the real local model on llama-server through the Messages →
chat bridge (`--model smollm2-local` names the local deployment directly).

Claude Code sends `HEAD /`, then `POST /v1/messages?beta=true` with `stream: true`; when it
judges a stream broken it retries the same request without streaming. So besides the exit code
and the answer, each test checks the log: every Messages row is a 200 stream (no non-streaming
retry).

Two runs: the answer test runs Claude Code with its built-in tools off and a short system
prompt (`--tools "" --system-prompt …`), so the 135M model answers plainly: the exchange is
Claude Code's own (headers, betas, `thinking`, `context_management`, `metadata.user_id`,
streaming), only smaller, and the answer on stdout is checked against the log. The second run is
Claude Code as users run it (its full agent prompt and 24 tools, one turn): the small model
cannot follow Claude Code's tool protocol (and tends to ramble past the output cap), so that
test asserts the exchange itself — every call a streamed 200, no non-streaming retry, a further
call only after a cut answer (Claude Code's own "resume" retry) — and that Claude Code's outcome
matches the last logged finish reason (`length` → its "exceeded the output token maximum"
error, `stop` → the text printed as logged). The rows are read once the log holds one for every
request Sluice finished (`/metrics` counts them), so a late batch cannot hide the last call.
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


def run_claude(
    sluice, prompt: str, *args: str, max_output: int = 48, headers: str = "", timeout: float = 900
) -> subprocess.CompletedProcess:
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
        "CLAUDE_CODE_MAX_OUTPUT_TOKENS": str(max_output),
        # Extra headers on every call ("Name: value" lines).
        "ANTHROPIC_CUSTOM_HEADERS": headers,
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


def new_rows(sluice, before: set[str]) -> list[dict]:
    """The Messages rows logged since `before` (ids), oldest first, once every request Sluice
    finished has its row (see `Sluice.wait_logged`)."""
    sluice.wait_logged()
    return [r for r in reversed(messages_rows(sluice)) if r["id"] not in before]


def test_claude_code_answers_through_sluice_from_the_local_model(sluice):
    before = {r["id"] for r in messages_rows(sluice)}
    # The question the e2e suite pins (SmolLM2 answers it with Paris), in Sluice's
    # reproducible mode (greedy, seeded) through Claude Code's custom-headers setting.
    out = run_claude(
        sluice,
        "What is the capital of France? Answer in one sentence.",
        "--tools",
        "",
        "--system-prompt",
        "You are a helpful assistant.",
        max_output=128,
        headers="x-sluice-mode: reproducible",
    )
    assert out.returncode == 0, f"claude failed ({out.returncode}):\n{out.stdout}\n{out.stderr}"
    answer = out.stdout.strip()
    assert "Paris" in answer, answer
    rows = new_rows(sluice, before)
    assert rows, "no Messages row logged"
    # Every call Claude Code made was a streamed 200 from the local deployment: it never fell
    # back to a non-streaming retry.
    assert [(r["status"], r["stream"], r["deployment"]) for r in rows] == [(200, True, "smollm2-local")] * len(rows)
    # The answer on stdout is the model's text as logged (Claude Code prints the final text).
    last = rows[-1]
    assert answer == last["response_content"].strip()
    assert last["usage_estimated"] is False
    # The custom header reached Sluice's policies: greedy sampling on the local model.
    assert last["sampling"]["temperature"] == 0, last["sampling"]
    assert last["prompt_tokens"] > 0 and last["completion_tokens"] > 0


def test_claude_code_default_agent_request_exchange(sluice):
    before = {r["id"] for r in messages_rows(sluice)}
    out = run_claude(sluice, "Say hello.", "--max-turns", "1")
    rows = new_rows(sluice, before)
    assert rows, f"no Messages row logged:\n{out.stdout}\n{out.stderr}"
    # Claude Code's full request was accepted and streamed every time (no non-streaming retry).
    assert [(r["status"], r["stream"]) for r in rows] == [(200, True)] * len(rows), rows
    # An answer cut at CLAUDE_CODE_MAX_OUTPUT_TOKENS (Anthropic's `max_tokens` stop reason,
    # from the chat `length`) makes Claude Code ask again ("Output token limit hit. Resume
    # directly…", at most 3 times): every request before the last was such a cut answer.
    assert [r["finish_reason"] for r in rows[:-1]] == ["length"] * (len(rows) - 1), rows
    last = rows[-1]
    # What Claude Code makes of the last answer depends on what the 135M model said; each case
    # is checked against the log.
    if last["finish_reason"] == "length":
        # Still cut after its retries: Claude Code reports it in its own words.
        assert out.returncode == 1, f"{out.returncode}\n{out.stdout}\n{out.stderr}"
        assert "output token maximum" in out.stdout, out.stdout
    elif last["finish_reason"] == "stop" and last["response_content"].strip():
        # A text answer: printed as the model gave it.
        assert out.returncode == 0, f"claude failed ({out.returncode}):\n{out.stdout}\n{out.stderr}"
        assert out.stdout.strip() == last["response_content"].strip()
    else:
        # A tool call (one turn allowed): the exchange above is what is asserted.
        assert last["finish_reason"] == "tool_calls", last
