//! Qwen3 causal LM (the Hugging Face `Qwen3ForCausalLM` architecture): token embedding,
//! pre-norm decoder layers of grouped-query attention (with per-head RMSNorm on q and k before
//! rotate-half RoPE) and a SwiGLU MLP, a final RMSNorm and a tied or separate LM head.
//! Qwen2-style checkpoints (q/k/v bias, no q/k norm) load into the same code.
//!
//! Module paths mirror checkpoint keys (`model.layers.0.self_attn.q_proj.weight`), so loading
//! and export need no renaming table. Linear weights keep Hugging Face's `[out, in]` layout on
//! disk; in memory they are the transposed `[in, out]` burn expects.

use burn::module::{Module, Param};
use burn::nn::{Embedding, Linear};
use burn::tensor::activation::{silu, softmax};
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use simforge_data::rng::Rng;

use crate::error::Result;
use crate::models::SeededDropout;
use crate::weights::WeightSource;

// ---------------------------------------------------------------------------------------------
// Config

/// The fields of a Hugging Face `config.json` the architecture uses; every other field is kept
/// as read so an exported checkpoint carries it unchanged.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Qwen3Config {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    /// Per-head size; Qwen2 configs omit it (then hidden_size / num_attention_heads).
    #[serde(default)]
    pub head_dim: Option<usize>,
    #[serde(default = "default_rope_theta")]
    pub rope_theta: f64,
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    #[serde(default = "default_max_positions")]
    pub max_position_embeddings: usize,
    /// q/k/v projections with bias (Qwen2), or without (Qwen3).
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default = "default_model_type")]
    pub model_type: String,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

fn default_rope_theta() -> f64 {
    1_000_000.0
}
fn default_eps() -> f64 {
    1e-6
}
fn default_max_positions() -> usize {
    40_960
}
fn default_model_type() -> String {
    "qwen3".into()
}

impl Qwen3Config {
    pub fn head_dim(&self) -> usize {
        self.head_dim.unwrap_or(self.hidden_size / self.num_attention_heads)
    }

    /// Qwen2 checkpoints have q/k/v bias and no q/k norm.
    pub fn has_qk_norm(&self) -> bool {
        self.model_type != "qwen2"
    }

    pub fn qkv_bias(&self) -> bool {
        self.attention_bias || self.model_type == "qwen2"
    }

    /// What the architecture cannot run, if anything.
    pub fn unsupported(&self) -> Option<String> {
        if !matches!(self.model_type.as_str(), "qwen3" | "qwen2") {
            return Some(format!("model_type {:?} (supported: qwen3, qwen2)", self.model_type));
        }
        if self.num_attention_heads == 0 || self.num_key_value_heads == 0 || self.num_attention_heads % self.num_key_value_heads != 0 {
            return Some("num_attention_heads must be a positive multiple of num_key_value_heads".into());
        }
        if self.head_dim() % 2 != 0 {
            return Some("head_dim must be even for rotary embeddings".into());
        }
        if self.hidden_size == 0 || self.num_hidden_layers == 0 || self.vocab_size == 0 || self.intermediate_size == 0 || self.max_position_embeddings == 0 {
            return Some("hidden_size, num_hidden_layers, vocab_size, intermediate_size and max_position_embeddings must be positive".into());
        }
        // Without these every logit is NaN (printed as null), not an error.
        if !(self.rope_theta > 1.0 && self.rope_theta.is_finite() && self.rms_norm_eps > 0.0 && self.rms_norm_eps.is_finite()) {
            return Some(format!("rope_theta must be a number above 1 and rms_norm_eps positive, found {} and {}", self.rope_theta, self.rms_norm_eps));
        }
        if self.extra.get("rope_scaling").is_some_and(|v| !v.is_null()) {
            return Some("rope_scaling is not supported".into());
        }
        if let Some(kind) = self.extra.get("rope_parameters").and_then(|p| p.get("rope_type")).and_then(|t| t.as_str()) {
            if kind != "default" {
                return Some(format!("rope_type {kind:?} (only the default rotary embedding is supported)"));
            }
        }
        if self.extra.get("use_sliding_window").and_then(|v| v.as_bool()) == Some(true) {
            return Some("sliding-window attention is not supported".into());
        }
        None
    }

    /// A few-million-parameter model that trains from scratch on a CPU in minutes: the
    /// embedded default's student.
    pub fn tiny(vocab_size: usize) -> Self {
        Self {
            vocab_size,
            hidden_size: 128,
            intermediate_size: 384,
            num_hidden_layers: 4,
            num_attention_heads: 4,
            num_key_value_heads: 2,
            head_dim: Some(32),
            rope_theta: 10_000.0,
            rms_norm_eps: 1e-6,
            tie_word_embeddings: true,
            max_position_embeddings: 2048,
            attention_bias: false,
            model_type: "qwen3".into(),
            extra: serde_json::Map::new(),
        }
    }

    /// One layer of width 32: for tests that need a model to run, not to be good.
    pub fn micro(vocab_size: usize) -> Self {
        Self { hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, head_dim: Some(16), ..Self::tiny(vocab_size) }
    }

    /// Qwen3-0.6B's shape (random weights in benchmarks).
    pub fn qwen3_0_6b() -> Self {
        Self {
            vocab_size: 151_936,
            hidden_size: 1024,
            intermediate_size: 3072,
            num_hidden_layers: 28,
            num_attention_heads: 16,
            num_key_value_heads: 8,
            head_dim: Some(128),
            rope_theta: 1_000_000.0,
            rms_norm_eps: 1e-6,
            tie_word_embeddings: true,
            max_position_embeddings: 40_960,
            attention_bias: false,
            model_type: "qwen3".into(),
            extra: serde_json::Map::new(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Modules, leaf to root

/// RMSNorm as Hugging Face computes it: `x / sqrt(mean(x²) + eps) * weight`.
#[derive(Module, Debug)]
pub struct RmsNorm {
    pub weight: Param<Tensor<1>>,
    pub eps: f64,
}

impl RmsNorm {
    fn load(w: &mut WeightSource, name: &str, size: usize, eps: f64) -> Result<Self> {
        Ok(Self { weight: Param::from_tensor(w.norm(&format!("{name}.weight"), size)?), eps })
    }

    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let variance = x.clone().powi_scalar(2).mean_dim(D - 1);
        let normed = x * (variance + self.eps).sqrt().recip();
        normed * self.weight.val().unsqueeze::<D>()
    }
}

/// `x·W + b`. With a LoRA adapter on W and dropout while training, the adapter sees dropped-out
/// input as PEFT computes it, `x·W₀ + s·(drop(x)·A)·B`; otherwise burn composes `W₀ + s·A·B`.
fn project(linear: &Linear, x: Tensor<3>, dropout: SeededDropout, stream: u64) -> Tensor<3> {
    let Some(adapter) = linear.weight.adapter().filter(|_| dropout.p > 0.0 && x.is_autodiff()) else {
        return linear.forward(x);
    };
    let low_rank = dropout.apply(x.clone(), stream).matmul(adapter.a.val().unsqueeze()).matmul(adapter.b.val().unsqueeze()).mul_scalar(adapter.scale);
    let y = x.matmul(linear.weight.base().unsqueeze()) + low_rank;
    match &linear.bias {
        Some(bias) => y + bias.val().unsqueeze(),
        None => y,
    }
}

fn linear(w: &mut WeightSource, name: &str, d_in: usize, d_out: usize, bias: bool) -> Result<Linear> {
    let weight = w.linear(&format!("{name}.weight"), d_out, d_in)?;
    let bias = if bias { Some(Param::from_tensor(w.bias(&format!("{name}.bias"), d_out)?)) } else { None };
    Ok(Linear { weight: Param::from_tensor(weight), bias })
}

/// Keys and values of earlier positions, per layer, for incremental decoding.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    layers: Vec<Option<(Tensor<4>, Tensor<4>)>>,
}

impl KvCache {
    pub fn new(layers: usize) -> Self {
        Self { layers: vec![None; layers] }
    }

    /// Positions already cached.
    pub fn len(&self) -> usize {
        self.layers.first().and_then(|l| l.as_ref()).map_or(0, |(k, _)| k.dims()[2])
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The cache of a batch made of these rows of this one (rows may repeat).
    pub fn select_rows(&self, rows: &[usize]) -> Self {
        let layers = self
            .layers
            .iter()
            .map(|layer| {
                layer.as_ref().map(|(k, v)| {
                    let ids: Vec<i64> = rows.iter().map(|&r| r as i64).collect();
                    let ids = Tensor::<1, Int>::from_data(TensorData::new(ids, [rows.len()]), &k.device());
                    (k.clone().select(0, ids.clone()), v.clone().select(0, ids))
                })
            })
            .collect();
        Self { layers }
    }
}

/// Rotary position tables for a batch: `cos` and `sin` of shape [batch, 1, seq, head_dim].
pub struct Rope {
    cos: Tensor<4>,
    sin: Tensor<4>,
}

impl Rope {
    /// Tables for per-row positions (left-padded batches start their real tokens at 0). As in
    /// transformers, the angles are f32 products of position and frequency, and only the
    /// positions and frequencies cross from the host: the tables are built on the device.
    pub fn new(positions: &[Vec<usize>], head_dim: usize, theta: f64, device: &Device) -> Self {
        let (batch, seq) = (positions.len(), positions.first().map_or(0, Vec::len));
        let half = head_dim / 2;
        let inv_freq: Vec<f32> = (0..half).map(|i| 1.0 / (theta as f32).powf((2 * i) as f32 / head_dim as f32)).collect();
        let inv_freq: Tensor<2> = Tensor::from_data(TensorData::new(inv_freq, [1, half]), device);
        let positions: Vec<f32> = positions.iter().flatten().map(|&p| p as f32).collect();
        let positions: Tensor<2> = Tensor::from_data(TensorData::new(positions, [batch * seq, 1]), device);
        // rotate-half layout: the frequencies twice, [f0..f_{d/2}, f0..f_{d/2}].
        let angles = positions * inv_freq;
        let angles = Tensor::cat(vec![angles.clone(), angles], 1).reshape([batch, 1, seq, head_dim]);
        Self { cos: angles.clone().cos(), sin: angles.sin() }
    }

    /// `x * cos + rotate_half(x) * sin` for x of shape [batch, heads, seq, head_dim].
    fn apply(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, h, t, d] = x.dims();
        let first = x.clone().slice([0..b, 0..h, 0..t, 0..d / 2]);
        let second = x.clone().slice([0..b, 0..h, 0..t, d / 2..d]);
        let rotated = Tensor::cat(vec![second.neg(), first], 3);
        x * self.cos.clone() + rotated * self.sin.clone()
    }
}

#[derive(Module, Debug)]
pub struct Attention {
    pub q_proj: Linear,
    pub k_proj: Linear,
    pub v_proj: Linear,
    pub o_proj: Linear,
    pub q_norm: Option<RmsNorm>,
    pub k_norm: Option<RmsNorm>,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    /// LoRA dropout while training (p = 0 without adapters).
    #[module(skip)]
    pub lora_dropout: SeededDropout,
}

impl Attention {
    fn load(w: &mut WeightSource, name: &str, c: &Qwen3Config) -> Result<Self> {
        let (h, hd) = (c.hidden_size, c.head_dim());
        let (nh, nkv) = (c.num_attention_heads, c.num_key_value_heads);
        let norm = |w: &mut WeightSource, part: &str| -> Result<Option<RmsNorm>> {
            c.has_qk_norm().then(|| RmsNorm::load(w, &format!("{name}.{part}"), hd, c.rms_norm_eps)).transpose()
        };
        Ok(Self {
            q_proj: linear(w, &format!("{name}.q_proj"), h, nh * hd, c.qkv_bias())?,
            k_proj: linear(w, &format!("{name}.k_proj"), h, nkv * hd, c.qkv_bias())?,
            v_proj: linear(w, &format!("{name}.v_proj"), h, nkv * hd, c.qkv_bias())?,
            o_proj: linear(w, &format!("{name}.o_proj"), nh * hd, h, false)?,
            q_norm: norm(w, "q_norm")?,
            k_norm: norm(w, "k_norm")?,
            num_heads: nh,
            num_kv_heads: nkv,
            head_dim: hd,
            lora_dropout: SeededDropout::default(),
        })
    }

    /// x: [batch, seq, hidden]; mask: additive [batch, 1, seq, past + seq].
    fn forward(&self, x: Tensor<3>, rope: &Rope, mask: Tensor<4>, cache: Option<&mut Option<(Tensor<4>, Tensor<4>)>>) -> Tensor<3> {
        let [b, t, _] = x.dims();
        let (nh, nkv, hd) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let heads = |y: Tensor<3>, n: usize, norm: &Option<RmsNorm>| {
            let y = y.reshape([b, t, n, hd]);
            let y = match norm {
                Some(norm) => norm.forward(y),
                None => y,
            };
            y.swap_dims(1, 2) // [batch, heads, seq, head_dim]
        };
        let p = self.lora_dropout;
        let q = rope.apply(heads(project(&self.q_proj, x.clone(), p, 0), nh, &self.q_norm));
        let mut k = rope.apply(heads(project(&self.k_proj, x.clone(), p, 1), nkv, &self.k_norm));
        let mut v = heads(project(&self.v_proj, x, p, 2), nkv, &None);
        if let Some(slot) = cache {
            if let Some((pk, pv)) = slot.take() {
                k = Tensor::cat(vec![pk, k], 2);
                v = Tensor::cat(vec![pv, v], 2);
            }
            *slot = Some((k.clone(), v.clone()));
        }
        let s = k.dims()[2];
        let groups = nh / nkv;
        let repeat = |y: Tensor<4>| -> Tensor<4> {
            if groups == 1 {
                y
            } else {
                y.unsqueeze_dim::<5>(2).repeat_dim(2, groups).reshape([b, nh, s, hd])
            }
        };
        let (k, v) = (repeat(k), repeat(v));
        let scores = q.matmul(k.swap_dims(2, 3)) / (hd as f64).sqrt() + mask; // [batch, heads, seq, past + seq]
        let context = softmax(scores, 3).matmul(v); // [batch, heads, seq, head_dim]
        project(&self.o_proj, context.swap_dims(1, 2).reshape([b, t, nh * hd]), p, 3)
    }
}

#[derive(Module, Debug)]
pub struct Mlp {
    pub gate_proj: Linear,
    pub up_proj: Linear,
    pub down_proj: Linear,
    /// LoRA dropout while training (p = 0 without adapters).
    #[module(skip)]
    pub lora_dropout: SeededDropout,
}

impl Mlp {
    fn load(w: &mut WeightSource, name: &str, c: &Qwen3Config) -> Result<Self> {
        let (h, i) = (c.hidden_size, c.intermediate_size);
        Ok(Self {
            gate_proj: linear(w, &format!("{name}.gate_proj"), h, i, false)?,
            up_proj: linear(w, &format!("{name}.up_proj"), h, i, false)?,
            down_proj: linear(w, &format!("{name}.down_proj"), i, h, false)?,
            lora_dropout: SeededDropout::default(),
        })
    }

    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let p = self.lora_dropout;
        let hidden = silu(project(&self.gate_proj, x.clone(), p, 0)) * project(&self.up_proj, x, p, 1);
        project(&self.down_proj, hidden, p, 2)
    }
}

#[derive(Module, Debug)]
pub struct DecoderLayer {
    pub self_attn: Attention,
    pub mlp: Mlp,
    pub input_layernorm: RmsNorm,
    pub post_attention_layernorm: RmsNorm,
}

impl DecoderLayer {
    fn load(w: &mut WeightSource, name: &str, c: &Qwen3Config) -> Result<Self> {
        Ok(Self {
            self_attn: Attention::load(w, &format!("{name}.self_attn"), c)?,
            mlp: Mlp::load(w, &format!("{name}.mlp"), c)?,
            input_layernorm: RmsNorm::load(w, &format!("{name}.input_layernorm"), c.hidden_size, c.rms_norm_eps)?,
            post_attention_layernorm: RmsNorm::load(w, &format!("{name}.post_attention_layernorm"), c.hidden_size, c.rms_norm_eps)?,
        })
    }

    fn forward(&self, x: Tensor<3>, rope: &Rope, mask: Tensor<4>, cache: Option<&mut Option<(Tensor<4>, Tensor<4>)>>) -> Tensor<3> {
        let x = x.clone() + self.self_attn.forward(self.input_layernorm.forward(x), rope, mask, cache);
        x.clone() + self.mlp.forward(self.post_attention_layernorm.forward(x))
    }
}

#[derive(Module, Debug)]
pub struct Qwen3Model {
    pub embed_tokens: Embedding,
    pub layers: Vec<DecoderLayer>,
    pub norm: RmsNorm,
}

// ---------------------------------------------------------------------------------------------
// The whole model

#[derive(Module, Debug)]
pub struct Qwen3ForCausalLM {
    pub model: Qwen3Model,
    /// `None` when the head is tied to the token embedding.
    pub lm_head: Option<Linear>,
}

/// A batch of token sequences, left-padded to one length.
#[derive(Debug, Clone)]
pub struct Batch {
    pub ids: Vec<Vec<u32>>,
    /// `true` for real tokens, `false` for padding.
    pub valid: Vec<Vec<bool>>,
}

impl Batch {
    /// Left-pads `sequences` with `pad_id`.
    pub fn left_padded(sequences: &[Vec<u32>], pad_id: u32) -> Self {
        let len = sequences.iter().map(Vec::len).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(sequences.len());
        let mut valid = Vec::with_capacity(sequences.len());
        for s in sequences {
            let pad = len - s.len();
            ids.push(std::iter::repeat_n(pad_id, pad).chain(s.iter().copied()).collect());
            valid.push(std::iter::repeat_n(false, pad).chain(std::iter::repeat_n(true, s.len())).collect());
        }
        Self { ids, valid }
    }

    /// Right-pads `sequences` with `pad_id`: positions stay where they are in each sequence, so
    /// row `r`'s position `p` is `r * len + p` of the flattened batch.
    pub fn right_padded(sequences: &[&[u32]], pad_id: u32) -> Self {
        let len = sequences.iter().map(|s| s.len()).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(sequences.len());
        let mut valid = Vec::with_capacity(sequences.len());
        for s in sequences {
            let pad = len - s.len();
            ids.push(s.iter().copied().chain(std::iter::repeat_n(pad_id, pad)).collect());
            valid.push(std::iter::repeat_n(true, s.len()).chain(std::iter::repeat_n(false, pad)).collect());
        }
        Self { ids, valid }
    }
}

impl Qwen3ForCausalLM {
    pub fn load(config: &Qwen3Config, weights: &mut WeightSource) -> Result<Self> {
        let c = config;
        let embed_tokens = Embedding { weight: Param::from_tensor(weights.embedding("model.embed_tokens.weight", c.vocab_size, c.hidden_size)?) };
        let layers = (0..c.num_hidden_layers).map(|i| DecoderLayer::load(weights, &format!("model.layers.{i}"), c)).collect::<Result<_>>()?;
        let norm = RmsNorm::load(weights, "model.norm", c.hidden_size, c.rms_norm_eps)?;
        let lm_head = if c.tie_word_embeddings { None } else { Some(linear(weights, "lm_head", c.hidden_size, c.vocab_size, false)?) };
        Ok(Self { model: Qwen3Model { embed_tokens, layers, norm }, lm_head })
    }

    /// Sets the adapters' dropout probability (0 for inference and merged models).
    pub fn set_lora_dropout(&mut self, p: f64) {
        for layer in &mut self.model.layers {
            layer.self_attn.lora_dropout.p = p;
            layer.mlp.lora_dropout.p = p;
        }
    }

    /// Gives every block's dropout masks a seed of their own derived from `seed` (one per step).
    pub fn reseed_lora_dropout(&mut self, seed: u64) {
        for (i, layer) in self.model.layers.iter_mut().enumerate() {
            layer.self_attn.lora_dropout.seed = Rng::stream(seed, "attention", i as u64).next_u64();
            layer.mlp.lora_dropout.seed = Rng::stream(seed, "mlp", i as u64).next_u64();
        }
    }

    /// Vocabulary logits at every new position: [batch, seq, vocab] (see [`Self::hidden`]).
    pub fn forward(&self, batch: &Batch, key_valid: &[Vec<bool>], rope_theta: f64, cache: Option<&mut KvCache>) -> Tensor<3> {
        self.logits(self.hidden(batch, key_valid, rope_theta, cache))
    }

    /// Vocabulary logits of final hidden states: [.., hidden] → [.., vocab]. Projecting only the
    /// positions a loss reads spares the largest matrix product of a training step.
    pub fn logits<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        match &self.lm_head {
            Some(head) => head.forward(x),
            None => {
                let embedding: Tensor<2> = self.model.embed_tokens.weight.val();
                x.matmul(embedding.transpose().unsqueeze::<D>())
            }
        }
    }

    /// The logit of one vocabulary token for final hidden states [n, hidden]: [n].
    pub fn token_logit(&self, x: Tensor<2>, token: u32) -> Tensor<1> {
        let [n, d] = x.dims();
        let token = token as usize;
        match &self.lm_head {
            Some(_) => {
                let logits = self.logits(x);
                logits.slice([0..n, token..token + 1]).reshape([n])
            }
            None => {
                let row: Tensor<2> = self.model.embed_tokens.weight.val().slice([token..token + 1, 0..d]);
                x.matmul(row.transpose()).reshape([n])
            }
        }
    }

    /// The final hidden states, after the last norm, of the new tokens of `batch`: [batch, seq,
    /// hidden]. With a cache, `batch.ids` holds only the new tokens while `key_valid` covers
    /// cached and new positions; positions continue from each row's count of real cached tokens.
    pub fn hidden(&self, batch: &Batch, key_valid: &[Vec<bool>], rope_theta: f64, mut cache: Option<&mut KvCache>) -> Tensor<3> {
        let device = self.model.embed_tokens.weight.val().device();
        let (b, t) = (batch.ids.len(), batch.ids.first().map_or(0, Vec::len));
        let past = cache.as_ref().map_or(0, |c| c.len());
        let s = past + t;
        let head_dim = self.model.layers.first().map_or(1, |l| l.self_attn.head_dim);
        // Position of each new token: real tokens before it in its row (padding does not count).
        let positions: Vec<Vec<usize>> = key_valid
            .iter()
            .map(|row| {
                let mut real = row[..past].iter().filter(|v| **v).count();
                row[past..]
                    .iter()
                    .map(|&v| {
                        let p = real;
                        real += usize::from(v);
                        p
                    })
                    .collect()
            })
            .collect();
        let rope = Rope::new(&positions, head_dim, rope_theta, &device);
        // Additive mask: a query at absolute position past+i sees real keys j <= past+i. The
        // causal part is made on the device and only each row's padding crosses from the host.
        let future = Tensor::<2, Bool>::tril_mask([t, s], past as i64, &device).float().mul_scalar(-1e9).reshape([1, 1, t, s]);
        let padding: Vec<f32> = key_valid.iter().flat_map(|row| row.iter().map(|&v| if v { 0.0 } else { -1e9 })).collect();
        let padding: Tensor<4> = Tensor::from_data(TensorData::new(padding, [b, 1, 1, s]), &device);
        let mask = (future + padding).clamp_min(-1e9);
        let ids: Vec<i64> = batch.ids.iter().flatten().map(|&i| i64::from(i)).collect();
        let ids: Tensor<2, Int> = Tensor::from_data(TensorData::new(ids, [b, t]), &device);
        let mut x = self.model.embed_tokens.forward(ids);
        for (i, layer) in self.model.layers.iter().enumerate() {
            let slot = cache.as_deref_mut().map(|c| &mut c.layers[i]);
            x = layer.forward(x, &rope, mask.clone(), slot);
        }
        self.model.norm.forward(x)
    }
}
