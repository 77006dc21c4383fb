//! The OpenAI chat-completions wire format, as far as simforge speaks it: the requests the
//! `openai` teacher sends (and `simforge serve` answers), the responses with per-token
//! log-probabilities, the Batch API's JSON lines, and how an option-letter distribution is read
//! from the log-probabilities after `Behavior: [`.

pub mod client;
pub mod server;

use serde::{Deserialize, Serialize};

use crate::tokenizer::Message;

/// Alternatives asked for per token: OpenAI's maximum, so all letters of a long list fit.
pub const TOP_LOGPROBS: usize = 20;

/// `POST /v1/chat/completions`. Fields simforge does not use are ignored when read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<Message>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<usize>,
    /// The newer name of `max_tokens` (OpenAI); either is honoured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub logprobs: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_logprobs: Option<usize>,
    /// vLLM's extension: continue the last (assistant) message instead of opening a new turn;
    /// how the teacher asks for the answer letter after a given rationale.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub continue_final_message: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_generation_prompt: Option<bool>,
    /// Answer as server-sent events, a chunk per token, ended by `data: [DONE]`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamOptions {
    /// A last chunk with no choices and the request's token counts.
    #[serde(default)]
    pub include_usage: bool,
}

/// One server-sent event of a streamed answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatChunk {
    pub id: String,
    pub object: String,
    pub created: u64,
    pub model: String,
    pub choices: Vec<ChunkChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkChoice {
    pub index: usize,
    pub delta: Delta,
    pub finish_reason: Option<String>,
}

/// What a chunk adds to a choice's message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    pub id: String,
    #[serde(default)]
    pub object: String,
    #[serde(default)]
    pub created: u64,
    pub model: String,
    pub choices: Vec<Choice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    pub index: usize,
    pub message: AssistantMessage,
    #[serde(default)]
    pub logprobs: Option<ChoiceLogprobs>,
    #[serde(default)]
    pub finish_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssistantMessage {
    pub role: String,
    #[serde(default)]
    pub content: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChoiceLogprobs {
    #[serde(default)]
    pub content: Option<Vec<TokenLogprob>>,
}

/// One generated token, its log-probability and the most likely alternatives at its position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenLogprob {
    pub token: String,
    pub logprob: f64,
    #[serde(default)]
    pub bytes: Option<Vec<u8>>,
    #[serde(default)]
    pub top_logprobs: Vec<TopLogprob>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopLogprob {
    pub token: String,
    pub logprob: f64,
    #[serde(default)]
    pub bytes: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub total_tokens: usize,
}

/// `GET /v1/models`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelList {
    pub object: String,
    pub data: Vec<ModelCard>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    pub id: String,
    pub object: String,
    pub created: u64,
    pub owned_by: String,
}

/// One line of a Batch API input file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchRequest {
    pub custom_id: String,
    pub method: String,
    pub url: String,
    pub body: ChatRequest,
}

/// One line of a Batch API output file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchOutput {
    pub custom_id: String,
    #[serde(default)]
    pub response: Option<BatchResponse>,
    #[serde(default)]
    pub error: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchResponse {
    pub status_code: u16,
    pub body: serde_json::Value,
}

/// The error body OpenAI-compatible servers send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub message: String,
    #[serde(rename = "type")]
    pub kind: String,
}

/// The option a top-logprob token names among `choices`: exactly one capital letter, as local scoring reads the letter
/// token itself (a space-prefixed " B" is another token, with its own probability).
fn option_of(token: &str, choices: usize) -> Option<usize> {
    let mut chars = token.chars();
    match (chars.next(), chars.next()) {
        (Some(c @ 'A'..='Z'), None) if ((c as u8 - b'A') as usize) < choices => Some((c as u8 - b'A') as usize),
        _ => None,
    }
}

/// The distribution over `choices` letters at one position, from its top log-probabilities:
/// letters absent from the top-k get 1e-10, then the row is renormalised (METHODS.md
/// section 4). `None` when no letter is among them.
pub fn letter_distribution(top: &[TopLogprob], choices: usize) -> Option<Vec<f32>> {
    let mut p = vec![0.0f64; choices];
    let mut seen = false;
    for t in top {
        if let Some(k) = option_of(&t.token, choices) {
            p[k] += t.logprob.exp();
            seen = true;
        }
    }
    if !seen {
        return None;
    }
    let p: Vec<f64> = p.into_iter().map(|x| x.max(1e-10)).collect();
    let total: f64 = p.iter().sum();
    Some(p.into_iter().map(|x| (x / total) as f32).collect())
}

/// Where in generated `tokens` the answer letter sits: the index of the first token after the
/// text so far ends in `cue` (none when the cue ends inside a token).
pub fn position_after(tokens: &[TokenLogprob], cue: &str) -> Option<usize> {
    let mut text = String::new();
    for (i, t) in tokens.iter().enumerate() {
        if text.ends_with(cue) {
            return Some(i);
        }
        text.push_str(&t.token);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn top(pairs: &[(&str, f64)]) -> Vec<TopLogprob> {
        pairs.iter().map(|&(t, p)| TopLogprob { token: t.into(), logprob: p.ln(), bytes: None }).collect()
    }

    #[test]
    fn letters_are_read_from_top_logprobs() {
        // " B" is not the letter token "B"; "Z" is out of range; absent C gets 1e-10.
        let p = letter_distribution(&top(&[("A", 0.5), (" B", 0.2), ("B", 0.1), ("Z", 0.1), ("the", 0.05)]), 3).expect("letters");
        assert!((p[0] - 0.5 / 0.6).abs() < 1e-6 && (p[1] - 0.1 / 0.6).abs() < 1e-6 && p[2] < 1e-8, "{p:?}");
        assert_eq!(letter_distribution(&top(&[("the", 0.9)]), 3), None);
        let tokens: Vec<TokenLogprob> =
            ["Behavior", ": [", "C", "]"].iter().map(|t| TokenLogprob { token: (*t).into(), logprob: 0.0, bytes: None, top_logprobs: vec![] }).collect();
        assert_eq!(position_after(&tokens, "Behavior: ["), Some(2));
        assert_eq!(position_after(&tokens[..2], "Behavior: ["), None);
    }
}
