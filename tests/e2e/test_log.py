"""Each answer lands in the request log with the same tokens the client got (`sluice logs
--json`, run with the same config and working directory as the server)."""

import uuid

import httpx
from conftest import logged_row


def test_non_stream_answer_is_logged_with_the_same_tokens(client, sluice):
    rid = str(uuid.uuid4())
    raw = client.chat.completions.with_raw_response.create(
        model="default",
        messages=[{"role": "user", "content": "Name a river."}],
        max_tokens=16,
        extra_headers={"x-request-id": rid},
    )
    assert raw.headers["x-request-id"] == rid
    r = raw.parse()
    row = logged_row(sluice, rid)
    assert row["deployment"] == "smollm2-local"
    assert row["status"] == 200
    assert row["stream"] is False
    assert row["response_content"] == r.choices[0].message.content
    assert (row["prompt_tokens"], row["completion_tokens"], row["total_tokens"]) == (
        r.usage.prompt_tokens,
        r.usage.completion_tokens,
        r.usage.total_tokens,
    )
    assert row["usage_estimated"] is False
    # The same row through the admin API, and the request's page in the web UI.
    root = sluice.base_url.removesuffix("/v1")
    admin = httpx.get(f"{root}/admin/logs/{rid}", timeout=30)
    assert admin.status_code == 200, admin.text
    assert admin.json()["completion_tokens"] == r.usage.completion_tokens
    page = httpx.get(f"{root}/ui/requests/{rid}", timeout=30)
    assert page.status_code == 200
    assert rid in page.text and "smollm2-local" in page.text


def test_streamed_answer_is_logged_with_the_same_tokens(client, sluice):
    rid = str(uuid.uuid4())
    text, usage = "", None
    stream = client.chat.completions.create(
        model="default",
        messages=[{"role": "user", "content": "Name a river."}],
        max_tokens=16,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"x-request-id": rid},
    )
    for chunk in stream:
        usage = chunk.usage or usage
        for c in chunk.choices:
            text += c.delta.content or ""
    row = logged_row(sluice, rid)
    assert row["stream"] is True
    assert row["response_content"] == text
    assert (row["prompt_tokens"], row["completion_tokens"], row["total_tokens"]) == (
        usage.prompt_tokens,
        usage.completion_tokens,
        usage.total_tokens,
    )
