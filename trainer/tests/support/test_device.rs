//! The backend a test runs on: `SIMFORGE_TEST_DEVICE` (cpu when unset). CI also runs the
//! golden tests with `--features wgpu` and `SIMFORGE_TEST_DEVICE=wgpu` under Mesa's software
//! Vulkan driver, so the GPU code path executes without a GPU.

pub fn test_device() -> burn::tensor::Device {
    let name = std::env::var("SIMFORGE_TEST_DEVICE").unwrap_or_else(|_| "cpu".to_owned());
    let device: simforge_trainer::device::Device = name.parse().unwrap_or_else(|e| panic!("SIMFORGE_TEST_DEVICE: {e}"));
    device.open().unwrap_or_else(|e| panic!("SIMFORGE_TEST_DEVICE={name}: {e}"))
}
