"""The quickstart's reproducible mode on the real model: with `x-sluice-mode: reproducible`,
requests with different client temperatures and seeds get byte-identical answers (Sluice forces
greedy, seeded sampling and turns off llama-server's prompt cache), and `sluice replay` of one
of them reproduces it (exit 0). llama-server's `GET /slots` shows what it ran each request
with: the policy's values, whatever the client asked. test_sampling.py shows that without the
mode the client's values reach it and the answers differ."""

import uuid

from conftest import last_task, logged_row

PROMPT = [{"role": "user", "content": "Tell me about the sea."}]
REPRODUCIBLE = {"x-sluice-mode": "reproducible"}


def test_reproducible_mode_gives_byte_identical_answers_and_replays(client, sluice, llama):
    answers, ids, task = [], [], last_task(llama)
    for temperature, seed in ((0.2, 1), (1.0, 2), (1.7, 3)):
        rid = str(uuid.uuid4())
        raw = client.chat.completions.with_raw_response.create(
            model="default",
            messages=PROMPT,
            max_tokens=24,
            temperature=temperature,
            seed=seed,
            extra_headers={**REPRODUCIBLE, "x-request-id": rid},
        )
        assert raw.headers["x-sluice-deployment"] == "smollm2-local"
        policies = [p.strip() for p in raw.headers["x-sluice-policies"].split(",")]
        assert "reproducible" in policies
        assert raw.headers["x-sluice-sampling"].startswith("deterministic"), raw.headers
        answers.append(raw.parse().choices[0].message.content)
        ids.append(rid)
        before, task = task, last_task(llama)
        assert task["id_task"] != before["id_task"], "llama-server ran no new task for the request"
        p = task["params"]
        # Greedy and seeded (the quickstart's `sampling: {deterministic: true, seed: 42}`), the
        # client's max_tokens kept.
        assert (p["temperature"], p["top_p"], p["top_k"], p["seed"], p["max_tokens"]) == (
            0.0,
            1.0,
            1,
            42,
            24,
        ), p
    assert answers[0].strip(), "empty answer"
    assert answers[0].encode() == answers[1].encode() == answers[2].encode(), answers
    # The log keeps the sampling values that went upstream, not the client's.
    row = logged_row(sluice, ids[2])
    assert row["sampling"]["temperature"] == 0, row["sampling"]
    # `sluice replay` sends the logged (effective) request to the same deployment again and
    # exits 0 when the answer is identical.
    out = sluice.cli("replay", ids[2], timeout=300)
    assert out.returncode == 0, f"sluice replay exited {out.returncode}:\n{out.stdout}\n{out.stderr}"
