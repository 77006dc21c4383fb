//! Where a model's parameters come from: Hugging Face safetensors (single file or sharded
//! with `model.safetensors.index.json`; bf16, f16 or f32 on disk), or a seeded random
//! initialisation (normal(0, 0.02), norms at one, as transformers initialises Qwen3).

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use simforge_data::rng::Rng;

use crate::error::{Result, TrainerError};
use crate::tensors::{read_safetensors, HostTensors};

pub enum WeightSource {
    Random { rng: Rng, device: Device },
    Files { tensors: HostTensors, path: PathBuf, device: Device },
}

impl WeightSource {
    pub fn random(seed: u64, device: &Device) -> Self {
        Self::Random { rng: Rng::new(seed), device: device.clone() }
    }

    /// Reads every tensor of the checkpoint folder `dir` into memory as f32.
    pub fn safetensors(dir: &Path, device: &Device) -> Result<Self> {
        let index = dir.join("model.safetensors.index.json");
        let files: Vec<PathBuf> = if index.is_file() {
            let text = std::fs::read_to_string(&index).map_err(|e| TrainerError::io(&index, e))?;
            let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| TrainerError::checkpoint(&index, e.to_string()))?;
            let map = json["weight_map"].as_object().ok_or_else(|| TrainerError::checkpoint(&index, "no `weight_map` object"))?;
            let mut names: Vec<&str> = map.values().filter_map(|v| v.as_str()).collect();
            names.sort_unstable();
            names.dedup();
            // Shards are files of this folder; an index must not lead anywhere else.
            if let Some(name) = names.iter().find(|n| !crate::tensors::is_plain_file_name(n)) {
                return Err(TrainerError::checkpoint(&index, format!("shard {name:?} is not a file name inside the model folder")));
            }
            names.into_iter().map(|n| dir.join(n)).collect()
        } else {
            vec![dir.join("model.safetensors")]
        };
        let mut tensors = HostTensors::new();
        for file in &files {
            tensors.extend(read_safetensors(file)?);
        }
        Ok(Self::Files { tensors, path: dir.to_path_buf(), device: device.clone() })
    }

    fn take(&mut self, name: &str, shape: &[usize], random: impl FnOnce(&mut Rng) -> Vec<f32>) -> Result<(Vec<f32>, Device)> {
        match self {
            Self::Random { rng, device } => Ok((random(rng), device.clone())),
            Self::Files { tensors, path, device } => Ok((crate::tensors::take(tensors, name, shape, path)?, device.clone())),
        }
    }

    fn normal(rng: &mut Rng, n: usize) -> Vec<f32> {
        (0..n).map(|_| (0.02 * rng.normal()) as f32).collect()
    }

    /// A linear weight stored `[out, in]`, returned as burn's `[in, out]`.
    pub fn linear(&mut self, name: &str, d_out: usize, d_in: usize) -> Result<Tensor<2>> {
        let (values, device) = self.take(name, &[d_out, d_in], |r| Self::normal(r, d_out * d_in))?;
        Ok(Tensor::<2>::from_data(TensorData::new(values, [d_out, d_in]), &device).transpose())
    }

    pub fn embedding(&mut self, name: &str, vocab: usize, hidden: usize) -> Result<Tensor<2>> {
        let (values, device) = self.take(name, &[vocab, hidden], |r| Self::normal(r, vocab * hidden))?;
        Ok(Tensor::from_data(TensorData::new(values, [vocab, hidden]), &device))
    }

    pub fn bias(&mut self, name: &str, size: usize) -> Result<Tensor<1>> {
        let (values, device) = self.take(name, &[size], |_| vec![0.0; size])?;
        Ok(Tensor::from_data(TensorData::new(values, [size]), &device))
    }

    pub fn norm(&mut self, name: &str, size: usize) -> Result<Tensor<1>> {
        let (values, device) = self.take(name, &[size], |_| vec![1.0; size])?;
        Ok(Tensor::from_data(TensorData::new(values, [size]), &device))
    }
}
