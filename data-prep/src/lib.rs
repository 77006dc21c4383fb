//! simforge-data: real datasets to canonical tables, then simulation scenes, DGDPO splits and
//! profiles, synthetic defect samples and the pre-training corpus. No model code.

pub mod chooser;
pub mod corpus;
pub mod defects;
pub mod diagnosis;
pub mod error;
pub mod fetch;
pub mod fsutil;
pub mod journal;
pub mod manifest;
pub mod parquet_io;
pub mod prep;
pub mod profile;
pub mod profiles;
pub mod progress;
pub mod rng;
pub mod scenes;
pub mod shortcuts;
pub mod sources;
pub mod split;
pub mod tables;

pub use error::{DataError, Result};
