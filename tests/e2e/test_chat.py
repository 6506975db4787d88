"""Chat completions through Sluice to the real Gemma 3 270M, with the official openai client.

Every request caps max_tokens: the base model otherwise runs to the context limit."""

PROMPT = [{"role": "user", "content": "Write one sentence about rivers."}]
MAX_TOKENS = 16


def direct_usage(llama, **body) -> dict:
    """The backend's own usage counts for the same request, asked of llama-server directly."""
    reply = llama.post("/chat/completions", {"model": "x", "messages": PROMPT, **body})
    return reply["usage"]


def counts(usage) -> tuple:
    if isinstance(usage, dict):
        return (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"])
    return (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens)


def test_chat_non_stream_answers_with_the_backends_usage(client, llama):
    raw = client.chat.completions.with_raw_response.create(
        model="default", messages=PROMPT, max_tokens=MAX_TOKENS, temperature=0, seed=7
    )
    assert raw.headers["x-sluice-deployment"] == "gemma-local"
    r = raw.parse()
    text = r.choices[0].message.content
    assert text.strip(), f"empty answer: {r}"
    assert r.choices[0].finish_reason in ("stop", "length")
    expected = direct_usage(llama, max_tokens=MAX_TOKENS, temperature=0, seed=7)
    assert counts(r.usage) == counts(expected)
    assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0


def test_chat_stream_answers_with_the_backends_usage(client, llama):
    text, usage, finish, chunks = "", None, None, 0
    stream = client.chat.completions.create(
        model="default",
        messages=PROMPT,
        max_tokens=MAX_TOKENS,
        temperature=0,
        seed=7,
        stream=True,
        stream_options={"include_usage": True},
    )
    for chunk in stream:
        chunks += 1
        if chunk.usage is not None:
            assert chunk.choices == []
            assert usage is None, "more than one usage chunk"
            usage = chunk.usage
        for c in chunk.choices:
            text += c.delta.content or ""
            finish = c.finish_reason or finish
    assert text.strip(), "empty streamed answer"
    assert chunks > 2, "the answer came in one piece, not streamed"
    assert finish in ("stop", "length")
    assert usage is not None, "no usage chunk although include_usage was asked for"
    expected = direct_usage(llama, max_tokens=MAX_TOKENS, temperature=0, seed=7)
    assert counts(usage) == counts(expected)


def test_stream_without_include_usage_has_no_usage_chunk(client):
    stream = client.chat.completions.create(
        model="default", messages=PROMPT, max_tokens=8, stream=True
    )
    usages = [c.usage for c in stream if c.usage is not None]
    assert usages == []
