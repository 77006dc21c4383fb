//! A client of an OpenAI-compatible endpoint: retries with exponential backoff and jitter on
//! timeouts, connection errors, 429 and 5xx; a clear error on any other 4xx; a body that is not
//! a chat completion comes back as `Reply::Malformed` for the caller to record.

use std::time::Duration;

use simforge_data::rng::Rng;

use super::{letter_distribution, ChatRequest, ChatResponse, ErrorBody, TOP_LOGPROBS};
use crate::error::{Result, TrainerError};
use crate::tokenizer::Message;

/// Where and how to reach an endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointConfig {
    /// Up to and including `/v1`, e.g. `http://127.0.0.1:8000/v1`.
    pub base_url: String,
    /// Sent as a bearer token; read from the environment, never written anywhere.
    pub api_key: Option<String>,
    /// Per request, connection to last byte.
    pub timeout: Duration,
    /// Further attempts after a failed one.
    pub retries: u32,
    /// The first backoff; each further one doubles, up to a minute, times a jitter in [0.5, 1.5).
    pub retry_delay: Duration,
}

/// What one request came to: what was asked for (a chat completion, a letter distribution), or
/// a reply that cannot give it.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply<T = ChatResponse> {
    Ok(T),
    /// A 200 whose body is not a usable answer (truncated JSON, missing fields, no letter): the reason.
    Malformed(String),
}

pub struct Endpoint {
    config: EndpointConfig,
    http: reqwest::blocking::Client,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key stays out of every log line.
        write!(f, "Endpoint({})", self.config.base_url)
    }
}

const MAX_BACKOFF: Duration = Duration::from_secs(60);

impl Endpoint {
    pub fn new(config: EndpointConfig) -> Result<Self> {
        let http = reqwest::blocking::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| TrainerError::endpoint(&config.base_url, format!("cannot build an HTTP client: {e}")))?;
        Ok(Self { config, http })
    }

    pub fn base_url(&self) -> &str {
        &self.config.base_url
    }

    /// Sends one chat-completions request; `jitter` seeds the backoff jitter.
    pub fn chat(&self, request: &ChatRequest, jitter: &mut Rng) -> Result<Reply> {
        let url = format!("{}/chat/completions", self.config.base_url.trim_end_matches('/'));
        let body = serde_json::to_vec(request)?;
        let mut attempt = 0;
        loop {
            let mut builder = self.http.post(&url).header(reqwest::header::CONTENT_TYPE, "application/json").body(body.clone());
            if let Some(key) = &self.config.api_key {
                builder = builder.bearer_auth(key);
            }
            // What went wrong, and how long the server asked us to wait (Retry-After).
            let (failure, retry_after) = match builder.send() {
                Err(e) => (without_url(&e), None),
                Ok(response) => {
                    let code = response.status().as_u16();
                    let retry_after = response.headers().get("retry-after").and_then(|v| v.to_str().ok()?.trim().parse::<f64>().ok());
                    match (code, response.text()) {
                        (200..=299, Ok(body)) => {
                            return Ok(match serde_json::from_str::<ChatResponse>(&body) {
                                Ok(chat) if !chat.choices.is_empty() => Reply::Ok(chat),
                                Ok(_) => Reply::Malformed("a completion without choices".into()),
                                Err(e) => Reply::Malformed(format!("not a chat completion: {e}")),
                            });
                        }
                        (_, Err(e)) => (without_url(&e), None),
                        (408 | 429 | 500..=599, Ok(body)) => (format!("HTTP {code}: {}", error_message(&body)), retry_after),
                        (_, Ok(body)) => return Err(TrainerError::endpoint(&url, format!("HTTP {code}: {}", error_message(&body)))),
                    }
                }
            };
            if attempt >= self.config.retries {
                return Err(TrainerError::endpoint(&url, format!("{failure}, still after {} attempts", attempt + 1)));
            }
            let wait = match retry_after {
                Some(seconds) => Duration::from_secs_f64(seconds.clamp(0.0, MAX_BACKOFF.as_secs_f64())),
                None => self.backoff(attempt, jitter),
            };
            tracing::warn!("{url}: {failure}; retrying in {:.1} s", wait.as_secs_f64());
            std::thread::sleep(wait);
            attempt += 1;
        }
    }

    /// The distribution over `choices` option letters right after `prefix`, written as the
    /// start of the assistant's answer to `request` (vLLM's `continue_final_message`, one token
    /// with log-probabilities); `Reply::Malformed` when the reply is malformed or has no letter.
    pub fn letters_after(&self, request: &ChatRequest, prefix: &str, choices: usize, jitter: &mut Rng) -> Result<Reply<Vec<f32>>> {
        let mut request = request.clone();
        request.messages.push(Message { role: "assistant".into(), content: prefix.to_owned() });
        request.continue_final_message = true;
        request.add_generation_prompt = Some(false);
        request.max_tokens = Some(1);
        request.temperature = Some(0.0);
        request.logprobs = true;
        request.top_logprobs = Some(TOP_LOGPROBS);
        Ok(match self.chat(&request, jitter)? {
            Reply::Malformed(why) => Reply::Malformed(why),
            Reply::Ok(r) => r.choices[0]
                .logprobs
                .as_ref()
                .and_then(|l| l.content.as_deref())
                .and_then(|t| t.first())
                .and_then(|t| letter_distribution(&t.top_logprobs, choices))
                .map_or_else(|| Reply::Malformed("the endpoint gave no option letter among the top log-probabilities after the answer cue".into()), Reply::Ok),
        })
    }

    fn backoff(&self, attempt: u32, jitter: &mut Rng) -> Duration {
        let base = self.config.retry_delay.saturating_mul(1 << attempt.min(16)).min(MAX_BACKOFF);
        base.mul_f64(0.5 + jitter.f64())
    }
}

/// reqwest's message without the URL (it is already in ours).
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "transport error"
    };
    let mut detail = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind} ({detail})")
    }
}

/// The server's own message from an error body, else the body itself, shortened.
fn error_message(body: &str) -> String {
    match serde_json::from_str::<ErrorBody>(body) {
        Ok(e) => e.error.message,
        Err(_) => body.chars().take(300).collect(),
    }
}

/// `one(i)` for every `i < n`, at most `concurrency` calls in flight (a pool of that many
/// threads, since the calls block on the network), the results in index order. An error stops
/// the calls not yet started and is returned (an endpoint that refuses one request will refuse
/// the rest; the caller resumes from what it kept).
pub fn each_concurrently<T: Send, E: Send + From<TrainerError>>(
    n: usize,
    concurrency: usize,
    one: impl Fn(usize) -> std::result::Result<T, E> + Sync + Send,
) -> std::result::Result<Vec<T>, E> {
    use rayon::prelude::*;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(concurrency.clamp(1, n.max(1)))
        .build()
        .map_err(|e| TrainerError::Backend { message: format!("cannot start {concurrency} request threads: {e}") })?;
    pool.install(|| (0..n).into_par_iter().map(one).collect())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn concurrent_calls_keep_index_order_and_stop_at_the_first_error() {
        let doubled = each_concurrently(50, 4, |i| Ok::<_, TrainerError>(i * 2)).expect("no error");
        assert_eq!(doubled, (0..50).map(|i| i * 2).collect::<Vec<_>>());
        // One worker: the calls after the failing one are never made.
        let calls = AtomicUsize::new(0);
        let failed = each_concurrently(50, 1, |i| {
            calls.fetch_add(1, Ordering::Relaxed);
            if i == 10 {
                Err(TrainerError::settings("call", i.to_string()))
            } else {
                Ok(i)
            }
        });
        assert_eq!(failed.map_err(|e| e.to_string()), Err("call: 10".to_owned()));
        assert_eq!(calls.load(Ordering::Relaxed), 11);
        assert!(each_concurrently(0, 8, Ok::<_, TrainerError>).is_ok_and(|v| v.is_empty()));
    }
}
