"""Sampling on the real model. Without the reproducible mode, the client's temperature and
seed reach llama-server: at temperature 1.5, five different seeds give at least two different
answers (so when the reproducible mode makes answers equal, it is the override that did it)."""

PROMPT = [{"role": "user", "content": "Tell me about the sea."}]


def answer(client, headers=None, **sampling) -> str:
    r = client.chat.completions.create(
        model="default", messages=PROMPT, max_tokens=16, extra_headers=headers or {}, **sampling
    )
    return r.choices[0].message.content


def test_high_temperature_with_different_seeds_differs(client):
    answers = [answer(client, temperature=1.5, seed=seed) for seed in range(1, 6)]
    assert all(a.strip() for a in answers), answers
    assert len(set(answers)) >= 2, f"five seeds at temperature 1.5 gave one answer: {answers[0]!r}"
