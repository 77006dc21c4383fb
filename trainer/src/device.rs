//! `--device cpu|wgpu|cuda[:N]`: the backend is chosen at run time; each needs its cargo
//! feature (`flex` is the default, `wgpu` and `cuda` are opt-in).

use burn::tensor::Device;

use crate::error::{Result, TrainerError};

/// Parses a device name into a burn device.
pub fn parse(name: &str) -> Result<Device> {
    let (kind, index) = match name.split_once(':') {
        Some((k, i)) => (k, Some(i.parse::<usize>().map_err(|_| TrainerError::Invalid(format!("device index in {name:?} is not a number")))?)),
        None => (name, None),
    };
    match kind {
        "cpu" | "flex" => cpu(),
        "wgpu" | "vulkan" => wgpu(index),
        "cuda" => cuda(index.unwrap_or(0)),
        other => Err(TrainerError::Invalid(format!("unknown device {other:?}: expected cpu, wgpu or cuda[:N]"))),
    }
}

#[cfg(feature = "flex")]
fn cpu() -> Result<Device> {
    Ok(Device::flex())
}

#[cfg(not(feature = "flex"))]
fn cpu() -> Result<Device> {
    Err(TrainerError::Invalid("this build has no CPU backend: rebuild with `--features flex`".into()))
}

#[cfg(feature = "wgpu")]
fn wgpu(index: Option<usize>) -> Result<Device> {
    use burn::tensor::DeviceKind;
    let kind = match index {
        Some(i) => DeviceKind::DiscreteGpu(i),
        None => DeviceKind::DefaultDevice,
    };
    Ok(Device::wgpu(kind))
}

#[cfg(not(feature = "wgpu"))]
fn wgpu(_index: Option<usize>) -> Result<Device> {
    Err(TrainerError::Invalid("this build has no wgpu backend: rebuild with `--features wgpu`".into()))
}

#[cfg(feature = "cuda")]
fn cuda(index: usize) -> Result<Device> {
    Ok(Device::cuda(index))
}

#[cfg(not(feature = "cuda"))]
fn cuda(_index: usize) -> Result<Device> {
    Err(TrainerError::Invalid("this build has no CUDA backend: rebuild with `--features cuda` (needs the LLVM bundle download)".into()))
}
