//! `simforge serve`: a simforge model behind an OpenAI-compatible endpoint
//! (`GET /v1/models`, `POST /v1/chat/completions` with `n`, `seed`, `logprobs` and
//! `top_logprobs`, `stream` as server-sent events, and vLLM's `continue_final_message`), so
//! other tools can use a trained simulator. Each worker answers one request at a time; a
//! streamed answer stops generating when its client disconnects.

use std::cell::RefCell;
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;
use tiny_http::{Header, Method, Request, Response};

use super::{
    AssistantMessage, ChatChunk, ChatRequest, ChatResponse, Choice, ChoiceLogprobs, ChunkChoice, Delta, ErrorBody, ErrorDetail, ModelCard, ModelList,
    TokenLogprob, TopLogprob, Usage,
};
use crate::error::{Result, TrainerError};
use crate::inference::{LanguageModel, SamplingOptions};
use crate::tokenizer::{answer_prompt, assistant_content, chat_template, Tokenizer, EMPTY_THINK};

/// The most alternatives per token a request may ask for (OpenAI's limit).
const MAX_TOP_LOGPROBS: usize = 20;
const MAX_SAMPLES: usize = 64;
/// Completion length when a request names none.
const DEFAULT_MAX_TOKENS: usize = 512;
/// A request body larger than this is refused before it is parsed or tokenised.
const MAX_BODY_BYTES: u64 = 8 << 20;
/// Tokens one request may ask to generate (`n` × `max_tokens`), so that one request cannot
/// hold a worker for long even before its deadline.
const MAX_REQUEST_TOKENS: usize = 1 << 16;
/// The longest `request_timeout`: a day.
const MAX_REQUEST_SECONDS: f64 = 86_400.0;

/// How the server shares itself between requests.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeConfig {
    /// Requests answered at once (each on its own thread), so a long request does not make
    /// the others wait for it.
    pub workers: usize,
    /// Seconds a request may generate; at the deadline its completions end with
    /// `finish_reason: "length"`.
    pub request_timeout: f64,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self { workers: 4, request_timeout: 300.0 }
    }
}

impl ServeConfig {
    pub fn problem(&self) -> Option<String> {
        if self.workers == 0 || !(self.request_timeout > 0.0 && self.request_timeout <= MAX_REQUEST_SECONDS) {
            return Some(format!(
                "workers must be at least 1 and request_timeout between 0 and {MAX_REQUEST_SECONDS} seconds, found {} and {}",
                self.workers, self.request_timeout
            ));
        }
        None
    }
}

/// The model a server answers with.
pub struct ServedModel {
    /// The `model` name clients send and `/v1/models` lists.
    pub name: String,
    pub lm: LanguageModel,
    pub tokenizer: Tokenizer,
    eos: Vec<u32>,
    config: ServeConfig,
}

impl ServedModel {
    pub fn load(dir: &Path, name: Option<String>, config: &ServeConfig, device: &burn::tensor::Device) -> Result<Self> {
        if let Some(problem) = config.problem() {
            return Err(TrainerError::settings("serve settings", problem));
        }
        let tokenizer = Tokenizer::from_file(&dir.join("tokenizer.json"))?;
        let eos = tokenizer.turn_end_ids();
        let name = name.unwrap_or_else(|| dir.file_name().map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into_owned()));
        Ok(Self { name, lm: LanguageModel::load(dir, device)?, tokenizer, eos, config: config.clone() })
    }

    /// The prompt text of a request: a new assistant turn, or the continuation of the last
    /// assistant message when the request asks for it.
    fn prompt(request: &ChatRequest) -> String {
        match request.messages.split_last() {
            Some((last, earlier)) if request.continue_final_message && last.role == "assistant" => answer_prompt(earlier) + assistant_content(&last.content),
            _ => chat_template(&request.messages, request.add_generation_prompt.unwrap_or(true)) + EMPTY_THINK,
        }
    }

    /// Checks a chat-completions request and makes its prompt and sampling options.
    fn prepare(&self, request: &ChatRequest, fallback_seed: u64) -> std::result::Result<Prepared, String> {
        if request.messages.is_empty() {
            return Err("`messages` is empty".into());
        }
        let samples = request.n.unwrap_or(1);
        if !(1..=MAX_SAMPLES).contains(&samples) {
            return Err(format!("`n` must be between 1 and {MAX_SAMPLES}"));
        }
        let top = if request.logprobs { request.top_logprobs.unwrap_or(0) } else { 0 };
        if top > MAX_TOP_LOGPROBS {
            return Err(format!("`top_logprobs` must be at most {MAX_TOP_LOGPROBS}"));
        }
        if request.stream && request.logprobs {
            return Err("`logprobs` are not streamed; ask for them without `stream`".into());
        }
        let temperature = request.temperature.unwrap_or(1.0);
        let top_p = request.top_p.unwrap_or(1.0);
        if !((0.0..=2.0).contains(&temperature) && top_p > 0.0 && top_p <= 1.0) {
            return Err("`temperature` must be in [0, 2] and `top_p` in (0, 1]".into());
        }
        let prompt = self.tokenizer.encode(&Self::prompt(request)).map_err(|e| e.to_string())?;
        let room = self.lm.config.max_position_embeddings.saturating_sub(prompt.len());
        if room == 0 {
            return Err(format!("the prompt has {} tokens; this model reads at most {}", prompt.len(), self.lm.config.max_position_embeddings));
        }
        let max_tokens = request.max_completion_tokens.or(request.max_tokens).unwrap_or(DEFAULT_MAX_TOKENS).min(room);
        if samples.saturating_mul(max_tokens) > MAX_REQUEST_TOKENS {
            return Err(format!("`n` × `max_tokens` is {}; a request may generate at most {MAX_REQUEST_TOKENS} tokens", samples.saturating_mul(max_tokens)));
        }
        let options =
            SamplingOptions { max_new_tokens: max_tokens, temperature, top_p, samples, seed: request.seed.unwrap_or(fallback_seed), eos: self.eos.clone() };
        let deadline = Instant::now() + Duration::from_secs_f64(self.config.request_timeout);
        Ok(Prepared { prompt, options, top, deadline, id: format!("chatcmpl-{fallback_seed:016x}"), created: unix_time() })
    }

    /// Answers one chat-completions request.
    pub fn complete(&self, request: &ChatRequest, fallback_seed: u64) -> std::result::Result<ChatResponse, String> {
        let Prepared { prompt, options, top, deadline, id, created } = self.prepare(request, fallback_seed)?;
        let generated = self.lm.generate(std::slice::from_ref(&prompt), &options, &|_| Instant::now() > deadline).pop().unwrap_or_default();
        let mut choices = Vec::with_capacity(generated.len());
        let mut completion_tokens = 0;
        for (index, tokens) in generated.iter().enumerate() {
            completion_tokens += tokens.len();
            let (tokens, finish_reason) = self.finished(tokens);
            let content = self.tokenizer.decode(tokens).map_err(|e| e.to_string())?;
            let logprobs = request.logprobs.then(|| self.logprobs(&prompt, tokens, top)).transpose()?;
            choices.push(Choice {
                index,
                message: AssistantMessage { role: "assistant".into(), content: Some(content) },
                logprobs: logprobs.map(|content| ChoiceLogprobs { content: Some(content) }),
                finish_reason: Some(finish_reason.into()),
            });
        }
        let usage = Usage { prompt_tokens: prompt.len(), completion_tokens, total_tokens: prompt.len() + completion_tokens };
        Ok(ChatResponse { id, object: "chat.completion".into(), created, model: self.name.clone(), choices, usage: Some(usage) })
    }

    /// A generated row without its end-of-turn token, and why it ended.
    fn finished<'t>(&self, tokens: &'t [u32]) -> (&'t [u32], &'static str) {
        match tokens.split_last() {
            Some((last, text)) if self.eos.contains(last) => (text, "stop"),
            _ => (tokens, "length"),
        }
    }

    /// Streams the answer to `request` (prepared) into `out` as server-sent events, one chunk
    /// per token that completes text; generation stops as soon as the client has gone (a
    /// write fails) or the deadline passes. Returns false when the client went away.
    fn stream(&self, request: &ChatRequest, prepared: Prepared, out: &mut dyn Write) -> bool {
        let Prepared { prompt, options, deadline, id, created, .. } = prepared;
        let chunk = |choices: Vec<ChunkChoice>, usage: Option<Usage>| ChatChunk {
            id: id.clone(),
            object: "chat.completion.chunk".into(),
            created,
            model: self.name.clone(),
            choices,
            usage,
        };
        let delta = |index: usize, content: String, finish_reason: Option<&str>| ChunkChoice {
            index,
            delta: Delta { role: None, content: Some(content).filter(|c| !c.is_empty()) },
            finish_reason: finish_reason.map(str::to_owned),
        };
        let sink = RefCell::new(EventSink { out, sent: vec![0; options.samples], gone: false, last_write: Instant::now() });
        let opening = (0..options.samples)
            .map(|index| ChunkChoice { index, delta: Delta { role: Some("assistant".into()), content: Some(String::new()) }, finish_reason: None })
            .collect();
        sink.borrow_mut().send(&json(&chunk(opening, None)));
        let generated = self
            .lm
            .generate_watched(std::slice::from_ref(&prompt), &options, &|row, tokens| {
                let mut sink = sink.borrow_mut();
                match sink.news(&self.tokenizer, row, tokens, false) {
                    Some(text) => sink.send(&json(&chunk(vec![delta(row, text, None)], None))),
                    None => sink.keep_alive(),
                }
                sink.gone || Instant::now() > deadline
            })
            .pop()
            .unwrap_or_default();
        let mut sink = sink.into_inner();
        let mut completion_tokens = 0;
        for (row, tokens) in generated.iter().enumerate() {
            completion_tokens += tokens.len();
            let (tokens, finish_reason) = self.finished(tokens);
            let rest = sink.news(&self.tokenizer, row, tokens, true).unwrap_or_default();
            sink.send(&json(&chunk(vec![delta(row, rest, Some(finish_reason))], None)));
        }
        if request.stream_options.is_some_and(|o| o.include_usage) {
            let usage = Usage { prompt_tokens: prompt.len(), completion_tokens, total_tokens: prompt.len() + completion_tokens };
            sink.send(&json(&chunk(Vec::new(), Some(usage))));
        }
        sink.send("[DONE]");
        sink.end()
    }

    fn logprobs(&self, prompt: &[u32], tokens: &[u32], top: usize) -> std::result::Result<Vec<TokenLogprob>, String> {
        let text = |id: u32| self.tokenizer.decode(&[id]).map_err(|e| e.to_string());
        let mut out = Vec::with_capacity(tokens.len());
        for (&token, (logprob, alternatives)) in tokens.iter().zip(self.lm.token_logprobs(prompt, tokens, top)) {
            let top_logprobs = alternatives
                .into_iter()
                .map(|(id, lp)| text(id).map(|t| TopLogprob { bytes: Some(t.clone().into_bytes()), token: t, logprob: f64::from(lp) }))
                .collect::<std::result::Result<_, _>>()?;
            let t = text(token)?;
            out.push(TokenLogprob { bytes: Some(t.clone().into_bytes()), token: t, logprob: f64::from(logprob), top_logprobs });
        }
        Ok(out)
    }
}

/// A request checked and ready to generate.
struct Prepared {
    prompt: Vec<u32>,
    options: SamplingOptions,
    top: usize,
    deadline: Instant,
    id: String,
    created: u64,
}

/// The event stream of one answer: HTTP chunks of `data: …` events, and how many tokens of
/// each choice have been sent as text.
struct EventSink<'w> {
    out: &'w mut dyn Write,
    sent: Vec<usize>,
    /// A write failed: the client has gone.
    gone: bool,
    last_write: Instant,
}

impl EventSink<'_> {
    /// The text of choice `row`'s `tokens` not yet sent, now counted as sent. Until the `last`
    /// call, None while it ends inside a character (a token can hold part of one).
    fn news(&mut self, tokenizer: &Tokenizer, row: usize, tokens: &[u32], last: bool) -> Option<String> {
        let sent = self.sent.get_mut(row)?;
        // Decoded from the last sent token that has text, less that text: what the whole
        // decoding adds, also where a decoder joins tokens (a word-level one puts spaces
        // between; a token it cannot name decodes to nothing).
        let mut anchor = sent.saturating_sub(1);
        while anchor > 0 && *sent - anchor < 16 && tokenizer.decode(&tokens[anchor..*sent]).ok()?.is_empty() {
            anchor -= 1;
        }
        let text = tokenizer.decode(tokens.get(anchor..)?).ok()?;
        let before = tokenizer.decode(&tokens[anchor..*sent]).ok()?;
        let news = text.strip_prefix(before.as_str())?;
        if news.ends_with(char::REPLACEMENT_CHARACTER) && !last {
            return None;
        }
        *sent = tokens.len();
        Some(news.to_owned()).filter(|t| !t.is_empty())
    }

    fn send(&mut self, data: &str) {
        self.chunk(&format!("data: {data}\n\n"));
    }

    /// An SSE comment, which clients ignore, when nothing was written for a second: tokens
    /// without text (or a long prompt) must not hide a client that has gone.
    fn keep_alive(&mut self) {
        if self.last_write.elapsed() > Duration::from_secs(1) {
            self.chunk(":\n\n");
        }
    }

    fn chunk(&mut self, event: &str) {
        self.write(format!("{:x}\r\n{event}\r\n", event.len()).as_bytes());
    }

    fn write(&mut self, bytes: &[u8]) {
        if !self.gone && self.out.write_all(bytes).and_then(|()| self.out.flush()).is_err() {
            self.gone = true;
        }
        self.last_write = Instant::now();
    }

    /// The last (empty) HTTP chunk; false when the client went away before it.
    fn end(mut self) -> bool {
        self.write(b"0\r\n\r\n");
        !self.gone
    }
}

fn unix_time() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Binds the listening socket (`127.0.0.1:0` picks a free port).
pub fn bind(addr: &str) -> Result<tiny_http::Server> {
    tiny_http::Server::http(addr).map_err(|e| TrainerError::endpoint(addr, format!("cannot listen: {e}")))
}

/// Serves `model` from background threads on a free port of 127.0.0.1, for programs and tests
/// that need a real endpoint beside them; returns its address, `http://127.0.0.1:PORT`.
pub fn spawn(model: ServedModel) -> Result<String> {
    let http = bind("127.0.0.1:0")?;
    let addr = http.server_addr().to_ip().ok_or_else(|| TrainerError::endpoint("127.0.0.1:0", "the bound server has no IP address"))?;
    std::thread::spawn(move || serve(&http, &model));
    Ok(format!("http://{addr}"))
}

/// Answers requests on the model's `workers` threads until each of them is unblocked
/// (`tiny_http::Server::unblock` once per worker). A request whose answer panics gets tiny_http's
/// 500 and its worker goes on.
pub fn serve(http: &tiny_http::Server, model: &ServedModel) {
    let served = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|scope| {
        for _ in 0..model.config.workers.max(1) {
            scope.spawn(|| {
                for request in http.incoming_requests() {
                    let number = served.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                    let started = std::time::Instant::now();
                    let (method, url) = (request.method().clone(), request.url().to_owned());
                    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| answer(request, model, number))) {
                        Ok(status) => tracing::info!("{method} {url} -> {status} in {:.2} s", started.elapsed().as_secs_f64()),
                        Err(_) => tracing::error!("{method} {url}: answering panicked; the request got a 500"),
                    }
                }
            });
        }
    });
}

fn answer(mut request: Request, model: &ServedModel, served: u64) -> u16 {
    let path = request.url().split('?').next().unwrap_or("").trim_end_matches('/').to_owned();
    let (status, body) = match (request.method(), path.as_str()) {
        (Method::Get, "/v1/models") => {
            let card = ModelCard { id: model.name.clone(), object: "model".into(), created: 0, owned_by: "simforge".into() };
            (200, json(&ModelList { object: "list".into(), data: vec![card] }))
        }
        (Method::Get, "/health") => (200, "{}".into()),
        (Method::Post, "/v1/chat/completions") => {
            let mut body = Vec::new();
            match request.as_reader().take(MAX_BODY_BYTES + 1).read_to_end(&mut body) {
                Err(e) => error(400, &format!("unreadable request body: {e}")),
                Ok(read) if read as u64 > MAX_BODY_BYTES => error(413, &format!("the request body is over {MAX_BODY_BYTES} bytes")),
                Ok(_) => match serde_json::from_slice::<ChatRequest>(&body) {
                    Err(e) => error(400, &format!("not a chat-completions request: {e}")),
                    Ok(chat) if chat.model != model.name => error(404, &format!("the model `{}` does not exist; this server has `{}`", chat.model, model.name)),
                    Ok(chat) if chat.stream => match model.prepare(&chat, served) {
                        Ok(prepared) => return stream(request, model, &chat, prepared),
                        Err(message) => error(400, &message),
                    },
                    Ok(chat) => match model.complete(&chat, served) {
                        Ok(response) => (200, json(&response)),
                        Err(message) => error(400, &message),
                    },
                },
            }
        }
        _ => error(404, &format!("no route {} {path}", request.method())),
    };
    let header = Header::from_bytes("Content-Type", "application/json").expect("a valid static header");
    if let Err(e) = request.respond(Response::from_string(body).with_status_code(status).with_header(header)) {
        tracing::warn!("could not answer a request: {e}");
    }
    status
}

/// Answers a streaming request on the request's own connection: the status and headers, then
/// the events as HTTP chunks, each flushed as it is made.
fn stream(request: Request, model: &ServedModel, chat: &ChatRequest, prepared: Prepared) -> u16 {
    let mut out = request.into_writer();
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n";
    if out.write_all(head.as_bytes()).and_then(|()| out.flush()).is_err() || !model.stream(chat, prepared, out.as_mut()) {
        tracing::info!("a streaming client went away; its generation stopped");
        return 499;
    }
    200
}

fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|e| format!("{{\"error\":{{\"message\":\"{e}\",\"type\":\"server_error\"}}}}"))
}

fn error(status: u16, message: &str) -> (u16, String) {
    let kind = if status == 404 { "not_found_error" } else { "invalid_request_error" };
    (status, json(&ErrorBody { error: ErrorDetail { message: message.into(), kind: kind.into() } }))
}
