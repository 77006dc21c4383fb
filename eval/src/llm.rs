//! Language models as the evaluation parts use them: answer a lettered question (the
//! distribution over the option letters after a cue) and write text. Behind it, a simforge
//! model run here or a model behind an OpenAI-compatible endpoint.

use std::path::Path;

use simforge_data::rng::Rng;
use simforge_trainer::agent::{AgentSpec, EndpointSettings};
use simforge_trainer::distill::teacher::option_distributions;
use simforge_trainer::inference::{LanguageModel, SamplingOptions};
use simforge_trainer::openai::client::{each_concurrently, Endpoint, Reply};
use simforge_trainer::openai::ChatRequest;
use simforge_trainer::tokenizer::{answer_prompt, without_turn_end, Message, Tokenizer};

use crate::error::{EvalError, Result};

/// A part and how reports name it (a recipe names its models by their place in the run, so
/// that its reports do not depend on where the run folder is).
#[derive(Debug, Clone, PartialEq)]
pub struct Named {
    pub name: String,
    pub spec: AgentSpec,
}

impl Named {
    /// A part named by its spec.
    pub fn spec(spec: AgentSpec) -> Self {
        Self { name: spec.to_string(), spec }
    }
}

/// The kinds that can play a language-model part.
pub const MODEL_KINDS: &str = "a model folder or local:DIR, or openai:MODEL[@URL]";

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

/// Opens a language model for `part` (a model folder, or an endpoint talked to with `endpoint`'s
/// settings); other kinds are an error naming the part.
pub fn open_llm(spec: &AgentSpec, part: &str, endpoint: &EndpointSettings, device: &simforge_trainer::burn::tensor::Device) -> Result<Box<dyn Llm>> {
    match spec {
        AgentSpec::Local(dir) => Ok(Box::new(LocalLlm::load(dir, device)?)),
        AgentSpec::OpenAi { model, base_url } => {
            Ok(Box::new(RemoteLlm { model: model.clone(), endpoint: endpoint.open(base_url.as_deref())?, concurrency: endpoint.concurrency.max(1) }))
        }
        other => Err(other.unsupported(part, MODEL_KINDS).into()),
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
                Ok(without_turn_end(&text).trim().to_owned())
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
            match self.endpoint.letters_after(&self.request(&ask.system, &ask.user), ask.cue, ask.choices, &mut jitter)? {
                Reply::Ok(letters) => Ok(letters),
                Reply::Malformed(why) => Err(EvalError::Endpoint { url: self.endpoint.base_url().to_owned(), message: why }),
            }
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
                Reply::Malformed(why) => Err(EvalError::Endpoint { url: self.endpoint.base_url().to_owned(), message: why }),
            }
        })
    }
}
