//! Tokenization: a checkpoint's `tokenizer.json` through the `tokenizers` crate, and the
//! Qwen ChatML chat template (`<|im_start|>role\n…<|im_end|>\n`).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainerError};

/// Qwen's special tokens, in the order a tiny tokenizer numbers them.
pub const SPECIAL_TOKENS: [&str; 5] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"];

/// One chat turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
}

impl Tokenizer {
    pub fn from_file(path: &Path) -> Result<Self> {
        let inner = tokenizers::Tokenizer::from_file(path).map_err(|e| TrainerError::checkpoint(path, format!("not a tokenizer.json: {e}")))?;
        Ok(Self { inner })
    }

    /// Token ids of `text`, special tokens (`<|im_start|>` …) recognised, none added.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self.inner.encode(text, false).map_err(|source| TrainerError::Tokenizer { what: "encoding".into(), source })?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Token ids of `text` and the byte offset in `text` where each token starts.
    pub fn encode_with_starts(&self, text: &str) -> Result<(Vec<u32>, Vec<usize>)> {
        let encoding = self.inner.encode(text, false).map_err(|source| TrainerError::Tokenizer { what: "encoding".into(), source })?;
        Ok((encoding.get_ids().to_vec(), encoding.get_offsets().iter().map(|o| o.0).collect()))
    }

    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner.decode(ids, false).map_err(|source| TrainerError::Tokenizer { what: "decoding".into(), source })
    }

    /// Trains a byte-level BPE of `vocab_size` tokens on `texts`, with Qwen's special tokens
    /// (`<|endoftext|>`, `<|im_start|>`, `<|im_end|>`, `<think>`, `</think>`) as ids 0–4: the
    /// tokenizer of tiny models trained from scratch. Deterministic for the same texts.
    pub fn train_byte_level_bpe<S: AsRef<str> + Send>(texts: impl Iterator<Item = S> + Send, vocab_size: usize) -> Result<Self> {
        use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
        use tokenizers::models::TrainerWrapper;
        use tokenizers::pre_tokenizers::byte_level::ByteLevel;
        use tokenizers::AddedToken;

        let special: Vec<AddedToken> = SPECIAL_TOKENS.iter().map(|t| AddedToken::from(*t, true)).collect();
        let mut trainer = TrainerWrapper::BpeTrainer(
            BpeTrainerBuilder::new()
                .vocab_size(vocab_size)
                .min_frequency(2)
                .show_progress(false)
                .special_tokens(special)
                .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
                .build(),
        );
        let byte_level = ByteLevel::new(false, false, true);
        let mut inner = tokenizers::Tokenizer::new(BPE::default());
        inner.with_pre_tokenizer(Some(byte_level));
        inner.with_decoder(Some(byte_level));
        inner.train(&mut trainer, texts).map_err(|source| TrainerError::Tokenizer { what: "training the BPE".into(), source })?;
        Ok(Self { inner })
    }

    /// Writes `tokenizer.json`.
    pub fn save(&self, path: &Path) -> Result<()> {
        let json = self.inner.to_string(true).map_err(|source| TrainerError::Tokenizer { what: format!("serialising {}", path.display()), source })?;
        Ok(simforge_data::fsutil::atomic_write_with(path, |w| {
            std::io::Write::write_all(w, json.as_bytes()).map_err(|e| simforge_data::DataError::io(path, e))
        })?)
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The tokens that end an assistant turn (`<|im_end|>`, `<|endoftext|>`) this vocabulary has.
    pub fn turn_end_ids(&self) -> Vec<u32> {
        ["<|im_end|>", "<|endoftext|>"].iter().filter_map(|t| self.token_id(t)).collect()
    }

    /// The single-token ids of the option letters A, B, … after `Behavior: [`; an error if a
    /// letter is not one token in this vocabulary.
    pub fn option_letters(&self, count: usize) -> Result<Vec<u32>> {
        (0..count)
            .map(|i| {
                let letter = char::from(b'A' + i as u8).to_string();
                match self.encode(&letter)?.as_slice() {
                    [id] => Ok(*id),
                    ids => Err(TrainerError::settings(
                        "option letters",
                        format!("{letter} is {} tokens in this vocabulary; scoring needs one token per letter", ids.len()),
                    )),
                }
            })
            .collect()
    }
}

/// Qwen3's empty think block, which its chat template writes before an answer with thinking off.
pub const EMPTY_THINK: &str = "<think>\n\n</think>\n\n";

/// A generated answer without the turn-end token that stopped it (`<|im_end|>`, `<|endoftext|>`).
pub fn without_turn_end(text: &str) -> &str {
    text.trim_end_matches("<|im_end|>").trim_end_matches("<|endoftext|>")
}

/// An assistant turn's text as Qwen3's chat template writes it: without leading newlines. Every
/// path that puts model-written text after a prompt (training, scoring a rationale, a served
/// model continuing a prefix) goes through this, so they all see the same tokens.
pub fn assistant_content(text: &str) -> &str {
    text.trim_start_matches('\n')
}

/// The text a model's answer to `messages` follows: the conversation, an opened assistant
/// turn and the empty think block.
pub fn answer_prompt(messages: &[Message]) -> String {
    chat_template(messages, true) + EMPTY_THINK
}

/// Renders messages with Qwen3's chat template: ChatML turns, and an empty
/// `<think>\n\n</think>\n\n` block before the assistant turn that follows the last user turn
/// (as Qwen3's template writes a finished, non-reasoning answer). With `generation_prompt`,
/// ends with the opening of an assistant turn.
pub fn chat_template(messages: &[Message], generation_prompt: bool) -> String {
    let last_user = messages.iter().rposition(|m| m.role == "user");
    let mut text = String::new();
    for (i, m) in messages.iter().enumerate() {
        text.push_str("<|im_start|>");
        text.push_str(&m.role);
        text.push('\n');
        if m.role == "assistant" && last_user.is_some_and(|u| i > u) && i + 1 == messages.len() {
            text.push_str(EMPTY_THINK);
        }
        text.push_str(if m.role == "assistant" { assistant_content(&m.content) } else { &m.content });
        text.push_str("<|im_end|>\n");
    }
    if generation_prompt {
        text.push_str("<|im_start|>assistant\n");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Qwen3's real tokenizer and transformers' encodings, from the shared folder.
    fn shared() -> Option<(Tokenizer, serde_json::Value)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/tokenizers/qwen3");
        if !dir.is_dir() {
            eprintln!("SKIP: {} is absent", dir.display());
            return None;
        }
        let reference = serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).ok()?).ok()?;
        Some((Tokenizer::from_file(&dir.join("tokenizer.json")).expect("tokenizer"), reference))
    }

    fn ids(v: &serde_json::Value) -> Vec<u32> {
        v.as_array().expect("ids").iter().map(|x| x.as_u64().expect("id") as u32).collect()
    }

    #[test]
    fn matches_transformers_encodings_and_chat_template() {
        let Some((tok, r)) = shared() else { return };
        for case in r["plain"].as_array().expect("plain") {
            assert_eq!(tok.encode(case["text"].as_str().expect("text")).expect("encode"), ids(&case["ids"]), "{case}");
        }
        let messages: Vec<Message> = serde_json::from_value(r["messages"].clone()).expect("messages");
        let chat = chat_template(&messages, false);
        assert_eq!(chat, r["chat_text"].as_str().expect("chat_text"));
        assert_eq!(tok.encode(&chat).expect("encode"), ids(&r["chat_ids"]));
        let prompt = chat_template(&messages[..2], true);
        assert_eq!(prompt, r["generation_prompt_text"].as_str().expect("text"));
        assert_eq!(tok.encode(&prompt).expect("encode"), ids(&r["generation_prompt_ids"]));
        for (token, id) in r["special"].as_object().expect("special") {
            assert_eq!(tok.token_id(token), Some(id.as_u64().expect("id") as u32), "{token}");
        }
        let letters = tok.option_letters(12).expect("letters");
        for (i, id) in letters.iter().enumerate() {
            let letter = char::from(b'A' + i as u8).to_string();
            assert_eq!(vec![*id], ids(&r["option_letters"][&letter]));
        }
        assert_eq!(tok.decode(&ids(&r["chat_ids"])).expect("decode"), chat);
    }
}
