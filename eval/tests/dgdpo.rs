//! DGDPO end to end on a small synthetic world: the rule loop's bookkeeping, metrics and
//! determinism; a tiny diagnostic model trained on the defect samples, served over real HTTP
//! and answering like the local model; and language-model parts playing the whole loop.

use std::path::{Path, PathBuf};

use serde_json::Value;
use simforge_data::defects::{defects, DefectsConfig, DEFECTS_FILE};
use simforge_data::diagnosis::{write_diagnostic_records, CaseFormat, DIAGNOSIS_CUE};
use simforge_data::parquet_io::Table;
use simforge_data::prep::{prep, PrepConfig};
use simforge_data::profiles::{profiles, ProfilesConfig};
use simforge_data::scenes::Rendering;
use simforge_data::sources::synthetic::WorldConfig;
use simforge_data::sources::Format;
use simforge_data::split::{split, SplitConfig};
use simforge_data::tables::{Dataset, Split};
use simforge_eval::curve::{learning_curve, CurveTask};
use simforge_eval::dgdpo::{run_dgdpo, DgdpoConfig, KeepRule, Parts, HISTORY_FILE, PROGRESS_FILE};
use simforge_eval::diagnosis::{open_diagnoser, read_defect_cases, Diagnoser, LmDiagnoser, RuleDiagnoser};
use simforge_eval::llm::{open_llm, LetterAsk, Llm, LocalLlm, WriteAsk};
use simforge_eval::simulator::{LmSimulator, Persona, RuleSimulator, Simulator};
use simforge_eval::treatment::{LlmTreatment, RuleTreatment};
use simforge_trainer::agent::{AgentSpec, EndpointSettings};
use simforge_trainer::burn::tensor::Device;
use simforge_trainer::checkpoint::write_random_init;
use simforge_trainer::models::qwen3::Qwen3Config;
use simforge_trainer::readout::OptionReadout;
use simforge_trainer::tokenizer::Tokenizer;
use simforge_trainer::train::config::{Objective, Readout, TrainConfig};
use simforge_trainer::train::diagnostic::fine_tune;
use simforge_trainer::train::{train, TrainJob, FINAL_MODEL};

fn device() -> Device {
    simforge_trainer::device::Device::Cpu.open().expect("cpu device")
}

struct World {
    data: PathBuf,
    split: PathBuf,
    profiles: PathBuf,
    defects: PathBuf,
}

fn world(dir: &Path) -> World {
    let data = dir.join("prep");
    let config = WorldConfig { users: 60, items: 120, interactions_per_user: 20, ..WorldConfig::default() };
    prep(&PrepConfig { format: Some(Format::Synthetic), world: Some(config), seed: Some(3), ..PrepConfig::default() }, &data).expect("prep");
    let w = World { split: dir.join("split"), profiles: dir.join("profiles"), defects: dir.join("defects"), data };
    split(&w.data, &w.split, &SplitConfig::default()).expect("split");
    profiles(&w.data, &w.split, &w.profiles, &ProfilesConfig::default()).expect("profiles");
    defects(&w.data, &w.profiles, &w.defects, &DefectsConfig { per_class: 30, seed: Some(3), ..DefectsConfig::default() }).expect("defects");
    w
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("read")).expect("json")
}

fn rule_run(w: &World, dataset: &Dataset, config: &DgdpoConfig, out: &Path) -> Value {
    let items = dataset.items.as_slice();
    let (mut simulator, mut diagnoser, mut treatment) = (RuleSimulator { items }, RuleDiagnoser { items }, RuleTreatment { items });
    let mut parts = Parts { simulator: &mut simulator, diagnoser: &mut diagnoser, treatment: &mut treatment };
    run_dgdpo(&w.data, dataset, &w.split, &w.profiles, &mut parts, config, out).expect("dgdpo");
    read_json(&out.join("report.json"))
}

#[test]
fn the_rule_loop_keeps_only_fixing_rewrites_measures_every_method_and_is_deterministic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let w = world(dir.path());
    let dataset = Dataset::load(&w.data).expect("dataset");
    let config = DgdpoConfig { seed: Some(5), ..DgdpoConfig::default() };
    let report = rule_run(&w, &dataset, &config, &dir.path().join("a"));
    let users = report["users"].as_u64().expect("users") as usize;
    let test_items = report["test_items"].as_u64().expect("test items");
    assert_eq!(users, 60);
    for method in ["dgdpo", "static", "refine_without_diagnosis", "raw_history", "ground_truth"] {
        let mut last_precision = f64::INFINITY;
        for m in [1u64, 3, 9] {
            let f = &report["methods"][method][format!("m{m}")];
            for key in ["precision", "recall", "f1", "accuracy"] {
                assert!(f[key].as_f64().is_some_and(|v| (0.0..=1.0).contains(&v)), "{method} m{m} {key}: {f}");
            }
            let count = |k: &str| f[k].as_u64().expect("count");
            assert_eq!(count("tp") + count("fn"), test_items, "every real item is asked once");
            assert_eq!(count("fp") + count("tn"), m * test_items, "m negatives per real item");
            // The same picks, more negatives: precision can only fall.
            let precision = f["precision"].as_f64().expect("precision");
            assert!(precision <= last_precision + 1e-12, "{method}: m{m} precision {precision} above {last_precision}");
            last_precision = precision;
        }
    }
    // Every step is counted, every discrepancy diagnosed and its rewrite kept or rejected.
    let history = Table::read(&dir.path().join("a").join(HISTORY_FILE)).expect("profile history");
    let (methods, kept, reasons, diagnoses) = (
        history.strings("method").expect("method"),
        history.bools("kept").expect("kept"),
        history.strings("reason").expect("reason"),
        history.opt_strings("diagnosis").expect("diagnosis"),
    );
    for method in ["dgdpo", "refine_without_diagnosis"] {
        let stats = &report["optimisation"][method];
        let n = |k: &str| stats[k].as_u64().expect("count") as usize;
        assert!(n("discrepancies") > 0 && n("discrepancies") <= n("steps"), "{stats}");
        assert_eq!(n("rewrites_kept") + n("rewrites_rejected"), n("discrepancies"));
        let rows: Vec<usize> = (0..history.rows()).filter(|&r| methods[r] == method).collect();
        assert_eq!(rows.len(), users + n("discrepancies"), "an initial version per user and one per discrepancy");
        let kept_rows = rows.iter().filter(|&&r| kept[r] && reasons[r] != "initial profile from D_ini").count();
        assert_eq!(kept_rows, n("rewrites_kept"));
        // keep = fixed: a kept rewrite is one that made the real choice.
        assert!(rows.iter().filter(|&&r| kept[r] && reasons[r] != "initial profile from D_ini").all(|&r| reasons[r].starts_with("kept: the rewrite makes")));
        let diagnosed = rows.iter().filter(|&&r| diagnoses[r].is_some()).count();
        assert_eq!(diagnosed, if method == "dgdpo" { n("discrepancies") } else { 0 });
    }
    let correctness = &report["profile_correctness"];
    for method in ["static", "dgdpo", "refine_without_diagnosis"] {
        assert!(correctness[method]["true_stated"].as_f64().is_some_and(|v| (0.0..=1.0).contains(&v)), "{correctness}");
    }
    let curve = report["correctness_curve"]["dgdpo"].as_array().expect("curve");
    assert_eq!(curve[0], correctness["static"], "the curve starts at the initial profiles");
    assert_eq!(curve.last(), Some(&correctness["dgdpo"]), "and ends at the final ones");
    for file in ["report.md", "precision.svg", "correctness.svg"] {
        assert!(dir.path().join("a").join(file).is_file(), "{file}");
    }

    // The same seed: the same bytes; keep = always: nothing is rejected.
    rule_run(&w, &dataset, &config, &dir.path().join("b"));
    for file in ["report.json", HISTORY_FILE] {
        assert_eq!(std::fs::read(dir.path().join("a").join(file)).expect("a"), std::fs::read(dir.path().join("b").join(file)).expect("b"), "{file}");
    }
    let always = rule_run(&w, &dataset, &DgdpoConfig { keep: KeepRule::Always, ..config.clone() }, &dir.path().join("c"));
    assert_eq!(always["optimisation"]["dgdpo"]["rewrites_rejected"], 0);
}

/// The rule simulator behind an endpoint that goes down after `calls_left` batches.
struct FailingSimulator<'a> {
    inner: RuleSimulator<'a>,
    calls_left: usize,
    calls: usize,
}

impl Simulator for FailingSimulator<'_> {
    fn name(&self) -> String {
        self.inner.name()
    }

    fn choose(&mut self, asks: &[(&Persona, &[u32])]) -> simforge_eval::Result<Vec<Vec<f32>>> {
        self.calls += 1;
        if self.calls > self.calls_left {
            return Err(simforge_eval::EvalError::settings("simulator", "the endpoint went away"));
        }
        self.inner.choose(asks)
    }

    fn pick(&mut self, asks: &[(&Persona, u32)]) -> simforge_eval::Result<Vec<f32>> {
        self.inner.pick(asks)
    }
}

#[test]
fn a_stopped_run_continues_after_its_last_step_to_the_uninterrupted_result() {
    let dir = tempfile::tempdir().expect("tempdir");
    let w = world(dir.path());
    let dataset = Dataset::load(&w.data).expect("dataset");
    let items = dataset.items.as_slice();
    let config = DgdpoConfig { seed: Some(5), batch_size: 16, ..DgdpoConfig::default() };
    let whole = dir.path().join("whole");
    rule_run(&w, &dataset, &config, &whole);

    let run = |out: &Path, calls_left: usize| {
        let mut simulator = FailingSimulator { inner: RuleSimulator { items }, calls_left, calls: 0 };
        let (mut diagnoser, mut treatment) = (RuleDiagnoser { items }, RuleTreatment { items });
        let mut parts = Parts { simulator: &mut simulator, diagnoser: &mut diagnoser, treatment: &mut treatment };
        let result = run_dgdpo(&w.data, &dataset, &w.split, &w.profiles, &mut parts, &config, out);
        (result, simulator.calls)
    };
    let stopped = dir.path().join("stopped");
    let (result, _) = run(&stopped, 9);
    assert!(result.expect_err("the endpoint went away").to_string().contains("went away"));
    let journal = std::fs::read_to_string(stopped.join(PROGRESS_FILE)).expect("the journal of a stopped run stays");
    let steps_done = journal.lines().count() - 1;
    assert!(steps_done >= 1, "{journal}");
    // A kill while a step was being written leaves a torn line: it is dropped.
    std::fs::write(stopped.join(PROGRESS_FILE), format!("{journal}{{\"method\":\"dgd")).expect("torn line");

    let (result, calls) = run(&stopped, usize::MAX);
    result.expect("resumed");
    let (_, all_calls) = run(&dir.path().join("again"), usize::MAX);
    assert!(calls < all_calls, "the resumed run asked {calls} batches, a whole run {all_calls}: the finished steps were not redone");
    for file in ["report.json", HISTORY_FILE] {
        assert!(std::fs::read(whole.join(file)).expect("whole") == std::fs::read(stopped.join(file)).expect("resumed"), "{file} differs after resuming");
    }
    assert!(!stopped.join(PROGRESS_FILE).exists(), "a finished run removes its journal");

    // Other settings into the same folder start over instead of mixing two runs.
    let (result, _) = run(&stopped, 9);
    assert!(result.is_err());
    let other = DgdpoConfig { keep: KeepRule::Always, ..config.clone() };
    let mut simulator = RuleSimulator { items };
    let (mut diagnoser, mut treatment) = (RuleDiagnoser { items }, RuleTreatment { items });
    let mut parts = Parts { simulator: &mut simulator, diagnoser: &mut diagnoser, treatment: &mut treatment };
    let report = run_dgdpo(&w.data, &dataset, &w.split, &w.profiles, &mut parts, &other, &stopped).expect("fresh run");
    assert_eq!(report.optimisation["dgdpo"].rewrites_rejected, 0, "keep = always from its first step");
}

/// A tiny Qwen3 trained on the diagnostic records of `defects` for `steps` steps.
fn diagnostic_model(dir: &Path, defects_file: &Path, steps: usize) -> PathBuf {
    let records = dir.join("diagnostic.parquet");
    write_diagnostic_records(defects_file, &records).expect("records");
    let prompts = Table::read(&records).expect("records").strings("prompt").expect("prompts");
    let tokenizer = Tokenizer::train_byte_level_bpe(prompts.iter(), 400).expect("bpe");
    let config = Qwen3Config::micro(tokenizer.vocab_size());
    let init = dir.join("init");
    write_random_init(&init, &config, &tokenizer, 5, &device()).expect("init");
    let train_config = TrainConfig { max_steps: Some(steps), epochs: 100, batch_size: 8, seq_len: 1024, lr: 1e-2, seed: Some(1), ..TrainConfig::default() };
    let out = dir.join("diagnostic");
    let job = TrainJob { objective: Objective::Sft, data: &records, init: &init, out: &out, config: &train_config, device: device(), resume: false };
    train(&job, &mut |_, _| {}).expect("train");
    out.join(FINAL_MODEL)
}

/// `simforge serve`'s server with `model` as "tiny", on a free port; its base URL.
fn start_server(model: &Path) -> String {
    let served = simforge_trainer::openai::server::ServedModel::load(model, Some("tiny".into()), &Default::default(), &device()).expect("load");
    simforge_trainer::openai::server::spawn(served).expect("serve") + "/v1"
}

#[test]
fn a_trained_diagnostic_model_writes_labels_answers_over_http_and_language_models_play_the_loop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let w = world(dir.path());
    let model = diagnostic_model(dir.path(), &w.defects.join("defects.parquet"), 100);

    // Plain generation after the fixed prompt writes the label format.
    let cases = read_defect_cases(&w.defects.join("defects.parquet"), simforge_data::tables::Split::Eval).expect("cases");
    assert!(!cases.is_empty());
    let mut local = LocalLlm::load(&model, &device()).expect("local");
    let prompt = simforge_data::diagnosis::diagnosis_prompt(&cases[0].0.render(), Rendering::Usermirrorer);
    let written = local.write(&[WriteAsk { system: None, user: prompt.clone(), max_new_tokens: 8 }]).expect("write");
    assert!(written[0].starts_with(DIAGNOSIS_CUE), "the trained model writes `Diagnosis: [`, wrote {:?}", written[0]);

    // The same model behind the OpenAI-compatible server gives the same label odds.
    let asks: Vec<LetterAsk> = cases
        .iter()
        .take(4)
        .map(|(c, _)| LetterAsk {
            system: None,
            user: simforge_data::diagnosis::diagnosis_prompt(&c.render(), Rendering::Usermirrorer),
            cue: DIAGNOSIS_CUE,
            choices: 3,
        })
        .collect();
    let here = local.letters(&asks).expect("local letters");
    let base_url = start_server(&model);
    let mut remote = open_llm(
        &AgentSpec::OpenAi { model: "tiny".into(), base_url: Some(base_url) },
        "diagnoser",
        &EndpointSettings { concurrency: 2, ..EndpointSettings::default() },
        &device(),
    )
    .expect("remote");
    let there = remote.letters(&asks).expect("remote letters");
    for (a, b) in here.iter().zip(&there) {
        assert_eq!(a.len(), 3);
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 0.01, "local {a:?} vs served {b:?}");
        }
    }
    // Greedy text over HTTP is the local text (what an `openai` treatment receives).
    let served_text = remote.write(&[WriteAsk { system: None, user: prompt, max_new_tokens: 8 }]).expect("remote write");
    assert_eq!(served_text, written);
    let mut diagnoser = LmDiagnoser { llm: Box::new(local), rendering: Rendering::Usermirrorer, items: &[] };
    let probs = diagnoser.diagnose(&[cases[0].0.clone()]).expect("diagnose");
    assert!((probs[0].iter().sum::<f32>() - 1.0).abs() < 1e-4, "{probs:?}");

    // Language models as simulator, diagnoser and treatment: the loop runs and reports.
    let dataset = Dataset::load(&w.data).expect("dataset");
    let items = dataset.items.as_slice();
    let mut simulator = LmSimulator { llm: Box::new(LocalLlm::load(&model, &device()).expect("simulator")), items };
    let mut treatment = LlmTreatment { llm: Box::new(LocalLlm::load(&model, &device()).expect("treatment")), max_new_tokens: 24 };
    let mut parts = Parts { simulator: &mut simulator, diagnoser: &mut diagnoser, treatment: &mut treatment };
    let config = DgdpoConfig { max_users: Some(3), seed: Some(2), batch_size: 8, ..DgdpoConfig::default() };
    let out = dir.path().join("lm-loop");
    let report = run_dgdpo(&w.data, &dataset, &w.split, &w.profiles, &mut parts, &config, &out).expect("dgdpo with models");
    assert_eq!(report.users, 3);
    let stats = &report.optimisation["dgdpo"];
    assert_eq!(stats.diagnoses.values().sum::<usize>(), stats.discrepancies);
    assert!(report.methods["raw_history"]["m3"].precision <= 1.0);
    assert!(read_json(&out.join("report.json"))["methods"]["dgdpo"]["m9"]["f1"].is_number());
}

#[test]
fn compact_cases_are_asked_as_they_were_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let w = world(dir.path());
    let dataset = Dataset::load(&w.data).expect("dataset");
    let out = dir.path().join("compact");
    let config = DefectsConfig { per_class: 30, seed: Some(3), rendering: Rendering::Compact, ..DefectsConfig::default() };
    defects(&w.data, &w.profiles, &out, &config).expect("compact defects");
    let file = out.join(DEFECTS_FILE);
    let table = Table::read(&file).expect("compact table");
    let usermirrorer = Table::read(&w.defects.join(DEFECTS_FILE)).expect("usermirrorer table");
    assert_eq!(table.strings("label").expect("labels"), usermirrorer.strings("label").expect("labels"), "the same samples, written differently");

    // What a diagnoser asks at evaluation and in DGDPO is what the model was trained on.
    let written = table.strings("case").expect("cases");
    let read: Vec<_> = [Split::Train, Split::Eval].into_iter().flat_map(|s| read_defect_cases(&file, s).expect("read")).collect();
    assert_eq!(read.len(), written.len());
    for ((case, _), text) in read.iter().zip(&written) {
        assert!(text.starts_with("Likes: ") && !text.contains("# User Profile"), "{text}");
        assert_eq!(case.render_as(Rendering::Compact, &dataset.items), *text);
    }
    assert!(read.iter().filter(|(c, _)| !c.history_items.is_empty()).count() > read.len() / 2, "the history's items are read back");
    let (records, rendering) = write_diagnostic_records(&file, &dir.path().join("records.parquet")).expect("records");
    assert_eq!((records, rendering), (written.len(), Rendering::Compact));

    // A model folder that reads compact cases needs the items they name.
    let model = dir.path().join("model");
    std::fs::create_dir_all(&model).expect("model dir");
    CaseFormat { rendering: Rendering::Compact }.write(&model).expect("case format");
    let Err(missing) = open_diagnoser(&AgentSpec::Local(model), &[], &EndpointSettings::default(), &device()) else {
        panic!("a compact model without items opened")
    };
    assert!(missing.to_string().contains("give --data"), "{missing}");

    // Defect fine-tuning under the option readout from a base that has one (as the reading
    // model does): the model records its case format, is asked through the readout, and its
    // kept checkpoints make a learning curve.
    let tokenizer = Tokenizer::train_byte_level_bpe(written.iter(), 400).expect("bpe");
    let init = dir.path().join("init");
    write_random_init(&init, &Qwen3Config::micro(tokenizer.vocab_size()), &tokenizer, 5, &device()).expect("init");
    OptionReadout::for_tokenizer(&tokenizer).expect("readout").write(&init).expect("write readout");
    let config = TrainConfig {
        readout: Readout::Options,
        max_steps: Some(8),
        epochs: 100,
        batch_size: 8,
        seq_len: 1024,
        lr: 1e-2,
        save_every: 4,
        seed: Some(1),
        ..TrainConfig::default()
    };
    let run = dir.path().join("diagnostic");
    let usermirrorer = fine_tune(&init, &w.defects.join(DEFECTS_FILE), &run, &config, &device(), false, &mut |_, _| {}).expect_err("not compact");
    assert!(usermirrorer.to_string().contains("--rendering compact"), "{usermirrorer}");
    fine_tune(&init, &file, &run, &config, &device(), false, &mut |_, _| {}).expect("fine-tune");
    assert_eq!(CaseFormat::read(&run.join(FINAL_MODEL)).expect("case format"), Some(CaseFormat { rendering: Rendering::Compact }));
    let (cases, truth): (Vec<_>, Vec<_>) = read_defect_cases(&file, Split::Eval).expect("held out").into_iter().unzip();
    let mut diagnoser = open_diagnoser(&AgentSpec::Local(run.join(FINAL_MODEL)), &dataset.items, &EndpointSettings::default(), &device()).expect("open");
    for p in diagnoser.diagnose(&cases[..4]).expect("diagnose") {
        assert!(p.len() == 3 && (p.iter().sum::<f32>() - 1.0).abs() < 1e-4, "{p:?}");
    }
    let curve = learning_curve(&run, Some(&init), &CurveTask::Diagnosis { cases: &cases, truth: &truth }, Some((&w.data, &dataset)), &device()).expect("curve");
    let steps: Vec<(usize, usize)> = curve.points.iter().map(|p| (p.step, p.examples)).collect();
    assert_eq!(steps, [(0, 0), (4, 32), (8, 64)]);
    assert!(curve.points.iter().all(|p| (0.0..=1.0).contains(&p.accuracy) && p.standard_error > 0.0));
    assert_eq!(curve.levels.iter().map(|(name, _)| name.as_str()).collect::<Vec<_>>(), ["chance", "rule diagnoser"]);
    curve.write(&dir.path().join("curve")).expect("write curve");
    let svg = std::fs::read_to_string(dir.path().join("curve").join("by_examples.svg")).expect("svg");
    assert_eq!(svg.matches("<polyline").count(), 1);
}
