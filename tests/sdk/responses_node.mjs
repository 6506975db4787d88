// The official openai-node package's Responses API against Sluice (tests/native_sdk.rs runs
// it): `responses.create` whole and streamed, on model `default` (a native Responses
// deployment) and on model `bridged` (a chat deployment). Exits non-zero on the first
// mismatch. Needs OPENAI_BASE_URL, OPENAI_API_KEY and SLUICE_OPENAI_NODE (the package's path).
import assert from "node:assert/strict";

const { default: OpenAI } = await import(process.env.SLUICE_OPENAI_NODE);
const client = new OpenAI({ maxRetries: 0 });

for (const model of ["default", "bridged"]) {
  const r = await client.responses.create({ model, input: "Say hello.", instructions: "Be kind." });
  assert.equal(r.object, "response");
  assert.equal(r.status, "completed");
  assert.equal(r.output_text, "Hello from the mock!");
  assert.deepEqual([r.usage.input_tokens, r.usage.output_tokens, r.usage.total_tokens], [11, 5, 16]);

  const stream = await client.responses.create({ model, input: "Say hello.", stream: true });
  const types = [];
  let text = "";
  let final = null;
  for await (const ev of stream) {
    types.push(ev.type);
    if (ev.type === "response.output_text.delta") text += ev.delta;
    if (ev.type === "response.completed") final = ev.response;
  }
  assert.equal(text, "Hello from the mock!");
  assert.equal(types[0], "response.created");
  assert.equal(types.at(-1), "response.completed");
  assert.equal(types.filter((t) => t === "response.output_text.delta").length, 5);
  assert.equal(final.output[0].content[0].text, "Hello from the mock!");
  console.log(`${model}: ok`);
}
