"""Drives the Sluice container with the official openai package (tests/container.rs): one
chat completion and one stream. Reads OPENAI_BASE_URL and OPENAI_API_KEY; prints one JSON line."""
import json

from openai import OpenAI

client = OpenAI(max_retries=0, timeout=30)
MSGS = [{"role": "user", "content": "Say hello."}]
r = client.chat.completions.create(model="default", messages=MSGS)
text = ""
for ch in client.chat.completions.create(model="default", messages=MSGS, stream=True):
    for c in ch.choices:
        text += c.delta.content or ""
print(json.dumps({"chat": r.choices[0].message.content, "stream": text, "model": r.model}))
