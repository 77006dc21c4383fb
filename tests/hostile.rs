//! Careless and hostile input (issue 20): every case ends with a one-line error that names the
//! file, line or value (exit 1, no panic), or with a correct result; nothing the user gave is
//! deleted and no half-written output is left behind. The inputs are written here, at test time.

use std::io::Write;
use std::path::{Path, PathBuf};

use simforge_data::parquet_io::{self as pq, Table};

mod common;
use common::{binary, fails_with, http, model_with_tokenizer, ok_json, s, simforge, start_serve};

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write input");
    path
}

#[test]
fn readers_refuse_ratings_off_the_scale_and_empty_ids() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ml = dir.path().join("ml");
    std::fs::create_dir(&ml).expect("mkdir");
    let out = dir.path().join("out");
    for (line, needle) in [("1\t2\t1e38\t881250950", "rating"), ("1\t2\t-7\t881250950", "rating"), ("\t2\t3\t881250950", "user id")] {
        write(&ml, "u.data", &format!("1\t1\t4\t881250949\n{line}\n"));
        fails_with(&["prep", "--input", s(&ml), "--out", s(&out)], &["u.data:2", needle]);
        assert!(!out.join("interactions.parquet").exists(), "{line}: a refused input writes no table");
    }
    // Skipping is the user's choice, and counted.
    let stats = ok_json(&["prep", "--input", s(&ml), "--out", s(&out), "--skip-invalid"]);
    assert_eq!((stats["interactions"].as_u64(), stats["skipped_lines"].as_u64()), (Some(1), Some(1)));

    let amazon = write(
        dir.path(),
        "reviews.json",
        "{\"reviewerID\": \"a\", \"asin\": \"x\", \"overall\": 5.0, \"unixReviewTime\": 1000000000}\n\
         {\"reviewerID\": \"a\", \"asin\": \"y\", \"overall\": 1e39, \"unixReviewTime\": 1000000001}\n",
    );
    fails_with(&["prep", "--format", "amazon", "--input", s(&amazon), "--out", s(&out)], &["reviews.json:2", "between 0 and 5"]);
    write(dir.path(), "reviews.json", "{\"reviewerID\": \" \", \"asin\": \"x\", \"overall\": 5.0, \"unixReviewTime\": 1000000000}\n");
    fails_with(&["prep", "--format", "amazon", "--input", s(&amazon), "--out", s(&out)], &["reviews.json:1", "reviewerID"]);
}

#[test]
fn synthetic_worlds_are_bounded_before_anything_is_allocated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    for (world, needle) in [
        ("users = 100000000\n", "at most 50000000 interactions"),
        ("start = -5\n", "start"),
        ("start = 9000000000000000000\n", "start"),
        ("items = 100000000\n", "at most 1000000 items"),
    ] {
        let path = write(dir.path(), "world.toml", world);
        fails_with(&["prep", "--format", "synthetic", "--input", s(&path), "--out", s(&out)], &["world.toml", needle]);
    }
}

/// Rows of `interactions.parquet` (and the matching `impressions.parquet`) in reverse order,
/// as another tool might write them.
fn reverse_interactions(data: &Path) {
    let mut dataset = simforge_data::tables::Dataset::load(data).expect("dataset");
    dataset.interactions.reverse();
    if let Some(shown) = dataset.impressions.as_mut() {
        shown.reverse();
    }
    dataset.write(data).expect("write dataset");
}

#[test]
fn tables_from_other_tools_are_read_correctly_or_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = |n: &str| dir.path().join(n);
    ok_json(&["prep", "--format", "synthetic", "--seed", "1", "--out", s(&d("data"))]);
    ok_json(&["prep", "--format", "synthetic", "--seed", "2", "--out", s(&d("other"))]);

    // Counts larger than the data can give build what it can, without reserving the request.
    let scenes = ok_json(&["scenes", "--data", s(&d("data")), "--out", s(&d("scenes")), "--train", "1000000000000", "--eval", "5"]);
    assert!(scenes["train"].as_u64().is_some_and(|n| n > 1000 && n < 1_000_000), "{scenes}");

    // Rows out of user/time order are the same dataset: the split must not change.
    ok_json(&["split", "--data", s(&d("data")), "--out", s(&d("split"))]);
    std::fs::create_dir(d("shuffled")).expect("mkdir");
    for entry in std::fs::read_dir(d("data")).expect("read_dir") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), d("shuffled").join(entry.file_name())).expect("copy");
    }
    reverse_interactions(&d("shuffled"));
    ok_json(&["split", "--data", s(&d("shuffled")), "--out", s(&d("split-shuffled"))]);
    let parts = |p: &Path| {
        let t = Table::read(&p.join("split.parquet")).expect("split");
        (t.u32s("user_id").expect("u"), t.u32s("item_id").expect("i"), t.strings("part").expect("p"))
    };
    assert_eq!(parts(&d("split")), parts(&d("split-shuffled")));

    // A split made from another dataset is refused, not misread.
    fails_with(&["profiles", "--data", s(&d("other")), "--split", s(&d("split")), "--out", s(&d("profiles"))], &["split.parquet", "another dataset"]);

    // A null id is an error, not user 0.
    let path = d("shuffled").join("interactions.parquet");
    let t = Table::read(&path).expect("interactions");
    let users: Vec<Option<u32>> = t.u32s("user_id").expect("u").into_iter().enumerate().map(|(i, u)| (i != 3).then_some(u)).collect();
    pq::write(
        &path,
        vec![
            ("user_id", pq::opt_u32_col(users)),
            ("item_id", pq::u32_col(t.u32s("item_id").expect("i"))),
            ("timestamp", pq::i64_col(t.i64s("timestamp").expect("t"))),
            ("rating", pq::opt_f32_col(t.opt_f32s("rating").expect("r"))),
            ("review", pq::opt_str_col(t.opt_strings("review").expect("r"))),
        ],
    )
    .expect("write");
    fails_with(&["split", "--data", s(&d("shuffled")), "--out", s(&d("split-null"))], &["interactions.parquet", "record 3", "user_id", "null"]);

    // Settings out of range name the flag.
    ok_json(&["profiles", "--data", s(&d("data")), "--split", s(&d("split")), "--out", s(&d("profiles"))]);
    let (data, profiles, out) = (d("data"), d("profiles"), d("defects"));
    let defects = |extra: &[&str], needles: &[&str]| {
        let mut args = vec!["defects", "--data", s(&data), "--profiles", s(&profiles), "--out", s(&out)];
        args.extend_from_slice(extra);
        fails_with(&args, needles);
    };
    defects(&["--eval-frac", "2"], &["--eval-frac", "found 2"]);
    defects(&["--per-class", "0"], &["--per-class"]);
}

/// A copy of the tied-embedding fixture whose `config.json` is edited by `edit`.
fn fixture_with(edit: impl FnOnce(&mut serde_json::Value)) -> tempfile::TempDir {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("trainer/tests/fixtures/qwen3-tied");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(src.join("model.safetensors"), dir.path().join("model.safetensors")).expect("copy");
    let mut config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).expect("config")).expect("json");
    edit(&mut config);
    std::fs::write(dir.path().join("config.json"), config.to_string()).expect("write config");
    dir
}

#[test]
fn model_folders_that_would_give_nan_or_leave_their_folder_are_refused() {
    let logits = |dir: &Path, needles: &[&str]| fails_with(&["lm", "logits", "--model", s(dir), "--ids", "1 2 3"], needles);
    logits(fixture_with(|c| c["rope_theta"] = 0.into()).path(), &["config.json", "rope_theta"]);
    logits(fixture_with(|c| c["rms_norm_eps"] = (-1e-6).into()).path(), &["config.json", "rms_norm_eps"]);

    // The first value of the data section (some tensor's first element) set to NaN.
    let nan = fixture_with(|_| {});
    let path = nan.path().join("model.safetensors");
    let mut bytes = std::fs::read(&path).expect("read");
    let header = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    bytes[8 + header..12 + header].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(&path, bytes).expect("write");
    logits(nan.path(), &["model.embed_tokens.weight", "non-finite"]);

    // Shards named by an index must be files of the model folder.
    let escape = fixture_with(|_| {});
    std::fs::remove_file(escape.path().join("model.safetensors")).expect("rm");
    write(escape.path(), "model.safetensors.index.json", "{\"weight_map\": {\"model.embed_tokens.weight\": \"../../../etc/hostname\"}}");
    logits(escape.path(), &["model.safetensors.index.json", "not a file name inside the model folder"]);

    // `runs/tiny` next to a `runs/` folder is a mistyped path, never a download.
    let cwd = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(cwd.path().join("runs")).expect("mkdir");
    let out = binary()
        .args(["lm", "logits", "--model", "runs/tiny", "--ids", "1"])
        .current_dir(cwd.path())
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.code() == Some(1) && stderr.contains("runs/tiny") && stderr.contains("no such model folder"), "{stderr}");
}

#[test]
fn training_refuses_bad_settings_and_never_deletes_its_inputs() {
    let model = model_with_tokenizer("qwen3-tied");
    let dir = tempfile::tempdir().expect("tempdir");
    let table = |name: &str, split: &str, target_pos: u32| {
        let path = dir.path().join(name);
        pq::write(
            &path,
            vec![
                ("prompt", pq::str_col((0..40).map(|i| format!("A B {}", char::from(b'C' + (i % 5) as u8))))),
                ("target_pos", pq::u32_col((0..40).map(|_| target_pos))),
                ("choice_cnt", pq::u32_col((0..40).map(|_| 5))),
                ("split", pq::str_col((0..40).map(|i| if i < 4 { "eval" } else { split }))),
            ],
        )
        .expect("write scenes");
        path
    };
    let scenes = table("scenes.parquet", "train", 1);
    let out = dir.path().join("run");
    let sft = |data: &Path, extra: &[&str], needles: &[&str]| {
        let mut args = vec!["train", "sft", "--model", s(model.path()), "--data", s(data), "--out", s(&out), "--batch-size", "4"];
        args.extend_from_slice(extra);
        fails_with(&args, needles)
    };
    sft(&scenes, &["--max-steps", "0"], &["max_steps"]);
    sft(&scenes, &["--eps", "nan"], &["--eps", "NaN is not a finite number"]);
    sft(&scenes, &["--lr", "inf"], &["--lr", "inf is not a finite number"]);
    sft(&table("eval-only.parquet", "eval", 1), &[], &["eval-only.parquet", "held out"]);
    sft(&table("past-last-letter.parquet", "train", 7), &[], &["past-last-letter.parquet", "row 0", "target_pos 7"]);

    // A fresh run into the folder that holds its start model refuses; the model stays.
    let start = out.join("checkpoint-1");
    std::fs::create_dir_all(&start).expect("mkdir");
    for entry in std::fs::read_dir(model.path()).expect("read_dir") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), start.join(entry.file_name())).expect("copy");
    }
    let args = ["train", "sft", "--model", s(&start), "--data", s(&scenes), "--out", s(&out), "--max-steps", "1", "--batch-size", "4"];
    fails_with(&args, &["checkpoint-1", "--resume"]);
    assert!(start.join("model.safetensors").is_file(), "the start model was deleted");

    // SASRec's settings are checked the same way.
    let data = dir.path().join("data");
    ok_json(&["prep", "--format", "synthetic", "--seed", "3", "--out", s(&data)]);
    let sasrec_out = dir.path().join("sasrec");
    let sasrec = |extra: &[&str], needles: &[&str]| {
        let mut args = vec!["train", "sasrec", "--data", s(&data), "--out", s(&sasrec_out)];
        args.extend_from_slice(extra);
        fails_with(&args, needles);
    };
    sasrec(&["--lr", "inf"], &["--lr", "inf is not a finite number"]);
    sasrec(&["--epochs", "0"], &["epochs"]);
    let written: Vec<_> = std::fs::read_dir(&sasrec_out).map(|d| d.flatten().map(|e| e.file_name()).collect()).unwrap_or_default();
    assert!(written.is_empty(), "a refused run writes nothing: {written:?}");
}

#[test]
fn a_hostile_archive_leaves_nothing_half_unpacked() {
    let mut cursor = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut cursor);
    let options = zip::write::SimpleFileOptions::default();
    zip.start_file("ml-100k/u.data", options).expect("file");
    zip.write_all(b"1\t1\t5\t881250949\n").expect("write");
    zip.start_file("../escaped.txt", options).expect("file");
    zip.write_all(b"outside").expect("write");
    zip.finish().expect("finish");
    let archive = cursor.into_inner();
    let dir = tempfile::tempdir().expect("tempdir");
    let local = write(dir.path(), "hostile.zip", "");
    std::fs::write(&local, &archive).expect("write archive");
    let out = dir.path().join("downloads");
    let sha = simforge_data::fsutil::sha256_bytes(&archive);
    fails_with(&["data", "fetch", "ml-100k", "--out", s(&out), "--from-file", s(&local), "--sha256", &sha], &["cannot unpack"]);
    let left: Vec<String> = std::fs::read_dir(&out).expect("out").map(|e| e.expect("entry").file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(left, vec!["ml-100k.zip".to_string()], "only the verified archive stays");
    assert!(!dir.path().join("escaped.txt").exists());
}

#[test]
fn a_training_run_killed_mid_way_resumes_to_the_uninterrupted_model() {
    let model = model_with_tokenizer("qwen3-tied");
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("scenes.parquet");
    pq::write(
        &data,
        vec![
            ("prompt", pq::str_col((0..64).map(|i| format!("A B {} D", char::from(b'C' + (i % 7) as u8))))),
            ("target_pos", pq::u32_col((0..64).map(|i| i % 5))),
            ("choice_cnt", pq::u32_col((0..64).map(|_| 5))),
        ],
    )
    .expect("write scenes");
    let args = |out: &Path| -> Vec<String> {
        let mut args: Vec<String> = ["train", "sft", "--model", s(model.path()), "--data", s(&data), "--out", s(out)].map(String::from).to_vec();
        args.extend("--epochs 1000 --max-steps 1500 --batch-size 4 --save-every 50 --seed 3".split(' ').map(String::from));
        args
    };
    let (whole, killed) = run_killed_and_resumed(dir.path(), &args, &|out| out.join("checkpoint-500").exists());
    let weights = |out: &Path| std::fs::read(out.join("model/model.safetensors")).expect("final model");
    assert!(weights(&whole) == weights(&killed), "the resumed model differs from the uninterrupted one");
    assert_eq!(logged(&killed, "step"), (1..=1500).collect::<Vec<u64>>(), "every step logged once: none lost, none repeated");
}

#[test]
fn a_sasrec_run_killed_mid_way_resumes_to_the_uninterrupted_model() {
    let dir = tempfile::tempdir().expect("tempdir");
    let world = write(dir.path(), "world.toml", "users = 1000\nitems = 400\ninteractions_per_user = 30\n");
    let data = dir.path().join("data");
    ok_json(&["prep", "--format", "synthetic", "--input", s(&world), "--seed", "1", "--out", s(&data)]);
    let args = |out: &Path| -> Vec<String> {
        let mut args: Vec<String> = ["train", "sasrec", "--data", s(&data), "--out", s(out)].map(String::from).to_vec();
        args.extend("--epochs 40 --eval-every 1 --patience 0 --max-len 20 --seed 3".split(' ').map(String::from));
        args
    };
    // Checkpoints are kept newest-only, so any of epoch 10 or later means mid-way.
    let mid_way =
        |out: &Path| {
            std::fs::read_dir(out).into_iter().flatten().flatten().any(|e| {
                e.file_name().to_str().and_then(|n| n.strip_prefix("checkpoint-")).and_then(|n| n.parse::<u32>().ok()).is_some_and(|epoch| epoch >= 10)
            })
        };
    let (whole, killed) = run_killed_and_resumed(dir.path(), &args, &mid_way);
    for file in ["model/model.safetensors", "best/model.safetensors"] {
        let bytes = |out: &Path| std::fs::read(out.join(file)).expect(file);
        assert!(bytes(&whole) == bytes(&killed), "{file}: the resumed run differs from the uninterrupted one");
    }
    assert_eq!(logged(&killed, "epoch"), (1..=40).collect::<Vec<u64>>(), "every epoch logged once: none lost, none repeated");
}

/// Runs `args(out)` to the end into `whole`; then into `killed`, killed with SIGKILL as soon as
/// `mid_way(killed)` holds, and run again there with `--resume`. Returns both folders.
fn run_killed_and_resumed(dir: &Path, args: &dyn Fn(&Path) -> Vec<String>, mid_way: &dyn Fn(&Path) -> bool) -> (PathBuf, PathBuf) {
    let whole = dir.join("whole");
    let run = binary().args(args(&whole)).output().expect("run");
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let killed = dir.join("killed");
    let mut child = binary().args(args(&killed)).stderr(std::process::Stdio::null()).spawn().expect("spawn");
    while !mid_way(&killed) && child.try_wait().expect("wait").is_none() {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let interrupted = child.try_wait().expect("wait").is_none();
    child.kill().expect("kill");
    child.wait().expect("reap");
    assert!(interrupted, "the run finished before it could be killed; give it more steps");
    assert!(!killed.join("model").exists(), "no final model from a killed run");
    let mut resume = args(&killed);
    resume.push("--resume".into());
    let resumed = binary().args(&resume).output().expect("resume");
    assert!(resumed.status.success(), "{}", String::from_utf8_lossy(&resumed.stderr));
    (whole, killed)
}

/// The `key` of every line of a run's `metrics.jsonl`, in order.
fn logged(out: &Path, key: &str) -> Vec<u64> {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .expect("metrics")
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json")[key].as_u64().expect(key))
        .collect()
}

#[test]
fn lm_requests_that_would_panic_or_hang_are_refused_or_bounded() {
    let model = model_with_tokenizer("qwen3-tied");
    let dir = tempfile::tempdir().expect("tempdir");
    let input = write(dir.path(), "in.jsonl", "{\"ids\": [1, 2, 3]}\n");
    let out = dir.path().join("out.jsonl");
    let (model_dir, input_file, out_file) = (s(model.path()), s(&input), s(&out));
    let lm = |command: &'static str, extra: &[&'static str]| {
        let mut args = vec!["lm", command, "--model", model_dir, "--input", input_file, "--out", out_file];
        args.extend_from_slice(extra);
        args
    };
    fails_with(&lm("generate", &["--temperature", "nan"]), &["--temperature", "NaN is not a finite number"]);
    // Far past the model's 256 positions: clamped to its context, not a hang.
    let long = simforge(&lm("generate", &["--max-new-tokens", "1000000000"]));
    assert!(long.status.success(), "{}", String::from_utf8_lossy(&long.stderr));
    let samples: serde_json::Value = serde_json::from_str(std::fs::read_to_string(&out).expect("out").trim()).expect("json");
    assert!(samples["samples"][0]["ids"].as_array().is_some_and(|ids| ids.len() <= 253), "{samples}");
    write(dir.path(), "in.jsonl", "{\"ids\": [1, 2, 3], \"continuations\": []}\n");
    fails_with(&lm("score", &[]), &["in.jsonl:1", "continuations"]);
}

#[test]
fn serve_keeps_answering_beside_a_long_request_and_ends_each_at_its_deadline() {
    let model = model_with_tokenizer("qwen3-tied");
    let chat = |n: u32, max_tokens: u32| {
        serde_json::json!({"model": "sim", "messages": [{"role": "user", "content": "A B C"}], "n": n, "max_tokens": max_tokens, "seed": 1}).to_string()
    };
    // Two workers: a short request is answered while a long one (64 × 240 tokens) runs.
    let server = start_serve(model.path(), &["--workers", "2"]);
    let addr = server.addr.clone();
    let long_started = std::time::Instant::now();
    let long = {
        let (addr, body) = (addr.clone(), chat(64, 240));
        std::thread::spawn(move || http(&addr, "POST", "/v1/chat/completions", &body))
    };
    std::thread::sleep(std::time::Duration::from_millis(100));
    let short_started = std::time::Instant::now();
    let (status, short) = http(&addr, "POST", "/v1/chat/completions", &chat(1, 1));
    let short_took = short_started.elapsed();
    assert_eq!(status, 200, "{short}");
    assert!(!long.is_finished(), "the long request ended before the short one: nothing overlapped");
    let (status, long_answer) = long.join().expect("long request");
    let long_took = long_started.elapsed();
    assert_eq!(status, 200, "{long_answer}");
    // Behind one worker the short request would wait out most of the long one.
    assert!(short_took * 3 < long_took, "the short request took {short_took:?} beside a long one of {long_took:?}");
    drop(server);

    // A deadline of 1 ms cuts 4 × 200 tokens short, as "length".
    let server = start_serve(model.path(), &["--request-timeout", "0.001"]);
    let (status, cut) = http(&server.addr, "POST", "/v1/chat/completions", &chat(4, 200));
    assert_eq!(status, 200, "{cut}");
    assert!(cut["usage"]["completion_tokens"].as_u64().is_some_and(|t| t < 800), "{cut}");
    assert!(cut["choices"].as_array().is_some_and(|c| c.iter().all(|c| c["finish_reason"] == "length")), "{cut}");
    fails_with(&["serve", "--model", s(model.path()), "--port", "0", "--workers", "0"], &["workers"]);
}

#[path = "../data-prep/tests/support/mangle.rs"]
mod support;

#[test]
fn mangled_recipes_plan_or_fail_with_a_message() {
    let quickstart = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes/quickstart.toml")).expect("recipe");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("recipe.toml");
    let mut rng = simforge_data::rng::Rng::stream(7, "fuzz-recipe", 0);
    let options = simforge::pipeline::PlanOptions { out: Some(dir.path().join("runs")), offline: true };
    let mut planned = 0;
    for _ in 0..support::cases() {
        std::fs::write(&path, support::mangle(&quickstart, &mut rng)).expect("write");
        match simforge::pipeline::Recipe::load(&path, &[]).and_then(|recipe| recipe.plan(&path, &options)) {
            Ok(_) => planned += 1,
            Err(e) => assert!(e.to_string().contains("recipe.toml"), "the error names the recipe: {e}"),
        }
    }
    assert!(!dir.path().join("runs").exists(), "planning writes nothing");
    eprintln!("{planned} of {} mangled recipes planned", support::cases());
}

#[test]
fn a_recipe_input_with_a_link_loop_is_read_without_following_the_loop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("data");
    std::fs::create_dir(&input).expect("mkdir");
    write(&input, "u.data", "1\t1\t5\t881250949\n");
    std::os::unix::fs::symlink(&input, input.join("again")).expect("symlink");
    let recipe = write(dir.path(), "loop.toml", "[run]\nname = \"loop\"\n[prep]\ninput = \"data\"\n");
    let runs = dir.path().join("runs");
    // The loop is not followed; the stage runs on the one real file.
    let summary = ok_json(&["run", s(&recipe), "--out", s(&runs)]);
    assert!(summary["stages"]["prep"]["seconds"].is_number(), "{summary}");
    let manifest = std::fs::read_to_string(runs.join("loop/prep/manifest.json")).expect("manifest");
    assert!(manifest.contains("u.data") && !manifest.contains("again"), "{manifest}");
}
