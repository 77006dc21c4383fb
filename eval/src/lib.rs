//! simforge-eval: measurements of simulators and recommenders. So far: alignment accuracy
//! (how often a simulator makes the user's real choice). Diagnosis, DGDPO, co-evolution and
//! fidelity come with their issues.

pub mod alignment;
pub mod error;

pub use error::{EvalError, Result};
