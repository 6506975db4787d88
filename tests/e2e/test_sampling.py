"""Sampling on the real model. Without the reproducible mode, the client's temperature, seed and
max_tokens reach llama-server unchanged: after each request, llama-server's own `GET /slots`
(the parameters of the task it last ran) shows exactly the values the client sent. At
temperature 1.5, five different seeds give at least two different answers (so when the
reproducible mode makes answers equal, it is the override that did it)."""

from conftest import last_task

PROMPT = [{"role": "user", "content": "Tell me about the sea."}]
MAX_TOKENS = 16


def answer(client, headers=None, **sampling) -> str:
    r = client.chat.completions.create(
        model="default", messages=PROMPT, max_tokens=MAX_TOKENS, extra_headers=headers or {}, **sampling
    )
    return r.choices[0].message.content


def test_client_sampling_reaches_the_backend_and_different_seeds_differ(client, llama):
    answers, task = [], last_task(llama)
    for seed in range(1, 6):
        answers.append(answer(client, temperature=1.5, seed=seed))
        before, task = task, last_task(llama)
        assert task["id_task"] != before["id_task"], "llama-server ran no new task for the request"
        p = task["params"]
        # 1.5 is exact in binary floating point: llama-server's float gives it back unchanged.
        assert (p["temperature"], p["seed"], p["max_tokens"]) == (1.5, seed, MAX_TOKENS), p
    assert all(a.strip() for a in answers), answers
    assert len(set(answers)) >= 2, f"five seeds at temperature 1.5 gave one answer: {answers[0]!r}"
