//! A copy of a fixture checkpoint with a small word-level tokenizer whose letters A–Z are
//! single tokens (ids 10–35), so the text paths (prompts, chat, training) run on it. Included
//! with `#[path]` by the trainer's and the binary's tests.

use std::path::Path;

pub fn with_word_tokenizer(fixture: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for file in ["config.json", "model.safetensors"] {
        std::fs::copy(fixture.join(file), dir.path().join(file)).expect("copy");
    }
    let mut vocab = serde_json::Map::new();
    vocab.insert("[UNK]".into(), 0.into());
    for i in 0..26u8 {
        vocab.insert(char::from(b'A' + i).to_string(), (10 + u32::from(i)).into());
    }
    for (word, id) in [("Behavior", 40), (":", 41), ("[", 42), ("]", 43)] {
        vocab.insert(word.into(), id.into());
    }
    let tokenizer = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [], "normalizer": null,
        "pre_tokenizer": { "type": "Whitespace" }, "post_processor": null, "decoder": null,
        "model": { "type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]" }
    });
    std::fs::write(dir.path().join("tokenizer.json"), tokenizer.to_string()).expect("tokenizer");
    dir
}
