"""Embeddings through Sluice to a llama-server started with --embeddings (mean pooling over
SmolLM2-135M-Instruct's hidden states; a generative model has no pooling of its own)."""

import math


def test_embeddings_match_the_backends_own(client, llama_embed):
    raw = client.embeddings.with_raw_response.create(
        model="embed", input=["rivers run to the sea", "hello"]
    )
    assert raw.headers["x-sluice-deployment"] == "smollm2-embed"
    r = raw.parse()
    assert [d.index for d in r.data] == [0, 1]
    direct = llama_embed.post("/embeddings", {"model": "x", "input": ["rivers run to the sea", "hello"]})
    dim = len(direct["data"][0]["embedding"])
    assert dim > 0
    for got, want in zip(r.data, direct["data"]):
        assert len(got.embedding) == dim
        assert all(math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-6) for a, b in zip(got.embedding, want["embedding"]))
    assert r.data[0].embedding != r.data[1].embedding
    assert r.usage.prompt_tokens == direct["usage"]["prompt_tokens"]
