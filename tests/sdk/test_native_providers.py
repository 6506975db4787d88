"""The official openai package against Sluice in front of two translating providers: an
Ollama mock (native /api/chat, NDJSON) and an Anthropic mock (Messages API, SSE), both started
by tests/sdk.rs. The SDK must see exactly what an OpenAI backend would give it."""
import json

import pytest
from openai import OpenAI

# Reads OPENAI_BASE_URL and OPENAI_API_KEY. No retries: the SDK's default (2) would hide a
# 5xx or 429 from Sluice behind a second attempt; a bounded timeout, so no test can hang.
client = OpenAI(max_retries=0, timeout=30)
MSGS = [{"role": "user", "content": "Say hello."}]
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
    {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}}}},
]
MODELS = ["via-ollama", "via-anthropic"]


@pytest.mark.parametrize("model", MODELS)
def test_chat_non_stream(model):
    r = client.chat.completions.create(model=model, messages=MSGS, max_tokens=64)
    assert r.choices[0].message.content == "Hello from the mock!"
    assert r.choices[0].finish_reason == "stop"
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (11, 5, 16)


@pytest.mark.parametrize("model", MODELS)
def test_chat_stream_with_usage(model):
    text, finish, usage, roles = "", [], None, 0
    for ch in client.chat.completions.create(model=model, messages=MSGS, max_tokens=64, stream=True, stream_options={"include_usage": True}):
        if ch.usage is not None:
            assert ch.choices == []
            usage = ch.usage
        for c in ch.choices:
            roles += 1 if c.delta.role == "assistant" else 0
            text += c.delta.content or ""
            if c.finish_reason:
                finish.append(c.finish_reason)
    assert text == "Hello from the mock!"
    assert finish == ["stop"]
    assert roles == 1
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (11, 5, 16)


@pytest.mark.parametrize("model", MODELS)
def test_streamed_parallel_tool_calls(model):
    calls, finish = {}, []
    for ch in client.chat.completions.create(model=model, messages=MSGS, max_tokens=64, tools=TOOLS, stream=True):
        for c in ch.choices:
            for tc in c.delta.tool_calls or []:
                slot = calls.setdefault(tc.index, {"id": None, "name": "", "args": ""})
                slot["id"] = tc.id or slot["id"]
                slot["name"] += (tc.function.name or "") if tc.function else ""
                slot["args"] += (tc.function.arguments or "") if tc.function else ""
            if c.finish_reason:
                finish.append(c.finish_reason)
    assert sorted(calls) == [0, 1]
    assert calls[0]["id"] and calls[1]["id"] and calls[0]["id"] != calls[1]["id"]
    assert (calls[0]["name"], json.loads(calls[0]["args"])) == ("get_weather", {"city": "Paris"})
    assert (calls[1]["name"], json.loads(calls[1]["args"])) == ("get_time", {"tz": "CET"})
    assert finish == ["tool_calls"]


@pytest.mark.parametrize("model", MODELS)
def test_non_stream_parallel_tool_calls_and_round_trip(model):
    r = client.chat.completions.create(model=model, messages=MSGS, max_tokens=64, tools=TOOLS)
    msg = r.choices[0].message
    assert r.choices[0].finish_reason == "tool_calls"
    assert msg.content is None
    got = [(c.function.name, json.loads(c.function.arguments)) for c in msg.tool_calls]
    assert got == [("get_weather", {"city": "Paris"}), ("get_time", {"tz": "CET"})]
    follow = MSGS + [msg.model_dump(exclude_none=True)] + [
        {"role": "tool", "tool_call_id": c.id, "content": "21C" if i == 0 else "10:00"} for i, c in enumerate(msg.tool_calls)
    ]
    r2 = client.chat.completions.create(model=model, messages=follow, max_tokens=64, tools=TOOLS)
    assert r2.choices[0].message.content == "Hello from the mock!"
