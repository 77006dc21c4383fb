//! Helpers shared by the binary's test files: running `simforge`, and a small model with a
//! word-level tokenizer.
#![allow(dead_code)] // each test file uses its own subset

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

/// The binary, quiet, on one core: the test runner runs two tests at once on CI's two cores,
/// and two processes whose thread pools each use both cores only contend for them. A test file
/// that runs alone gives its runs every core (`RAYON_NUM_THREADS=0`).
pub fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_simforge"));
    command.env("SIMFORGE_LOG", "warn").env("RAYON_NUM_THREADS", "1");
    command
}

pub fn simforge(args: &[&str]) -> Output {
    binary().args(args).output().expect("run simforge")
}

pub fn ok_json(args: &[&str]) -> Value {
    json_of(binary().args(args))
}

/// What `command` prints on stdout, which must be JSON, once it has succeeded.
pub fn json_of(command: &mut Command) -> Value {
    let out = command.output().expect("run simforge");
    assert!(out.status.success(), "{command:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
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
    let mut child = binary()
        .args(["serve", "--model", s(model), "--served-model-name", "sim", "--port", "0"])
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("the address line");
    let addr = line.trim().rsplit("http://").next().and_then(|a| a.strip_suffix("/v1")).unwrap_or_else(|| panic!("{line}")).to_owned();
    Server { child, addr }
}

/// Balanced classes, users in one split only, and every case a real discrepancy.
pub fn check_defects(path: &Path, per_class: usize) {
    let t = simforge_data::parquet_io::Table::read(path).expect("defects");
    let labels = t.strings("label").expect("label");
    for kind in ["inaccurate", "incomplete", "both"] {
        assert_eq!(labels.iter().filter(|l| *l == kind).count(), per_class, "{kind}");
    }
    let (users, splits) = (t.u32s("user_id").expect("user"), t.strings("split").expect("split"));
    let mut split_of = std::collections::HashMap::new();
    for (u, sp) in users.iter().zip(&splits) {
        assert_eq!(split_of.entry(*u).or_insert(sp.clone()), sp, "user {u} in both splits");
    }
    assert!(splits.iter().any(|s| s == "eval") && splits.iter().any(|s| s == "train"));
    let (sim, real) = (t.u32s("simulated_choice").expect("sim"), t.u32s("real_choice").expect("real"));
    assert!(sim.iter().zip(&real).all(|(a, b)| a != b));
    let (profiles, good) = (t.strings("profile").expect("profile"), t.strings("good_profile").expect("good"));
    assert!(profiles.iter().zip(&good).all(|(p, g)| p != g));
}
