"""The official openai package against Sluice (OPENAI_BASE_URL points at it; the upstream is
a mock started by tests/sdk.rs). Every assertion is on exact contents."""
import json

from openai import OpenAI

# Reads OPENAI_BASE_URL and OPENAI_API_KEY. No retries: the SDK's default (2) would hide a
# 5xx or 429 from Sluice behind a second attempt; a bounded timeout, so no test can hang.
client = OpenAI(max_retries=0, timeout=30)
MSGS = [{"role": "user", "content": "Say hello."}]
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
    {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}}}},
]


def test_chat_non_stream():
    r = client.chat.completions.create(model="default", messages=MSGS)
    assert r.choices[0].message.content == "Hello from the mock!"
    assert r.choices[0].finish_reason == "stop"
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (11, 5, 16)


def test_chat_stream_with_usage():
    text, finish, usage = "", None, None
    for ch in client.chat.completions.create(model="default", messages=MSGS, stream=True, stream_options={"include_usage": True}):
        if ch.usage is not None:
            assert ch.choices == []
            usage = ch.usage
        for c in ch.choices:
            text += c.delta.content or ""
            finish = c.finish_reason or finish
    assert text == "Hello from the mock!"
    assert finish == "stop"
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (11, 5, 16)


def test_tool_call_round_trip():
    r = client.chat.completions.create(model="default", messages=MSGS, tools=TOOLS[:1], tool_choice="auto")
    call = r.choices[0].message.tool_calls[0]
    assert (call.id, call.function.name, json.loads(call.function.arguments)) == ("call_a", "get_weather", {"city": "Paris"})
    follow = MSGS + [r.choices[0].message.model_dump(exclude_none=True), {"role": "tool", "tool_call_id": call.id, "content": "21C"}]
    r2 = client.chat.completions.create(model="default", messages=follow, tools=TOOLS[:1])
    assert r2.choices[0].message.content == "It is 21 degrees in Paris."


def test_streamed_parallel_tool_calls():
    calls = {}
    for ch in client.chat.completions.create(model="default", messages=MSGS, tools=TOOLS, stream=True):
        for c in ch.choices:
            for tc in c.delta.tool_calls or []:
                slot = calls.setdefault(tc.index, {"id": None, "name": "", "args": ""})
                slot["id"] = tc.id or slot["id"]
                slot["name"] += (tc.function.name or "") if tc.function else ""
                slot["args"] += (tc.function.arguments or "") if tc.function else ""
    assert sorted(calls) == [0, 1]
    assert (calls[0]["id"], calls[0]["name"], json.loads(calls[0]["args"])) == ("call_a", "get_weather", {"city": "Paris"})
    assert (calls[1]["id"], calls[1]["name"], json.loads(calls[1]["args"])) == ("call_b", "get_time", {"tz": "CET"})


def test_embeddings_and_models():
    e = client.embeddings.create(model="default", input="hello world")
    assert e.data[0].embedding == [0.25, -0.5, 1.0]
    ids = [m.id for m in client.models.list()]
    assert ids == ["default", "up"]
