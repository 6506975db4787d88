"""The Responses API on the real model, bridged through chat: with `x-sluice-mode:
reproducible`, `responses.create` at three temperatures gives byte-identical text (streamed and
not), the log row records the `responses` dialect with the text the client got, and `sluice
replay` of that row exits 0."""

import uuid

from conftest import logged_row

REPRODUCIBLE = {"x-sluice-mode": "reproducible"}
QUESTION = "What is the capital of France? Answer in one sentence."


def test_responses_reproducible_logged_and_replayed(client, sluice):
    texts, ids = [], []
    for temperature in (0.2, 1.0, 1.7):
        rid = str(uuid.uuid4())
        raw = client.responses.with_raw_response.create(
            model="default",
            input=QUESTION,
            max_output_tokens=24,
            temperature=temperature,
            extra_headers={**REPRODUCIBLE, "x-request-id": rid},
        )
        assert raw.headers["x-sluice-deployment"] == "smollm2-local"
        r = raw.parse()
        assert r.status in ("completed", "incomplete"), r
        texts.append(r.output_text)
        ids.append(rid)
    assert texts[0].strip(), "empty answer"
    assert texts[0].encode() == texts[1].encode() == texts[2].encode(), texts
    # The same through a stream.
    streamed = ""
    with client.responses.stream(
        model="default", input=QUESTION, max_output_tokens=24, temperature=1.3, extra_headers=REPRODUCIBLE
    ) as stream:
        for ev in stream:
            if ev.type == "response.output_text.delta":
                streamed += ev.delta
        final = stream.get_final_response()
    assert streamed == texts[0] == final.output_text
    row = logged_row(sluice, ids[2])
    assert row["endpoint"] == "responses"
    assert row["status"] == 200
    assert row["response_content"] == texts[2]
    out = sluice.cli("replay", ids[2], timeout=300)
    assert out.returncode == 0, f"sluice replay exited {out.returncode}:\n{out.stdout}\n{out.stderr}"
