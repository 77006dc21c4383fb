//! Helpers shared by the binary's test files: running `simforge`, and a small model with a
//! word-level tokenizer.
#![allow(dead_code)] // each test file uses its own subset

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

pub fn simforge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_simforge")).args(args).env("SIMFORGE_LOG", "warn").output().expect("run simforge")
}

pub fn ok_json(args: &[&str]) -> Value {
    let out = simforge(args);
    assert!(out.status.success(), "simforge {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

/// Runs `args`, expects exit 1 (2 for a flag clap refuses) with a message holding every one
/// of `needles` and no panic, and returns that message.
pub fn fails_with(args: &[&str], needles: &[&str]) -> String {
    let out = simforge(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(matches!(out.status.code(), Some(1 | 2)), "simforge {args:?} should fail: {stderr}");
    assert!(!stderr.contains("panicked"), "simforge {args:?} panicked: {stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "simforge {args:?}: the message lacks {needle:?}: {stderr}");
    }
    stderr
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[path = "../../trainer/tests/support/word_model.rs"]
mod word_model;

/// The trainer's fixture `fixture` with a word-level tokenizer (see `word_model`).
pub fn model_with_tokenizer(fixture: &str) -> tempfile::TempDir {
    word_model::with_word_tokenizer(&Path::new(env!("CARGO_MANIFEST_DIR")).join("trainer/tests/fixtures").join(fixture))
}

/// One HTTP/1.1 request to `addr`; the status and the JSON body of the answer.
pub fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, Value) {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("receive");
    let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("status");
    (status, serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}")))
}

/// A running `simforge serve`, stopped when dropped (also when a test fails half-way, so no
/// server outlives its test).
pub struct Server {
    child: Child,
    /// `127.0.0.1:PORT`, read from the line the server prints first.
    pub addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `simforge serve` on a free port of 127.0.0.1 as the model `sim`.
pub fn start_serve(model: &Path, extra: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_simforge"))
        .args(["serve", "--model", s(model), "--served-model-name", "sim", "--port", "0"])
        .args(extra)
        .env("SIMFORGE_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("the address line");
    let addr = line.trim().rsplit("http://").next().and_then(|a| a.strip_suffix("/v1")).unwrap_or_else(|| panic!("{line}")).to_owned();
    Server { child, addr }
}
