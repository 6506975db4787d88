//! Gzip bombs from an upstream: 6.5 MB on the wire that expand to 1 GiB. Decompressed bytes
//! are capped (a deployment's `max_response_bytes`, `max_error_body_bytes`,
//! `max_stream_event_bytes`), so each answer is a 502 naming the deployment and the process's
//! peak RSS stays under 128 MiB. Its own test binary (the other test here moves 2 MiB): the
//! peak is this file's.

mod support;

use bytes::Bytes;
use serde_json::{Value, json};
use support::*;

/// Bits written least significant first, as deflate packs them.
struct Bits {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl Bits {
    /// Writes the low `len` bits of `v`, least significant first (header fields).
    fn put(&mut self, v: u32, len: u32) {
        self.acc |= u64::from(v) << self.n;
        self.n += len;
        while self.n >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }

    /// Writes a Huffman code of `len` bits, most significant first.
    fn code(&mut self, code: u32, len: u32) {
        let rev = code.reverse_bits() >> (32 - len);
        self.put(rev, len);
    }
}

/// A gzip body (RFC 1952 around RFC 1951) that expands to `1 + 258 × runs` bytes of `0`:
/// one fixed-Huffman block, a literal then `runs` copies of (length 258, distance 1), 13 bits
/// each — written by hand because compressing a GiB in a debug build takes minutes. The
/// trailer's CRC is left 0: a capped reader never gets there.
fn bomb(runs: usize) -> Bytes {
    let mut b = Bits {
        out: vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff],
        acc: 0,
        n: 0,
    };
    b.put(1, 1); // BFINAL
    b.put(1, 2); // BTYPE = fixed Huffman
    b.code(0x30 + u32::from(b'0'), 8); // literal '0'
    for _ in 0..runs {
        b.code(0xC0 + (285 - 280), 8); // length 258
        b.code(0, 5); // distance 1
    }
    b.code(0, 7); // end of block
    b.put(0, 7);
    b.out.extend_from_slice(&[0; 4]);
    let size = (1 + 258 * runs) as u32;
    b.out.extend_from_slice(&size.to_le_bytes());
    Bytes::from(b.out)
}

#[test]
fn the_hand_made_bomb_is_valid_gzip() {
    use std::io::Read;
    let body = bomb(1000);
    let mut d = flate2::read::GzDecoder::new(&body[..]);
    let mut out = Vec::new();
    let err = d.read_to_end(&mut out);
    // Everything but the (left out) CRC checks out.
    assert_eq!(out.len(), 1 + 258 * 1000, "{err:?}");
    assert!(out.iter().all(|&c| c == b'0'));
}

/// Peak resident set size of this process, KiB (`VmHWM`).
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_bombs_are_502s_and_memory_stays_bounded() {
    // 1 GiB once decompressed, 6.5 MB on the wire.
    let zeros = bomb((1 << 30) / 258);
    assert!(zeros.len() < 7 << 20, "{} bytes on the wire", zeros.len());
    let before = peak_rss_kib();
    let gz = |status: u16, ct: &str, body: &Bytes| {
        MockReply::Raw(
            status,
            vec![
                ("content-type", ct.to_string()),
                ("content-encoding", "gzip".to_string()),
            ],
            body.clone(),
        )
    };
    let mock = Mock::start(move |r| {
        match (
            r.body["stream"] == true,
            r.body["messages"][0]["content"].as_str(),
        ) {
            (true, _) => gz(200, "text/event-stream", &zeros),
            (false, Some("error")) => gz(500, "application/json", &zeros),
            _ => gz(200, "application/json", &zeros),
        }
    })
    .await;
    // Caps of 4 MiB and 1 MiB (decompressing is slow in a debug build; the defaults, 32 MiB
    // and 4 MiB, are checked by tests/hostile_upstream.rs).
    let yaml = one_deployment(&mock.url("/v1")).replace(
        "    model: ",
        "    max_response_bytes: 4194304\n    max_stream_event_bytes: 1048576\n    model: ",
    );
    let s = Sluice::start(&yaml).await;
    let ask = |text: &str, stream: bool| {
        post(
            &s,
            "/v1/chat/completions",
            json!({"model":"default","stream":stream,"messages":[{"role":"user","content":text}]}),
        )
    };
    let r = ask("hi", false).await;
    assert_eq!(r.status(), 502);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v["error"]["message"],
        "deployment `up`: the answer is larger than 4194304 bytes"
    );
    let r = ask("hi", true).await;
    assert_eq!(r.status(), 502);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v["error"]["message"],
        "deployment `up`: a stream event is larger than 1048576 bytes"
    );
    // An error answer: only its first 64 KiB are read.
    let r = ask("error", false).await;
    assert_eq!(r.status(), 502);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "upstream_error");
    s.stop().await;
    let peak = peak_rss_kib();
    assert!(
        peak < 128 * 1024,
        "peak RSS {peak} KiB (before the bombs: {before} KiB)"
    );
}

/// The caps are per deployment in config: a 1 MiB cap refuses a 2 MiB answer.
#[tokio::test]
async fn caps_are_configurable() {
    let body = bomb((2 << 20) / 258);
    let mock = Mock::start(move |_| {
        MockReply::Raw(
            200,
            vec![
                ("content-type", "application/json".to_string()),
                ("content-encoding", "gzip".to_string()),
            ],
            body.clone(),
        )
    })
    .await;
    let yaml = one_deployment(&mock.url("/v1")).replace(
        "    model: ",
        "    max_response_bytes: 1048576\n    model: ",
    );
    let s = Sluice::start(&yaml).await;
    let r = post(
        &s,
        "/v1/chat/completions",
        json!({"model":"default","messages":[{"role":"user","content":"hi"}]}),
    )
    .await;
    assert_eq!(r.status(), 502);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v["error"]["message"],
        "deployment `up`: the answer is larger than 1048576 bytes"
    );
    s.stop().await;
}
