//! simforge-eval: measurements of simulators and recommenders: alignment accuracy, the
//! diagnostic model's accuracy, and the DGDPO profile-optimisation loop with its simulators,
//! diagnosers and treatments, and the behavioural-fidelity metrics. Co-evolution comes with its
//! issue.

pub mod alignment;
pub mod curve;
pub mod dgdpo;
pub mod diagnosis;
pub mod error;
pub mod fidelity;
pub mod llm;
pub mod plot;
pub mod ranking;
pub mod report;
pub mod simulator;
pub mod treatment;

pub use error::{EvalError, Result};
