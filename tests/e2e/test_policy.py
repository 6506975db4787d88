"""The quickstart's policies on real traffic: personal data stays local even on the model that
prefers the remote deployment, and response headers and `sluice explain` agree on it."""

import json

from conftest import REMOTE_ANSWER

PLAIN = "Write one sentence about rivers."
EMAIL = "Write to jane.doe@example.com about rivers."


def chat(client, text, model="smart"):
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": text}], max_tokens=16, temperature=0
    )
    return raw.headers, raw.parse()


def explain(sluice, text, model="smart") -> dict:
    out = sluice.cli("explain", "--model", model, "--message", text, "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_smart_prefers_the_remote_deployment_without_personal_data(client, sluice, remote):
    headers, r = chat(client, PLAIN)
    assert headers["x-sluice-deployment"] == "remote"
    assert headers["x-sluice-hosting"] == "remote"
    assert r.choices[0].message.content == REMOTE_ANSWER
    assert "x-sluice-policies" not in headers
    e = explain(sluice, PLAIN)
    assert e["order"] == ["remote", "smollm2-local"]
    assert e["policies"] == []


def test_an_email_goes_to_the_local_model_with_headers_and_explain_agreeing(client, sluice, remote):
    before = len(remote.bodies)
    headers, r = chat(client, EMAIL)
    assert headers["x-sluice-deployment"] == "smollm2-local"
    assert headers["x-sluice-hosting"] == "local"
    assert headers["x-sluice-policies"] == "personal-data-stays-local"
    assert r.choices[0].message.content.strip()
    assert r.choices[0].message.content != REMOTE_ANSWER
    assert len(remote.bodies) == before, "the remote deployment saw the request"
    e = explain(sluice, EMAIL)
    assert e["policies"] == ["personal-data-stays-local"]
    assert e["order"] == ["smollm2-local"]
    assert [f["kind"] for f in e["pii"]] == ["email"]
    excluded = {c["attrs"]["name"]: c["excluded"] for c in e["candidates"]}
    assert excluded["smollm2-local"] == []
    assert len(excluded["remote"]) == 1 and "personal-data-stays-local" in excluded["remote"][0]
    # What explain predicts is what the server did.
    assert e["order"][0] == headers["x-sluice-deployment"]


def test_default_is_the_cheapest_deployment(client, sluice):
    headers, _ = chat(client, PLAIN, model="default")
    assert headers["x-sluice-deployment"] == "smollm2-local"
    assert headers["x-sluice-policies"] == "cheapest"
    assert explain(sluice, PLAIN, model="default")["order"] == ["smollm2-local", "remote"]
