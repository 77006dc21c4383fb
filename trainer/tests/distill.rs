//! Distillation end to end on a small synthetic world: the oracle against a tiny student,
//! the selection rules on what comes out, an interrupted run resuming to the same decisions;
//! and DPO starting at ln 2 and learning a preference.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use simforge_data::parquet_io::{self as pq, Table};
use simforge_data::prep::{prep, PrepConfig};
use simforge_data::rng::Rng;
use simforge_data::scenes::{letter, scenes, ScenesConfig};
use simforge_data::sources::synthetic::WorldConfig;
use simforge_data::sources::Format;
use simforge_trainer::agent::{AgentSpec, EndpointSettings};
use simforge_trainer::checkpoint::write_random_init;
use simforge_trainer::distill::oracle::OracleTeacher;
use simforge_trainer::distill::teacher::{Decision, DecisionScene, LocalTeacher, Teacher};
use simforge_trainer::distill::{distill, DistillConfig, DistillJob, Selection};
use simforge_trainer::inference::SamplingOptions;
use simforge_trainer::models::qwen3::Qwen3Config;
use simforge_trainer::openai::client::Reply;
use simforge_trainer::tokenizer::Tokenizer;
use simforge_trainer::train::config::{Objective, TrainConfig};
use simforge_trainer::train::{train, StepMetrics, TrainJob, METRICS_FILE};

fn device() -> Device {
    simforge_trainer::device::Device::Cpu.open().expect("cpu device")
}

/// A prepared synthetic world, its scenes, and a tiny random model whose BPE knows the prompts.
fn world(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let data = dir.join("prep");
    let world = WorldConfig { users: 30, items: 60, interactions_per_user: 12, ..WorldConfig::default() };
    prep(&PrepConfig { format: Some(Format::Synthetic), world: Some(world), seed: Some(4), ..PrepConfig::default() }, &data).expect("prep");
    let scenes_dir = dir.join("scenes");
    scenes(&data, &scenes_dir, &ScenesConfig { train: 24, eval: 6, max_exposure: 5, seed: Some(4), ..ScenesConfig::default() }).expect("scenes");
    let scenes_file = scenes_dir.join("scenes.parquet");
    let prompts = Table::read(&scenes_file).expect("scenes table").strings("prompt").expect("prompts");
    let tokenizer = Tokenizer::train_byte_level_bpe(prompts.iter(), 400).expect("bpe");
    let config = Qwen3Config::micro(tokenizer.vocab_size());
    let model = dir.join("student");
    write_random_init(&model, &config, &tokenizer, 5, &device()).expect("init");
    (data, scenes_file, model)
}

/// The oracle until `batches` calls are spent, then an error (a crash mid-distillation).
struct FailingOracle {
    inner: OracleTeacher,
    batches: usize,
}

impl Teacher for FailingOracle {
    fn name(&self) -> String {
        self.inner.name()
    }

    fn decide(&mut self, scenes: &[DecisionScene], samples: usize, seed: u64) -> simforge_trainer::Result<Vec<Vec<Decision>>> {
        if self.batches == 0 {
            return Err(simforge_trainer::TrainerError::endpoint("test", "connection lost"));
        }
        self.batches -= 1;
        self.inner.decide(scenes, samples, seed)
    }
}

fn student(model: &Path) -> LocalTeacher {
    let sampling = SamplingOptions { max_new_tokens: 6, temperature: 1.0, top_p: 0.9, ..SamplingOptions::default() };
    LocalTeacher::load(model, sampling, &device()).expect("student")
}

fn run(scenes: &Path, teacher: &mut dyn Teacher, model: &Path, out: &Path, config: &DistillConfig) -> simforge_trainer::Result<Selection> {
    let mut student = student(model);
    distill(DistillJob { scenes, teacher, student: &mut student, out, config }, &mut |_, _| {})
}

#[test]
fn distillation_selects_by_gap_and_an_interrupted_run_resumes_to_the_same_decisions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, scenes_file, model) = world(dir.path());
    let config =
        DistillConfig { student: Some(AgentSpec::Local(model.clone())), samples: 3, top_k: 8, batch_size: 5, seed: Some(2), ..DistillConfig::default() };

    let whole = dir.path().join("whole");
    let selection = run(&scenes_file, &mut OracleTeacher::load(&data).expect("oracle"), &model, &whole, &config).expect("distill");
    let train_scenes = 24;
    assert_eq!(selection.scenes_in, train_scenes);
    assert!(
        selection.scenes_in >= selection.after_noise_filter
            && selection.after_noise_filter >= selection.with_pairs
            && selection.with_pairs >= selection.selected
    );
    assert_eq!(selection.selected, selection.with_pairs.min(8));
    assert!(selection.selected > 0, "{selection:?}");
    assert!(selection.mean_gap_selected >= selection.mean_gap_all - 1e-9, "{selection:?}");

    let decisions = Table::read(&whole.join("decisions.parquet")).expect("decisions");
    assert_eq!(decisions.rows(), 2 * train_scenes * 3);
    assert_eq!(Table::read(&whole.join("uncertainty.parquet")).expect("uncertainty").rows(), 2 * train_scenes);
    let correct = decisions.bools("correct").expect("correct");
    let (sampled, target) = (decisions.u32s("sampled").expect("sampled"), decisions.u32s("target").expect("target"));
    assert!(correct.iter().zip(sampled.iter().zip(&target)).all(|(c, (s, t))| *c == (s == t)));

    // Chosen decisions pick the real choice, rejected ones do not.
    let scenes_table = Table::read(&scenes_file).expect("scenes");
    let target_of: std::collections::HashMap<u32, u32> =
        scenes_table.u32s("scene_id").expect("ids").into_iter().zip(scenes_table.u32s("target_pos").expect("pos")).collect();
    let dpo = Table::read(&whole.join("dpo.parquet")).expect("dpo");
    assert_eq!(dpo.rows(), selection.selected);
    assert_eq!(Table::read(&whole.join("sft.parquet")).expect("sft").rows(), selection.selected);
    for ((id, chosen), rejected) in
        dpo.u32s("scene_id").expect("ids").iter().zip(dpo.strings("chosen").expect("chosen")).zip(dpo.strings("rejected").expect("rejected"))
    {
        let right = format!("Behavior: [{}]", letter(target_of[id] as usize));
        assert!(chosen.ends_with(&right), "{chosen}");
        assert!(!rejected.ends_with(&right), "{rejected}");
    }

    // Killed after two batches, then started again: the same decisions, none twice.
    let resumed = dir.path().join("resumed");
    let failing = run(&scenes_file, &mut FailingOracle { inner: OracleTeacher::load(&data).expect("oracle"), batches: 2 }, &model, &resumed, &config);
    assert!(failing.is_err());
    assert_eq!(std::fs::read_dir(resumed.join("decisions.parts")).expect("parts").count(), 2);
    let again = run(&scenes_file, &mut OracleTeacher::load(&data).expect("oracle"), &model, &resumed, &config).expect("resume");
    assert_eq!(again, selection);
    let resumed_decisions = Table::read(&resumed.join("decisions.parquet")).expect("decisions");
    for column in ["text", "sampled_letter", "role"] {
        assert_eq!(resumed_decisions.strings(column).expect("column"), decisions.strings(column).expect("column"), "{column}");
    }
    assert_eq!(resumed_decisions.f32_lists("letters").expect("letters"), decisions.f32_lists("letters").expect("letters"));
    assert!(!resumed.join("decisions.parts").exists());

    // Other settings in the same folder are refused; random selection keeps the size.
    let other = DistillConfig { samples: 2, ..config.clone() };
    assert!(run(&scenes_file, &mut OracleTeacher::load(&data).expect("oracle"), &model, &resumed, &other).is_err());
    let random = DistillConfig { select: simforge_trainer::distill::uncertainty::SelectionMode::Random, ..config };
    let random_selection = run(&scenes_file, &mut OracleTeacher::load(&data).expect("oracle"), &model, &dir.path().join("random"), &random).expect("random");
    assert_eq!(random_selection.selected, selection.selected);

    // The selected scenes carry the teacher's choice distribution, for a student under the
    // option readout: the oracle's is the world's true one.
    let choices = Table::read(&whole.join(simforge_trainer::distill::CHOICES_FILE)).expect("choices");
    assert_eq!(choices.rows(), selection.selected);
    let oracle = OracleTeacher::load(&data).expect("oracle");
    let all = simforge_trainer::distill::teacher::read_decision_scenes(&scenes_file, None).expect("scenes");
    for ((id, probs), target) in
        choices.u32s("scene_id").expect("ids").iter().zip(choices.f32_lists("teacher_probs").expect("probs")).zip(choices.u32s("target_pos").expect("targets"))
    {
        let scene = all.iter().find(|s| s.scene_id == *id).expect("a selected scene");
        let truth = oracle.choice_probabilities(scene).expect("truth");
        assert_eq!(target, target_of[id]);
        assert!(probs.iter().zip(&truth).all(|(p, t)| (f64::from(*p) - t).abs() < 1e-6), "{probs:?} against {truth:?}");
    }
}

/// A student trained under the option readout decides by it: its choice distribution, the same
/// for every sample, and options drawn from it, repeatably.
#[test]
fn a_student_under_the_option_readout_decides_by_its_choice_distribution() {
    use simforge_trainer::readout::OptionReadout;
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, scenes_file, model) = world(dir.path());
    let tokenizer = Tokenizer::from_file(&model.join("tokenizer.json")).expect("tokenizer");
    OptionReadout::for_tokenizer(&tokenizer).expect("readout").write(&model).expect("declare the readout");
    let mut student = simforge_trainer::distill::open_teacher(
        &AgentSpec::Local(model.clone()),
        "student",
        None,
        &SamplingOptions::default(),
        &EndpointSettings::default(),
        &device(),
    )
    .expect("student");
    let scenes = simforge_trainer::distill::teacher::read_decision_scenes(&scenes_file, None).expect("scenes");
    let decisions = student.decide(&scenes[..6], 3, 9).expect("decide");
    for (scene, ds) in scenes.iter().zip(&decisions) {
        assert_eq!(ds.len(), 3);
        assert!((ds[0].letters.iter().sum::<f32>() - 1.0).abs() < 1e-4 && ds[0].letters.len() == scene.choices());
        for d in ds {
            assert_eq!(d.letters, ds[0].letters);
            assert_eq!(d.text, format!("Behavior: [{}]", letter(d.sampled)));
        }
    }
    assert_eq!(student.decide(&scenes[..6], 3, 9).expect("again"), decisions);
}

#[test]
fn dpo_starts_at_ln2_and_learns_the_preference() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, _, model) = world(dir.path());
    // The chosen answer always names the first option, the rejected one the second.
    let prompts: Vec<String> = (0..24).map(|i| format!("Scene {i}: which item?\n[A] item {i}\n[B] item {}", i + 1)).collect();
    let data = dir.path().join("dpo.parquet");
    pq::write(
        &data,
        vec![
            ("prompt", pq::str_col(prompts.iter())),
            ("chosen", pq::str_col(prompts.iter().map(|_| "Behavior: [A]"))),
            ("rejected", pq::str_col(prompts.iter().map(|_| "Behavior: [B]"))),
        ],
    )
    .expect("write");
    let out = dir.path().join("dpo");
    let config = TrainConfig {
        max_steps: Some(25),
        epochs: 100,
        batch_size: 4,
        seq_len: 128,
        lr: 1e-2,
        warmup_ratio: 0.0,
        eval_fraction: 0.2,
        seed: Some(1),
        dpo_beta: 0.5,
        ..TrainConfig::default()
    };
    let job = TrainJob { objective: Objective::Dpo, data: &data, init: &model, out: &out, config: &config, device: device(), resume: false };
    let summary = train(&job, &mut |_, _| {}).expect("dpo");
    let metrics: Vec<StepMetrics> =
        std::fs::read_to_string(out.join(METRICS_FILE)).expect("metrics").lines().map(|l| serde_json::from_str(l).expect("line")).collect();
    // The policy is the reference at the first step: −log σ(0) = ln 2, whatever the data.
    assert!((metrics[0].loss - std::f64::consts::LN_2).abs() < 1e-4, "{}", metrics[0].loss);
    let eval = summary.eval_loss.expect("eval loss");
    assert!(eval < 0.2, "held-out pairs are now preferred the right way: {eval}");
}

/// A scripted fault in front of the real server, for one request each.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    TooManyRequests,
    ServerError,
    /// Answers after the client's timeout.
    Slow,
    /// A 200 whose JSON body is cut in half.
    Truncated,
}

/// A real HTTP proxy on 127.0.0.1 that passes requests to `upstream`, but answers the first ones
/// with `faults` and, once `alive` requests have come, stops listening (the endpoint dies).
fn fault_proxy(upstream: String, faults: Vec<Fault>, alive: usize) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind proxy");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        let mut faults = faults.into_iter();
        for (served, stream) in listener.incoming().enumerate() {
            if served >= alive {
                return;
            }
            let Ok(stream) = stream else { continue };
            let (fault, upstream) = (faults.next(), upstream.clone());
            std::thread::spawn(move || proxy_one(stream, fault, &upstream));
        }
    });
    format!("http://{addr}")
}

fn proxy_one(mut stream: std::net::TcpStream, fault: Option<Fault>, upstream: &str) {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let (mut request_line, mut length) = (String::new(), 0usize);
    reader.read_line(&mut request_line).expect("request line");
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).expect("header");
        if header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().expect("length");
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).expect("body");
    let path = request_line.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let forward = || {
        let response = reqwest::blocking::Client::new()
            .post(format!("{upstream}{path}"))
            .header("Content-Type", "application/json")
            .body(body.clone())
            .send()
            .expect("upstream");
        (response.status().as_u16(), response.text().expect("upstream body"))
    };
    let (status, text, extra) = match fault {
        Some(Fault::TooManyRequests) => (429, r#"{"error":{"message":"slow down","type":"rate_limit"}}"#.to_owned(), "Retry-After: 0\r\n"),
        Some(Fault::ServerError) => (500, "internal error".to_owned(), ""),
        Some(Fault::Slow) => {
            std::thread::sleep(std::time::Duration::from_secs(6));
            (503, "too late".to_owned(), "")
        }
        Some(Fault::Truncated) => {
            let (status, text) = forward();
            (status, text[..text.len() / 2].to_owned(), "")
        }
        None => {
            let (status, text) = forward();
            (status, text, "")
        }
    };
    let head = format!("HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n", text.len());
    let _ = stream.write_all(head.as_bytes()).and_then(|_| stream.write_all(text.as_bytes()));
}

/// `simforge serve`'s server with `model` as "tiny", on a free port; its base URL.
fn start_server(model: &Path) -> String {
    let served = simforge_trainer::openai::server::ServedModel::load(model, Some("tiny".into()), &Default::default(), &device()).expect("load");
    simforge_trainer::openai::server::spawn(served).expect("serve")
}

fn openai_teacher(base: &str, model: &str, retries: u32, concurrency: usize) -> Box<dyn Teacher> {
    let config = DistillConfig {
        teacher: AgentSpec::OpenAi { model: model.into(), base_url: Some(format!("{base}/v1")) },
        max_new_tokens: 8,
        endpoint: EndpointSettings { retries, request_timeout: 5.0, retry_delay: 0.01, concurrency, ..EndpointSettings::default() },
        ..DistillConfig::default()
    };
    simforge_trainer::distill::open_teacher(&config.teacher, "teacher", None, &config.sampling(), &config.endpoint, &device()).expect("openai teacher")
}

/// The tiny model after a few SFT steps on decisions, so that option letters are among its
/// likeliest tokens after `Behavior: [` (a random one spreads them over the vocabulary).
fn decision_model(dir: &Path, scenes_file: &Path, init: &Path) -> PathBuf {
    let table = Table::read(scenes_file).expect("scenes");
    let (prompts, targets) = (table.strings("prompt").expect("prompts"), table.u32s("target_pos").expect("targets"));
    let data = dir.join("decisions-sft.parquet");
    pq::write(
        &data,
        vec![
            ("system", pq::str_col(prompts.iter().map(|_| simforge_trainer::distill::teacher::DECISION_SYSTEM_PROMPT))),
            ("prompt", pq::str_col(prompts.iter())),
            ("response", pq::str_col(targets.iter().map(|&t| format!("Stimulus: the list.\nBehavior: [{}]", letter(t as usize))))),
        ],
    )
    .expect("write");
    let out = dir.join("decision-sft");
    let config = TrainConfig {
        max_steps: Some(40),
        epochs: 100,
        batch_size: 4,
        seq_len: 2048,
        lr: 1e-2,
        warmup_ratio: 0.0,
        eval_fraction: 0.0,
        seed: Some(1),
        ..TrainConfig::default()
    };
    train(&TrainJob { objective: Objective::Sft, data: &data, init, out: &out, config: &config, device: device(), resume: false }, &mut |_, _| {})
        .expect("sft");
    out.join("model")
}

#[test]
fn openai_teacher_against_simforge_serve_survives_faults_and_a_dead_endpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, scenes_file, init) = world(dir.path());
    let model = decision_model(dir.path(), &scenes_file, &init);
    let server = start_server(&model);
    let scenes = simforge_trainer::distill::teacher::read_decision_scenes(&scenes_file, Some(simforge_data::tables::Split::Train)).expect("scenes");
    let scenes = &scenes[..4];

    // The endpoint's letters are the model's: the same odds between letters as local scoring of
    // the same text. (A sampled completion's own tokens may split the text differently from
    // encoding it afresh, so the comparison continues each rationale as an assistant prefix,
    // which the server encodes as local scoring does.)
    let direct = openai_teacher(&server, "tiny", 2, 2).decide(scenes, 2, 9).expect("decisions");
    let local = student(&model);
    let endpoint = EndpointSettings::default().open(Some(&format!("{server}/v1"))).expect("endpoint");
    let sampling = SamplingOptions { max_new_tokens: 8, temperature: 1.0, top_p: 0.9, ..SamplingOptions::default() };
    for (scene, decisions) in scenes.iter().zip(&direct) {
        for d in decisions {
            assert!(!d.is_failed(), "{}", d.text);
            let rationale = &d.text[..d.text.len() - 2];
            assert!(rationale.ends_with("Behavior: ["), "{}", d.text);
            let request = simforge_trainer::distill::remote::decision_request("tiny", scene, &sampling, 9);
            let Reply::Ok(remote) = endpoint.letters_after(&request, rationale, scene.choices(), &mut Rng::new(1)).expect("prefix request") else {
                panic!("no letters")
            };
            let p = &local.letter_distributions(&[scene], &[rationale.to_owned()]).expect("local")[0];
            let present: Vec<usize> = (0..p.len()).filter(|&k| remote[k] > 1e-6).collect();
            if let [a, b, ..] = present[..] {
                let (remote, here) = (remote[a] / remote[b], p[a] / p[b]);
                // Up to float differences between forward passes over different lengths.
                assert!((remote / here - 1.0).abs() < 1e-3, "odds {remote} vs {here}");
            }
        }
    }
    // The same seed gives the same decisions; a 4xx (unknown model) is an error, not retried.
    assert_eq!(openai_teacher(&server, "tiny", 2, 3).decide(scenes, 2, 9).expect("again"), direct);
    let wrong = openai_teacher(&server, "gpt-0", 3, 1).decide(scenes, 1, 9).expect_err("unknown model");
    assert!(wrong.to_string().contains("HTTP 404") && wrong.to_string().contains("does not exist"), "{wrong}");

    // 429, 500 and a timeout are retried; a truncated body costs exactly one sample.
    let proxy = fault_proxy(server.clone(), vec![Fault::TooManyRequests, Fault::ServerError, Fault::Slow, Fault::Truncated], usize::MAX);
    let faulty = openai_teacher(&proxy, "tiny", 3, 1).decide(scenes, 2, 9).expect("decisions through faults");
    let failed: Vec<&Decision> = faulty.iter().flatten().filter(|d| d.is_failed()).collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0].text.contains("not a chat completion"), "{}", failed[0].text);
    for (a, b) in faulty.iter().flatten().zip(direct.iter().flatten()) {
        assert!(a.is_failed() || a == b);
    }

    // The endpoint dies after the first batch (at most 32 requests of 48 or more): the run stops
    // with an error, keeps the finished batches, and resumes against the live endpoint to the decisions of an uninterrupted run.
    let config = DistillConfig {
        teacher: AgentSpec::OpenAi { model: "tiny".into(), base_url: None },
        samples: 2,
        top_k: 8,
        batch_size: 8,
        seed: Some(2),
        ..DistillConfig::default()
    };
    let whole = dir.path().join("whole-openai");
    run(&scenes_file, openai_teacher(&server, "tiny", 2, 4).as_mut(), &model, &whole, &config).expect("uninterrupted");
    let resumed = dir.path().join("resumed-openai");
    let dying = fault_proxy(server.clone(), vec![], 8 * 2 * 2 + 1);
    let error = run(&scenes_file, openai_teacher(&dying, "tiny", 1, 4).as_mut(), &model, &resumed, &config).expect_err("dead endpoint");
    assert!(error.to_string().contains("after 2 attempts"), "{error}");
    let parts = std::fs::read_dir(resumed.join("decisions.parts")).expect("parts").count();
    assert!((1..3).contains(&parts), "{parts} finished batches");
    run(&scenes_file, openai_teacher(&server, "tiny", 2, 4).as_mut(), &model, &resumed, &config).expect("resumed");
    let (a, b) = (Table::read(&whole.join("decisions.parquet")).expect("a"), Table::read(&resumed.join("decisions.parquet")).expect("b"));
    assert_eq!(a.strings("text").expect("text"), b.strings("text").expect("text"));
    assert_eq!(a.f32_lists("letters").expect("letters"), b.f32_lists("letters").expect("letters"));
    assert!(a.bools("failed").expect("failed").iter().all(|f| !f));
}

#[test]
fn ensemble_teacher_finds_the_worlds_tastes_from_histories_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, scenes_file, _) = world(dir.path());
    let scenes = simforge_trainer::distill::teacher::read_decision_scenes(&scenes_file, None).expect("scenes");
    let mut ensemble = simforge_trainer::distill::ensemble::EnsembleTeacher::load(&data, None, &device()).expect("ensemble");
    let decisions = ensemble.decide(&scenes, 3, 1).expect("decide");
    let (mut truth, mut chance) = (0.0, 0.0);
    for (scene, ds) in scenes.iter().zip(&decisions) {
        assert_eq!(ds.len(), 3);
        for d in ds {
            assert!((d.letters.iter().sum::<f32>() - 1.0).abs() < 1e-5);
            assert!(
                d.text.starts_with("Stimulus: ") && d.text.contains("\nKnowledge: ") && d.text.ends_with(&format!("Behavior: [{}]", letter(d.sampled))),
                "{}",
                d.text
            );
        }
        truth += f64::from(ds[0].letters[scene.target]);
        chance += 1.0 / scene.choices() as f64;
    }
    let n = scenes.len() as f64;
    eprintln!("ensemble: mean P(real choice) {:.3}, chance {:.3}", truth / n, chance / n);
    assert!(truth / n > chance / n + 0.05, "the voters see the world's genre tastes: {} vs {}", truth / n, chance / n);
    assert_eq!(ensemble.decide(&scenes, 3, 1).expect("again"), decisions, "seeded");
}
