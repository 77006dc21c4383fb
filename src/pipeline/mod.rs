//! The pipeline behind `simforge run`: a recipe is read ([`Recipe::load`], with `--set`
//! overrides), resolved once into a [`Plan`] (absolute run folder, device, seeds, the stages in
//! order with their inputs), and [`run`] executes it stage by stage.

mod error;
mod plan;
mod recipe;
mod run;

pub use error::{PipelineError, Result};
pub use plan::{AlignmentSimulator, Plan, PlanOptions, PlannedStage, Stage, StageName};
pub use recipe::{Recipe, RunSection};
pub use run::{run, RunSummary};
