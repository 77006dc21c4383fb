//! AdamW with PyTorch's update rule, clipping by the global gradient norm, and the linear
//! warm-up + cosine learning-rate schedule. The optimizer state is keyed by parameter path
//! (`model.layers.0.mlp.up_proj.weight`), so a checkpoint stores it readably and a resumed run
//! finds it again whatever ids the new process gives the parameters.

use std::collections::HashMap;
use std::path::Path;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::{Device, Gradients, Tensor};

use crate::error::{Result, TrainerError};
use crate::tensors::{device_tensor, host, read_safetensors, write_safetensors, NamedTensor, PathTracker};
use crate::train::config::TrainConfig;

/// Learning rate at optimizer step `step` (0-based) of `total`: linear warm-up from 0 over
/// `warmup` steps, then cosine decay to 0 (transformers' `get_cosine_schedule_with_warmup`).
pub fn learning_rate(peak: f64, step: usize, warmup: usize, total: usize) -> f64 {
    if step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    let progress = (step - warmup) as f64 / (total - warmup).max(1) as f64;
    peak * 0.5 * (1.0 + (std::f64::consts::PI * progress.min(1.0)).cos())
}

/// Summed gradients of the trainable parameters, flattened, in the model's parameter order
/// (so the global norm adds up in the same order in every process).
#[derive(Default)]
pub struct GradientSum {
    grads: Vec<(ParamId, Tensor<1>)>,
}

struct Collect<'a> {
    grads: &'a mut Gradients,
    sum: &'a mut GradientSum,
}

impl ModuleVisitor for Collect<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if !param.is_require_grad() {
            return;
        }
        if let Some(grad) = param.val().grad_remove(self.grads) {
            let n = grad.shape().num_elements();
            let grad = grad.reshape([n]);
            match self.sum.grads.iter_mut().find(|(id, _)| *id == param.id) {
                Some((_, previous)) => *previous = previous.clone() + grad,
                None => self.sum.grads.push((param.id, grad)),
            }
        }
    }
}

impl GradientSum {
    /// Adds one backward pass's gradients of `model`'s trainable parameters.
    pub fn add<M: Module>(&mut self, model: &M, mut grads: Gradients) {
        model.visit(&mut Collect { grads: &mut grads, sum: self });
    }

    /// The L2 norm of all gradients together.
    pub fn global_norm(&self) -> f64 {
        let squares: Vec<Tensor<1>> = self.grads.iter().map(|(_, g)| g.clone().powi_scalar(2).sum()).collect();
        if squares.is_empty() {
            return 0.0;
        }
        let total: f32 = Tensor::cat(squares, 0).sum().into_scalar();
        f64::from(total).sqrt()
    }

    pub fn scale(&mut self, factor: f64) {
        for (_, g) in &mut self.grads {
            *g = g.clone().mul_scalar(factor);
        }
    }
}

/// First and second moments of one parameter, flattened.
#[derive(Clone)]
pub struct Moments {
    pub m: Tensor<1>,
    pub v: Tensor<1>,
}

/// AdamW: `p ← p − lr·wd·p`, then Adam's bias-corrected step `p ← p − lr·m̂/(√v̂ + eps)`, as
/// `torch.optim.AdamW` computes it. Weight decay applies to matrices only (not norms or biases),
/// as transformers' Trainer groups parameters.
pub struct AdamW {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// Steps taken so far.
    pub step: u64,
    pub moments: HashMap<String, Moments>,
}

impl AdamW {
    pub fn new(config: &TrainConfig) -> Self {
        Self { beta1: config.beta1, beta2: config.beta2, eps: config.eps, weight_decay: config.weight_decay, step: 0, moments: HashMap::new() }
    }

    /// Adam (no weight decay) with the given betas, as `torch.optim.Adam` with eps 1e-8.
    pub fn adam(beta1: f64, beta2: f64) -> Self {
        Self { beta1, beta2, eps: 1e-8, weight_decay: 0.0, step: 0, moments: HashMap::new() }
    }

    /// Writes the moments as safetensors (`<path>.exp_avg`, `<path>.exp_avg_sq`), sorted by path.
    pub fn write_moments(&self, file: &Path) -> Result<()> {
        let mut paths: Vec<&String> = self.moments.keys().collect();
        paths.sort();
        let mut tensors: Vec<NamedTensor> = Vec::with_capacity(paths.len() * 2);
        for path in paths {
            let m = &self.moments[path];
            let n = m.m.dims()[0];
            tensors.push((format!("{path}.exp_avg"), host(m.m.clone()), vec![n]));
            tensors.push((format!("{path}.exp_avg_sq"), host(m.v.clone()), vec![n]));
        }
        write_safetensors(file, &tensors)
    }

    /// Replaces the moments with those [`Self::write_moments`] wrote to `file`.
    pub fn read_moments(&mut self, file: &Path, device: &Device) -> Result<()> {
        let mut tensors = read_safetensors(file)?;
        let paths: Vec<String> = tensors.keys().filter_map(|k| k.strip_suffix(".exp_avg").map(str::to_owned)).collect();
        self.moments.clear();
        for path in paths {
            let m = tensors.remove(&format!("{path}.exp_avg")).map(|t| t.0);
            let v = tensors.remove(&format!("{path}.exp_avg_sq")).map(|t| t.0);
            let (Some(m), Some(v)) = (m, v) else {
                return Err(TrainerError::MissingTensor { path: file.to_path_buf(), name: format!("{path}.exp_avg_sq") });
            };
            self.moments.insert(path, Moments { m: device_tensor(m, device), v: device_tensor(v, device) });
        }
        Ok(())
    }

    /// One update of every parameter that has a gradient in `grads`.
    pub fn apply<M: Module>(&mut self, model: M, grads: GradientSum, lr: f64) -> M {
        self.step += 1;
        let mut mapper = Update { optimizer: self, grads: grads.grads.into_iter().collect(), lr, path: PathTracker::default() };
        model.map(&mut mapper)
    }
}

struct Update<'a> {
    optimizer: &'a mut AdamW,
    grads: HashMap<ParamId, Tensor<1>>,
    lr: f64,
    path: PathTracker,
}

impl ModuleMapper for Update<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.enter(name);
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.exit();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(grad) = self.grads.remove(&param.id) else {
            return param;
        };
        let (id, tensor, mapper) = param.consume();
        let shape = tensor.shape();
        let n = shape.num_elements();
        let o = &mut *self.optimizer;
        let p = tensor.inner().reshape([n]);
        let path = self.path.path();
        let previous = o.moments.remove(&path).unwrap_or_else(|| Moments { m: grad.zeros_like(), v: grad.zeros_like() });
        let m = previous.m.mul_scalar(o.beta1) + grad.clone().mul_scalar(1.0 - o.beta1);
        let v = previous.v.mul_scalar(o.beta2) + grad.powi_scalar(2).mul_scalar(1.0 - o.beta2);
        let t = o.step as i32;
        let (bias1, bias2) = (1.0 - o.beta1.powi(t), 1.0 - o.beta2.powi(t));
        let decay = if D >= 2 { self.lr * o.weight_decay } else { 0.0 };
        let p = if decay > 0.0 { p.mul_scalar(1.0 - decay) } else { p };
        // torch: denom = sqrt(v)/sqrt(bias2) + eps; p -= (lr / bias1) * m / denom.
        let denom = v.clone().sqrt().div_scalar(bias2.sqrt()).add_scalar(o.eps);
        let p = p - m.clone().div(denom).mul_scalar(self.lr / bias1);
        o.moments.insert(path, Moments { m, v });
        let updated = Tensor::from_inner(p.reshape(shape)).require_grad();
        Param::from_mapped_value(id, updated, mapper)
    }
}

#[cfg(test)]
mod tests {
    use super::learning_rate;

    #[test]
    fn warmup_then_cosine() {
        let lr: Vec<f64> = (0..10).map(|s| learning_rate(1.0, s, 2, 10)).collect();
        assert!((lr[0] - 0.5).abs() < 1e-12 && (lr[1] - 1.0).abs() < 1e-12);
        assert!((lr[2] - 1.0).abs() < 1e-12, "decay starts at the peak");
        assert!(lr.windows(2).skip(2).all(|w| w[1] < w[0]), "{lr:?}");
        assert!((lr[6] - 0.5).abs() < 1e-12, "halfway through the decay: {}", lr[6]);
    }
}
