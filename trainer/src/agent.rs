//! Who plays a model-backed part (teacher, student, simulator, diagnoser, treatment, critic):
//! one vocabulary for all of them, and the settings of an OpenAI-compatible endpoint that
//! every caller passes explicitly.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainerError};
use crate::openai::client::{Endpoint, EndpointConfig};

/// A part's player, written as a spec string in flags and recipes:
/// `rule` (profile-driven rules), `oracle` (the synthetic world's truth), `ensemble[:SASREC_DIR]`
/// (the three-voter ensemble simulator), `local:DIR` or a bare model folder, `openai:MODEL[@BASE_URL]`
/// (an OpenAI-compatible endpoint; without a URL, `$OPENAI_BASE_URL` or OpenAI's), or
/// `batch:FILE` (an OpenAI Batch job's output). Each part says which kinds it accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum AgentSpec {
    Rule,
    Oracle,
    /// Without a SASRec folder, only the keyword and similarity voters vote.
    Ensemble(Option<PathBuf>),
    Local(PathBuf),
    OpenAi {
        model: String,
        base_url: Option<String>,
    },
    Batch(PathBuf),
}

impl AgentSpec {
    /// What this kind is called in messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Rule => "rule",
            Self::Oracle => "oracle",
            Self::Ensemble(_) => "ensemble",
            Self::Local(_) => "local model",
            Self::OpenAi { .. } => "openai endpoint",
            Self::Batch(_) => "batch file",
        }
    }

    /// An error for a part that cannot be played by this kind; `accepted` lists the kinds that can.
    pub fn unsupported(&self, part: &str, accepted: &str) -> TrainerError {
        TrainerError::Settings { what: part.to_owned(), message: format!("`{self}` ({}) cannot be the {part}; use {accepted}", self.kind()) }
    }
}

impl std::str::FromStr for AgentSpec {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.split_once(':') {
            None if s == "rule" => Ok(Self::Rule),
            None if s == "oracle" => Ok(Self::Oracle),
            None if s == "ensemble" => Ok(Self::Ensemble(None)),
            Some(("ensemble", dir)) if !dir.is_empty() => Ok(Self::Ensemble(Some(dir.into()))),
            Some(("local", dir)) if !dir.is_empty() => Ok(Self::Local(dir.into())),
            Some(("batch", file)) if !file.is_empty() => Ok(Self::Batch(file.into())),
            Some(("openai", rest)) if !rest.is_empty() => Ok(match rest.split_once('@') {
                Some((model, url)) => Self::OpenAi { model: model.into(), base_url: Some(url.into()) },
                None => Self::OpenAi { model: rest.into(), base_url: None },
            }),
            // A bare model folder (a drive letter or URL-like text is not one).
            None if !s.is_empty() => Ok(Self::Local(s.into())),
            _ => Err(format!(
                "unknown spec `{s}`; expected `rule`, `oracle`, `ensemble[:SASREC_DIR]`, a model folder or `local:DIR`, `openai:MODEL[@BASE_URL]` or `batch:OUTPUT.jsonl`"
            )),
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
    fn from(spec: AgentSpec) -> String {
        spec.to_string()
    }
}

impl std::fmt::Display for AgentSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Rule => write!(f, "rule"),
            Self::Oracle => write!(f, "oracle"),
            Self::Ensemble(None) => write!(f, "ensemble"),
            Self::Ensemble(Some(dir)) => write!(f, "ensemble:{}", dir.display()),
            Self::Local(dir) => write!(f, "local:{}", dir.display()),
            Self::OpenAi { model, base_url: None } => write!(f, "openai:{model}"),
            Self::OpenAi { model, base_url: Some(url) } => write!(f, "openai:{model}@{url}"),
            Self::Batch(file) => write!(f, "batch:{}", file.display()),
        }
    }
}

/// How `openai:` parts talk to their endpoint. Part of every config that opens one (a recipe's
/// `[distill]`, `[dgdpo]`, …), so timeouts and retries are set where the part is named.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EndpointSettings {
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Further attempts after a timeout, a connection error, 429 or 5xx.
    pub retries: u32,
    /// Seconds one request may take.
    pub request_timeout: f64,
    /// Seconds before the first retry (then doubling, with jitter).
    pub retry_delay: f64,
    /// The environment variable holding the API key (unset: no key sent).
    pub api_key_env: String,
}

impl Default for EndpointSettings {
    fn default() -> Self {
        Self { concurrency: 8, retries: 6, request_timeout: 300.0, retry_delay: 1.0, api_key_env: "OPENAI_API_KEY".into() }
    }
}

impl EndpointSettings {
    /// An endpoint at `base_url` (else `$OPENAI_BASE_URL`, else OpenAI's) with these settings.
    pub fn open(&self, base_url: Option<&str>) -> Result<Endpoint> {
        let base_url = base_url.map(str::to_owned).or_else(|| std::env::var("OPENAI_BASE_URL").ok()).unwrap_or_else(|| "https://api.openai.com/v1".into());
        let seconds = |s: f64, what: &str| {
            Duration::try_from_secs_f64(s)
                .map_err(|_| TrainerError::Settings { what: what.into(), message: format!("must be a non-negative number of seconds, not {s}") })
        };
        Endpoint::new(EndpointConfig {
            base_url,
            api_key: std::env::var(&self.api_key_env).ok().filter(|k| !k.is_empty()),
            timeout: seconds(self.request_timeout, "request_timeout")?,
            retries: self.retries,
            retry_delay: seconds(self.retry_delay, "retry_delay")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_print_back() {
        for text in [
            "rule",
            "oracle",
            "ensemble",
            "ensemble:runs/sasrec/model",
            "local:runs/a",
            "openai:gpt-5",
            "openai:Qwen/Qwen3-32B@http://127.0.0.1:8000/v1",
            "batch:out.jsonl",
        ] {
            let spec: AgentSpec = text.parse().expect(text);
            assert_eq!(spec.to_string(), text);
        }
        assert_eq!("runs/diag/model".parse::<AgentSpec>(), Ok(AgentSpec::Local("runs/diag/model".into())));
        assert_eq!(
            "openai:Qwen/Qwen3-8B@http://h:1/v1".parse::<AgentSpec>(),
            Ok(AgentSpec::OpenAi { model: "Qwen/Qwen3-8B".into(), base_url: Some("http://h:1/v1".into()) })
        );
        assert!("gpt:x".parse::<AgentSpec>().is_err());
        assert!("local:".parse::<AgentSpec>().is_err());
        assert!("".parse::<AgentSpec>().is_err());
        let message = AgentSpec::Oracle.unsupported("diagnoser", "rule, a model folder or openai:MODEL").to_string();
        assert!(message.contains("oracle") && message.contains("diagnoser"), "{message}");
    }
}
