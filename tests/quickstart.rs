//! The README's first command, `simforge run recipes/quickstart.toml`: every stage's outputs,
//! a second run that skips, resumes after a kill and a corrupted file, and the same bytes from
//! the same seed elsewhere. Its own test file, so that it runs alone and on every core.

use std::path::Path;

use serde_json::Value;

mod common;
use common::{binary, check_defects, json_of, s};

fn tree_digest(dir: &Path) -> Vec<(String, String)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.ends_with("metrics.jsonl") || path.ends_with("summary.json") || path.ends_with("selection.json") {
                // Everything but wall-clock times and throughput must repeat.
                let rel = path.strip_prefix(dir).expect("prefix").display().to_string();
                let text = std::fs::read_to_string(&path).expect("metrics");
                let records: Vec<Value> = if !path.ends_with("metrics.jsonl") {
                    vec![serde_json::from_str(&text).expect("json")]
                } else {
                    text.lines().map(|l| serde_json::from_str(l).expect("metric")).collect()
                };
                let lines: Vec<String> = records
                    .into_iter()
                    .map(|mut m| {
                        // Also the model paths, which name the run's folder.
                        for clock in ["tokens_per_s", "seconds", "seconds_per_epoch", "teacher", "student"] {
                            m.as_object_mut().expect("object").remove(clock);
                        }
                        for simulator in m.as_object_mut().expect("object").values_mut() {
                            if let Some(fields) = simulator.as_object_mut() {
                                fields.remove("spec");
                            }
                        }
                        serde_json::to_string(&m).expect("json")
                    })
                    .collect();
                files.push((rel, simforge_data::fsutil::sha256_bytes(lines.join("\n").as_bytes())));
            } else if !path.ends_with("manifest.json") && !path.ends_with("distill.json") {
                let rel = path.strip_prefix(dir).expect("prefix").display().to_string();
                files.push((rel, simforge_data::fsutil::sha256_file(&path).expect("sha")));
            }
        }
    }
    files.sort();
    files
}

#[test]
fn quickstart_runs_resumes_and_is_deterministic() {
    let recipe = Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes/quickstart.toml");
    let a = tempfile::tempdir().expect("tempdir");
    let run_json = |args: &[&str]| json_of(binary().env("RAYON_NUM_THREADS", "0").args(args));
    let first = run_json(&["run", s(&recipe), "--out", s(a.path())]);
    for stage in ["prep", "scenes", "split", "profiles", "defects", "corpus"] {
        assert!(first["stages"][stage]["seconds"].is_number(), "{stage} should have run: {first}");
        let manifest: Value =
            serde_json::from_str(&std::fs::read_to_string(a.path().join("quickstart").join(stage).join("manifest.json")).expect("manifest")).expect("json");
        assert_eq!(manifest["outcome"], "complete");
        assert!(manifest["outputs"].as_array().is_some_and(|o| !o.is_empty()));
    }
    let run = a.path().join("quickstart");
    assert!(run.join("prep/truth.parquet").is_file(), "the synthetic world writes its ground truth");
    // The tiny student trains: DAPT then SFT, each lowering its loss, ending in HF folders.
    for stage in ["dapt", "sft"] {
        let metrics: Vec<Value> = std::fs::read_to_string(run.join(stage).join("metrics.jsonl"))
            .expect("metrics")
            .lines()
            .map(|l| serde_json::from_str(l).expect("metric"))
            .collect();
        assert_eq!(metrics.len(), 40, "{stage}");
        let (first_loss, last_loss) = (metrics[0]["loss"].as_f64().expect("loss"), metrics[39]["loss"].as_f64().expect("loss"));
        assert!(last_loss < first_loss * 0.8, "{stage}: loss {first_loss} → {last_loss}");
        assert!(metrics[39]["eval_loss"].is_number(), "{stage}: evaluated at the end");
        for file in ["config.json", "model.safetensors", "tokenizer.json", "generation_config.json"] {
            assert!(run.join(stage).join("model").join(file).is_file(), "{stage}/model/{file}");
        }
        assert!(!run.join(stage).join("checkpoint-20").exists(), "a finished stage keeps only its final model");
    }
    // SASRec on the same interactions ranks test targets well above chance (10/101 for HR@10;
    // 0.28 measured: the honest world's popularity no longer answers, so about twice chance is the floor).
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(run.join("sasrec/summary.json")).expect("sasrec summary")).expect("json");
    let sampled = summary["test"].as_array().expect("test reports").iter().find(|r| r["protocol"] == "sampled").expect("sampled").clone();
    assert!(sampled["hr@10"].as_f64().expect("hr@10") > 0.2, "{sampled}");
    assert!(run.join("sasrec/model/histories.parquet").is_file() && !run.join("sasrec/best").exists());
    let reports = tempfile::tempdir().expect("tempdir");
    for protocol in ["sampled", "full"] {
        let out = reports.path().join(protocol);
        run_json(&["eval", "sasrec", "--model", s(&run.join("sasrec/model")), "--data", s(&run.join("prep")), "--protocol", protocol, "--out", s(&out)]);
        let report: Value = serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).expect("report")).expect("json");
        assert_eq!(report["protocol"], protocol);
        assert_eq!(report["users"], 500);
        for key in ["hr@1", "hr@5", "hr@10", "hr@20", "ndcg@5", "ndcg@10", "ndcg@20", "mrr"] {
            let v = report[key].as_f64().unwrap_or_else(|| panic!("{key} in {report}"));
            assert!((0.0..=1.0).contains(&v), "{key} = {v}");
            assert!(report["baselines"]["popularity"][key].is_number());
        }
        assert!(report["hr@10"].as_f64() >= report["hr@5"].as_f64() && report["ndcg@10"].as_f64() <= report["hr@10"].as_f64());
    }
    // The student's alignment accuracy on the held-out scenes, with the keys the report promises.
    let out = reports.path().join("alignment");
    run_json(&[
        "eval",
        "alignment",
        "--scenes",
        s(&run.join("scenes/scenes.parquet")),
        "--simulator",
        s(&run.join("sft/model")),
        "--max-scenes",
        "40",
        "--out",
        s(&out),
    ]);
    let report: Value = serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).expect("report")).expect("json");
    for part in [&report["overall"], &report["datasets"]["synthetic"]] {
        assert_eq!(part["scenes"], 40, "{report}");
        assert!(part["random_baseline"].as_f64().is_some_and(|b| (b - 0.2).abs() < 1e-9), "five options per scene: {report}");
        for key in ["argmax_accuracy", "sampled_accuracy", "ece"] {
            assert!(part[key].as_f64().is_some_and(|v| (0.0..=1.0).contains(&v)), "{key}: {report}");
        }
    }
    assert_eq!(report["by_target_position"].as_array().map(Vec::len), Some(5));
    // Distillation: counts shrink step by step, the data matches them, and DPO starts at ln 2.
    let selection: Value = serde_json::from_str(&std::fs::read_to_string(run.join("distill/selection.json")).expect("selection")).expect("json");
    let count = |k: &str| selection[k].as_u64().unwrap_or_else(|| panic!("{k} in {selection}"));
    assert_eq!(count("scenes_in"), 48);
    assert!(
        count("scenes_in") >= count("after_noise_filter") && count("after_noise_filter") >= count("with_pairs") && count("with_pairs") >= count("selected")
    );
    assert!(count("selected") > 0 && count("selected") <= 32, "{selection}");
    for (file, rows) in [
        ("decisions.parquet", 2 * 48 * 3),
        ("uncertainty.parquet", 2 * 48),
        ("sft.parquet", count("selected") as usize),
        ("dpo.parquet", count("selected") as usize),
    ] {
        assert_eq!(simforge_data::parquet_io::Table::read(&run.join("distill").join(file)).expect(file).rows(), rows, "{file}");
    }
    let dpo_first: Value =
        serde_json::from_str(std::fs::read_to_string(run.join("dpo/metrics.jsonl")).expect("dpo metrics").lines().next().expect("a step")).expect("json");
    assert!((dpo_first["loss"].as_f64().expect("loss") - std::f64::consts::LN_2).abs() < 1e-3, "{dpo_first}");
    assert!(run.join("dpo/model/model.safetensors").is_file());
    // Alignment of every simulator; the oracle knows the truth and must beat chance clearly.
    let alignment: Value = serde_json::from_str(&std::fs::read_to_string(run.join("alignment/summary.json")).expect("alignment")).expect("json");
    for name in ["student", "distilled", "oracle"] {
        assert_eq!(alignment[name]["overall"]["scenes"], 40, "{alignment}");
        assert!(run.join("alignment").join(name).join("report.json").is_file());
    }
    assert!(alignment["oracle"]["overall"]["argmax_accuracy"].as_f64().expect("oracle") > 0.35, "{alignment}");
    check_defects(&run.join("defects/defects.parquet"), 200);
    // DGDPO: the diagnostic model, its accuracy against zero-shot and rules, and the loop.
    assert!(run.join("diagnostic/model/model.safetensors").is_file() && run.join("diagnostic/diagnostic.parquet").is_file());
    let diagnosis: Value = serde_json::from_str(&std::fs::read_to_string(run.join("diagnosis/report.json")).expect("diagnosis")).expect("json");
    for report in [&diagnosis, &diagnosis["baselines"]["zero_shot"], &diagnosis["baselines"]["rule"]] {
        let samples = report["samples"].as_u64().unwrap_or_else(|| panic!("samples in {report}"));
        assert!(samples == 64 && report["accuracy"].as_f64().is_some_and(|a| (0.0..=1.0).contains(&a)), "{report}");
        for class in ["inaccurate", "incomplete", "both"] {
            for key in ["precision", "recall", "f1"] {
                assert!(report["per_class"][class][key].as_f64().is_some_and(|v| (0.0..=1.0).contains(&v)), "{class} {key}: {report}");
            }
        }
        let confusion: u64 =
            report["confusion"].as_array().expect("3 rows").iter().flat_map(|r| r.as_array().expect("3 columns")).map(|v| v.as_u64().expect("count")).sum();
        assert_eq!(confusion, samples, "{report}");
    }
    let dgdpo: Value = serde_json::from_str(&std::fs::read_to_string(run.join("dgdpo/report.json")).expect("dgdpo")).expect("json");
    assert_eq!(dgdpo["users"], 60);
    assert!(dgdpo["diagnoser"].as_str().is_some_and(|d| d.ends_with("diagnostic/model")), "the run's diagnostic model diagnoses: {}", dgdpo["diagnoser"]);
    for method in ["dgdpo", "static", "refine_without_diagnosis", "raw_history"] {
        for m in ["m1", "m3", "m9"] {
            for key in ["precision", "recall", "f1", "accuracy"] {
                assert!(dgdpo["methods"][method][m][key].as_f64().is_some_and(|v| (0.0..=1.0).contains(&v)), "{method} {m} {key}");
            }
        }
    }
    for file in ["profile_history.parquet", "report.md", "precision.svg", "correctness.svg"] {
        assert!(run.join("dgdpo").join(file).is_file(), "dgdpo/{file}");
    }
    let before = tree_digest(&run);

    // A second run finds every stage complete.
    let again = run_json(&["run", s(&recipe), "--out", s(a.path())]);
    assert!(again["stages"].as_object().expect("stages").values().all(|v| v == "skipped"), "{again}");

    // A run killed inside `defects` leaves a partial folder and no finished stage: the next
    // run redoes only that stage and ends with the same files.
    std::fs::remove_dir_all(run.join("defects")).expect("remove");
    std::fs::create_dir_all(run.join("defects.partial")).expect("partial");
    std::fs::write(run.join("defects.partial/defects.parquet"), b"half a file").expect("junk");
    let resumed = run_json(&["run", s(&recipe), "--out", s(a.path())]);
    assert_eq!(resumed["stages"]["prep"], "skipped");
    assert!(resumed["stages"]["defects"]["seconds"].is_number());
    assert!(!run.join("defects.partial").exists());
    assert_eq!(tree_digest(&run), before);

    // A corrupted output is detected and its stage redone.
    std::fs::write(run.join("scenes/scenes.parquet"), b"corrupt").expect("corrupt");
    let repaired = run_json(&["run", s(&recipe), "--out", s(a.path())]);
    assert!(repaired["stages"]["scenes"]["seconds"].is_number());
    assert_eq!(tree_digest(&run), before);

    // Same recipe and seed elsewhere: the same bytes.
    let b = tempfile::tempdir().expect("tempdir");
    run_json(&["run", s(&recipe), "--out", s(b.path())]);
    assert_eq!(tree_digest(&b.path().join("quickstart")), before);
}
