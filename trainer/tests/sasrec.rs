//! SASRec: the forward pass matches the PyTorch reference, training beats popularity on a
//! world with sequential structure, a resumed run equals an uninterrupted one, and the
//! recommender API (recommend, score, fine-tune, save/load) behaves.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use simforge_data::prep::{prep, PrepConfig};
use simforge_data::rng::Rng;
use simforge_data::sources::Format;
use simforge_trainer::models::sasrec::{Norm, SasRec, SasRecConfig, SequenceBatch};
use simforge_trainer::sasrec::data::{Histories, LeaveOneOut};
use simforge_trainer::sasrec::evaluate::{evaluate, NextItemScorer, Popularity, Protocol};
use simforge_trainer::sasrec::train::{cases, train_sasrec, EpochMetrics, Progress, SasRecJob, SasRecTrainConfig, METRICS_FILE};
use simforge_trainer::sasrec::Recommender;
use simforge_trainer::tensors::host;
use simforge_trainer::tensors::{load_parameter_tensors, read_safetensors};

#[path = "support/test_device.rs"]
mod test_device;

fn device() -> Device {
    test_device::test_device()
}

#[test]
fn forward_matches_the_pytorch_reference() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sasrec");
    for (name, norm) in [("pre", Norm::Pre), ("post", Norm::Post)] {
        let path = dir.join(format!("{name}.safetensors"));
        let mut tensors = read_safetensors(&path).expect("fixture");
        let take = |t: &mut simforge_trainer::tensors::HostTensors, key: &str| t.remove(key).unwrap_or_else(|| panic!("{key} in fixture"));
        let (inputs, shape) = take(&mut tensors, "inputs");
        let [batch, len] = [shape[0], shape[1]];
        let (candidates, cand_shape) = take(&mut tensors, "candidates");
        let (expected_hidden, _) = take(&mut tensors, "expected_hidden");
        let (expected_scores, _) = take(&mut tensors, "expected_scores");
        let config = SasRecConfig { num_items: 30, hidden: 8, blocks: 2, heads: 2, max_len: len, dropout: 0.0, norm };
        let model = load_parameter_tensors(SasRec::init(&config, 0, &device()), tensors, &path).expect("every parameter in the fixture");

        let rows: Vec<Vec<u32>> = inputs.chunks(len).map(|r| r.iter().map(|&x| x as u32).collect()).collect();
        let hidden = host(model.forward(&SequenceBatch::new(&rows, len), Default::default()).reshape([batch * len * 8]));
        let candidates: Vec<Vec<u32>> = candidates.chunks(cand_shape[1]).map(|r| r.iter().map(|&x| x as u32).collect()).collect();
        let row_refs: Vec<&[u32]> = rows.iter().map(Vec::as_slice).collect();
        let scores: Vec<f32> = model.score_candidates(&row_refs, &candidates).concat();
        for (what, ours, theirs) in [("hidden", &hidden, &expected_hidden), ("scores", &scores, &expected_scores)] {
            let diff = ours.iter().zip(theirs.iter()).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert_eq!(ours.len(), theirs.len());
            assert!(diff < 1e-4, "{name}-norm {what}: max difference {diff} from the reference");
        }
    }
}

/// A dataset in SASRec's `user item` format where each user walks the catalogue in steps of
/// one (with some noise), prepared with data-prep into `dir/data`.
fn sequential_world(dir: &Path, users: usize, items: u32) -> PathBuf {
    let mut rng = Rng::new(11);
    let mut text = String::new();
    for user in 1..=users {
        let mut item = 1 + rng.below(items as usize) as u32;
        for _ in 0..rng.range_inclusive(6, 16) {
            text.push_str(&format!("{user} {item}\n"));
            item = if rng.chance(0.85) { item % items + 1 } else { 1 + rng.below(items as usize) as u32 };
        }
    }
    let file = dir.join("walks.txt");
    std::fs::write(&file, text).expect("write walks");
    let data = dir.join("data");
    prep(&PrepConfig { format: Some(Format::Sasrec), input: Some(file), min_user_interactions: 0, min_item_interactions: 0, ..PrepConfig::default() }, &data)
        .expect("prep");
    data
}

fn small_config(epochs: usize) -> SasRecTrainConfig {
    SasRecTrainConfig {
        model: SasRecConfig { hidden: 16, blocks: 1, heads: 1, max_len: 12, dropout: 0.1, ..SasRecConfig::default() },
        epochs,
        batch_size: 32,
        lr: 5e-3,
        eval_every: 5,
        seed: Some(3),
        ..SasRecTrainConfig::default()
    }
}

#[test]
fn training_beats_popularity_on_sequential_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = sequential_world(dir.path(), 300, 150);
    let config = small_config(15);
    let out = dir.path().join("run");
    let summary = train_sasrec(&SasRecJob { data: &data, out: &out, config: &config, device: device(), resume: false }, &mut |_| {}).expect("train");

    let histories = Histories::from_dataset(&data).expect("histories");
    let split = LeaveOneOut::new(&histories);
    let test = cases(&split, &histories, true);
    let popularity = evaluate(&Popularity::new(&split.train, histories.num_items), &test, Protocol::Sampled, histories.num_items, 0);
    let sasrec = summary.test.iter().find(|r| r.protocol == Protocol::Sampled).expect("sampled report");
    assert_eq!(sasrec.users, 300);
    assert!(sasrec.get("hr@10") > popularity.get("hr@10") + 0.3, "SASRec HR@10 {} vs popularity {}", sasrec.get("hr@10"), popularity.get("hr@10"));
    let full = summary.test.iter().find(|r| r.protocol == Protocol::Full).expect("full report");
    assert!(full.get("ndcg@10") > 0.2, "full-ranking NDCG@10 {}", full.get("ndcg@10"));
    assert!(out.join("model").join("histories.parquet").is_file());
}

fn metric_lines(out: &Path) -> Vec<EpochMetrics> {
    std::fs::read_to_string(out.join(METRICS_FILE)).expect("metrics").lines().map(|l| serde_json::from_str(l).expect("line")).collect()
}

#[test]
fn resumed_training_equals_uninterrupted_training() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = sequential_world(dir.path(), 120, 60);
    let mut config = small_config(6);
    config.eval_every = 2;
    let whole = dir.path().join("whole");
    train_sasrec(&SasRecJob { data: &data, out: &whole, config: &config, device: device(), resume: false }, &mut |_| {}).expect("uninterrupted");

    let parts = dir.path().join("parts");
    let job = SasRecJob { data: &data, out: &parts, config: &config, device: device(), resume: false };
    let interrupted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        train_sasrec(&job, &mut |p| {
            // Killed inside epoch 4, after epoch 3's checkpoint.
            if matches!(p, Progress::Batch { epoch: 4, batch: 2, .. }) {
                panic!("interrupted");
            }
        })
    }));
    assert!(interrupted.is_err());
    assert!(parts.join("checkpoint-3").is_dir() && !parts.join("checkpoint-2").exists(), "the newest epoch's checkpoint only");
    let summary = train_sasrec(&SasRecJob { resume: true, ..job }, &mut |_| {}).expect("resumed");
    assert_eq!(summary.resumed_from, Some(3));
    let (a, b) = (metric_lines(&whole), metric_lines(&parts));
    assert_eq!(a.len(), 6);
    assert_eq!(
        a.iter().map(|m| (m.epoch, m.loss, m.valid.clone())).collect::<Vec<_>>(),
        b.iter().map(|m| (m.epoch, m.loss, m.valid.clone())).collect::<Vec<_>>()
    );
    let weights = |out: &Path| std::fs::read(out.join("model").join("model.safetensors")).expect("weights");
    assert!(weights(&whole) == weights(&parts), "final weights are byte-identical");
}

#[test]
fn recommender_recommends_unseen_items_scores_and_fine_tunes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = sequential_world(dir.path(), 100, 50);
    let out = dir.path().join("run");
    train_sasrec(&SasRecJob { data: &data, out: &out, config: &small_config(3), device: device(), resume: false }, &mut |_| {}).expect("train");
    let mut recommender = Recommender::load(&out.join("model"), &device()).expect("load");

    let lists = recommender.recommend(&[0, 1, 2], 5).expect("recommend");
    for (user, list) in lists.iter().enumerate() {
        assert_eq!(list.len(), 5);
        let seen: Vec<u32> = recommender.histories.sequences[user].iter().map(|i| i - 1).collect();
        assert!(list.iter().all(|i| !seen.contains(i)), "user {user} got a seen item: {list:?} / {seen:?}");
        let scores = recommender.score(user as u32, list).expect("score");
        assert!(scores.windows(2).all(|w| w[0] >= w[1]), "best first: {scores:?}");
        // Nothing unseen outside the list scores above its last item.
        let all: Vec<u32> = (0..50).filter(|i| !seen.contains(i) && !list.contains(i)).collect();
        let rest = recommender.score(user as u32, &all).expect("score rest");
        assert!(rest.iter().all(|&s| s <= scores[4]));
    }

    let before = recommender.recommend(&[0], 5).expect("before");
    let epoch = recommender.state.epoch;
    let new_items = [(0, before[0][0]), (100, 7)];
    recommender.fine_tune(&new_items, 2).expect("fine-tune");
    assert_eq!(recommender.state.epoch, epoch + 2);
    assert_eq!(recommender.histories.sequences.len(), 101, "a new user was added");
    assert!(!recommender.recommend(&[0], 5).expect("after")[0].contains(&before[0][0]), "an accepted item is now seen");
    let saved = dir.path().join("saved");
    recommender.save(&saved).expect("save");
    let reloaded = Recommender::load(&saved, &device()).expect("reload");
    assert_eq!(reloaded.recommend(&[0, 100], 5).expect("reloaded"), recommender.recommend(&[0, 100], 5).expect("original"));
    assert!(recommender.fine_tune(&[(0, 50)], 1).is_err(), "item 50 is outside a 50-item catalogue");
    assert!(recommender.recommend(&[500], 5).is_err(), "unknown user");
}
