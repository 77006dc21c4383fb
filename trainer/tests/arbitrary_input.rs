//! Model folders with mangled `config.json` and `model.safetensors`: loading ends in an error
//! or in a model whose logits are finite, never in a panic or an abort. Seeded.

use std::path::Path;

use burn::tensor::Device;
use simforge_data::rng::Rng;
use simforge_trainer::checkpoint::load_qwen3;
use simforge_trainer::models::qwen3::Batch;

#[path = "../../data-prep/tests/support/mangle.rs"]
mod support;
use support::{cases, mangle};

/// True when the folder loaded (and then gave finite logits).
fn loads_or_fails(dir: &Path, device: &Device) -> bool {
    let Ok((config, model)) = load_qwen3(dir, device) else { return false };
    let batch = Batch::left_padded(&[vec![1, 2, 3]], 0);
    let logits = model.forward(&batch, &batch.valid, config.rope_theta, None).into_data().convert::<f32>().try_to_vec::<f32>().expect("f32 logits");
    assert!(logits.iter().all(|v| v.is_finite()), "a model that loads gives finite logits");
    true
}

#[test]
fn mangled_model_folders_load_or_fail_cleanly() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/qwen3-tied");
    let (config, weights) = (std::fs::read(fixture.join("config.json")).expect("config"), std::fs::read(fixture.join("model.safetensors")).expect("weights"));
    let device = Device::flex();
    let mut rng = Rng::stream(7, "fuzz-model", 0);
    let mut loaded = 0;
    for case in 0..cases() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Only the small header of the weights is worth mangling; a flipped value is a number.
        let (c, w) = if case % 2 == 0 {
            (mangle(&config, &mut rng), weights.clone())
        } else {
            let header = 8 + u64::from_le_bytes(weights[..8].try_into().expect("8 bytes")) as usize;
            let mut w = mangle(&weights[..header.min(weights.len())], &mut rng);
            w.extend_from_slice(&weights[header.min(weights.len())..]);
            (config.clone(), w)
        };
        std::fs::write(dir.path().join("config.json"), c).expect("write");
        std::fs::write(dir.path().join("model.safetensors"), w).expect("write");
        loaded += usize::from(loads_or_fails(dir.path(), &device));
    }
    eprintln!("{loaded} of {} mangled folders loaded", cases());
}

#[path = "support/word_model.rs"]
mod word_model;

#[test]
fn mangled_lm_requests_and_chat_bodies_are_answered_or_refused() {
    let model = word_model::with_word_tokenizer(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/qwen3-tied"));
    let device = Device::flex();
    let requests: &[u8] =
        b"{\"ids\": [1, 2, 3]}\n{\"prompt\": \"A B C\", \"continuations\": [\"D\"]}\n{\"messages\": [{\"role\": \"user\", \"content\": \"A\"}]}\n";
    let chat: &[u8] = br#"{"model": "sim", "messages": [{"role": "user", "content": "A B"}], "max_tokens": 3, "n": 2, "seed": 1, "logprobs": true, "top_logprobs": 2, "temperature": 0.5}"#;
    let served = simforge_trainer::openai::server::ServedModel::load(model.path(), Some("sim".into()), &Default::default(), &device).expect("serve");
    let options = simforge_trainer::inference::SamplingOptions { max_new_tokens: 3, ..Default::default() };
    let mut rng = Rng::stream(7, "fuzz-requests", 0);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut answered = [0usize; 3];
    for _ in 0..cases() {
        let input = dir.path().join("in.jsonl");
        std::fs::write(&input, mangle(requests, &mut rng)).expect("write");
        match simforge_trainer::requests::RequestFile::open(model.path(), &input, &device) {
            Ok(file) => {
                answered[0] += usize::from(file.score(2).is_ok());
                answered[1] += usize::from(file.generate(&options, &[], 2).is_ok());
            }
            Err(e) => assert!(e.to_string().contains("in.jsonl:"), "the error names the line: {e}"),
        }
        let body = mangle(chat, &mut rng);
        if let Ok(request) = serde_json::from_slice::<simforge_trainer::openai::ChatRequest>(&body) {
            answered[2] += usize::from(served.complete(&request, 1).is_ok());
        }
    }
    // The mutations leave some inputs valid; those must be answered.
    eprintln!("answered (score, generate, chat) {answered:?} of {}", cases());
    assert!(cases() < 60 || answered.iter().all(|&n| n > 0), "{answered:?}");
}
