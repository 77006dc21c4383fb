//! Model folders in Hugging Face layout: `config.json`, `model.safetensors`, `tokenizer.json`,
//! `generation_config.json`, and for LoRA `adapter_model.safetensors` + `adapter_config.json`
//! in PEFT's layout. Every folder is written under a temporary name and renamed into place, so
//! a crash never leaves half a checkpoint. Loading a model folder (full weights, or an adapter
//! onto its base) happens here and nowhere else.

use std::path::{Path, PathBuf};

use burn::module::{Lora, Module, ParamGroup};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use simforge_data::rng::Rng;

use crate::error::{Result, TrainerError};
use crate::models::qwen3::{Qwen3Config, Qwen3ForCausalLM};
use crate::tensors::{host, map_parameters, named_parameters, read_safetensors, write_safetensors, HostTensors, NamedTensor};
use crate::train::config::LoraConfig;
use crate::weights::WeightSource;

pub const ADAPTER_CONFIG: &str = "adapter_config.json";
pub const ADAPTER_WEIGHTS: &str = "adapter_model.safetensors";

/// Builds a folder under a temporary name next to `dir`, then swaps it into place.
pub fn write_dir_atomically(dir: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.with_file_name(format!(".{name}.tmp"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| TrainerError::io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| TrainerError::io(&tmp, e))?;
    fill(&tmp)?;
    if dir.exists() {
        let old = dir.with_file_name(format!(".{name}.old"));
        std::fs::rename(dir, &old).map_err(|e| TrainerError::io(dir, e))?;
        std::fs::rename(&tmp, dir).map_err(|e| TrainerError::io(dir, e))?;
        std::fs::remove_dir_all(&old).map_err(|e| TrainerError::io(&old, e))?;
    } else {
        std::fs::rename(&tmp, dir).map_err(|e| TrainerError::io(dir, e))?;
    }
    Ok(())
}

/// Hugging Face name and layout of a burn parameter: linear weights go back to `[out, in]`.
fn hf_tensor(path: &str, values: Vec<f32>, shape: Vec<usize>) -> NamedTensor {
    if shape.len() == 2 && path != "model.embed_tokens.weight" {
        let (rows, cols) = (shape[0], shape[1]);
        (path.to_string(), transpose(&values, rows, cols), vec![cols, rows])
    } else {
        (path.to_string(), values, shape)
    }
}

/// `[rows, cols]` → `[cols, rows]`.
pub fn transpose(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; values.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = values[r * cols + c];
        }
    }
    out
}

/// The full weights (adapters merged) in Hugging Face names and layout.
pub fn model_tensors(model: &Qwen3ForCausalLM) -> Vec<NamedTensor> {
    named_parameters(model)
        .into_iter()
        .filter(|(path, ..)| !path.contains(".lora."))
        // `val()` of an adapted weight is base + scale·a·b: the merged weight.
        .map(|(path, value, shape, _)| hf_tensor(&path, host(value), shape))
        .collect()
}

/// Adapter factors in PEFT names and layout: burn's `a` [in, r] and `b` [r, out] become
/// `lora_A.weight` [r, in] and `lora_B.weight` [out, r].
pub fn adapter_tensors(model: &Qwen3ForCausalLM) -> Vec<NamedTensor> {
    named_parameters(model)
        .into_iter()
        .filter_map(|(path, value, shape, _)| Some((peft_name(&path)?, transpose(&host(value), shape[0], shape[1]), vec![shape[1], shape[0]])))
        .collect()
}

/// PEFT's name of the adapter factor at burn path `….q_proj.weight.lora.a` (or `.b`).
fn peft_name(path: &str) -> Option<String> {
    let (module, factor) = path.rsplit_once(".weight.lora.")?;
    let name = match factor {
        "a" => "lora_A",
        "b" => "lora_B",
        _ => return None,
    };
    Some(format!("base_model.model.{module}.{name}.weight"))
}

/// PEFT's `adapter_config.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdapterConfig {
    pub peft_type: String,
    pub task_type: String,
    pub base_model_name_or_path: String,
    pub r: usize,
    pub lora_alpha: f64,
    pub lora_dropout: f64,
    pub target_modules: Vec<String>,
    pub bias: String,
    pub fan_in_fan_out: bool,
    pub inference_mode: bool,
    pub init_lora_weights: bool,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl AdapterConfig {
    pub fn new(lora: &LoraConfig, base: &Path) -> Self {
        Self {
            peft_type: "LORA".into(),
            task_type: "CAUSAL_LM".into(),
            base_model_name_or_path: base.display().to_string(),
            r: lora.rank,
            lora_alpha: lora.alpha,
            lora_dropout: lora.dropout,
            target_modules: lora.targets.iter().map(|t| t.name().to_owned()).collect(),
            bias: "none".into(),
            fan_in_fan_out: false,
            inference_mode: true,
            init_lora_weights: true,
            extra: serde_json::Map::new(),
        }
    }

    /// The adapter's settings; `path` names its file in errors (a target simforge cannot adapt).
    pub fn lora(&self, path: &Path) -> Result<LoraConfig> {
        let targets = self.target_modules.iter().map(|t| t.parse().map_err(|why| TrainerError::checkpoint(path, why))).collect::<Result<_>>()?;
        Ok(LoraConfig { rank: self.r, alpha: self.lora_alpha, dropout: self.lora_dropout, targets })
    }
}

/// Attaches adapters (A normal with PEFT's scale, B zero) to the chosen projections, freezing
/// every other parameter; `seed` makes A's initialisation repeatable. A is drawn on the host,
/// one stream per adapter, so it does not depend on the device RNG or on other threads.
pub fn attach_lora(model: Qwen3ForCausalLM, config: &Qwen3Config, lora: &LoraConfig, seed: u64) -> Result<Qwen3ForCausalLM> {
    let mut paths = Vec::new();
    for layer in 0..config.num_hidden_layers {
        for target in &lora.targets {
            paths.push(format!("model.layers.{layer}.{}.{target}.weight", target.block()));
        }
    }
    let mut model = model.apply_lora(Lora::new(lora.rank, lora.alpha).set_param_group(ParamGroup::from_paths(paths)));
    model.set_lora_dropout(lora.dropout);
    // PEFT draws A from kaiming-uniform(a=√5): U(±1/√fan_in), whose std is 1/√(3·fan_in).
    let std = 1.0 / (3.0 * config.hidden_size as f64).sqrt();
    let initialise = |name: &str, [rows, cols]: [usize; 2]| -> Result<Option<Vec<f32>>> {
        if !name.ends_with(".lora_A.weight") {
            return Ok(None);
        }
        let mut rng = Rng::stream(seed, name, 0);
        Ok(Some((0..rows * cols).map(|_| (std * rng.normal()) as f32).collect()))
    };
    map_adapter_factors(model, initialise)
}

/// Replaces adapter factors with the values in `tensors` (PEFT names), checking every one is there.
pub fn load_adapter_values(model: Qwen3ForCausalLM, mut tensors: HostTensors, path: &Path) -> Result<Qwen3ForCausalLM> {
    map_adapter_factors(model, |name, shape| crate::tensors::take(&mut tensors, name, &shape, path).map(Some))
}

/// Sets each adapter factor to what `values(peft_name, peft_shape)` gives (row-major in PEFT's
/// layout, `[r, in]` for A and `[out, r]` for B), keeping it where that is `None`.
fn map_adapter_factors(model: Qwen3ForCausalLM, mut values: impl FnMut(&str, [usize; 2]) -> Result<Option<Vec<f32>>>) -> Result<Qwen3ForCausalLM> {
    map_parameters(model, |path, dims| {
        let Some(name) = peft_name(path) else { return Ok(None) };
        Ok(values(&name, [dims[1], dims[0]])?.map(|v| transpose(&v, dims[1], dims[0])))
    })
}

/// Reads `dir/adapter_config.json`.
pub fn read_adapter_config(dir: &Path) -> Result<AdapterConfig> {
    let path = dir.join(ADAPTER_CONFIG);
    let text = std::fs::read_to_string(&path).map_err(|e| TrainerError::io(&path, e))?;
    let config: AdapterConfig = serde_json::from_str(&text).map_err(|e| TrainerError::checkpoint(&path, format!("not a PEFT adapter config: {e}")))?;
    if config.peft_type != "LORA" {
        return Err(TrainerError::checkpoint(&path, format!("peft_type {:?}; only LORA adapters load", config.peft_type)));
    }
    Ok(config)
}

/// The folder an adapter's `base_model_name_or_path` names (relative paths from the adapter).
pub fn adapter_base(dir: &Path, config: &AdapterConfig) -> PathBuf {
    let base = Path::new(&config.base_model_name_or_path);
    if base.is_absolute() {
        base.to_path_buf()
    } else {
        dir.join(base)
    }
}

/// The files beside the weights: config, tokenizer and generation config.
pub fn write_model_files(dir: &Path, config: &Qwen3Config, tokenizer_from: &Path) -> Result<()> {
    let mut json = serde_json::to_value(config).map_err(|e| TrainerError::checkpoint(dir, e.to_string()))?;
    json["architectures"] = serde_json::json!([if config.model_type == "qwen2" { "Qwen2ForCausalLM" } else { "Qwen3ForCausalLM" }]);
    json["torch_dtype"] = serde_json::json!("float32");
    simforge_data::fsutil::write_json(&dir.join("config.json"), &json)?;
    if tokenizer_from != dir {
        for name in ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"] {
            let from = tokenizer_from.join(name);
            if from.is_file() {
                std::fs::copy(&from, dir.join(name)).map_err(|e| TrainerError::io(&from, e))?;
            }
        }
    }
    if !dir.join("generation_config.json").is_file() {
        let eos = config.extra.get("eos_token_id").cloned().unwrap_or(serde_json::Value::Null);
        let pad = config.extra.get("pad_token_id").cloned().unwrap_or(serde_json::Value::Null);
        simforge_data::fsutil::write_json(
            &dir.join("generation_config.json"),
            &serde_json::json!({ "eos_token_id": eos, "pad_token_id": pad, "do_sample": false }),
        )?;
    }
    Ok(())
}

/// Reads a LoRA adapter folder onto its base model, adapters attached (not merged).
pub fn load_with_adapter(dir: &Path, device: &Device) -> Result<(Qwen3Config, Qwen3ForCausalLM, AdapterConfig)> {
    let adapter = read_adapter_config(dir)?;
    let base = adapter_base(dir, &adapter);
    let (config, model) = load_qwen3(&base, device)?;
    let model = attach_lora(model, &config, &adapter.lora(&dir.join(ADAPTER_CONFIG))?, 0)?;
    let model = load_adapter_values(model, read_safetensors(&dir.join(ADAPTER_WEIGHTS))?, dir)?;
    Ok((config, model, adapter))
}

/// Whether `dir` holds a LoRA adapter rather than full weights.
pub fn is_adapter(dir: &Path) -> bool {
    dir.join(ADAPTER_CONFIG).is_file() && !has_full_weights(dir)
}

/// Folds every adapter into its weight (`W₀ + s·A·B`), leaving a plain model.
pub fn merge_lora(model: Qwen3ForCausalLM) -> Qwen3ForCausalLM {
    let mut model = model.materialize();
    model.set_lora_dropout(0.0);
    model
}

/// A new model folder: `config` with seeded random weights (as transformers initialises
/// Qwen3) and `tokenizer`; the tokenizer's `<|im_end|>` ends turns and `<|endoftext|>` pads.
pub fn write_random_init(dir: &Path, config: &Qwen3Config, tokenizer: &crate::tokenizer::Tokenizer, seed: u64, device: &Device) -> Result<()> {
    let mut config = config.clone();
    for (key, token) in [("eos_token_id", "<|im_end|>"), ("pad_token_id", "<|endoftext|>")] {
        if let Some(id) = tokenizer.token_id(token) {
            config.extra.insert(key.into(), id.into());
        }
    }
    let model = Qwen3ForCausalLM::load(&config, &mut WeightSource::random(seed, device))?;
    write_dir_atomically(dir, |tmp| {
        write_model_files(tmp, &config, tmp)?;
        tokenizer.save(&tmp.join("tokenizer.json"))?;
        write_safetensors(&tmp.join("model.safetensors"), &model_tensors(&model))
    })
}

/// Writes `model` (a simforge model folder) to `out` for transformers: full weights, the LoRA
/// adapters merged in (`merge_lora`), or unmerged as a PEFT adapter beside the base's config
/// and tokenizer. Returns what was written.
pub fn export_model(model: &Path, out: &Path, merge_lora_weights: bool, device: &Device) -> Result<&'static str> {
    let adapter = is_adapter(model);
    write_dir_atomically(out, |tmp| {
        if !adapter {
            let (config, weights) = load_qwen3(model, device)?;
            write_model_files(tmp, &config, model)?;
            return write_safetensors(&tmp.join("model.safetensors"), &model_tensors(&weights));
        }
        let (config, weights, adapter_config) = load_with_adapter(model, device)?;
        write_model_files(tmp, &config, model)?;
        if merge_lora_weights {
            return write_safetensors(&tmp.join("model.safetensors"), &model_tensors(&merge_lora(weights)));
        }
        let base = adapter_base(model, &adapter_config);
        let absolute = std::fs::canonicalize(&base).unwrap_or(base);
        simforge_data::fsutil::write_json(
            &tmp.join(ADAPTER_CONFIG),
            &AdapterConfig { base_model_name_or_path: absolute.display().to_string(), ..adapter_config },
        )?;
        write_safetensors(&tmp.join(ADAPTER_WEIGHTS), &adapter_tensors(&weights))
    })?;
    Ok(match (adapter, merge_lora_weights) {
        (false, _) => "full weights",
        (true, true) => "LoRA merged into full weights",
        (true, false) => "PEFT adapter",
    })
}

/// Whether `dir` holds full weights: `model.safetensors` or a sharded index.
pub fn has_full_weights(dir: &Path) -> bool {
    dir.join("model.safetensors").is_file() || dir.join("model.safetensors.index.json").is_file()
}

/// Reads `config.json` and checks the architecture can run it.
pub fn read_config(dir: &Path) -> Result<Qwen3Config> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| TrainerError::io(&path, e))?;
    let mut json: serde_json::Value = serde_json::from_str(&text).map_err(|e| TrainerError::checkpoint(&path, format!("not JSON: {e}")))?;
    // transformers 5 writes `rope_parameters: {rope_theta, rope_type}` instead of `rope_theta`.
    if json.get("rope_theta").is_none() {
        if let Some(theta) = json.pointer("/rope_parameters/rope_theta").cloned() {
            json["rope_theta"] = theta;
        }
    }
    let config: Qwen3Config = serde_json::from_value(json).map_err(|e| TrainerError::checkpoint(&path, format!("not a Qwen3 config: {e}")))?;
    if let Some(message) = config.unsupported() {
        return Err(TrainerError::UnsupportedConfig { path, message });
    }
    Ok(config)
}

/// Loads a Hugging Face checkpoint folder onto `device`; a LoRA adapter folder loads onto its
/// base model with the adapters merged.
pub fn load_qwen3(dir: &Path, device: &Device) -> Result<(Qwen3Config, Qwen3ForCausalLM)> {
    if is_adapter(dir) {
        let (config, model, _) = load_with_adapter(dir, device)?;
        return Ok((config, merge_lora(model)));
    }
    load_full_weights(dir, device)
}

/// Loads the full weights of a checkpoint folder (`model.safetensors` or a sharded index).
pub fn load_full_weights(dir: &Path, device: &Device) -> Result<(Qwen3Config, Qwen3ForCausalLM)> {
    let config = read_config(dir)?;
    let mut weights = WeightSource::safetensors(dir, device)?;
    let model = Qwen3ForCausalLM::load(&config, &mut weights)?;
    Ok((config, model))
}
