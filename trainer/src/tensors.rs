//! Tensors between burn and disk: safetensors files read and written as host f32 tensors
//! (bf16 and f16 widened on reading), and a model's float parameters by their dotted path.

use std::collections::HashMap;
use std::path::Path;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor, TensorData};
use safetensors::{Dtype, SafeTensors};

use crate::error::{Result, TrainerError};

/// A host tensor on its way to or from disk: (name, values, shape).
pub type NamedTensor = (String, Vec<f32>, Vec<usize>);

/// The tensors of a file by name: (values, shape).
pub type HostTensors = HashMap<String, (Vec<f32>, Vec<usize>)>;

/// Writes f32 tensors as a safetensors file (`format: pt`, as transformers expects).
pub fn write_safetensors(path: &Path, tensors: &[NamedTensor]) -> Result<()> {
    // The last update of a run is checked nowhere else: a diverged model is refused here,
    // never written as if it were trained.
    if let Some((name, _, _)) = tensors.iter().find(|(_, values, _)| values.iter().any(|v| !v.is_finite())) {
        return Err(TrainerError::Diverged { message: format!("tensor {name} holds NaN or infinite values; {} was not written", path.display()) });
    }
    let bytes: Vec<Vec<u8>> = tensors.iter().map(|(_, v, _)| v.iter().flat_map(|x| x.to_le_bytes()).collect()).collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, _, shape), b)| {
            safetensors::tensor::TensorView::new(Dtype::F32, shape.clone(), b)
                .map(|view| (name.clone(), view))
                .map_err(|e| TrainerError::checkpoint(path, format!("tensor `{name}`: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    let data = safetensors::serialize(views, Some(metadata)).map_err(|e| TrainerError::checkpoint(path, e.to_string()))?;
    std::fs::write(path, data).map_err(|e| TrainerError::io(path, e))
}

/// Every tensor of a safetensors file as f32.
pub fn read_safetensors(path: &Path) -> Result<HostTensors> {
    let bytes = std::fs::read(path).map_err(|e| TrainerError::io(path, e))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| TrainerError::checkpoint(path, format!("not a safetensors file: {e}")))?;
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            let data = view.data();
            let values: Vec<f32> = match view.dtype() {
                Dtype::F32 => data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
                Dtype::F16 => data.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
                Dtype::BF16 => data.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
                other => return Err(TrainerError::checkpoint(path, format!("tensor `{name}` has dtype {other:?}; expected f32, f16 or bf16"))),
            };
            Ok((name, (values, view.shape().to_vec())))
        })
        .collect()
}

/// Every float parameter of `model` by path, as written by [`named_parameters`] (burn's layout).
pub fn parameter_tensors<M: Module>(model: &M) -> Vec<NamedTensor> {
    named_parameters(model).into_iter().map(|(path, values, shape, _)| (path, host(values), shape)).collect()
}

/// Replaces every float parameter of `model` with the tensor of the same path in `tensors`
/// (the inverse of [`parameter_tensors`]); a missing tensor or another shape is an error.
pub fn load_parameter_tensors<M: Module>(model: M, mut tensors: HostTensors, file: &Path) -> Result<M> {
    map_parameters(model, |name, dims| take(&mut tensors, name, dims, file).map(Some))
}

/// A name that stays inside the folder it is joined to: one normal path component (no `/`,
/// `..`, root or drive).
pub fn is_plain_file_name(name: &str) -> bool {
    let mut parts = Path::new(name).components();
    matches!((parts.next(), parts.next()), (Some(std::path::Component::Normal(_)), None)) && !name.contains(['/', '\\'])
}

/// Takes tensor `name` out of `tensors` (read from `file`), checking it has `shape` and finite
/// values.
pub fn take(tensors: &mut HostTensors, name: &str, shape: &[usize], file: &Path) -> Result<Vec<f32>> {
    let (values, found) = tensors.remove(name).ok_or_else(|| TrainerError::MissingTensor { path: file.to_path_buf(), name: name.into() })?;
    if found != shape {
        return Err(TrainerError::Shape { path: file.to_path_buf(), name: name.into(), expected: shape.to_vec(), found });
    }
    // A NaN weight makes every output NaN, which reads as a model, not as an error.
    if let Some(at) = values.iter().position(|v| !v.is_finite()) {
        return Err(TrainerError::checkpoint(file, format!("tensor {name} holds a non-finite value ({}) at index {at}", values[at])));
    }
    Ok(values)
}

/// Sets each float parameter to what `values(path, dims)` gives (row-major, burn's layout),
/// keeping it where that is `None`; the first error stops the filling and is returned.
pub(crate) fn map_parameters<M: Module>(model: M, values: impl FnMut(&str, &[usize]) -> Result<Option<Vec<f32>>>) -> Result<M> {
    struct Fill<F> {
        values: F,
        stack: Vec<String>,
        error: Option<TrainerError>,
    }
    impl<F: FnMut(&str, &[usize]) -> Result<Option<Vec<f32>>>> ModuleMapper for Fill<F> {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.stack.push(name.to_owned());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.stack.pop();
        }
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            if self.error.is_some() {
                return param;
            }
            let dims = param.val().dims();
            let values = match (self.values)(&self.stack.join("."), &dims) {
                Ok(Some(values)) => values,
                Ok(None) => return param,
                Err(e) => {
                    self.error = Some(e);
                    return param;
                }
            };
            let (id, tensor, mapper) = param.consume();
            let value: Tensor<D> = Tensor::from_data(TensorData::new(values, dims), &tensor.device());
            let value = if tensor.is_require_grad() { Tensor::from_inner(value).require_grad() } else { value };
            Param::from_mapped_value(id, value, mapper)
        }
    }
    let mut fill = Fill { values, stack: Vec::new(), error: None };
    let model = model.map(&mut fill);
    match fill.error {
        Some(e) => Err(e),
        None => Ok(model),
    }
}

/// Dotted module path of each parameter as a visitor or mapper walks the model.
#[derive(Default)]
pub(crate) struct PathTracker(Vec<String>);

impl PathTracker {
    pub(crate) fn enter(&mut self, name: &str) {
        self.0.push(name.to_owned());
    }
    pub(crate) fn exit(&mut self) {
        self.0.pop();
    }
    pub(crate) fn path(&self) -> String {
        self.0.join(".")
    }
}

/// Every float parameter of `model` by path: (values, shape, trainable).
pub fn named_parameters<M: Module>(model: &M) -> Vec<(String, Tensor<1>, Vec<usize>, bool)> {
    struct Named {
        path: PathTracker,
        out: Vec<(String, Tensor<1>, Vec<usize>, bool)>,
    }
    impl ModuleVisitor for Named {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.enter(name);
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.exit();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let value = param.val();
            let shape = value.dims().to_vec();
            let n: usize = shape.iter().product();
            self.out.push((self.path.path(), value.reshape([n]), shape, param.is_require_grad()));
        }
    }
    let mut named = Named { path: PathTracker::default(), out: Vec::new() };
    model.visit(&mut named);
    named.out
}

/// A host copy of a flat tensor.
pub fn host(t: Tensor<1>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap_or_default()
}

pub fn device_tensor(values: Vec<f32>, device: &Device) -> Tensor<1> {
    let n = values.len();
    Tensor::from_data(TensorData::new(values, [n]), device)
}
