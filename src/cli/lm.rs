//! `simforge lm`: inference on a Qwen3 checkpoint folder (logits, generation, scoring).

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde::Deserialize;
use serde_json::{json, Value};
use simforge_trainer::device;
use simforge_trainer::inference::{LanguageModel, SamplingOptions};
use simforge_trainer::tokenizer::{chat_template, Message, Tokenizer};

#[derive(Debug, Subcommand)]
pub enum LmCommand {
    /// Print the logits at the last position of each token sequence as JSON
    /// (`{"logits": [[...], ...]}`, f32), and nothing else on stdout.
    #[command(after_help = "Example:\n  simforge lm logits --model trainer/tests/fixtures/qwen3-tied --ids \"1 2 3\" --ids \"4 5\"")]
    Logits(LogitsArgs),
    /// Generate continuations for JSONL prompts: each line is {"prompt": TEXT},
    /// {"messages": [{"role", "content"}, ...]} (the chat template is applied) or {"ids": [...]}.
    /// Writes one line per prompt: {"line": N, "samples": [{"ids": [...], "text": ...}]}.
    #[command(after_help = "Example:\n  simforge lm generate --model Qwen3-0.6B --input prompts.jsonl --out out.jsonl --temperature 1 --top-p 0.9 --samples 10")]
    Generate(GenerateArgs),
    /// Score JSONL prompts: with {"options": K} the probability of each option letter after
    /// the prompt (which should end in `Behavior: [`); with {"continuations": [TEXT, ...]} the
    /// total log-probability of each continuation.
    #[command(after_help = "Example:\n  simforge lm score --model Qwen3-0.6B --input scenes.jsonl --out scores.jsonl")]
    Score(ScoreArgs),
}

#[derive(Debug, Args)]
pub struct LogitsArgs {
    /// Checkpoint folder with config.json and model.safetensors (or a sharded index).
    #[arg(long)]
    pub model: PathBuf,
    /// Token ids separated by spaces; repeat for a batch (left-padded together).
    #[arg(long, required = true)]
    pub ids: Vec<String>,
    /// cpu, wgpu or cuda[:N] (each needs its cargo feature).
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

#[derive(Debug, Args)]
pub struct IoArgs {
    /// Checkpoint folder (config.json, model.safetensors, tokenizer.json for text prompts) or
    /// a hub id such as Qwen/Qwen3-0.6B (downloaded into the Hugging Face cache).
    #[arg(long)]
    pub model: PathBuf,
    /// JSONL input.
    #[arg(long)]
    pub input: PathBuf,
    /// JSONL output (written to a temporary file, renamed when complete).
    #[arg(long)]
    pub out: PathBuf,
    /// Prompts per forward batch.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// cpu, wgpu or cuda[:N].
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub io: IoArgs,
    /// Most new tokens per sample.
    #[arg(long, default_value_t = 64)]
    pub max_new_tokens: usize,
    /// 0 is greedy decoding.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f64,
    /// Nucleus sampling threshold (0, 1].
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f64,
    /// Samples per prompt.
    #[arg(long, default_value_t = 1)]
    pub samples: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Stop when the generated text contains this string (repeatable); the text is cut before it.
    #[arg(long)]
    pub stop: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ScoreArgs {
    #[command(flatten)]
    pub io: IoArgs,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    prompt: Option<String>,
    messages: Option<Vec<Message>>,
    ids: Option<Vec<u32>>,
    options: Option<usize>,
    continuations: Option<Vec<String>>,
}

pub fn lm(command: LmCommand) -> anyhow::Result<()> {
    match command {
        LmCommand::Logits(args) => logits(args),
        LmCommand::Generate(args) => generate(args),
        LmCommand::Score(args) => score(args),
    }
}

fn logits(args: LogitsArgs) -> anyhow::Result<()> {
    let device = device::parse(&args.device)?;
    let lm = LanguageModel::load(&super::model_dir(&args.model)?, &device)?;
    let mut sequences = Vec::with_capacity(args.ids.len());
    for (n, text) in args.ids.iter().enumerate() {
        let ids: Vec<u32> = text
            .split_whitespace()
            .map(|t| t.parse::<u32>().with_context(|| format!("--ids #{}: {t:?} is not a token id", n + 1)))
            .collect::<anyhow::Result<_>>()?;
        if ids.is_empty() {
            bail!("--ids #{} is empty", n + 1);
        }
        check_vocab(&ids, lm.config.vocab_size, &format!("--ids #{}", n + 1))?;
        sequences.push(ids);
    }
    let logits = lm.last_logits(&sequences);
    let [batch, vocab] = logits.dims();
    let values: Vec<f32> = logits.into_data().try_to_vec().map_err(|e| anyhow::anyhow!("reading logits: {e:?}"))?;
    let rows: Vec<&[f32]> = values.chunks(vocab).take(batch).collect();
    println!("{}", serde_json::to_string(&json!({ "logits": rows }))?);
    Ok(())
}

fn check_vocab(ids: &[u32], vocab: usize, what: &str) -> anyhow::Result<()> {
    if let Some(bad) = ids.iter().find(|&&i| i as usize >= vocab) {
        bail!("{what}: token {bad} is outside the vocabulary of {vocab} tokens");
    }
    Ok(())
}

/// The model, its tokenizer if the folder has one, and the parsed requests.
struct Job {
    lm: LanguageModel,
    tokenizer: Option<Tokenizer>,
    requests: Vec<(usize, Request)>,
}

fn open(io: &IoArgs) -> anyhow::Result<Job> {
    let device = device::parse(&io.device)?;
    let model = super::model_dir(&io.model)?;
    let lm = LanguageModel::load(&model, &device)?;
    let tokenizer_path = model.join("tokenizer.json");
    let tokenizer = if tokenizer_path.is_file() { Some(Tokenizer::from_file(&tokenizer_path)?) } else { None };
    let file = std::fs::File::open(&io.input).with_context(|| format!("opening {}", io.input.display()))?;
    let mut requests = Vec::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("{}:{}", io.input.display(), n + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let request: Request = serde_json::from_str(&line)
            .with_context(|| format!("{}:{}: expected a JSON object with prompt, messages or ids", io.input.display(), n + 1))?;
        requests.push((n + 1, request));
    }
    Ok(Job { lm, tokenizer, requests })
}

impl Job {
    fn tokenizer(&self, line: usize, input: &Path) -> anyhow::Result<&Tokenizer> {
        self.tokenizer.as_ref().with_context(|| format!("{}:{line}: a text prompt needs tokenizer.json in the model folder", input.display()))
    }

    fn prompt_ids(&self, line: usize, r: &Request, input: &Path) -> anyhow::Result<Vec<u32>> {
        let ids = match (&r.prompt, &r.messages, &r.ids) {
            (Some(text), None, None) => self.tokenizer(line, input)?.encode(text)?,
            (None, Some(messages), None) => self.tokenizer(line, input)?.encode(&chat_template(messages, true))?,
            (None, None, Some(ids)) => ids.clone(),
            _ => bail!("{}:{line}: give exactly one of prompt, messages or ids", input.display()),
        };
        if ids.is_empty() {
            bail!("{}:{line}: the prompt is empty", input.display());
        }
        check_vocab(&ids, self.lm.config.vocab_size, &format!("{}:{line}", input.display()))?;
        Ok(ids)
    }
}

fn write_lines(path: &Path, lines: &[Value]) -> anyhow::Result<()> {
    simforge_data::fsutil::atomic_write_with(path, |file| {
        for line in lines {
            serde_json::to_writer(&mut *file, line).map_err(|e| simforge_data::DataError::io(path, e.into()))?;
            file.write_all(b"\n").map_err(|e| simforge_data::DataError::io(path, e))?;
        }
        Ok(())
    })?;
    Ok(())
}

fn generate(args: GenerateArgs) -> anyhow::Result<()> {
    if !(args.top_p > 0.0 && args.top_p <= 1.0) || args.temperature < 0.0 || args.samples == 0 {
        bail!("need 0 < top-p <= 1, temperature >= 0 and samples >= 1");
    }
    let job = open(&args.io)?;
    let mut eos: Vec<u32> = match job.lm.config.extra.get("eos_token_id") {
        Some(Value::Number(n)) => n.as_u64().map(|n| vec![n as u32]).unwrap_or_default(),
        Some(Value::Array(ids)) => ids.iter().filter_map(Value::as_u64).map(|n| n as u32).collect(),
        _ => Vec::new(),
    };
    eos.extend(job.tokenizer.as_ref().and_then(|t| t.token_id("<|im_end|>")));
    let options = SamplingOptions { max_new_tokens: args.max_new_tokens, temperature: args.temperature, top_p: args.top_p, samples: args.samples, seed: args.seed, eos };
    let decode = |ids: &[u32]| job.tokenizer.as_ref().and_then(|t| t.decode(ids).ok());
    let stop = |ids: &[u32]| !args.stop.is_empty() && decode(ids).is_some_and(|text| args.stop.iter().any(|s| text.contains(s.as_str())));
    let mut out = Vec::with_capacity(job.requests.len());
    for (chunk_index, chunk) in job.requests.chunks(args.io.batch_size.max(1)).enumerate() {
        let prompts = chunk.iter().map(|(line, r)| job.prompt_ids(*line, r, &args.io.input)).collect::<anyhow::Result<Vec<_>>>()?;
        // Each batch gets its own seed: the same input, batch size and seed repeat exactly.
        let batch_options = SamplingOptions { seed: args.seed.wrapping_add(chunk_index as u64), ..options.clone() };
        for ((line, _), samples) in chunk.iter().zip(job.lm.generate(&prompts, &batch_options, &stop)) {
            let samples: Vec<Value> = samples
                .into_iter()
                .map(|ids| {
                    let text = decode(&ids).map(|t| match args.stop.iter().filter_map(|s| t.find(s.as_str())).min() {
                        Some(cut) => t[..cut].to_owned(),
                        None => t,
                    });
                    json!({ "ids": ids, "text": text })
                })
                .collect();
            out.push(json!({ "line": line, "samples": samples }));
        }
        tracing::info!("generated {} of {} prompts", out.len(), job.requests.len());
    }
    write_lines(&args.io.out, &out)
}

fn score(args: ScoreArgs) -> anyhow::Result<()> {
    let job = open(&args.io)?;
    let input = &args.io.input;
    let mut out: Vec<(usize, Value)> = Vec::with_capacity(job.requests.len());
    for chunk in job.requests.chunks(args.io.batch_size.max(1)) {
        // Option requests of a chunk share one forward pass: scoring with the letters of the
        // longest list and renormalising each row over its own letters gives the same numbers.
        let mut option_rows: Vec<(usize, Vec<u32>, usize)> = Vec::new();
        for (line, r) in chunk {
            let prompt = job.prompt_ids(*line, r, input)?;
            match (r.options, &r.continuations) {
                (Some(k), None) if (2..=26).contains(&k) => option_rows.push((*line, prompt, k)),
                (None, Some(texts)) => {
                    let tokenizer = job.tokenizer(*line, input)?;
                    let pairs = texts.iter().map(|t| Ok((prompt.clone(), tokenizer.encode(t)?))).collect::<anyhow::Result<Vec<_>>>()?;
                    out.push((*line, json!({ "line": line, "logprobs": job.lm.continuation_logprobs(&pairs) })));
                }
                _ => bail!("{}:{line}: give exactly one of options (2 to 26) or continuations", input.display()),
            }
        }
        if let Some(widest) = option_rows.iter().map(|r| r.2).max() {
            let letters = job.tokenizer(option_rows[0].0, input)?.option_letters(widest)?;
            let prompts: Vec<Vec<u32>> = option_rows.iter().map(|r| r.1.clone()).collect();
            for ((line, _, k), probs) in option_rows.iter().zip(job.lm.option_probabilities(&prompts, &letters)) {
                let total: f32 = probs[..*k].iter().sum();
                let probs: Vec<f32> = probs[..*k].iter().map(|p| p / total).collect();
                out.push((*line, json!({ "line": line, "option_probs": probs })));
            }
        }
        tracing::info!("scored {} of {} prompts", out.len(), job.requests.len());
    }
    out.sort_by_key(|(line, _)| *line);
    write_lines(&args.io.out, &out.into_iter().map(|(_, v)| v).collect::<Vec<_>>())
}
