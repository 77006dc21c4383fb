//! `simforge bench`: measurements of simforge itself, written as JSON. Comparisons with other
//! tools (pandas, PyTorch) are scripts in `benches/` that run these and the other tool in the
//! same session, so the product binary never starts Python.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use simforge_data::sources::synthetic::{self, WorldConfig};
use simforge_trainer::burn::module::Module;
use simforge_trainer::burn::tensor::Device;
use simforge_trainer::inference::LanguageModel;
use simforge_trainer::models::qwen3::{Qwen3Config, Qwen3ForCausalLM};
use simforge_trainer::train::config::TrainConfig;
use simforge_trainer::train::data::Example;
use simforge_trainer::train::optim::AdamW;
use simforge_trainer::train::{clip_global_norm, step_gradients, Loss};
use simforge_trainer::weights::WeightSource;
use simforge_trainer::TrainerError;

use crate::pipeline::{PipelineError, Result};

/// Peak resident memory of this process (VmHWM), in KiB, where /proc has it.
pub fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn machine() -> serde_json::Value {
    serde_json::json!({ "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1), "os": std::env::consts::OS, "arch": std::env::consts::ARCH })
}

fn unix_time() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn failed(what: &str, message: String) -> PipelineError {
    PipelineError::Trainer(TrainerError::settings(what, message))
}

/// The data benchmark's size (MovieLens-1M's by default).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataBench {
    pub users: usize,
    pub items: usize,
    pub interactions: u64,
    /// Scenes to build (a tenth of them evaluation scenes).
    pub scenes: usize,
}

impl Default for DataBench {
    fn default() -> Self {
        Self { users: 6_040, items: 3_706, interactions: 1_000_209, scenes: 100_000 }
    }
}

struct Measured {
    seconds: f64,
    peak_mb: Option<f64>,
    stdout: serde_json::Value,
}

/// Runs this program with `args` as a child process and times it; its peak memory is its own.
fn measure(workdir: &Path, label: &str, args: &[&str]) -> Result<Measured> {
    let report = workdir.join(format!("{label}.peak"));
    let exe = std::env::current_exe().map_err(|e| simforge_data::DataError::io("the running program", e))?;
    let clock = Instant::now();
    let output = Command::new(&exe).args(args).arg("--peak-memory-report").arg(&report).output().map_err(|e| simforge_data::DataError::io(&exe, e))?;
    let seconds = clock.elapsed().as_secs_f64();
    if !output.status.success() {
        return Err(failed(label, String::from_utf8_lossy(&output.stderr).into_owned()));
    }
    let peak_mb = std::fs::read_to_string(&report).ok().and_then(|s| s.trim().parse::<f64>().ok()).map(|kb| kb / 1024.0);
    let stdout = serde_json::from_slice(&output.stdout).unwrap_or(serde_json::Value::Null);
    Ok(Measured { seconds, peak_mb, stdout })
}

/// Data-prep at `size`: a synthetic world written as MovieLens-1M `.dat` files into
/// `workdir/ml-1m-synthetic`, then `prep` and `scenes`, each timed with its peak memory.
pub fn data(size: &DataBench, workdir: &Path) -> Result<serde_json::Value> {
    std::fs::create_dir_all(workdir).map_err(|e| simforge_data::DataError::io(workdir, e))?;
    let world = WorldConfig { users: size.users, items: size.items, interactions: Some(size.interactions), ..WorldConfig::default() };
    tracing::info!("generating {} interactions over {} users and {} items", size.interactions, size.users, size.items);
    let clock = Instant::now();
    let (source, _) = synthetic::generate(&world, 0)?;
    let raw = workdir.join("ml-1m-synthetic");
    synthetic::write_movielens_dat(&source, &raw)?;
    let generate_seconds = clock.elapsed().as_secs_f64();
    drop(source);

    let path = |p: &Path| p.display().to_string();
    let tables = workdir.join("tables");
    tracing::info!("timing prep");
    let prep = measure(workdir, "prep", &["prep", "--format", "movielens", "--input", &path(&raw), "--out", &path(&tables)])?;
    let eval = (size.scenes / 10).to_string();
    let train = (size.scenes - size.scenes / 10).to_string();
    let eval_per_user = (size.scenes / 10).div_ceil(size.users.max(1)).max(1).to_string();
    tracing::info!("timing scenes");
    let scenes_dir = path(&workdir.join("scenes"));
    let scenes = measure(
        workdir,
        "scenes",
        &["scenes", "--data", &path(&tables), "--out", &scenes_dir, "--train", &train, "--eval", &eval, "--eval-per-user", &eval_per_user],
    )?;
    Ok(serde_json::json!({
        "benchmark": "data",
        "machine": machine(),
        "unix_time": unix_time(),
        "size": size,
        "raw": raw,
        "generate_seconds": generate_seconds,
        "prep": { "seconds": prep.seconds, "peak_mb": prep.peak_mb, "target_seconds": 5.0, "stats": prep.stdout },
        "scenes": { "seconds": scenes.seconds, "peak_mb": scenes.peak_mb, "target_seconds": 10.0, "stats": scenes.stdout },
        "target_peak_mb": 1024.0,
    }))
}

/// What the language-model benchmark times.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LmBench {
    /// Configs to measure: `tiny`, `qwen3-0.6b`.
    pub configs: Vec<String>,
    pub seq_len: usize,
    /// Sequences per forward pass for the tiny config (the 0.6B shape uses 1).
    pub batch: usize,
    /// Timed repetitions after one warm-up.
    pub reps: usize,
    /// What to time: `score` (one forward pass, logits at the last position), `train` (forward,
    /// backward, global-norm clipping, AdamW).
    pub modes: Vec<String>,
}

impl Default for LmBench {
    fn default() -> Self {
        Self { configs: vec!["tiny".into(), "qwen3-0.6b".into()], seq_len: 512, batch: 8, reps: 3, modes: vec!["score".into(), "train".into()] }
    }
}

/// Causal-LM throughput with random weights; each result carries the model config, so a
/// baseline (`benches/lm_compare.py`) can build the same model.
pub fn lm(bench: &LmBench, device: &Device) -> Result<serde_json::Value> {
    let mut results = Vec::new();
    for name in &bench.configs {
        let (config, batch) = match name.as_str() {
            "tiny" => (Qwen3Config::tiny(4096), bench.batch),
            "qwen3-0.6b" => (Qwen3Config::qwen3_0_6b(), 1),
            other => return Err(failed("bench lm", format!("unknown config {other:?}: expected tiny or qwen3-0.6b"))),
        };
        let mut rng = simforge_data::rng::Rng::new(1);
        let sequences: Vec<Vec<u32>> = (0..batch).map(|_| (0..bench.seq_len).map(|_| rng.below(config.vocab_size) as u32).collect()).collect();
        for mode in &bench.modes {
            tracing::info!("{name} {mode}: building random weights");
            let model = Qwen3ForCausalLM::load(&config, &mut WeightSource::random(0, device))?;
            let seconds = match mode.as_str() {
                "score" => {
                    let lm = LanguageModel { model, config: config.clone(), pad_id: 0 };
                    time_reps(bench.reps, || {
                        let _ = lm.last_logits(&sequences).into_data(); // wait for the result
                    })
                }
                "train" => {
                    let examples: Vec<Example> = sequences.iter().map(|s| Example::new(s.clone(), vec![true; s.len()])).collect();
                    let micro = vec![examples.iter().collect::<Vec<_>>()];
                    let mut optimizer = AdamW::new(&TrainConfig::default());
                    let mut model = Some(model.train());
                    time_reps(bench.reps, || {
                        let Some(mut m) = model.take() else { return };
                        let (grads, _) = step_gradients(&mut m, &micro, Loss::Nll { prompt_weight: 0.0 }, 0, 0, config.rope_theta);
                        let norm = grads.global_norm();
                        model = Some(optimizer.apply(m, clip_global_norm(grads, norm, 1.0), 1e-5));
                    })
                }
                other => return Err(failed("bench lm", format!("unknown mode {other:?}: expected score or train"))),
            };
            let tokens = (batch * bench.seq_len) as f64;
            tracing::info!("{name} {mode}: {:.0} tokens/s", tokens / seconds);
            results.push(serde_json::json!({
                "config": name,
                "model_config": config,
                "mode": mode,
                "batch": batch,
                "seq_len": bench.seq_len,
                "reps": bench.reps,
                "simforge": { "seconds": seconds, "tokens_per_second": tokens / seconds },
            }));
        }
    }
    Ok(serde_json::json!({ "benchmark": "lm", "machine": machine(), "unix_time": unix_time(), "results": results }))
}

/// Mean seconds of `reps` runs of `run` after one warm-up run.
fn time_reps(reps: usize, mut run: impl FnMut()) -> f64 {
    run();
    let clock = Instant::now();
    for _ in 0..reps.max(1) {
        run();
    }
    clock.elapsed().as_secs_f64() / reps.max(1) as f64
}

/// A scratch folder under the system's temporary directory.
pub fn scratch(label: &str) -> PathBuf {
    std::env::temp_dir().join(format!("simforge-bench-{label}-{}", std::process::id()))
}
