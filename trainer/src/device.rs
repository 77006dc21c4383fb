//! Where models run: `cpu`, `wgpu[:N]` or `cuda[:N]`. The backend is chosen at run time; each
//! needs its cargo feature (`flex` is the default, `wgpu` and `cuda` are opt-in).

use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainerError};

/// A device as flags and recipes name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Device {
    /// burn's pure-Rust CPU backend (`flex`).
    #[default]
    Cpu,
    /// A GPU through wgpu (Vulkan, Metal, DX12): the default adapter, or discrete GPU N.
    Wgpu(Option<usize>),
    /// NVIDIA GPU N through CubeCL.
    Cuda(usize),
}

impl Device {
    /// The burn device, or an error naming the cargo feature this build lacks.
    pub fn open(self) -> Result<burn::tensor::Device> {
        match self {
            Device::Cpu => cpu(),
            Device::Wgpu(index) => wgpu(index),
            Device::Cuda(index) => cuda(index),
        }
    }
}

impl std::str::FromStr for Device {
    type Err = String;

    fn from_str(name: &str) -> std::result::Result<Self, String> {
        let (kind, index) = match name.split_once(':') {
            Some((k, i)) => (k, Some(i.parse::<usize>().map_err(|_| format!("device index in {name:?} is not a number"))?)),
            None => (name, None),
        };
        match (kind, index) {
            ("cpu" | "flex", None) => Ok(Device::Cpu),
            ("wgpu" | "vulkan", index) => Ok(Device::Wgpu(index)),
            ("cuda", index) => Ok(Device::Cuda(index.unwrap_or(0))),
            _ => Err(format!("unknown device {name:?}: expected cpu, wgpu[:N] or cuda[:N]")),
        }
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Cpu => write!(f, "cpu"),
            Device::Wgpu(None) => write!(f, "wgpu"),
            Device::Wgpu(Some(i)) => write!(f, "wgpu:{i}"),
            Device::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

impl TryFrom<String> for Device {
    type Error = String;

    fn try_from(s: String) -> std::result::Result<Self, String> {
        s.parse()
    }
}

impl From<Device> for String {
    fn from(d: Device) -> String {
        d.to_string()
    }
}

fn missing(feature: &str) -> TrainerError {
    TrainerError::Backend { message: format!("this build has no {feature} backend: rebuild with `--features {feature}`") }
}

#[cfg(feature = "flex")]
fn cpu() -> Result<burn::tensor::Device> {
    Ok(burn::tensor::Device::flex())
}

#[cfg(not(feature = "flex"))]
fn cpu() -> Result<burn::tensor::Device> {
    Err(missing("flex"))
}

#[cfg(feature = "wgpu")]
fn wgpu(index: Option<usize>) -> Result<burn::tensor::Device> {
    use burn::tensor::DeviceKind;
    let kind = match index {
        Some(i) => DeviceKind::DiscreteGpu(i),
        None => DeviceKind::DefaultDevice,
    };
    Ok(burn::tensor::Device::wgpu(kind))
}

#[cfg(not(feature = "wgpu"))]
fn wgpu(_index: Option<usize>) -> Result<burn::tensor::Device> {
    Err(missing("wgpu"))
}

#[cfg(feature = "cuda")]
fn cuda(index: usize) -> Result<burn::tensor::Device> {
    Ok(burn::tensor::Device::cuda(index))
}

#[cfg(not(feature = "cuda"))]
fn cuda(_index: usize) -> Result<burn::tensor::Device> {
    Err(missing("cuda"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_parse_and_print_back() {
        for name in ["cpu", "wgpu", "wgpu:1", "cuda:0", "cuda:3"] {
            assert_eq!(name.parse::<Device>().expect(name).to_string(), name);
        }
        assert_eq!("cuda".parse::<Device>(), Ok(Device::Cuda(0)));
        assert!("tpu".parse::<Device>().is_err());
        assert!("cpu:1".parse::<Device>().is_err());
        assert!("cuda:x".parse::<Device>().is_err());
    }
}
