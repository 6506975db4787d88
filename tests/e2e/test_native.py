"""The anthropic SDK natively: an `anthropic` deployment whose base_url is llama-server's root,
so Sluice forwards Messages requests to llama-server's own `/v1/messages` and relays its
answer (whole and streamed) unchanged. The log rows say `route: native`."""

from __future__ import annotations

import contextlib
import sqlite3

import anthropic
from conftest import model_id
from test_codex import running_sluice


def test_anthropic_sdk_natively_to_llama_server(tmp_path, llama):
    root = llama.base_url.rsplit("/v1", 1)[0]
    extra = f"  - name: local-claude\n    provider: anthropic\n    base_url: {root}\n    model: {model_id(llama)}\n"
    with running_sluice(tmp_path / "sluice", llama.base_url, model_id(llama), extra=extra) as s:
        client = anthropic.Anthropic(base_url=s["base"], api_key="unused", max_retries=0, timeout=120)
        msgs = [{"role": "user", "content": "Name a colour."}]
        m = client.messages.create(model="local-claude", max_tokens=24, messages=msgs, extra_body={"temperature": 0, "top_k": 1})
        assert [b.type for b in m.content] == ["text"] and m.content[0].text.strip(), m
        assert m.stop_reason in ("end_turn", "max_tokens"), m
        assert m.usage.output_tokens > 0
        with client.messages.stream(model="local-claude", max_tokens=24, messages=msgs, extra_body={"temperature": 0, "top_k": 1}) as st:
            streamed = "".join(st.text_stream)
            final = st.get_final_message()
        assert streamed == final.content[0].text == m.content[0].text
        with contextlib.closing(sqlite3.connect(s["workdir"] / "sluice.db")) as c:
            for _ in range(150):
                rows = c.execute("SELECT endpoint, route, status, completion_tokens FROM requests ORDER BY seq").fetchall()
                if len(rows) >= 2:
                    break
                __import__("time").sleep(0.1)
    assert [r[:3] for r in rows] == [("messages", "native", 200)] * 2, rows
    assert all(r[3] > 0 for r in rows), rows
