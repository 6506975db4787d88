"""The official anthropic package against Sluice's `/v1/messages` (ANTHROPIC_BASE_URL points
at Sluice; ANTHROPIC_API_KEY is a Sluice key or anything when keys are off). The deployment
behind model `default` is an OpenAI-compatible mock started by tests/messages.rs (the request
is bridged to chat completions) or an Anthropic Messages mock behind an `anthropic` deployment
started by tests/native_sdk.rs (native). The mock answers text "Hello from the mock!" (11 prompt tokens, 5 output tokens), or, when tools are offered
and the last turn is not a tool result, one `get_weather` call with {"city": "Paris"}."""
import anthropic

client = anthropic.Anthropic(max_retries=0)  # reads ANTHROPIC_BASE_URL and ANTHROPIC_API_KEY
MSGS = [{"role": "user", "content": "Say hello."}]
WEATHER = {
    "name": "get_weather",
    "description": "Current weather for a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def test_create_text():
    m = client.messages.create(model="default", max_tokens=64, system="Be brief.", messages=MSGS)
    assert m.type == "message" and m.role == "assistant"
    assert [b.type for b in m.content] == ["text"]
    assert m.content[0].text == "Hello from the mock!"
    assert m.stop_reason == "end_turn"
    assert (m.usage.input_tokens, m.usage.output_tokens) == (11, 5)


def test_stream_text():
    with client.messages.stream(model="default", max_tokens=64, messages=MSGS) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == "Hello from the mock!"
    assert final.content[0].text == "Hello from the mock!"
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (11, 5)


def test_stream_tool_round_trip():
    with client.messages.stream(model="default", max_tokens=64, tools=[WEATHER],
                                messages=[{"role": "user", "content": "Weather in Paris?"}]) as s:
        first = s.get_final_message()
    assert first.stop_reason == "tool_use"
    uses = [b for b in first.content if b.type == "tool_use"]
    assert [(u.name, u.input) for u in uses] == [("get_weather", {"city": "Paris"})]
    history = [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": uses[0].id, "content": "18C"}]},
    ]
    with client.messages.stream(model="default", max_tokens=64, tools=[WEATHER], messages=history) as s:
        second = s.get_final_message()
    assert second.stop_reason == "end_turn"
    assert second.content[0].text == "Hello from the mock!"


def test_count_tokens():
    r = client.messages.count_tokens(model="default", system="Be brief.", messages=MSGS)
    # Sluice's estimate, one token per 4 bytes of "Be brief." + "Say hello." (19 bytes).
    assert r.input_tokens == 5


def test_errors_are_anthropic_shaped():
    try:
        client.messages.create(model="no-such-model", max_tokens=8, messages=MSGS)
    except anthropic.NotFoundError as e:
        assert e.status_code == 404
        assert e.body["type"] == "error"
        assert e.body["error"]["type"] == "not_found_error"
    else:
        raise AssertionError("expected a 404")
