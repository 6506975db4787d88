"""LangChain's ChatOpenAI (langchain-openai) against Sluice (tests/real_clients.rs): invoke,
stream and a tool call. Reads OPENAI_BASE_URL and OPENAI_API_KEY; prints one JSON line."""
import json

from langchain_core.messages import HumanMessage
from langchain_openai import ChatOpenAI

llm = ChatOpenAI(model="default", max_retries=0, timeout=30)
out = {"invoke": llm.invoke([HumanMessage("Say hello.")]).content}
out["stream"] = "".join(c.content for c in llm.stream([HumanMessage("Say hello.")]))


def get_weather(city: str) -> str:
    """The weather in a city."""
    return "21C"


msg = llm.bind_tools([get_weather]).invoke([HumanMessage("Weather in Paris?")])
out["tool_calls"] = [[c["name"], c["args"]] for c in msg.tool_calls]
print(json.dumps(out))
