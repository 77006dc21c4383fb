//! Golden tests against Hugging Face transformers: logits of the tiny random checkpoints in
//! `tests/fixtures` (made by `make_qwen3_fixtures.py`) within 1e-4, and greedy generation.

use std::path::{Path, PathBuf};

use simforge_trainer::checkpoint::load_qwen3;
use simforge_trainer::inference::{LanguageModel, SamplingOptions};
use simforge_trainer::models::qwen3::{Batch, KvCache};
use simforge_trainer::TrainerError;

#[path = "support/test_device.rs"]
mod test_device;
use test_device::test_device;

const TOLERANCE: f32 = 1e-4;

#[derive(serde::Deserialize)]
struct Reference {
    sequences: Vec<Vec<u32>>,
    last_logits: Vec<Vec<f32>>,
    greedy: Greedy,
}

#[derive(serde::Deserialize)]
struct Greedy {
    prompt: Vec<u32>,
    tokens: Vec<u32>,
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn reference(dir: &Path) -> Reference {
    serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).expect("reference.json")).expect("json")
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn rows(t: burn::tensor::Tensor<2>) -> Vec<Vec<f32>> {
    let [_, v] = t.dims();
    let values: Vec<f32> = t.into_data().try_to_vec().expect("f32");
    values.chunks(v).map(<[f32]>::to_vec).collect()
}

/// The batched last-position logits of `lm` on the reference sequences are within TOLERANCE.
fn assert_reference_logits(lm: &LanguageModel, r: &Reference, what: &str) {
    for (got, want) in rows(lm.last_logits(&r.sequences)).iter().zip(&r.last_logits) {
        let d = max_diff(got, want);
        assert!(d < TOLERANCE, "{what}: batched logits differ by {d}");
    }
}

#[test]
fn logits_match_transformers() {
    let device = test_device();
    for name in ["qwen3-tied", "qwen3-gqa"] {
        let dir = fixture(name);
        let r = reference(&dir);
        let lm = LanguageModel::load(&dir, &device).expect("load");
        // One left-padded batch, as the reference ran it.
        assert_reference_logits(&lm, &r, name);
        // Each sequence alone: padding must not change a row.
        for (seq, want) in r.sequences.iter().zip(&r.last_logits) {
            let got = &rows(lm.last_logits(std::slice::from_ref(seq)))[0];
            let d = max_diff(got, want);
            assert!(d < TOLERANCE, "{name}: unpadded logits differ by {d}");
        }
    }
}

#[test]
fn greedy_generation_matches_transformers() {
    let device = test_device();
    for name in ["qwen3-tied", "qwen3-gqa"] {
        let dir = fixture(name);
        let r = reference(&dir);
        let lm = LanguageModel::load(&dir, &device).expect("load");
        let options = SamplingOptions { max_new_tokens: r.greedy.tokens.len(), ..SamplingOptions::default() };
        assert_eq!(lm.generate(std::slice::from_ref(&r.greedy.prompt), &options, &|_| false)[0][0], r.greedy.tokens, "{name}");
    }
}

#[test]
fn cached_decoding_equals_full_recompute() {
    let device = test_device();
    let dir = fixture("qwen3-gqa");
    let lm = LanguageModel::load(&dir, &device).expect("load");
    let (config, model) = (&lm.config, &lm.model);
    let seq: Vec<u32> = vec![3, 14, 15, 9, 26, 5, 35];
    let full = rows(lm.last_logits(std::slice::from_ref(&seq))).remove(0);
    let mut cache = KvCache::new(config.num_hidden_layers);
    let (head, tail) = seq.split_at(4);
    let prefix = Batch { ids: vec![head.to_vec()], valid: vec![vec![true; 4]] };
    model.forward(&prefix, &prefix.valid, config.rope_theta, Some(&mut cache));
    let rest = Batch { ids: vec![tail.to_vec()], valid: vec![vec![true; 3]] };
    let logits = model.forward(&rest, &[vec![true; 7]], config.rope_theta, Some(&mut cache));
    let [_, t, v] = logits.dims();
    let last = rows(logits.slice([0..1, t - 1..t, 0..v]).reshape([1, v])).remove(0);
    assert!(max_diff(&last, &full) < 1e-5);
    assert_eq!(cache.len(), 7);
}

/// Rewrites a fixture's weights as bf16 (or drops / reshapes one tensor) in a new folder.
fn rewrite(name: &str, edit: impl Fn(&str, Vec<f32>, Vec<usize>) -> Option<(Vec<f32>, Vec<usize>)>, bf16: bool) -> tempfile::TempDir {
    let src = fixture(name);
    let out = tempfile::tempdir().expect("tempdir");
    std::fs::copy(src.join("config.json"), out.path().join("config.json")).expect("config");
    let bytes = std::fs::read(src.join("model.safetensors")).expect("read");
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("parse");
    let mut kept: Vec<(String, Vec<u8>, Vec<usize>)> = Vec::new();
    for (name, view) in st.tensors() {
        let values: Vec<f32> = view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        if let Some((values, shape)) = edit(&name, values, view.shape().to_vec()) {
            let raw: Vec<u8> = if bf16 {
                values.iter().flat_map(|v| half::bf16::from_f32(*v).to_le_bytes()).collect()
            } else {
                values.iter().flat_map(|v| v.to_le_bytes()).collect()
            };
            kept.push((name, raw, shape));
        }
    }
    let dtype = if bf16 { safetensors::Dtype::BF16 } else { safetensors::Dtype::F32 };
    let views: Vec<(String, safetensors::tensor::TensorView)> =
        kept.iter().map(|(n, raw, shape)| (n.clone(), safetensors::tensor::TensorView::new(dtype, shape.clone(), raw).expect("view"))).collect();
    safetensors::serialize_to_file(views, None, &out.path().join("model.safetensors")).expect("write");
    out
}

#[test]
fn bf16_checkpoints_load_close_to_f32() {
    let device = test_device();
    let r = reference(&fixture("qwen3-tied"));
    let dir = rewrite("qwen3-tied", |_, v, s| Some((v, s)), true);
    let lm = LanguageModel::load(dir.path(), &device).expect("load bf16");
    for (got, want) in rows(lm.last_logits(&r.sequences)).iter().zip(&r.last_logits) {
        let d = max_diff(got, want);
        assert!(d > 0.0 && d < 0.05, "bf16 rounding should move logits a little, moved {d}");
    }
}

#[test]
fn checkpoint_errors_name_the_tensor() {
    let device = test_device();
    let missing = rewrite("qwen3-gqa", |n, v, s| (n != "model.layers.1.mlp.up_proj.weight").then_some((v, s)), false);
    match load_qwen3(missing.path(), &device) {
        Err(TrainerError::MissingTensor { name, .. }) => assert_eq!(name, "model.layers.1.mlp.up_proj.weight"),
        other => panic!("expected a missing tensor, got {:?}", other.err()),
    }
    let reshaped = rewrite("qwen3-gqa", |n, v, s| Some(if n == "model.norm.weight" { (v[..40].to_vec(), vec![40]) } else { (v, s) }), false);
    match load_qwen3(reshaped.path(), &device) {
        Err(TrainerError::Shape { name, expected, found, .. }) => {
            assert_eq!((name.as_str(), expected, found), ("model.norm.weight", vec![48], vec![40]));
        }
        other => panic!("expected a shape error, got {:?}", other.err()),
    }
    let odd = tempfile::tempdir().expect("tempdir");
    let config = std::fs::read_to_string(fixture("qwen3-gqa").join("config.json")).expect("config").replace("\"qwen3\"", "\"llama\"");
    std::fs::write(odd.path().join("config.json"), config).expect("write");
    let err = load_qwen3(odd.path(), &device).expect_err("unsupported").to_string();
    assert!(err.contains("llama") && err.contains("config.json"), "{err}");
}

fn softmax(row: &[f32]) -> Vec<f64> {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f64> = row.iter().map(|&x| f64::from(x - max).exp()).collect();
    let total: f64 = e.iter().sum();
    e.iter().map(|x| x / total).collect()
}

#[test]
fn option_scores_are_the_renormalised_letter_probabilities() {
    let device = test_device();
    let dir = fixture("qwen3-gqa");
    let r = reference(&dir);
    let lm = LanguageModel::load(&dir, &device).expect("load");
    let letters = [10u32, 11, 12, 13];
    let scores = lm.option_probabilities(&r.sequences, &letters).expect("finite scores");
    for (got, logits) in scores.iter().zip(&r.last_logits) {
        let p = softmax(logits);
        let total: f64 = letters.iter().map(|&l| p[l as usize]).sum();
        for (g, &l) in got.iter().zip(&letters) {
            assert!((f64::from(*g) - p[l as usize] / total).abs() < 1e-5);
        }
        assert!((got.iter().map(|x| f64::from(*x)).sum::<f64>() - 1.0).abs() < 1e-5);
    }
}

#[test]
fn continuation_logprobs_add_up_next_token_probabilities() {
    let device = test_device();
    let lm = LanguageModel::load(&fixture("qwen3-tied"), &device).expect("load");
    let (prompt, continuation) = (vec![1u32, 2, 3], vec![4u32, 5]);
    // By hand: log p(4 | 1 2 3) + log p(5 | 1 2 3 4), from last-position logits.
    let first = softmax(&rows(lm.last_logits(std::slice::from_ref(&prompt))).remove(0))[4].ln();
    let second = softmax(&rows(lm.last_logits(&[vec![1, 2, 3, 4]])).remove(0))[5].ln();
    let got = lm.continuation_logprobs(&[(prompt.clone(), continuation.clone()), (vec![7, 8, 9, 10, 11, 12], vec![3])]);
    assert!((got[0] - (first + second)).abs() < 1e-4, "{} vs {}", got[0], first + second);
    let alone = lm.continuation_logprobs(&[(vec![7, 8, 9, 10, 11, 12], vec![3])]);
    assert!((got[1] - alone[0]).abs() < 1e-4, "padding changed a score");
}

#[test]
fn sampling_is_seeded_batched_and_stoppable() {
    let device = test_device();
    let lm = LanguageModel::load(&fixture("qwen3-gqa"), &device).expect("load");
    let prompts = vec![vec![1u32, 2, 3, 4, 5, 6, 7], vec![9u32, 8]];
    let options = SamplingOptions { max_new_tokens: 6, temperature: 1.0, top_p: 0.9, samples: 3, seed: 4, eos: vec![] };
    let a = lm.generate(&prompts, &options, &|_| false);
    assert_eq!((a.len(), a[0].len(), a[0][0].len()), (2, 3, 6));
    assert_eq!(a, lm.generate(&prompts, &options, &|_| false), "same seed, same samples");
    assert_ne!(a, lm.generate(&prompts, &SamplingOptions { seed: 5, ..options.clone() }, &|_| false));
    // A tiny nucleus keeps only the most likely token: sampling becomes greedy.
    let narrow = SamplingOptions { top_p: 1e-9, samples: 1, ..options.clone() };
    let greedy = SamplingOptions { temperature: 0.0, samples: 1, ..options.clone() };
    assert_eq!(lm.generate(&prompts, &narrow, &|_| false), lm.generate(&prompts, &greedy, &|_| false));
    // Greedy in a padded batch equals each prompt alone.
    let batched = lm.generate(&prompts, &greedy, &|_| false);
    assert_eq!(batched[1], lm.generate(&prompts[1..], &greedy, &|_| false)[0]);
    // Stop conditions end a row early.
    let stopped = lm.generate(&prompts, &greedy, &|tokens| tokens.len() == 2);
    assert!(stopped.iter().all(|p| p[0].len() == 2));
    let first = batched[0][0][0];
    let eos = lm.generate(&prompts[..1], &SamplingOptions { eos: vec![first], ..greedy }, &|_| false);
    assert_eq!(eos[0][0], vec![first]);
}

#[test]
fn exported_checkpoints_reload_with_the_reference_logits() {
    let device = test_device();
    for name in ["qwen3-tied", "qwen3-gqa"] {
        let out = tempfile::tempdir().expect("tempdir");
        let exported = out.path().join(name);
        simforge_trainer::checkpoint::export_model(&fixture(name), &exported, false, &device).expect("export");
        let r = reference(&fixture(name));
        let lm = LanguageModel::load(&exported, &device).expect("reload");
        assert_reference_logits(&lm, &r, &format!("{name} after export"));
        let config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(exported.join("config.json")).expect("config")).expect("json");
        assert_eq!(config["architectures"][0], "Qwen3ForCausalLM");
        assert!(exported.join("generation_config.json").is_file());
    }
}
