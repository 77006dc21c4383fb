//! Training: loss on a repeated sequence goes to ~0, LoRA with zero B leaves outputs unchanged,
//! a resumed run equals an uninterrupted one, checkpoints and adapters reload exactly.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::Device;
use simforge_data::parquet_io as pq;
use simforge_trainer::checkpoint::load_qwen3;
use simforge_trainer::checkpoint::{attach_lora, write_random_init};
use simforge_trainer::inference::LanguageModel;
use simforge_trainer::models::qwen3::Qwen3Config;
use simforge_trainer::tokenizer::Tokenizer;
use simforge_trainer::train::config::{LoraConfig, LoraTarget, Objective, TrainConfig};
use simforge_trainer::train::{train, StepMetrics, TrainJob, METRICS_FILE};

#[path = "support/test_device.rs"]
mod test_device;

fn device() -> Device {
    test_device::test_device()
}

const TEXT: &str = "the user watched a film and rated it 4 out of 5. ";

/// A tiny model (BPE trained on `TEXT`) in `dir/init`, and a corpus of `docs` copies of `TEXT`.
fn setup(dir: &Path, docs: usize) -> (PathBuf, PathBuf) {
    let texts: Vec<String> = (0..docs).map(|i| format!("{TEXT}{}", TEXT.repeat(i % 3))).collect();
    let tokenizer = Tokenizer::train_byte_level_bpe(texts.iter(), 300).expect("bpe");
    let mut config = Qwen3Config::tiny(tokenizer.vocab_size());
    config.hidden_size = 64;
    config.intermediate_size = 128;
    config.num_hidden_layers = 2;
    config.head_dim = Some(16);
    let init = dir.join("init");
    write_random_init(&init, &config, &tokenizer, 3, &device()).expect("init");
    let corpus = dir.join("corpus.parquet");
    pq::write(&corpus, vec![("text", pq::str_col(texts.iter()))]).expect("corpus");
    (init, corpus)
}

fn metrics(out: &Path) -> Vec<StepMetrics> {
    std::fs::read_to_string(out.join(METRICS_FILE)).expect("metrics").lines().map(|l| serde_json::from_str(l).expect("metric line")).collect()
}

fn config(steps: usize) -> TrainConfig {
    TrainConfig { max_steps: Some(steps), epochs: 1000, batch_size: 4, seq_len: 32, lr: 3e-3, warmup_ratio: 0.1, seed: Some(7), ..TrainConfig::default() }
}

#[test]
fn dapt_on_a_repeated_text_drives_the_loss_near_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (init, corpus) = setup(dir.path(), 20);
    let out = dir.path().join("run");
    let c = config(80);
    let job = TrainJob { objective: Objective::Dapt, data: &corpus, init: &init, out: &out, config: &c, device: device(), resume: false };
    let summary = train(&job, &mut |_, _| {}).expect("train");
    let m = metrics(&out);
    assert_eq!(m.len(), 80);
    assert!(m[0].loss > 3.0, "a random model starts near ln(vocab): {}", m[0].loss);
    let last = m.last().expect("last").loss;
    assert!(last < 0.3, "the loss on a repeated text falls near zero: {last}");
    assert!(summary.eval_loss.expect("eval loss") < 0.5, "{summary:?}");
    // The final model reloads and gives the trained behaviour.
    let lm = LanguageModel::load(&out.join("model"), &device()).expect("reload");
    assert_eq!(lm.config.num_hidden_layers, 2);
}

#[test]
fn lora_with_zero_b_leaves_outputs_unchanged_and_trains_only_adapters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (init, _) = setup(dir.path(), 6);
    let (config, model) = load_qwen3(&init, &device()).expect("load");
    let ids = vec![vec![5u32, 9, 14, 3, 7], vec![2, 8, 11]];
    let plain = LanguageModel { model: model.clone(), config: config.clone(), pad_id: 0 }.last_logits(&ids).into_data().try_to_vec::<f32>().expect("f32");
    let lora = LoraConfig { rank: 4, alpha: 8.0, dropout: 0.0, targets: vec![LoraTarget::QProj, LoraTarget::VProj, LoraTarget::DownProj] };
    let adapted = attach_lora(model, &config, &lora, 1).expect("attach adapters");
    let names: Vec<(String, bool)> = simforge_trainer::tensors::named_parameters(&adapted.clone().train()).into_iter().map(|p| (p.0, p.3)).collect();
    let trainable: Vec<&String> = names.iter().filter(|n| n.1).map(|n| &n.0).collect();
    assert_eq!(trainable.len(), 2 * 3 * 2, "A and B on 3 projections in 2 layers: {names:?}");
    assert!(trainable.iter().all(|n| n.contains(".weight.lora.")), "{trainable:?}");
    let with_lora = LanguageModel { model: adapted, config, pad_id: 0 }.last_logits(&ids).into_data().try_to_vec::<f32>().expect("f32");
    let diff = plain.iter().zip(&with_lora).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(diff == 0.0, "B = 0 must leave logits unchanged, max diff {diff}");
}

#[test]
fn resumed_training_equals_uninterrupted_training() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (init, corpus) = setup(dir.path(), 20);
    for lora in [None, Some(LoraConfig { rank: 4, alpha: 8.0, dropout: 0.1, ..LoraConfig::default() })] {
        let mut c = config(12);
        c.grad_accum = 2;
        c.save_every = 4;
        c.eval_every = 6;
        c.weight_decay = 0.01;
        c.lora = lora.clone();
        let whole = dir.path().join(format!("whole-{}", lora.is_some()));
        let job = TrainJob { objective: Objective::Dapt, data: &corpus, init: &init, out: &whole, config: &c, device: device(), resume: false };
        train(&job, &mut |_, _| {}).expect("uninterrupted");

        // Stop after step 6 (past the checkpoint at 4), then resume.
        let parts = dir.path().join(format!("parts-{}", lora.is_some()));
        // A fresh run clears an earlier run's checkpoints, so the resume below cannot pick them.
        std::fs::create_dir_all(parts.join("checkpoint-10")).expect("stale checkpoint");
        let job = TrainJob { objective: Objective::Dapt, data: &corpus, init: &init, out: &parts, config: &c, device: device(), resume: false };
        let interrupted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            train(&job, &mut |m, _| {
                if m.step == 6 {
                    panic!("interrupted");
                }
            })
        }));
        assert!(interrupted.is_err());
        assert!(parts.join("checkpoint-4").is_dir());
        assert!(!parts.join("checkpoint-10").exists(), "the stale checkpoint was removed");
        let job = TrainJob { resume: true, ..job };
        let summary = train(&job, &mut |_, _| {}).expect("resumed");
        assert_eq!(summary.resumed_from, Some(4));
        let (a, b) = (metrics(&whole), metrics(&parts));
        assert_eq!(a.len(), 12);
        assert!(a[11].loss < a[0].loss - 0.3, "training lowers the loss (lora: {}): {} → {}", lora.is_some(), a[0].loss, a[11].loss);
        assert_eq!(b.len(), 12, "metrics after the checkpoint were replaced, not duplicated");
        for (x, y) in a.iter().zip(&b) {
            assert_eq!((x.step, x.loss, x.lr, x.grad_norm, x.eval_loss), (y.step, y.loss, y.lr, y.grad_norm, y.eval_loss), "lora: {}", lora.is_some());
        }
        let final_a = std::fs::read(whole.join("model").join(if lora.is_some() { "adapter_model.safetensors" } else { "model.safetensors" })).expect("a");
        let final_b = std::fs::read(parts.join("model").join(if lora.is_some() { "adapter_model.safetensors" } else { "model.safetensors" })).expect("b");
        assert!(final_a == final_b, "final weights are byte-identical");
    }
}

#[test]
fn a_module_visit_names_parameters_like_the_checkpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (init, _) = setup(dir.path(), 4);
    let (_, model) = load_qwen3(&init, &device()).expect("load");
    let names: Vec<String> = simforge_trainer::tensors::named_parameters(&model.valid()).into_iter().map(|p| p.0).collect();
    assert!(names.contains(&"model.layers.1.self_attn.q_norm.weight".to_string()), "{names:?}");
    assert!(names.contains(&"model.embed_tokens.weight".to_string()), "{names:?}");
}

#[test]
fn sft_targets_are_the_assistant_answer_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (init, _) = setup(dir.path(), 4);
    let tokenizer = Tokenizer::from_file(&init.join("tokenizer.json")).expect("tokenizer");
    let messages = vec![
        simforge_trainer::tokenizer::Message { role: "user".into(), content: "# Exposure List\n[A] film\n[B] show".into() },
        simforge_trainer::tokenizer::Message { role: "assistant".into(), content: "Behavior: [B]".into() },
    ];
    let example = simforge_trainer::train::data::chat_example(&messages, &tokenizer).expect("example");
    let answer: Vec<u32> = example.ids.iter().zip(&example.targets).filter(|(_, t)| **t).map(|(i, _)| *i).collect();
    assert_eq!(tokenizer.decode(&answer).expect("decode"), "Behavior: [B]<|im_end|>");
    assert_eq!(example.ids.len(), tokenizer.encode(&simforge_trainer::tokenizer::chat_template(&messages, false)).expect("ids").len());
    assert_eq!(example.prompt_count() + example.target_count(), example.ids.len() - 1);
}

/// With `prompt_loss_weight`, SFT also learns the prompts' text: its first loss adds the prompt
/// tokens' (about ln of the vocabulary for a fresh model), and the answer still trains.
#[test]
fn the_prompt_loss_weight_adds_the_prompt_tokens_to_the_loss() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (init, _) = setup(dir.path(), 4);
    let data = dir.path().join("chat.parquet");
    let prompts: Vec<String> = (0..40).map(|i| format!("the user watched film {} and rated it {} out of 5.", i % 7, i % 5)).collect();
    pq::write(&data, vec![("prompt", pq::str_col(prompts.iter())), ("response", pq::str_col(prompts.iter().map(|_| "4")))]).expect("records");
    let run = |weight: f64, name: &str| {
        let out = dir.path().join(name);
        let c = TrainConfig { prompt_loss_weight: weight, batch_size: 8, seq_len: 256, ..config(12) };
        train(&TrainJob { objective: Objective::Sft, data: &data, init: &init, out: &out, config: &c, device: device(), resume: false }, &mut |_, _| {})
            .expect("sft");
        metrics(&out)
    };
    let (answer_only, with_prompt) = (run(0.0, "answer"), run(1.0, "prompt"));
    let vocab = (Tokenizer::from_file(&init.join("tokenizer.json")).expect("tokenizer").vocab_size() as f64).ln();
    assert!(with_prompt[0].loss > answer_only[0].loss + 0.5 * vocab, "{} vs {}", with_prompt[0].loss, answer_only[0].loss);
    assert!(with_prompt.last().expect("steps").loss < with_prompt[0].loss, "the prompt's text trains too");
}

#[test]
fn a_diverging_run_stops_with_a_clear_error_and_keeps_its_last_checkpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (init, corpus) = setup(dir.path(), 20);
    let out = dir.path().join("run");
    let c = TrainConfig { lr: 1e12, max_grad_norm: 0.0, save_every: 1, warmup_ratio: 0.0, ..config(30) };
    let job = TrainJob { objective: Objective::Dapt, data: &corpus, init: &init, out: &out, config: &c, device: device(), resume: false };
    let err = train(&job, &mut |_, _| {}).expect_err("a learning rate of 1e12 diverges").to_string();
    assert!(err.contains("training stopped") && err.contains("checkpoint-"), "{err}");
    let last_good = metrics(&out).len();
    assert!(out.join(format!("checkpoint-{last_good}")).is_dir(), "{err}");
    assert!(!out.join("model").exists(), "no final model from a failed run");
}

#[test]
fn lora_exports_as_a_peft_adapter_and_merges_to_the_same_logits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (init, corpus) = setup(dir.path(), 20);
    let out = dir.path().join("run");
    let lora = LoraConfig { rank: 4, alpha: 8.0, dropout: 0.0, targets: vec![LoraTarget::QProj, LoraTarget::UpProj] };
    let c = TrainConfig { lora: Some(lora), ..config(10) };
    let job = TrainJob { objective: Objective::Dapt, data: &corpus, init: &init, out: &out, config: &c, device: device(), resume: false };
    train(&job, &mut |_, _| {}).expect("train");
    let trained = out.join("model");
    assert!(trained.join("adapter_model.safetensors").is_file() && !trained.join("model.safetensors").exists());

    let merged = dir.path().join("merged");
    let peft = dir.path().join("peft");
    simforge_trainer::checkpoint::export_model(&trained, &merged, true, &device()).expect("merge");
    simforge_trainer::checkpoint::export_model(&trained, &peft, false, &device()).expect("adapter");
    let ids = vec![vec![5u32, 9, 14, 3, 7, 21, 30]];
    let logits = |dir: &Path| LanguageModel::load(dir, &device()).expect("load").last_logits(&ids).into_data().try_to_vec::<f32>().expect("f32");
    let (adapter, merged_logits, base) = (logits(&trained), logits(&merged), logits(&init));
    let diff = adapter.iter().zip(&merged_logits).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(diff < 1e-4, "merged and adapter logits differ by {diff}");
    assert!(adapter.iter().zip(&base).any(|(a, b)| (a - b).abs() > 1e-3), "training changed the adapted model");

    let adapter_config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(peft.join("adapter_config.json")).expect("config")).expect("json");
    assert_eq!(adapter_config["peft_type"], "LORA");
    assert_eq!(adapter_config["r"], 4);
    assert_eq!(adapter_config["target_modules"], serde_json::json!(["q_proj", "up_proj"]));
    let tensors = simforge_trainer::tensors::read_safetensors(&peft.join("adapter_model.safetensors")).expect("adapter");
    assert_eq!(tensors.len(), 2 * 2 * 2);
    let (_, shape) = &tensors["base_model.model.model.layers.1.mlp.up_proj.lora_A.weight"];
    assert_eq!(shape, &vec![4, 64], "lora_A is [r, in]");
    let (_, shape) = &tensors["base_model.model.model.layers.1.mlp.up_proj.lora_B.weight"];
    assert_eq!(shape, &vec![128, 4], "lora_B is [out, r]");
}

/// A scene of fruit options: its prompt, the position of its answer and its option count.
type FruitScene = (String, usize, usize);

const FRUIT: [&str; 8] = ["fig", "kiwi", "plum", "pear", "lime", "date", "sloe", "yuzu"];

/// 2,000 training and 100 held-out scenes drawn by `scene`, and a 2-layer model in `dir/init`
/// whose BPE is learned on the training prompts.
fn fruit_scenes(dir: &Path, seed: u64, scene: impl Fn(&mut simforge_data::rng::Rng) -> FruitScene) -> (Vec<FruitScene>, Vec<FruitScene>, PathBuf) {
    let mut rng = simforge_data::rng::Rng::new(seed);
    let train_scenes: Vec<FruitScene> = (0..2_000).map(|_| scene(&mut rng)).collect();
    let held_out: Vec<FruitScene> = (0..100).map(|_| scene(&mut rng)).collect();
    let tokenizer = Tokenizer::train_byte_level_bpe(train_scenes.iter().map(|s| &s.0), 300).expect("bpe");
    let model_config =
        Qwen3Config { hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2, head_dim: Some(16), ..Qwen3Config::tiny(tokenizer.vocab_size()) };
    let init = dir.join("init");
    write_random_init(&init, &model_config, &tokenizer, 3, &device()).expect("init");
    (train_scenes, held_out, init)
}

/// Scenes whose answer is stated in the prompt ("The user picks C."): any training loop whose
/// answer mask, label position and scoring prompt line up learns to copy it in a few hundred
/// steps, and one that is off by a token cannot. SFT on the scenes table, then the direct
/// scoring prompt that alignment uses (`Behavior: [` after the chat prompt), then DPO pairs
/// that prefer the stated letter over another.
#[test]
fn a_stated_answer_is_learned_by_sft_and_read_by_scoring_and_dpo() {
    use simforge_data::rng::Rng;
    use simforge_trainer::distill::teacher::option_distributions;
    use simforge_trainer::tokenizer::answer_prompt;

    let dir = tempfile::tempdir().expect("tempdir");
    let (train_scenes, held_out, init) = fruit_scenes(dir.path(), 11, |rng: &mut Rng| {
        let k = 3 + rng.below(3);
        let target = rng.below(k);
        let options: Vec<String> = (0..k).map(|i| format!("[{}] {}", (b'A' + i as u8) as char, FRUIT[rng.below(FRUIT.len())])).collect();
        (format!("# Exposure List\n{}\n\nThe user picks {}.", options.join("\n"), (b'A' + target as u8) as char), target, k)
    });
    let data = dir.path().join("scenes.parquet");
    pq::write(&data, vec![("prompt", pq::str_col(train_scenes.iter().map(|s| &s.0))), ("target_pos", pq::u32_col(train_scenes.iter().map(|s| s.1 as u32)))])
        .expect("scenes");

    // The probability each held-out scene's model gives its stated letter, read as alignment reads it.
    let stated = |model: &Path| -> Vec<f32> {
        let lm = LanguageModel::load(model, &device()).expect("load");
        let tokenizer = Tokenizer::from_file(&model.join("tokenizer.json")).expect("tokenizer");
        let messages = |p: &str| [simforge_trainer::tokenizer::Message { role: "user".into(), content: p.to_owned() }];
        let prompts: Vec<Vec<u32>> = held_out.iter().map(|s| tokenizer.encode(&(answer_prompt(&messages(&s.0)) + "Behavior: [")).expect("encode")).collect();
        let choices: Vec<usize> = held_out.iter().map(|s| s.2).collect();
        option_distributions(&lm, &tokenizer, &prompts, &choices).expect("score").iter().zip(&held_out).map(|(p, s)| p[s.1]).collect()
    };
    let accuracy = |p: &[f32]| p.iter().filter(|&&x| x > 0.5).count() as f64 / p.len() as f64;
    let before = accuracy(&stated(&init));
    assert!(before < 0.5, "an untrained model does not know the letter: {before}");

    let sft = dir.path().join("sft");
    let config =
        TrainConfig { max_steps: Some(300), epochs: 100, batch_size: 16, lr: 3e-3, warmup_ratio: 0.05, seq_len: 128, seed: Some(1), ..TrainConfig::default() };
    let job = TrainJob { objective: Objective::Sft, data: &data, init: &init, out: &sft, config: &config, device: device(), resume: false };
    train(&job, &mut |_, _| {}).expect("sft");
    let after_sft = stated(&sft.join("model"));
    assert!(accuracy(&after_sft) > 0.9, "SFT taught the stated letter to {} of held-out scenes", accuracy(&after_sft));

    // DPO from a half-trained model: pairs prefer the stated letter to the next one.
    let half = dir.path().join("half");
    let config_half = TrainConfig { max_steps: Some(60), ..config.clone() };
    train(&TrainJob { objective: Objective::Sft, data: &data, init: &init, out: &half, config: &config_half, device: device(), resume: false }, &mut |_, _| {})
        .expect("half");
    let pairs = dir.path().join("dpo.parquet");
    let answer = |i: usize| format!("Behavior: [{}]", (b'A' + i as u8) as char);
    pq::write(
        &pairs,
        vec![
            ("prompt", pq::str_col(train_scenes.iter().map(|s| &s.0))),
            ("chosen", pq::str_col(train_scenes.iter().map(|s| answer(s.1)))),
            ("rejected", pq::str_col(train_scenes.iter().map(|s| answer((s.1 + 1) % s.2)))),
        ],
    )
    .expect("pairs");
    let before_dpo: f32 = stated(&half.join("model")).iter().sum();
    let dpo = dir.path().join("dpo");
    let config_dpo = TrainConfig { max_steps: Some(60), lr: 1e-3, dpo_beta: 0.1, ..config };
    train(
        &TrainJob { objective: Objective::Dpo, data: &pairs, init: &half.join("model"), out: &dpo, config: &config_dpo, device: device(), resume: false },
        &mut |_, _| {},
    )
    .expect("dpo");
    let after_dpo: f32 = stated(&dpo.join("model")).iter().sum();
    assert!(after_dpo > before_dpo + 5.0, "DPO raised the stated letter's probability from {before_dpo:.1} to {after_dpo:.1} (summed over 100 scenes)");
}

/// The option readout (a score at the end of each option's line) learns which option holds the
/// stated liked item, first from the reading exercise's per-option labels and then from the
/// choice alone, and alignment's scoring reads the trained model the same way.
#[test]
fn the_option_readout_learns_to_match_options_with_the_stated_like() {
    use simforge_data::rng::Rng;
    use simforge_trainer::readout::{option_prompt, OptionReadout};
    use simforge_trainer::tokenizer::Message;
    use simforge_trainer::train::config::Readout;

    let dir = tempfile::tempdir().expect("tempdir");
    let (train_scenes, held_out, init) = fruit_scenes(dir.path(), 5, |rng: &mut Rng| {
        let k = 3 + rng.below(3);
        let target = rng.below(k);
        let liked = rng.below(FRUIT.len());
        let options: Vec<String> = (0..k)
            .map(|i| {
                let item = if i == target { liked } else { (liked + 1 + rng.below(FRUIT.len() - 1)) % FRUIT.len() };
                format!("[{}] {}", (b'A' + i as u8) as char, FRUIT[item])
            })
            .collect();
        (format!("Likes: {}\nOptions:\n{}", FRUIT[liked], options.join("\n")), target, k)
    });
    let data = dir.path().join("scenes.parquet");
    // Exactly the chosen option holds the liked item, so the reading exercise's labels are the choice.
    let liked: Vec<Vec<u32>> = train_scenes.iter().map(|s| vec![s.1 as u32]).collect();
    pq::write(
        &data,
        vec![
            ("prompt", pq::str_col(train_scenes.iter().map(|s| &s.0))),
            ("target_pos", pq::u32_col(train_scenes.iter().map(|s| s.1 as u32))),
            ("choice_cnt", pq::u32_col(train_scenes.iter().map(|s| s.2 as u32))),
            ("liked_options", pq::u32_list_col(liked.iter().map(|l| l.as_slice()))),
        ],
    )
    .expect("scenes");

    let accuracy = |model: &Path| -> f64 {
        let readout = OptionReadout::of_model(model).expect("readout file").expect("a model trained under the option readout says so");
        let lm = LanguageModel::load(model, &device()).expect("load");
        let tokenizer = Tokenizer::from_file(&model.join("tokenizer.json")).expect("tokenizer");
        let prompts: Vec<_> =
            held_out.iter().map(|s| option_prompt(&tokenizer, &[Message { role: "user".into(), content: s.0.clone() }], s.2).expect("option lines")).collect();
        let p = lm.option_readout(&prompts, readout.token_id).expect("finite scores");
        p.iter().zip(&held_out).filter(|(p, s)| simforge_data::rng::argmax(p) == s.1).count() as f64 / held_out.len() as f64
    };
    let config = TrainConfig {
        max_steps: Some(250),
        epochs: 100,
        batch_size: 16,
        lr: 3e-3,
        warmup_ratio: 0.05,
        seq_len: 128,
        seed: Some(1),
        readout: Readout::Options,
        ..TrainConfig::default()
    };
    let reading = dir.path().join("reading");
    train(
        &TrainJob { objective: Objective::Reading, data: &data, init: &init, out: &reading, config: &config, device: device(), resume: false },
        &mut |_, _| {},
    )
    .expect("reading");
    let after_reading = accuracy(&reading.join("model"));
    assert!(after_reading > 0.8, "the reading exercise taught the match to {after_reading} of held-out scenes");

    let choice = dir.path().join("choice");
    train(&TrainJob { objective: Objective::Sft, data: &data, init: &init, out: &choice, config: &config, device: device(), resume: false }, &mut |_, _| {})
        .expect("choice");
    let after_choice = accuracy(&choice.join("model"));
    assert!(after_choice > 0.8, "the choice alone taught the match to {after_choice} of held-out scenes (random ≈ 0.27)");
}

/// The GPU code path (wgpu; in CI, Mesa's software Vulkan driver) takes the same training steps
/// as the CPU backend: three full fine-tuning steps and three LoRA steps give the same losses,
/// gradient norms and written weights, within float tolerance.
#[cfg(feature = "wgpu")]
#[test]
fn wgpu_training_steps_equal_the_cpu_backends() {
    use simforge_trainer::device::Device as Backend;
    let dir = tempfile::tempdir().expect("tempdir");
    let (init, corpus) = setup(dir.path(), 20);
    for (name, lora) in [("full", None), ("lora", Some(LoraConfig { rank: 4, ..LoraConfig::default() }))] {
        let c = TrainConfig { lora: lora.clone(), ..config(3) };
        let run = |backend: Backend| {
            let out = dir.path().join(format!("{name}-{backend}"));
            let device = backend.open().expect("backend");
            train(&TrainJob { objective: Objective::Dapt, data: &corpus, init: &init, out: &out, config: &c, device, resume: false }, &mut |_, _| {})
                .expect("train");
            let weights = if lora.is_some() { simforge_trainer::checkpoint::ADAPTER_WEIGHTS } else { "model.safetensors" };
            (metrics(&out), simforge_trainer::tensors::read_safetensors(&out.join("model").join(weights)).expect("weights"))
        };
        let (cpu_metrics, cpu_weights) = run(Backend::Cpu);
        let (gpu_metrics, gpu_weights) = run(Backend::Wgpu(None));
        for (a, b) in cpu_metrics.iter().zip(&gpu_metrics) {
            assert!((a.loss - b.loss).abs() < 1e-4 * a.loss.abs().max(1.0), "{name} step {}: loss {} on cpu, {} on wgpu", a.step, a.loss, b.loss);
            assert!(
                (a.grad_norm - b.grad_norm).abs() < 1e-3 * a.grad_norm.max(1.0),
                "{name} step {}: gradient norm {} vs {}",
                a.step,
                a.grad_norm,
                b.grad_norm
            );
        }
        assert_eq!(cpu_weights.len(), gpu_weights.len(), "{name}: the same tensors");
        for (key, (values, shape)) in &cpu_weights {
            let (other, other_shape) = &gpu_weights[key];
            assert_eq!(shape, other_shape, "{name} {key}");
            let diff = values.iter().zip(other).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
            assert!(diff < 1e-4, "{name} {key}: weights differ by {diff} after three steps");
        }
    }
}
