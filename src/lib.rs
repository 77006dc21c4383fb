//! simforge: the library under the `simforge` binary. The binary parses flags and calls one
//! function here or in a crate per command; [`pipeline`] runs whole recipes.

pub mod bench;
pub mod jobs;
pub mod pipeline;
