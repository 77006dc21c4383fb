//! End-to-end tests: the `simforge` binary on the shared real datasets, the embedded recipe
//! (with resume), a real HTTP server for `data fetch`, and bad input.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use simforge_data::parquet_io::Table;

mod common;
use common::{binary, check_defects, http, model_with_tokenizer, ok_json, s, simforge, start_serve};

fn shared(dataset: &str) -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/datasets").join(dataset);
    if path.exists() {
        Some(path)
    } else {
        eprintln!("SKIP: {} is absent (the shared datasets are not beside this checkout)", path.display());
        None
    }
}

#[test]
fn shared_datasets_prepare_to_the_documented_counts() {
    let out = tempfile::tempdir().expect("tempdir");
    let cases: [(&str, &[&str], [u64; 3]); 3] = [
        ("ml-100k", &[], [943, 1_682, 100_000]),
        ("amazon-games-sasrec/Video.txt", &["--format", "sasrec"], [31_013, 23_715, 287_107]),
        // ratings.dat has 43,745 line breaks plus a final line without one: 43,746 ratings.
        ("ml-1m-sample", &["--format", "movielens"], [301, 3_012, 43_746]),
    ];
    for (name, extra, [users, items, interactions]) in cases {
        let Some(input) = shared(name) else { return };
        let dir = out.path().join(name.replace('/', "_"));
        let mut args = vec!["prep", "--input", s(&input), "--out", s(&dir)];
        args.extend_from_slice(extra);
        let stats = ok_json(&args);
        assert_eq!(stats["users"], users, "{name}");
        assert_eq!(stats["items"], items, "{name}");
        assert_eq!(stats["interactions"], interactions, "{name}");
        assert!(stats["source_sha256"].as_object().is_some_and(|m| !m.is_empty()));
        let table = Table::read(&dir.join("interactions.parquet")).expect("interactions");
        assert_eq!(table.rows() as u64, interactions);
    }
    let stats: Value = serde_json::from_str(&std::fs::read_to_string(out.path().join("ml-1m-sample/stats.json")).expect("stats")).expect("json");
    assert_eq!(stats["catalog_items"], 3_883);
    assert_eq!(stats["format"], "movielens");
}

#[test]
fn amazon_sample_fails_on_line_634_unless_skipping() {
    let Some(input) = shared("amazon-movies-tv-2018-sample") else { return };
    let out = tempfile::tempdir().expect("tempdir");
    let failed = simforge(&["prep", "--input", s(&input), "--out", s(out.path())]);
    assert_eq!(failed.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(stderr.contains("Movies_and_TV_5.json:634"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let stats = ok_json(&["prep", "--input", s(&input), "--out", s(out.path()), "--skip-invalid"]);
    assert_eq!((stats["interactions"].as_u64(), stats["skipped_lines"].as_u64()), (Some(633), Some(1)));
    assert_eq!((stats["users"].as_u64(), stats["items"].as_u64()), (Some(626), Some(67)));
}

#[test]
fn ml100k_scenes_split_profiles_defects() {
    let Some(input) = shared("ml-100k") else { return };
    let root = tempfile::tempdir().expect("tempdir");
    let dir = |n: &str| root.path().join(n);
    ok_json(&["prep", "--input", s(&input), "--out", s(&dir("data"))]);
    let stats = ok_json(&["scenes", "--data", s(&dir("data")), "--out", s(&dir("scenes")), "--train", "3000", "--eval", "500"]);
    assert_eq!((stats["train"].as_u64(), stats["eval"].as_u64()), (Some(3000), Some(500)));
    let scenes = Table::read(&dir("scenes").join("scenes.parquet")).expect("scenes");
    let prompts = scenes.strings("prompt").expect("prompt");
    assert!(prompts[0].contains("| rated "), "ML-100K histories carry ratings: {}", prompts[0]);
    let split = ok_json(&["split", "--data", s(&dir("data")), "--alpha", "0.6", "--test-frac", "0.2", "--out", s(&dir("split"))]);
    assert_eq!(split["users"], 943, "every ML-100K user has at least 20 ratings");
    ok_json(&["profiles", "--data", s(&dir("data")), "--split", s(&dir("split")), "--out", s(&dir("profiles"))]);
    let defects = ok_json(&["defects", "--data", s(&dir("data")), "--profiles", s(&dir("profiles")), "--out", s(&dir("defects")), "--per-class", "150"]);
    assert_eq!(defects["per_class"], 150);
    check_defects(&dir("defects").join("defects.parquet"), 150);
}

#[test]
fn parquet_files_open_in_pyarrow_with_documented_columns() {
    let has_pyarrow = Command::new("python3").args(["-c", "import pyarrow"]).status().is_ok_and(|s| s.success());
    if !has_pyarrow {
        assert!(std::env::var_os("SIMFORGE_REQUIRE_PYARROW").is_none(), "SIMFORGE_REQUIRE_PYARROW is set but pyarrow is missing");
        eprintln!("SKIP: pyarrow is not installed (CI installs it and sets SIMFORGE_REQUIRE_PYARROW)");
        return;
    }
    // The quickstart's data stages (its training stages write no Parquet).
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes/quickstart.toml")).expect("recipe");
    let data_only = text.split("\n[model]").next().expect("data sections");
    let out = tempfile::tempdir().expect("tempdir");
    let recipe = out.path().join("quickstart-data.toml");
    std::fs::write(&recipe, data_only).expect("write recipe");
    ok_json(&["run", s(&recipe), "--out", s(out.path())]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/check_parquet.py");
    let result = Command::new("python3").arg(script).arg(out.path().join("quickstart")).output().expect("python3");
    assert!(result.status.success(), "{}{}", String::from_utf8_lossy(&result.stdout), String::from_utf8_lossy(&result.stderr));
}

/// A one-file HTTP/1.1 server on 127.0.0.1 that honours `Range` and, on its first response,
/// sends only half the body before closing (a broken download).
fn serve(body: Vec<u8>, requests: usize) -> (String, std::thread::JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/ml-100k.zip", listener.local_addr().expect("addr"));
    let handle = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for (n, stream) in listener.incoming().take(requests).enumerate() {
            let mut stream = stream.expect("accept");
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut range_start = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).expect("read") == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
                    range_start = v.trim().trim_end_matches('-').parse().expect("range");
                    seen.push(format!("range {range_start}"));
                }
            }
            let rest = &body[range_start..];
            let status = if range_start > 0 { "206 Partial Content" } else { "200 OK" };
            let head = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", rest.len());
            stream.write_all(head.as_bytes()).expect("head");
            let sent = if n == 0 { &rest[..rest.len() / 2] } else { rest };
            let _ = stream.write_all(sent);
            let _ = stream.flush();
            let mut drain = [0u8; 1];
            let _ = stream.set_read_timeout(Some(std::time::Duration::from_millis(10)));
            let _ = stream.read(&mut drain);
        }
        seen
    });
    (url, handle)
}

fn small_zip() -> Vec<u8> {
    let mut cursor = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut cursor);
    let options = zip::write::SimpleFileOptions::default();
    zip.add_directory("ml-100k/", options).expect("dir");
    zip.start_file("ml-100k/u.data", options).expect("file");
    let data: String = (0..4000).map(|i| format!("{}\t{}\t{}\t{}\n", 1 + i % 40, 1 + i % 97, 1 + i % 5, 881250949 + i)).collect();
    zip.write_all(data.as_bytes()).expect("write");
    zip.finish().expect("finish");
    cursor.into_inner()
}

#[test]
fn data_fetch_resumes_verifies_and_unpacks() {
    let archive = small_zip();
    let sha = simforge_data::fsutil::sha256_bytes(&archive);
    let (url, server) = serve(archive.clone(), 2);
    let out = tempfile::tempdir().expect("tempdir");
    let first = simforge(&["data", "fetch", "ml-100k", "--out", s(out.path()), "--url", &url, "--sha256", &sha]);
    assert!(!first.status.success(), "a truncated transfer must fail");
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(stderr.contains("run again to resume"), "{stderr}");
    let report = ok_json(&["data", "fetch", "ml-100k", "--out", s(out.path()), "--url", &url, "--sha256", &sha]);
    assert_eq!(report["verified"], true);
    assert_eq!(report["sha256"], sha.as_str());
    assert!(report["resumed_from"].as_u64().is_some_and(|r| r > 0 && (r as usize) < archive.len()), "{report}");
    assert_eq!(server.join().expect("server"), vec![format!("range {}", report["resumed_from"])]);
    let extracted = PathBuf::from(report["extracted"].as_str().expect("extracted"));
    assert!(extracted.join("u.data").is_file());
    let stats = ok_json(&["prep", "--input", s(&extracted), "--out", s(&out.path().join("data"))]);
    assert_eq!(stats["interactions"], 4000);

    // A local archive with the wrong checksum is refused.
    let local = out.path().join("mine.zip");
    std::fs::write(&local, &archive).expect("write");
    let bad = simforge(&["data", "fetch", "ml-100k", "--out", s(&out.path().join("x")), "--from-file", s(&local), "--sha256", &"0".repeat(64)]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("sha256 mismatch"));
}

#[test]
fn bad_input_gets_a_message_not_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["prep".into(), "--input".into(), s(&dir.path().join("nope")).into(), "--out".into(), s(dir.path()).into()], "nope"),
        (vec!["prep".into(), "--out".into(), s(dir.path()).into()], "--input"),
        (vec!["scenes".into(), "--data".into(), s(dir.path()).into(), "--out".into(), s(&dir.path().join("o")).into()], "stats.json"),
        (vec!["data".into(), "fetch".into(), "ml-7z".into(), "--out".into(), s(dir.path()).into()], "unknown dataset"),
        (vec!["run".into(), s(&dir.path().join("missing.toml")).into()], "missing.toml"),
    ];
    for (args, needle) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = simforge(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(needle) && !stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    let recipe = dir.path().join("typo.toml");
    std::fs::write(&recipe, "[run]\nname = \"t\"\n[prep]\nformat = \"synthetic\"\n[scenes]\ntrian = 3\n").expect("write");
    let out = simforge(&["run", s(&recipe)]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("trian"));

    // Overrides are checked like the file, and the whole recipe is planned before a stage runs:
    // a bad key, value or device leaves no run folder behind.
    let quickstart = Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes/quickstart.toml");
    let runs = dir.path().join("runs");
    for (set, needle) in
        [("scenes.trian=3", "trian"), ("run.device=tpu", "tpu"), ("sft.lr=fast", "lr"), ("sft", "section.key=value"), ("dgdpo.endpoint.retries=-1", "retries")]
    {
        let out = simforge(&["run", s(&quickstart), "--out", s(&runs), "--set", set]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "--set {set}: {stderr}");
        assert!(stderr.contains(needle) && !stderr.contains("panicked"), "--set {set}: {stderr}");
        assert!(!runs.exists(), "--set {set} started the run");
    }
    // A failing stage is named, with its cause.
    std::fs::write(&recipe, "[run]\nname = \"t\"\n[prep]\ninput = \"no-such-folder\"\n").expect("write");
    let out = simforge(&["run", s(&recipe), "--out", s(&runs)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("stage prep") && stderr.contains("no-such-folder"), "{stderr}");
}

#[test]
fn help_lists_commands_with_examples() {
    let out = simforge(&["--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for word in ["run", "prep", "scenes", "split", "profiles", "defects", "corpus", "data", "Examples:"] {
        assert!(text.contains(word), "--help lacks {word}:\n{text}");
    }
    for command in [&["eval", "dgdpo", "--help"][..], &["eval", "diagnosis", "--help"], &["train", "diagnostic", "--help"]] {
        let help = String::from_utf8_lossy(&simforge(command).stdout).into_owned();
        assert!(help.contains("Examples:"), "{command:?}: {help}");
    }
    let prep_help = String::from_utf8_lossy(&simforge(&["prep", "--help"]).stdout).into_owned();
    assert!(prep_help.contains("--skip-invalid") && prep_help.contains("Examples:"), "{prep_help}");
}

#[test]
fn lm_logits_prints_only_the_json_object() {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("trainer/tests/fixtures/qwen3-tied");
    let out = simforge(&["lm", "logits", "--model", s(&model), "--ids", "1 2 3 4 5 6 7", "--ids", "9 8 7"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let json: Value = serde_json::from_str(text.trim()).expect("stdout is exactly one JSON object");
    let reference: Value = serde_json::from_str(&std::fs::read_to_string(model.join("reference.json")).expect("reference")).expect("json");
    let logits = json["logits"].as_array().expect("logits");
    assert_eq!(logits.len(), 2);
    for (row, want) in logits.iter().zip(reference["last_logits"].as_array().expect("reference logits")) {
        let (row, want) = (row.as_array().expect("row"), want.as_array().expect("row"));
        assert_eq!(row.len(), 64);
        let d = row.iter().zip(want).map(|(a, b)| (a.as_f64().expect("f") - b.as_f64().expect("f")).abs()).fold(0.0, f64::max);
        assert!(d < 1e-4, "logits differ from transformers by {d}");
    }
    let bad = simforge(&["lm", "logits", "--model", s(&model), "--ids", "1 x"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a token id"));
}

fn read_jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path).expect("output").lines().map(|l| serde_json::from_str(l).expect("json line")).collect()
}

#[test]
fn lm_generate_and_score_read_and_write_jsonl() {
    let model = model_with_tokenizer("qwen3-gqa");
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.jsonl");
    std::fs::write(
        &input,
        "{\"ids\": [1, 2, 3], \"options\": 4}\n{\"prompt\": \"A B Behavior : [\", \"options\": 3}\n\n{\"ids\": [5, 6], \"continuations\": [\"A B\", \"C\"]}\n",
    )
    .expect("input");
    let scores = dir.path().join("scores.jsonl");
    let out = simforge(&["lm", "score", "--model", s(model.path()), "--input", s(&input), "--out", s(&scores), "--batch-size", "2"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows = read_jsonl(&scores);
    assert_eq!(rows.iter().map(|r| r["line"].as_u64().expect("line")).collect::<Vec<_>>(), [1, 2, 4]);
    for (row, k) in rows.iter().zip([4, 3]) {
        let p: Vec<f64> = row["option_probs"].as_array().expect("probs").iter().map(|x| x.as_f64().expect("p")).collect();
        assert_eq!(p.len(), k);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-4 && p.iter().all(|x| *x > 0.0));
    }
    let logprobs = rows[2]["logprobs"].as_array().expect("logprobs");
    assert_eq!(logprobs.len(), 2);
    // Two tokens are less likely than one of them.
    assert!(logprobs.iter().all(|x| x.as_f64().expect("lp") < 0.0));

    std::fs::write(&input, "{\"ids\": [1, 2, 3]}\n{\"prompt\": \"A B C\"}\n").expect("input");
    let run = |out: &Path| {
        let o = simforge(&[
            "lm",
            "generate",
            "--model",
            s(model.path()),
            "--input",
            s(&input),
            "--out",
            s(out),
            "--max-new-tokens",
            "5",
            "--temperature",
            "1",
            "--top-p",
            "0.9",
            "--samples",
            "2",
            "--seed",
            "3",
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        read_jsonl(out)
    };
    let (a, b) = (run(&dir.path().join("a.jsonl")), run(&dir.path().join("b.jsonl")));
    assert_eq!(a, b, "seeded sampling must repeat");
    assert_eq!(a.len(), 2);
    for row in &a {
        let samples = row["samples"].as_array().expect("samples");
        assert_eq!(samples.len(), 2);
        assert!(samples.iter().all(|s| s["ids"].as_array().is_some_and(|ids| !ids.is_empty() && ids.len() <= 5) && s["text"].is_string()));
    }

    std::fs::write(&input, "{\"ids\": [1, 2, 300]}\n").expect("input");
    let bad = simforge(&["lm", "generate", "--model", s(model.path()), "--input", s(&input), "--out", s(&dir.path().join("c.jsonl"))]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("in.jsonl:1: token 300 is outside the vocabulary"));
}

/// A Hugging Face hub look-alike on 127.0.0.1 serving `files` of repo `org/tiny` at commit
/// `abc123` (the model API and `resolve` URLs), for `requests` requests.
fn serve_hub(files: Vec<(String, Vec<u8>)>, requests: usize) -> (String, std::thread::JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
    let handle = std::thread::spawn(move || {
        let siblings: Vec<Value> = files.iter().map(|(n, _)| serde_json::json!({ "rfilename": n })).collect();
        let info = serde_json::to_vec(&serde_json::json!({ "id": "org/tiny", "sha": "abc123", "siblings": siblings })).expect("json");
        let mut seen = Vec::new();
        for stream in listener.incoming().take(requests) {
            let mut stream = stream.expect("accept");
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut request_line = String::new();
            reader.read_line(&mut request_line).expect("read");
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).expect("read") == 0 || line == "\r\n" {
                    break;
                }
            }
            let path = request_line.split_whitespace().nth(1).unwrap_or("").to_string();
            let body = if path == "/api/models/org/tiny/revision/main" {
                Some(info.clone())
            } else {
                files.iter().find(|(n, _)| path == format!("/org/tiny/resolve/abc123/{n}")).map(|(_, b)| b.clone())
            };
            let (status, body) = match body {
                Some(b) => ("200 OK", b),
                None => ("404 Not Found", Vec::new()),
            };
            seen.push(path);
            let head = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
            stream.write_all(head.as_bytes()).expect("head");
            let _ = stream.write_all(&body);
        }
        seen
    });
    (endpoint, handle)
}

#[test]
fn hub_ids_download_into_the_hf_cache_and_load_offline() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("trainer/tests/fixtures/qwen3-tied");
    let files: Vec<(String, Vec<u8>)> = ["config.json", "generation_config.json", "model.safetensors"]
        .iter()
        .map(|n| (n.to_string(), std::fs::read(fixture.join(n)).expect("fixture")))
        .collect();
    let (endpoint, server) = serve_hub(files, 4);
    let cache = tempfile::tempdir().expect("tempdir");
    let run = |args: &[&str]| {
        binary().args(args).env("HF_ENDPOINT", &endpoint).env("HF_HUB_CACHE", cache.path()).env_remove("HF_HUB_OFFLINE").output().expect("run simforge")
    };
    let logits = |out: Output| -> Value {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("json")
    };
    let local = ok_json(&["lm", "logits", "--model", s(&fixture), "--ids", "1 2 3"]);
    assert_eq!(logits(run(&["lm", "logits", "--model", "org/tiny", "--ids", "1 2 3"])), local);
    let seen = server.join().expect("server");
    assert_eq!(seen[0], "/api/models/org/tiny/revision/main", "{seen:?}");
    let snapshot = cache.path().join("models--org--tiny/snapshots/abc123");
    assert!(snapshot.join("model.safetensors").is_file());
    assert_eq!(std::fs::read_to_string(cache.path().join("models--org--tiny/refs/main")).expect("ref"), "abc123");
    // The server is gone: offline (or a complete cached snapshot) needs no network.
    assert_eq!(logits(run(&["lm", "logits", "--model", "org/tiny", "--ids", "1 2 3", "--offline"])), local);
    let missing = run(&["lm", "logits", "--model", "org/other", "--ids", "1", "--offline"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not in the Hugging Face cache"), "{}", String::from_utf8_lossy(&missing.stderr));
}

#[test]
fn serve_answers_openai_chat_completions_with_logprobs() {
    let model = model_with_tokenizer("qwen3-tied");
    let server = start_serve(model.path(), &[]);
    let addr = server.addr.clone();

    let (status, models) = http(&addr, "GET", "/v1/models", "");
    assert_eq!((status, models["data"][0]["id"].as_str()), (200, Some("sim")), "{models}");
    let request = serde_json::json!({"model": "sim", "messages": [{"role": "user", "content": "A B C"}], "max_tokens": 4, "n": 2, "seed": 3, "logprobs": true, "top_logprobs": 5});
    let (status, chat) = http(&addr, "POST", "/v1/chat/completions", &request.to_string());
    assert_eq!(status, 200, "{chat}");
    let choices = chat["choices"].as_array().expect("choices");
    assert_eq!(choices.len(), 2);
    let mut tokens = 0;
    for choice in choices {
        let content = choice["logprobs"]["content"].as_array().expect("logprobs");
        tokens += content.len();
        for token in content {
            let top: Vec<f64> = token["top_logprobs"].as_array().expect("top").iter().map(|t| t["logprob"].as_f64().expect("logprob")).collect();
            assert_eq!(top.len(), 5);
            assert!(top.windows(2).all(|w| w[0] >= w[1]) && top[0] <= 0.0, "{top:?}");
            assert!(token["logprob"].as_f64().expect("logprob") <= top[0] + 1e-6);
        }
    }
    assert!(chat["usage"]["completion_tokens"].as_u64().expect("usage") as usize >= tokens);
    // The same seed, the same answer; bad requests get OpenAI-style errors, not a crash.
    assert_eq!(http(&addr, "POST", "/v1/chat/completions", &request.to_string()).1["choices"], chat["choices"]);
    let (status, error) = http(&addr, "POST", "/v1/chat/completions", "{\"model\": \"sim\", \"messages\": [");
    assert!(status == 400 && error["error"]["message"].as_str().is_some_and(|m| m.contains("not a chat-completions request")), "{error}");
    let (status, error) =
        http(&addr, "POST", "/v1/chat/completions", &serde_json::json!({"model": "other", "messages": [{"role": "user", "content": "A"}]}).to_string());
    assert_eq!(status, 404, "{error}");
    // A body over the limit (8 MiB) is refused once the limit is passed, before any parsing.
    let mut stream = std::net::TcpStream::connect(&addr).expect("connect");
    write!(stream, "POST /v1/chat/completions HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", 64 << 20).expect("send");
    stream.write_all(&vec![b' '; (8 << 20) + 1]).expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("receive");
    assert!(response.starts_with("HTTP/1.1 413"), "{}", &response[..response.len().min(200)]);
}

/// The events of a streamed answer read from `stream` until `stop` holds for the events so
/// far or the server ends the answer: each `data:` payload, the HTTP chunking removed.
fn read_events(stream: &mut std::net::TcpStream, stop: &dyn Fn(&[String]) -> bool) -> (String, Vec<String>) {
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).expect("receive");
        raw.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&raw).into_owned();
        let Some((head, mut body)) = text.split_once("\r\n\r\n") else { continue };
        let mut payload = String::new();
        // Whole HTTP chunks only: `SIZE\r\nDATA\r\n`.
        while let Some((size, rest)) = body.split_once("\r\n") {
            let Ok(size) = usize::from_str_radix(size, 16) else { break };
            if rest.len() < size + 2 {
                break;
            }
            payload.push_str(&rest[..size]);
            body = &rest[size + 2..];
        }
        let events: Vec<String> = payload.split("\n\n").filter_map(|e| e.strip_prefix("data: ")).map(str::to_owned).collect();
        if n == 0 || stop(&events) || events.last().is_some_and(|e| e == "[DONE]") {
            return (head.to_owned(), events);
        }
    }
}

#[test]
fn serve_streams_server_sent_events_and_stops_generating_when_the_client_goes() {
    let model = model_with_tokenizer("qwen3-tied");
    // Room for a long answer, so that a request left running would hold the worker.
    let config = model.path().join("config.json");
    let mut json: Value = serde_json::from_str(&std::fs::read_to_string(&config).expect("config")).expect("json");
    json["max_position_embeddings"] = 40_000.into();
    std::fs::write(&config, json.to_string()).expect("config");
    let server = start_serve(model.path(), &["--workers", "1", "--request-timeout", "60"]);
    let addr = server.addr.clone();
    let request = |stream: bool, max_tokens: u32| {
        serde_json::json!({"model": "sim", "messages": [{"role": "user", "content": "A B C"}], "max_tokens": max_tokens, "n": 2, "seed": 3,
            "stream": stream, "stream_options": {"include_usage": stream}})
        .to_string()
    };
    let send = |body: &str| {
        let mut stream = std::net::TcpStream::connect(&addr).expect("connect");
        write!(stream, "POST /v1/chat/completions HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
            .expect("send");
        stream
    };

    // Streamed, the same sampled answers as in one piece, chunk by chunk.
    let (status, whole) = http(&addr, "POST", "/v1/chat/completions", &request(false, 24));
    assert_eq!(status, 200, "{whole}");
    let (head, events) = read_events(&mut send(&request(true, 24)), &|_| false);
    assert!(head.starts_with("HTTP/1.1 200") && head.contains("text/event-stream"), "{head}");
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1].iter().map(|e| serde_json::from_str(e).expect("a JSON chunk")).collect();
    for (index, choice) in whole["choices"].as_array().expect("choices").iter().enumerate() {
        let mine: Vec<&Value> = chunks.iter().flat_map(|c| c["choices"].as_array().expect("choices")).filter(|c| c["index"] == index).collect();
        assert_eq!(mine[0]["delta"]["role"], "assistant");
        let text: String = mine.iter().filter_map(|c| c["delta"]["content"].as_str()).collect();
        assert_eq!(text, choice["message"]["content"].as_str().expect("content"), "choice {index}: {mine:?}");
        assert!(mine.len() > 3, "a chunk per token, not one at the end: {mine:?}");
        assert_eq!(mine.last().map(|c| &c["finish_reason"]), Some(&choice["finish_reason"]));
    }
    assert!(chunks.iter().all(|c| c["object"] == "chat.completion.chunk" && c["model"] == "sim"));
    assert_eq!(chunks.last().map(|c| &c["usage"]), Some(&whole["usage"]), "the usage chunk comes last");

    // A client that leaves after 100 chunks, none of them the end of the answer: its
    // generation (up to 2 × 15,000 tokens, for up to 60 s) stops, and the only worker answers
    // the next request at once.
    let mut leaving = send(&request(true, 15_000));
    let (_, events) = read_events(&mut leaving, &|events| events.len() > 100);
    assert!(events.len() > 100 && events.iter().all(|e| !e.contains("finish_reason\":\"")), "{events:?}");
    drop(leaving);
    let started = std::time::Instant::now();
    let (status, next) = http(&addr, "POST", "/v1/chat/completions", &request(false, 2));
    assert_eq!(status, 200, "{next}");
    assert!(started.elapsed() < std::time::Duration::from_secs(15), "the next request waited {:?}: the abandoned generation went on", started.elapsed());
}
