// openai-node against Sluice (tests/real_clients.rs): chat, stream with usage, a tool round
// trip and embeddings with the SDK's default encoding (base64). Reads OPENAI_BASE_URL,
// OPENAI_API_KEY and SLUICE_OPENAI_NODE (the package's index.mjs); prints one JSON line.
const { default: OpenAI } = await import(process.env.SLUICE_OPENAI_NODE);
const client = new OpenAI({ maxRetries: 0, timeout: 30000 });
const messages = [{ role: "user", content: "Say hello." }];
const tools = [{ type: "function", function: { name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" } } } } }];
const out = {};

const r = await client.chat.completions.create({ model: "default", messages });
out.chat = r.choices[0].message.content;

let text = "";
const stream = await client.chat.completions.create({ model: "default", messages, stream: true, stream_options: { include_usage: true } });
for await (const ch of stream) {
  for (const c of ch.choices) text += c.delta.content ?? "";
  if (ch.usage) out.stream_usage = ch.usage.total_tokens;
}
out.stream = text;

const t = await client.chat.completions.create({ model: "default", messages, tools });
const call = t.choices[0].message.tool_calls[0];
out.tool_call = [call.function.name, JSON.parse(call.function.arguments)];
const answer = await client.chat.completions.create({
  model: "default",
  tools,
  messages: [...messages, t.choices[0].message, { role: "tool", tool_call_id: call.id, content: "21C" }],
});
out.after_tool = answer.choices[0].message.content;

const e = await client.embeddings.create({ model: "default", input: "hi" });
out.embedding = Array.from(e.data[0].embedding);
console.log(JSON.stringify(out));
