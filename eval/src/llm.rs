//! Language models as the evaluation parts use them: answer a lettered question (the
//! distribution over the option letters after a cue) and write text. Behind it, a simforge
//! model run here or a model behind an OpenAI-compatible endpoint.

use std::path::{Path, PathBuf};

use simforge_data::rng::Rng;
use simforge_trainer::distill::teacher::{option_distributions, TeacherSpec};
use simforge_trainer::distill::{open_endpoint, DistillConfig};
use simforge_trainer::inference::{LanguageModel, SamplingOptions};
use simforge_trainer::openai::client::{each_concurrently, Endpoint, Reply};
use simforge_trainer::openai::ChatRequest;
use simforge_trainer::tokenizer::{answer_prompt, Message, Tokenizer};

use crate::error::{EvalError, Result};

/// Who plays a part (simulator, diagnoser, treatment): `rule` (the profile-driven rules),
/// `local:DIR` or a model folder, or `openai:MODEL[@BASE_URL]`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum AgentSpec {
    Rule,
    Local(PathBuf),
    OpenAi { model: String, base_url: Option<String> },
}

impl std::str::FromStr for AgentSpec {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if s == "rule" {
            return Ok(Self::Rule);
        }
        match s.parse::<TeacherSpec>() {
            Ok(TeacherSpec::Local(dir)) => Ok(Self::Local(dir)),
            Ok(TeacherSpec::OpenAi { model, base_url }) => Ok(Self::OpenAi { model, base_url }),
            Ok(other) => Err(format!("{other} cannot play this part; use rule, local:DIR, a model folder or openai:MODEL[@URL]")),
            Err(_) if !s.is_empty() && !s.contains(':') => Ok(Self::Local(s.into())),
            Err(_) => Err(format!("unknown part `{s}`; expected `rule`, a model folder, `local:DIR` or `openai:MODEL[@BASE_URL]`")),
        }
    }
}

impl TryFrom<String> for AgentSpec {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        s.parse()
    }
}

impl From<AgentSpec> for String {
    fn from(s: AgentSpec) -> String {
        s.to_string()
    }
}

impl std::fmt::Display for AgentSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Rule => write!(f, "rule"),
            Self::Local(dir) => write!(f, "local:{}", dir.display()),
            Self::OpenAi { model, base_url: None } => write!(f, "openai:{model}"),
            Self::OpenAi { model, base_url: Some(url) } => write!(f, "openai:{model}@{url}"),
        }
    }
}

/// A question answered with one option letter: the chat so far, then the assistant's answer
/// starting with `cue` (e.g. `Behavior: [`).
#[derive(Debug, Clone, PartialEq)]
pub struct LetterAsk {
    pub system: Option<String>,
    pub user: String,
    pub cue: &'static str,
    pub choices: usize,
}

/// A request for text (greedy, so the same ask gives the same answer).
#[derive(Debug, Clone, PartialEq)]
pub struct WriteAsk {
    pub system: Option<String>,
    pub user: String,
    pub max_new_tokens: usize,
}

fn messages(system: &Option<String>, user: &str) -> Vec<Message> {
    let mut m = Vec::with_capacity(2);
    if let Some(s) = system {
        m.push(Message { role: "system".into(), content: s.clone() });
    }
    m.push(Message { role: "user".into(), content: user.to_owned() });
    m
}

pub trait Llm {
    fn name(&self) -> String;
    /// Each ask's distribution over its `choices` letters.
    fn letters(&mut self, asks: &[LetterAsk]) -> Result<Vec<Vec<f32>>>;
    /// Each ask's answer text, without the end-of-turn token.
    fn write(&mut self, asks: &[WriteAsk]) -> Result<Vec<String>>;
}

/// Opens a model spec (`rule` is not a model).
pub fn open_llm(spec: &AgentSpec, concurrency: usize, device: &simforge_trainer::burn::tensor::Device) -> Result<Box<dyn Llm>> {
    match spec {
        AgentSpec::Rule => Err(EvalError::Invalid("`rule` is not a language model".into())),
        AgentSpec::Local(dir) => Ok(Box::new(LocalLlm::load(dir, device)?)),
        AgentSpec::OpenAi { model, base_url } => {
            let endpoint = open_endpoint(base_url.as_deref(), &DistillConfig::default())?;
            Ok(Box::new(RemoteLlm { model: model.clone(), endpoint, concurrency: concurrency.max(1) }))
        }
    }
}

/// A simforge model folder run here.
pub struct LocalLlm {
    label: String,
    lm: LanguageModel,
    tokenizer: Tokenizer,
}

impl LocalLlm {
    pub fn load(dir: &Path, device: &simforge_trainer::burn::tensor::Device) -> Result<Self> {
        let tokenizer = Tokenizer::from_file(&dir.join("tokenizer.json"))?;
        Ok(Self { label: format!("local:{}", dir.display()), lm: LanguageModel::load(dir, device)?, tokenizer })
    }
}

impl Llm for LocalLlm {
    fn name(&self) -> String {
        self.label.clone()
    }

    fn letters(&mut self, asks: &[LetterAsk]) -> Result<Vec<Vec<f32>>> {
        let prompts =
            asks.iter().map(|a| self.tokenizer.encode(&(answer_prompt(&messages(&a.system, &a.user)) + a.cue))).collect::<std::result::Result<Vec<_>, _>>()?;
        let choices: Vec<usize> = asks.iter().map(|a| a.choices).collect();
        Ok(option_distributions(&self.lm, &self.tokenizer, &prompts, &choices)?)
    }

    fn write(&mut self, asks: &[WriteAsk]) -> Result<Vec<String>> {
        let prompts = asks.iter().map(|a| self.tokenizer.encode(&answer_prompt(&messages(&a.system, &a.user)))).collect::<std::result::Result<Vec<_>, _>>()?;
        // Greedy decoding: the longest budget for all, each cut to its own, is the same text.
        let longest = asks.iter().map(|a| a.max_new_tokens).max().unwrap_or(0);
        let options = SamplingOptions { max_new_tokens: longest, eos: self.tokenizer.turn_end_ids(), ..SamplingOptions::default() };
        let generated = self.lm.generate(&prompts, &options, &|_| false);
        asks.iter()
            .zip(generated)
            .map(|(ask, g)| {
                let tokens = g.into_iter().next().unwrap_or_default();
                let text = self.tokenizer.decode(&tokens[..tokens.len().min(ask.max_new_tokens)])?;
                Ok(text.trim_end_matches("<|im_end|>").trim_end_matches("<|endoftext|>").trim().to_owned())
            })
            .collect()
    }
}

/// A model behind an OpenAI-compatible endpoint, `concurrency` requests in flight.
pub struct RemoteLlm {
    model: String,
    endpoint: Endpoint,
    concurrency: usize,
}

impl RemoteLlm {
    fn request(&self, system: &Option<String>, user: &str) -> ChatRequest {
        ChatRequest { model: self.model.clone(), messages: messages(system, user), temperature: Some(0.0), seed: Some(0), ..ChatRequest::default() }
    }
}

impl Llm for RemoteLlm {
    fn name(&self) -> String {
        format!("openai:{}", self.model)
    }

    fn letters(&mut self, asks: &[LetterAsk]) -> Result<Vec<Vec<f32>>> {
        each_concurrently(asks.len(), self.concurrency, |i| {
            let ask = &asks[i];
            let mut jitter = Rng::stream(0, "backoff", i as u64);
            self.endpoint
                .letters_after(&self.request(&ask.system, &ask.user), ask.cue, ask.choices, &mut jitter)?
                .map_err(|why| EvalError::Invalid(format!("{}: {why}", self.endpoint.base_url())))
        })
    }

    fn write(&mut self, asks: &[WriteAsk]) -> Result<Vec<String>> {
        each_concurrently(asks.len(), self.concurrency, |i| {
            let ask = &asks[i];
            let mut request = self.request(&ask.system, &ask.user);
            request.max_tokens = Some(ask.max_new_tokens);
            let mut jitter = Rng::stream(0, "backoff", i as u64);
            match self.endpoint.chat(&request, &mut jitter)? {
                Reply::Ok(r) => Ok(r.choices[0].message.content.clone().unwrap_or_default().trim().to_owned()),
                Reply::Malformed(why) => Err(EvalError::Invalid(format!("{}: {why}", self.endpoint.base_url()))),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_print() {
        assert_eq!("rule".parse::<AgentSpec>(), Ok(AgentSpec::Rule));
        assert_eq!("runs/diag/model".parse::<AgentSpec>(), Ok(AgentSpec::Local("runs/diag/model".into())));
        let spec: AgentSpec = "openai:Qwen/Qwen3-8B@http://127.0.0.1:8000/v1".parse().expect("openai");
        assert_eq!(spec.to_string().parse::<AgentSpec>(), Ok(spec));
        assert!("oracle".parse::<AgentSpec>().is_err());
        assert!("gpt:x".parse::<AgentSpec>().is_err());
    }
}
