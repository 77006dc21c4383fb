//! `simforge run RECIPE`: plan the recipe, run its stages.

use std::path::PathBuf;

use clap::Args;
use simforge::pipeline::{run as run_plan, PlanOptions, Recipe};

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  simforge run recipes/quickstart.toml\n  simforge run recipes/quickstart.toml --out /tmp/runs\n  simforge run recipes/quickstart.toml --set sft.lr=1e-4 --set distill.samples=5 --set run.name=quickstart-lr\n\nA stage whose inputs and settings are unchanged is skipped, so running a recipe again resumes it."
)]
pub struct RunArgs {
    /// Recipe TOML file.
    pub recipe: PathBuf,
    /// Root folder for runs (overrides the recipe's run.out; default `checkpoints`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Override a recipe value before it is read: `section.key=value` (TOML value; repeatable).
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    pub overrides: Vec<String>,
}

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let plan = Recipe::load(&args.recipe, &args.overrides)?.plan(&args.recipe, &PlanOptions { out: args.out, offline: super::offline() })?;
    super::print_json(&run_plan(&plan)?)
}
