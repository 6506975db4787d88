"""Chat completions through Sluice to the real SmolLM2-135M-Instruct, with the official openai
client: a pinned question that the model answers correctly at temperature 0, and usage counts
that equal the backend's own.

Every request caps max_tokens, so a run costs the same on any machine."""

PROMPT = [{"role": "user", "content": "Write one sentence about rivers."}]
MAX_TOKENS = 16
# A question this model answers correctly and reproducibly at temperature 0 (checked on the
# pinned llama-server build and model file): the answer names the city and the model ends its
# turn itself (`stop`, not `length`), which a base model without a chat template does not do.
# (Asked bare, "What is the capital of France?", this 135M model rambles in French; asked
# this way it answers "The capital of France is Paris." with a margin of about 1 nat or more
# on every token.)
QUESTION = [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]
QUESTION_MAX_TOKENS = 48


def test_the_model_answers_a_factual_question_and_ends_its_turn(client):
    raw = client.chat.completions.with_raw_response.create(
        model="default", messages=QUESTION, max_tokens=QUESTION_MAX_TOKENS, temperature=0
    )
    assert raw.headers["x-sluice-deployment"] == "smollm2-local"
    r = raw.parse()
    text = r.choices[0].message.content
    assert "Paris" in text, f"no 'Paris' in the answer: {text!r}"
    assert r.choices[0].finish_reason == "stop", (r.choices[0].finish_reason, text)


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
    assert raw.headers["x-sluice-deployment"] == "smollm2-local"
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
