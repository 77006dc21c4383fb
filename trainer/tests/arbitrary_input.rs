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
