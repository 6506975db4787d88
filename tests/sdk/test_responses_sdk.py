"""The official openai package's Responses API against Sluice (OPENAI_BASE_URL points at it).
The upstream is a chat-completions mock started by tests/responses.rs (every call bridged
through chat) or, with SLUICE_NATIVE=1, a Responses mock behind a `supports: [responses]`
deployment started by tests/native_sdk.rs (every call native). Every assertion is on exact
contents."""
import json
import os

import openai
import pytest
from openai import OpenAI

client = OpenAI()  # reads OPENAI_BASE_URL and OPENAI_API_KEY
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    "strict": False,
}
USAGE = (11, 5, 16)
# On a native route Sluice resolves previous_response_id from its own store and sends the
# conversation as input, so the backend's answer does not name the previous response.
NATIVE = os.environ.get("SLUICE_NATIVE") == "1"


def usage(r):
    return (r.usage.input_tokens, r.usage.output_tokens, r.usage.total_tokens)


def test_create_non_stream():
    r = client.responses.create(model="default", input="Say hello.", instructions="Be kind.")
    assert r.id.startswith("resp_")
    assert r.object == "response"
    assert r.status == "completed"
    assert r.output_text == "Hello from the mock!"
    assert [i.type for i in r.output] == ["message"]
    assert r.output[0].role == "assistant"
    assert r.instructions == "Be kind."
    assert usage(r) == USAGE


def test_create_stream_events_in_order():
    types, text, final = [], "", None
    with client.responses.stream(model="default", input="Say hello.") as stream:
        for ev in stream:
            types.append(ev.type)
            if ev.type == "response.output_text.delta":
                text += ev.delta
        final = stream.get_final_response()
    assert types == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ] + ["response.output_text.delta"] * 5 + [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert text == "Hello from the mock!"
    assert final.output_text == "Hello from the mock!"
    assert final.status == "completed"
    assert usage(final) == USAGE


def test_function_tool_round_trip_with_previous_response_id():
    r = client.responses.create(model="default", input="Weather in Paris?", tools=[WEATHER])
    calls = [i for i in r.output if i.type == "function_call"]
    assert [(c.call_id, c.name, json.loads(c.arguments)) for c in calls] == [
        ("call_a", "get_weather", {"city": "Paris"})
    ]
    r2 = client.responses.create(
        model="default",
        previous_response_id=r.id,
        input=[{"type": "function_call_output", "call_id": "call_a", "output": "21C"}],
        tools=[WEATHER],
    )
    assert r2.output_text == "It is 21 degrees in Paris."
    assert r2.previous_response_id == (None if NATIVE else r.id)


def test_streamed_parallel_tool_calls():
    calls = []
    with client.responses.stream(model="default", input="Weather and time?", tools=[WEATHER]) as stream:
        for ev in stream:
            if ev.type == "response.output_item.done" and ev.item.type == "function_call":
                calls.append((ev.item.call_id, ev.item.name, json.loads(ev.item.arguments)))
        final = stream.get_final_response()
    assert calls == [("call_a", "get_weather", {"city": "Paris"}), ("call_b", "get_time", {"tz": "CET"})]
    assert [i.type for i in final.output] == ["function_call", "function_call"]


def test_structured_output():
    r = client.responses.create(
        model="default",
        input="Extract: Anna is 31.",
        text={
            "format": {
                "type": "json_schema",
                "name": "person",
                "strict": True,
                "schema": {
                    "type": "object",
                    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
                    "required": ["name", "age"],
                    "additionalProperties": False,
                },
            }
        },
    )
    assert json.loads(r.output_text) == {"name": "Anna", "age": 31}
    assert r.text.format.type == "json_schema"


def test_retrieve_input_items_delete():
    r = client.responses.create(model="default", input="Say hello.", metadata={"case": "retrieve"})
    got = client.responses.retrieve(r.id)
    assert (got.id, got.output_text, got.metadata) == (r.id, "Hello from the mock!", {"case": "retrieve"})
    items = client.responses.input_items.list(r.id)
    assert [(i.type, i.role, i.content[0].text) for i in items.data] == [("message", "user", "Say hello.")]
    deleted = client.responses.delete(r.id)
    assert deleted is None or getattr(deleted, "deleted", True)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(r.id)


def test_store_false_keeps_nothing():
    r = client.responses.create(model="default", input="Say hello.", store=False)
    assert r.store is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(r.id)
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model="default", input="again", previous_response_id=r.id)
    assert r.id in e.value.message


def test_input_tokens_count():
    n = client.responses.input_tokens.count(model="default", input="abcdefgh", instructions="abcd")
    assert n.input_tokens == 3
