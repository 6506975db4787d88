//! Real client libraries against Sluice in front of a mock upstream: openai-node (chat,
//! stream, tools, embeddings with its default `encoding_format: "base64"` answered with floats
//! by the backend) and LangChain's `ChatOpenAI` (invoke, stream, tools). tests/run.sh
//! installs openai-node under ~/.cache/sluice/node and langchain-openai into the venv.

mod support;

use bytes::Bytes;
use serde_json::{Value, json};
use support::*;

fn upstream(r: &Received) -> MockReply {
    if r.path == "/v1/embeddings" {
        // A llama.cpp-like server: floats whatever the encoding asked.
        return MockReply::Json(
            200,
            json!({"object":"list","model":"m",
            "data":[{"object":"embedding","index":0,"embedding":[0.25,-0.5,1.0]}],
            "usage":{"prompt_tokens":1,"total_tokens":1}}),
        );
    }
    let last_is_tool = r.body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .is_some_and(|m| m["role"] == "tool");
    let wants_tool = r.body.get("tools").is_some() && !last_is_tool;
    if r.body["stream"] == true {
        let mut frames: Vec<Bytes> = ["Hello", " from", " the", " stream!"]
            .iter()
            .map(|p| sse(&chunk(json!({"content": p}), Value::Null)))
            .collect();
        frames.push(sse(&chunk(json!({}), json!("stop"))));
        frames.push(sse(
            &json!({"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[],
            "usage":{"prompt_tokens":4,"completion_tokens":4,"total_tokens":8}}),
        ));
        frames.push(done());
        return MockReply::Sse(frames);
    }
    let message = if wants_tool {
        json!({"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function",
            "function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]})
    } else if last_is_tool {
        json!({"role":"assistant","content":"It is 21C in Paris."})
    } else {
        json!({"role":"assistant","content":"Hello from the mock!"})
    };
    let finish = if wants_tool { "tool_calls" } else { "stop" };
    MockReply::Json(
        200,
        json!({"id":"c1","object":"chat.completion","created":1,"model":"m",
        "choices":[{"index":0,"message":message,"finish_reason":finish}],
        "usage":{"prompt_tokens":4,"completion_tokens":5,"total_tokens":9}}),
    )
}

async fn sluice_and_mock() -> (Sluice, Mock) {
    let mock = Mock::start(upstream).await;
    let s = Sluice::start(&one_deployment(&mock.url("/v1"))).await;
    (s, mock)
}

fn json_line(out: &std::process::Output, what: &str) -> Value {
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{what}: {e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_node_chat_stream_tools_and_base64_embeddings() {
    let package = std::env::var("SLUICE_OPENAI_NODE").unwrap_or_else(|_| {
        format!(
            "{}/.cache/sluice/node/node_modules/openai/index.mjs",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    assert!(
        std::path::Path::new(&package).exists(),
        "{package} is missing: run the tests with tests/run.sh, which installs openai-node"
    );
    let (s, mock) = sluice_and_mock().await;
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg("tests/sdk/chat_node.mjs")
        .env("OPENAI_BASE_URL", s.url("/v1"))
        .env("OPENAI_API_KEY", "sk-test")
        .env("SLUICE_OPENAI_NODE", &package)
        .env("NO_PROXY", "127.0.0.1");
    let got = json_line(&output_within(cmd, 120).await, "openai-node");
    assert_eq!(
        got,
        json!({"chat": "Hello from the mock!", "stream": "Hello from the stream!", "stream_usage": 8,
               "tool_call": ["get_weather", {"city": "Paris"}], "after_tool": "It is 21C in Paris.",
               "embedding": [0.25, -0.5, 1]})
    );
    // The SDK asked for base64 (its default); Sluice packed the backend's floats.
    let emb = mock
        .received
        .lock()
        .unwrap()
        .iter()
        .find(|r| r.path == "/v1/embeddings")
        .cloned()
        .unwrap();
    assert_eq!(emb.body["encoding_format"], "base64");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn langchain_chat_openai_invoke_stream_and_tools() {
    let python = std::env::var("SLUICE_PYTHON")
        .expect("SLUICE_PYTHON is not set: run the tests with tests/run.sh, which installs langchain-openai");
    let (s, mock) = sluice_and_mock().await;
    let mut cmd = tokio::process::Command::new(python);
    cmd.arg("tests/sdk/langchain_client.py")
        .env("OPENAI_BASE_URL", s.url("/v1"))
        .env("OPENAI_API_KEY", "sk-test")
        .env("NO_PROXY", "127.0.0.1");
    let got = json_line(&output_within(cmd, 120).await, "LangChain");
    assert_eq!(
        got,
        json!({"invoke": "Hello from the mock!", "stream": "Hello from the stream!",
               "tool_calls": [["get_weather", {"city": "Paris"}]]})
    );
    // The tool went upstream as LangChain wrote it.
    let last = mock.last();
    assert_eq!(last.body["tools"][0]["function"]["name"], "get_weather");
    assert_eq!(last.body["model"], "upstream-model");
    s.stop().await;
}
