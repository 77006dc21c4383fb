//! JSON-lines inference requests (`simforge lm generate|score`): each line is `{"prompt":
//! TEXT}`, `{"messages": [...]}` (Qwen3's chat template applied) or `{"ids": [...]}`; a score
//! request adds `"options": K` or `"continuations": [TEXT, ...]`. Answers are written one line
//! per request, in input order, through a temporary file.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{json, Value};
use simforge_data::DataError;

use crate::distill::teacher::option_distributions;
use crate::error::{Result, TrainerError};
use crate::inference::{LanguageModel, SamplingOptions};
use crate::tokenizer::{chat_template, Message, Tokenizer};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    prompt: Option<String>,
    messages: Option<Vec<Message>>,
    ids: Option<Vec<u32>>,
    options: Option<usize>,
    continuations: Option<Vec<String>>,
}

/// A model folder with the requests of one input file.
pub struct RequestFile {
    pub lm: LanguageModel,
    /// The folder's `tokenizer.json`, when it has one (text prompts need it).
    pub tokenizer: Option<Tokenizer>,
    input: PathBuf,
    /// Each request with its 1-based line number.
    requests: Vec<(usize, Request)>,
}

/// An error at `line` of the input file.
fn at(input: &Path, line: usize, expected: &str, found: impl Into<String>) -> TrainerError {
    TrainerError::Data(DataError::Parse { path: input.to_path_buf(), line: line as u64, expected: expected.into(), found: found.into() })
}

/// `what`'s first token outside a vocabulary of `vocab` tokens, as an error.
pub fn check_vocab(ids: &[u32], vocab: usize, what: &str) -> Result<()> {
    match ids.iter().find(|&&i| i as usize >= vocab) {
        Some(bad) => Err(TrainerError::settings(what, format!("token {bad} is outside the vocabulary of {vocab} tokens"))),
        None => Ok(()),
    }
}

impl RequestFile {
    /// Loads the model in `model` and reads every non-empty line of `input`.
    pub fn open(model: &Path, input: &Path, device: &burn::tensor::Device) -> Result<Self> {
        let lm = LanguageModel::load(model, device)?;
        let tokenizer_path = model.join("tokenizer.json");
        let tokenizer = if tokenizer_path.is_file() { Some(Tokenizer::from_file(&tokenizer_path)?) } else { None };
        let file = std::fs::File::open(input).map_err(|e| TrainerError::io(input, e))?;
        let mut requests = Vec::new();
        for (n, line) in std::io::BufReader::new(file).split(b'\n').enumerate() {
            let line = line.map_err(|e| TrainerError::io(input, e))?;
            let line = String::from_utf8(line).map_err(|e| at(input, n + 1, "UTF-8 text", e.to_string()))?;
            if line.trim().is_empty() {
                continue;
            }
            let request: Request = serde_json::from_str(&line).map_err(|e| at(input, n + 1, "a JSON object with prompt, messages or ids", e.to_string()))?;
            requests.push((n + 1, request));
        }
        Ok(Self { lm, tokenizer, input: input.to_path_buf(), requests })
    }

    fn tokenizer(&self, line: usize) -> Result<&Tokenizer> {
        self.tokenizer.as_ref().ok_or_else(|| at(&self.input, line, "ids (the model folder has no tokenizer.json for a text prompt)", "text"))
    }

    fn prompt_ids(&self, line: usize, r: &Request) -> Result<Vec<u32>> {
        let ids = match (&r.prompt, &r.messages, &r.ids) {
            (Some(text), None, None) => self.tokenizer(line)?.encode(text)?,
            (None, Some(messages), None) => self.tokenizer(line)?.encode(&chat_template(messages, true))?,
            (None, None, Some(ids)) => ids.clone(),
            _ => return Err(at(&self.input, line, "exactly one of prompt, messages or ids", "another combination")),
        };
        if ids.is_empty() {
            return Err(at(&self.input, line, "a prompt", "an empty one"));
        }
        check_vocab(&ids, self.lm.config.vocab_size, &format!("{}:{line}", self.input.display()))?;
        Ok(ids)
    }

    /// Samples continuations of every prompt, `batch_size` prompts at a time; each batch gets
    /// its own seed, so the same input, batch size and seed repeat exactly. A sample stops at
    /// the model's end-of-turn tokens or at a `stop` string (cut before it).
    pub fn generate(&self, options: &SamplingOptions, stop: &[String], batch_size: usize) -> Result<Vec<Value>> {
        let mut eos: Vec<u32> = match self.lm.config.extra.get("eos_token_id") {
            Some(Value::Number(n)) => n.as_u64().map(|n| vec![n as u32]).unwrap_or_default(),
            Some(Value::Array(ids)) => ids.iter().filter_map(Value::as_u64).map(|n| n as u32).collect(),
            _ => Vec::new(),
        };
        eos.extend(self.tokenizer.as_ref().and_then(|t| t.token_id("<|im_end|>")));
        let options = SamplingOptions { eos, ..options.clone() };
        let decode = |ids: &[u32]| self.tokenizer.as_ref().and_then(|t| t.decode(ids).ok());
        let stopped = |ids: &[u32]| !stop.is_empty() && decode(ids).is_some_and(|text| stop.iter().any(|s| text.contains(s.as_str())));
        let mut out = Vec::with_capacity(self.requests.len());
        for (chunk_index, chunk) in self.requests.chunks(batch_size.max(1)).enumerate() {
            let prompts = chunk.iter().map(|(line, r)| self.prompt_ids(*line, r)).collect::<Result<Vec<_>>>()?;
            // No sample runs past the positions the model has.
            let (longest_at, longest) = prompts.iter().map(Vec::len).enumerate().max_by_key(|&(_, n)| n).unwrap_or((0, 0));
            let room = self.lm.config.max_position_embeddings.saturating_sub(longest);
            if room == 0 {
                return Err(at(&self.input, chunk[longest_at].0, "a prompt shorter than the model's context", format!("{longest} tokens")));
            }
            let max_new_tokens = options.max_new_tokens.min(room);
            let batch_options = SamplingOptions { seed: options.seed.wrapping_add(chunk_index as u64), max_new_tokens, ..options.clone() };
            for ((line, _), samples) in chunk.iter().zip(self.lm.generate(&prompts, &batch_options, &stopped)) {
                let samples: Vec<Value> = samples
                    .into_iter()
                    .map(|ids| {
                        let text = decode(&ids).map(|t| match stop.iter().filter_map(|s| t.find(s.as_str())).min() {
                            Some(cut) => t[..cut].to_owned(),
                            None => t,
                        });
                        json!({ "ids": ids, "text": text })
                    })
                    .collect();
                out.push(json!({ "line": line, "samples": samples }));
            }
            tracing::info!("generated {} of {} prompts", out.len(), self.requests.len());
        }
        Ok(out)
    }

    /// Scores every request: the probability of each of its `options` letters after the prompt
    /// (option requests of a batch share one forward pass), or the total log-probability of
    /// each continuation.
    pub fn score(&self, batch_size: usize) -> Result<Vec<Value>> {
        let mut out: Vec<(usize, Value)> = Vec::with_capacity(self.requests.len());
        for chunk in self.requests.chunks(batch_size.max(1)) {
            let mut option_rows: Vec<(usize, Vec<u32>, usize)> = Vec::new();
            for (line, r) in chunk {
                let prompt = self.prompt_ids(*line, r)?;
                match (r.options, &r.continuations) {
                    (Some(k), None) if (2..=26).contains(&k) => option_rows.push((*line, prompt, k)),
                    (None, Some(texts)) if !texts.is_empty() => {
                        let tokenizer = self.tokenizer(*line)?;
                        let pairs = texts.iter().map(|t| Ok((prompt.clone(), tokenizer.encode(t)?))).collect::<Result<Vec<_>>>()?;
                        out.push((*line, json!({ "line": line, "logprobs": self.lm.continuation_logprobs(&pairs) })));
                    }
                    _ => return Err(at(&self.input, *line, "exactly one of options (2 to 26) or continuations (at least one)", "another combination")),
                }
            }
            if let Some((first, ..)) = option_rows.first() {
                let prompts: Vec<Vec<u32>> = option_rows.iter().map(|r| r.1.clone()).collect();
                let choices: Vec<usize> = option_rows.iter().map(|r| r.2).collect();
                for ((line, ..), probs) in option_rows.iter().zip(option_distributions(&self.lm, self.tokenizer(*first)?, &prompts, &choices)?) {
                    out.push((*line, json!({ "line": line, "option_probs": probs })));
                }
            }
            tracing::info!("scored {} of {} prompts", out.len(), self.requests.len());
        }
        out.sort_by_key(|(line, _)| *line);
        Ok(out.into_iter().map(|(_, v)| v).collect())
    }
}

/// Writes one JSON value per line to `path`, through a temporary file.
pub fn write_lines(path: &Path, lines: &[Value]) -> Result<()> {
    simforge_data::fsutil::atomic_write_with(path, |file| {
        for line in lines {
            serde_json::to_writer(&mut *file, line).map_err(|e| DataError::io(path, e.into()))?;
            file.write_all(b"\n").map_err(|e| DataError::io(path, e))?;
        }
        Ok(())
    })?;
    Ok(())
}
