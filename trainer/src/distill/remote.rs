//! Teachers behind the OpenAI chat-completions format: `OpenAiTeacher` calls an endpoint (vLLM,
//! SGLang, Ollama, OpenAI, `simforge serve`) with bounded concurrency; `BatchTeacher` reads the
//! output file of an OpenAI Batch job whose input `write_batch_requests` wrote.
//!
//! Each decision is one request (`n = 1`, a seed of its own), so a failure costs one sample and
//! endpoints without `n` work alike. The letter distribution is read from the log-probabilities
//! at the token after `Behavior: [`; when the endpoint returned none there, a second request
//! continues the rationale as an assistant prefix for one token with log-probabilities.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::Path;

use simforge_data::rng::Rng;
use simforge_data::scenes::letter;

use super::teacher::{Decision, DecisionScene, Teacher, ANSWER_CUE, DECISION_SYSTEM_PROMPT};
use crate::error::{Result, TrainerError};
use crate::inference::SamplingOptions;
use crate::openai::client::{each_concurrently, Endpoint, Reply};
use crate::openai::{letter_distribution, position_after, BatchOutput, BatchRequest, ChatRequest, ChatResponse, TOP_LOGPROBS};
use crate::tokenizer::Message;

/// The request for one sampled decision.
pub fn decision_request(model: &str, scene: &DecisionScene, sampling: &SamplingOptions, seed: u64) -> ChatRequest {
    ChatRequest {
        model: model.into(),
        messages: vec![
            Message { role: "system".into(), content: DECISION_SYSTEM_PROMPT.into() },
            Message { role: "user".into(), content: scene.prompt.clone() },
        ],
        temperature: Some(sampling.temperature),
        top_p: Some(sampling.top_p),
        max_tokens: Some(sampling.max_new_tokens),
        seed: Some(seed),
        logprobs: true,
        top_logprobs: Some(TOP_LOGPROBS),
        ..ChatRequest::default()
    }
}

/// The seed of one decision: independent of batching and of the other requests.
fn decision_seed(seed: u64, scene: &DecisionScene, sample: usize) -> u64 {
    Rng::stream(seed, "teacher-request", (u64::from(scene.scene_id) << 16) | sample as u64).next_u64()
}

fn custom_id(scene: &DecisionScene, sample: usize) -> String {
    format!("scene-{}-sample-{sample}", scene.scene_id)
}

/// What a completion says about a decision: the rationale through the cue, the letter it
/// wrote (if a valid one), and the letter distribution when the log-probabilities carry it.
struct Reading {
    rationale: String,
    written: Option<usize>,
    letters: Option<Vec<f32>>,
}

fn read_completion(response: &ChatResponse, choices: usize) -> std::result::Result<Reading, String> {
    let choice = &response.choices[0];
    let content = choice.message.content.as_deref().ok_or("a completion without content")?;
    let Some(at) = content.find(ANSWER_CUE) else {
        let text = content.trim_end();
        let rationale = if text.is_empty() { ANSWER_CUE.to_owned() } else { format!("{text}\n{ANSWER_CUE}") };
        return Ok(Reading { rationale, written: None, letters: None });
    };
    let end = at + ANSWER_CUE.len();
    let written = content[end..].chars().next().filter(char::is_ascii_uppercase).map(|c| (c as u8 - b'A') as usize).filter(|&k| k < choices);
    let letters = choice
        .logprobs
        .as_ref()
        .and_then(|l| l.content.as_deref())
        .and_then(|tokens| position_after(tokens, ANSWER_CUE).and_then(|i| letter_distribution(&tokens[i].top_logprobs, choices)));
    Ok(Reading { rationale: content[..end].to_owned(), written, letters })
}

/// The decision from a reading and its letter distribution; the sampled letter is the one the
/// model wrote, else a seeded draw from the distribution.
fn decision(reading: Reading, letters: Vec<f32>, seed: u64) -> Decision {
    let sampled = reading.written.unwrap_or_else(|| {
        let weights: Vec<f64> = letters.iter().map(|&p| f64::from(p)).collect();
        Rng::stream(seed, "decision-letter", 0).weighted(&weights)
    });
    Decision { text: format!("{}{}]", reading.rationale, letter(sampled)), letters, sampled }
}

pub struct OpenAiTeacher {
    pub model: String,
    endpoint: Endpoint,
    sampling: SamplingOptions,
    concurrency: usize,
}

impl OpenAiTeacher {
    pub fn new(model: String, endpoint: Endpoint, sampling: SamplingOptions, concurrency: usize) -> Self {
        Self { model, endpoint, sampling, concurrency: concurrency.max(1) }
    }

    /// One decision: the sampled completion, then (only when needed) the prefix request.
    fn one(&self, scene: &DecisionScene, seed: u64) -> Result<Decision> {
        let mut jitter = Rng::stream(seed, "backoff", 0);
        let request = decision_request(&self.model, scene, &self.sampling, seed);
        let response = match self.endpoint.chat(&request, &mut jitter)? {
            Reply::Ok(r) => r,
            Reply::Malformed(why) => return Ok(Decision::failed(why)),
        };
        let mut reading = match read_completion(&response, scene.choices()) {
            Ok(r) => r,
            Err(why) => return Ok(Decision::failed(why)),
        };
        if let Some(letters) = reading.letters.take() {
            return Ok(decision(reading, letters, seed));
        }
        Ok(match self.endpoint.letters_after(&request, &reading.rationale, scene.choices(), &mut jitter)? {
            Reply::Ok(letters) => decision(reading, letters, seed),
            Reply::Malformed(why) => Decision::failed(why),
        })
    }
}

impl Teacher for OpenAiTeacher {
    fn name(&self) -> String {
        // The model, not where it is served: a run may resume against a restarted endpoint.
        format!("openai:{}", self.model)
    }

    fn decide(&mut self, scenes: &[DecisionScene], samples: usize, seed: u64) -> Result<Vec<Vec<Decision>>> {
        // Call j is sample j % samples of scene j / samples.
        let mut decisions = each_concurrently(scenes.len() * samples, self.concurrency, |j| {
            let scene = &scenes[j / samples];
            self.one(scene, decision_seed(seed, scene, j % samples))
        })?
        .into_iter();
        Ok(scenes.iter().map(|_| decisions.by_ref().take(samples).collect()).collect())
    }
}

/// Writes the requests of `samples` decisions per scene as an OpenAI Batch input file (the
/// same seed gives the same file); `BatchTeacher` reads the job's output.
pub fn write_batch_requests(path: &Path, model: &str, scenes: &[DecisionScene], samples: usize, sampling: &SamplingOptions, seed: u64) -> Result<usize> {
    let mut out = String::new();
    for scene in scenes {
        for k in 0..samples {
            let line = BatchRequest {
                custom_id: custom_id(scene, k),
                method: "POST".into(),
                url: "/v1/chat/completions".into(),
                body: decision_request(model, scene, sampling, decision_seed(seed, scene, k)),
            };
            out += &serde_json::to_string(&line)?;
            out.push('\n');
        }
    }
    simforge_data::fsutil::write_text(path, &out)?;
    Ok(scenes.len() * samples)
}

/// Decisions from an OpenAI Batch output file (JSON lines keyed by `custom_id`). A line that
/// failed, is missing, or lacks log-probabilities at the answer is a failed sample.
pub struct BatchTeacher {
    path: std::path::PathBuf,
    outputs: HashMap<String, std::result::Result<ChatResponse, String>>,
}

impl BatchTeacher {
    pub fn load(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|e| TrainerError::io(path, e))?;
        let mut outputs = HashMap::new();
        for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line.map_err(|e| TrainerError::io(path, e))?;
            if line.trim().is_empty() {
                continue;
            }
            let output: BatchOutput = serde_json::from_str(&line).map_err(|e| {
                TrainerError::Data(simforge_data::DataError::Parse {
                    path: path.to_path_buf(),
                    line: i as u64 + 1,
                    expected: "a Batch output line {custom_id, response{status_code, body}, error}".into(),
                    found: e.to_string(),
                })
            })?;
            let result = match (output.response, output.error) {
                (Some(r), None) if r.status_code == 200 => {
                    serde_json::from_value::<ChatResponse>(r.body).map_err(|e| format!("line {}: not a chat completion: {e}", i + 1))
                }
                (Some(r), _) => Err(format!("line {}: HTTP {}", i + 1, r.status_code)),
                (None, error) => Err(format!("line {}: {}", i + 1, error.map_or_else(|| "no response".into(), |e| e.to_string()))),
            };
            outputs.insert(output.custom_id, result);
        }
        Ok(Self { path: path.to_owned(), outputs })
    }
}

impl Teacher for BatchTeacher {
    fn name(&self) -> String {
        format!("batch:{}", self.path.display())
    }

    fn decide(&mut self, scenes: &[DecisionScene], samples: usize, seed: u64) -> Result<Vec<Vec<Decision>>> {
        Ok(scenes
            .iter()
            .map(|scene| {
                (0..samples)
                    .map(|k| match self.outputs.get(&custom_id(scene, k)) {
                        None => Decision::failed(format!("{} has no `{}`", self.path.display(), custom_id(scene, k))),
                        Some(Err(why)) => Decision::failed(why.clone()),
                        Some(Ok(response)) => match read_completion(response, scene.choices()) {
                            Err(why) => Decision::failed(why),
                            Ok(mut reading) => match reading.letters.take() {
                                Some(letters) => decision(reading, letters, decision_seed(seed, scene, k)),
                                None => Decision::failed("no log-probabilities at the answer letter".into()),
                            },
                        },
                    })
                    .collect()
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::{AssistantMessage, Choice, ChoiceLogprobs, TokenLogprob, TopLogprob};

    fn scene(id: u32) -> DecisionScene {
        DecisionScene {
            scene_id: id,
            dataset: "d".into(),
            user_id: 1,
            target_item: 7,
            timestamp: 0,
            exposure: vec![5, 7, 9],
            prompt: format!("scene {id}"),
            target: 1,
        }
    }

    /// A completion that writes `Behavior: [B]` with log-probabilities at every token.
    fn completion() -> ChatResponse {
        let token = |t: &str, top: &[(&str, f64)]| TokenLogprob {
            token: t.into(),
            logprob: -0.1,
            bytes: None,
            top_logprobs: top.iter().map(|&(t, p)| TopLogprob { token: t.into(), logprob: p.ln(), bytes: None }).collect(),
        };
        let tokens =
            vec![token("Stimulus: x\n", &[]), token("Behavior", &[]), token(": [", &[]), token("B", &[("B", 0.6), ("A", 0.2), ("the", 0.1)]), token("]", &[])];
        ChatResponse {
            id: "x".into(),
            object: "chat.completion".into(),
            created: 0,
            model: "m".into(),
            choices: vec![Choice {
                index: 0,
                message: AssistantMessage { role: "assistant".into(), content: Some("Stimulus: x\nBehavior: [B]".into()) },
                logprobs: Some(ChoiceLogprobs { content: Some(tokens) }),
                finish_reason: Some("stop".into()),
            }],
            usage: None,
        }
    }

    #[test]
    fn batch_files_round_trip_into_decisions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let scenes = [scene(3), scene(4)];
        let sampling = SamplingOptions { max_new_tokens: 40, temperature: 1.0, top_p: 0.9, ..SamplingOptions::default() };
        let input = dir.path().join("requests.jsonl");
        assert_eq!(write_batch_requests(&input, "m", &scenes, 2, &sampling, 5).expect("write"), 4);
        let requests: Vec<BatchRequest> = std::fs::read_to_string(&input).expect("read").lines().map(|l| serde_json::from_str(l).expect("line")).collect();
        assert_eq!(
            requests.iter().map(|r| r.custom_id.as_str()).collect::<Vec<_>>(),
            ["scene-3-sample-0", "scene-3-sample-1", "scene-4-sample-0", "scene-4-sample-1"]
        );
        assert!(requests.iter().all(|r| r.body.logprobs && r.body.top_logprobs == Some(20) && r.body.messages[1].content.starts_with("scene")));
        assert_ne!(requests[0].body.seed, requests[1].body.seed);

        // Answers for three of the four; one of them an error.
        let body = serde_json::to_value(completion()).expect("json");
        let lines = [
            serde_json::json!({"custom_id": "scene-3-sample-0", "response": {"status_code": 200, "body": body}, "error": null}),
            serde_json::json!({"custom_id": "scene-3-sample-1", "response": {"status_code": 200, "body": body}, "error": null}),
            serde_json::json!({"custom_id": "scene-4-sample-0", "response": null, "error": {"code": "server_error", "message": "boom"}}),
        ];
        let output = dir.path().join("output.jsonl");
        std::fs::write(&output, lines.iter().map(|l| l.to_string() + "\n").collect::<String>()).expect("write output");
        let decisions = BatchTeacher::load(&output).expect("load").decide(&scenes, 2, 0).expect("decide");
        let d = &decisions[0][0];
        assert_eq!((d.sampled, d.text.as_str()), (1, "Stimulus: x\nBehavior: [B]"));
        assert!((d.letters[1] - 0.75).abs() < 1e-6 && (d.letters[0] - 0.25).abs() < 1e-6 && d.letters[2] < 1e-8, "{:?}", d.letters);
        assert!(decisions[1][0].is_failed() && decisions[1][0].text.contains("boom"));
        assert!(decisions[1][1].is_failed() && decisions[1][1].text.contains("scene-4-sample-1"));

        std::fs::write(&output, "{\"custom_id\": 3}\n").expect("write");
        let error = BatchTeacher::load(&output).err().expect("bad line");
        assert!(error.to_string().contains("output.jsonl:1"), "{error}");
    }
}
