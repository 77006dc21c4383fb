//! `simforge eval …`: measurements of trained models, each writing `report.json` + `report.md`.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use simforge_trainer::device;
use simforge_trainer::sasrec::data::{Histories, LeaveOneOut};
use simforge_trainer::sasrec::evaluate::{evaluate, sample_cases, Popularity, Protocol};
use simforge_trainer::sasrec::train::cases;
use simforge_trainer::sasrec::ModelFiles;

#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// Next-item ranking of a SASRec model on a dataset's leave-one-out test targets.
    #[command(after_help = "Examples:\n  simforge eval sasrec --model runs/sasrec-games/model --data data/games --protocol sampled --out reports/games-sampled\n  simforge eval sasrec --model runs/sasrec-games/model --data data/games --protocol full --eval-users 0")]
    Sasrec(EvalSasrecArgs),
}

#[derive(Debug, Args)]
pub struct EvalSasrecArgs {
    /// A SASRec folder (`model/` or `best/` of `simforge train sasrec`).
    #[arg(long)]
    pub model: PathBuf,
    /// The prepared dataset it was trained on.
    #[arg(long)]
    pub data: PathBuf,
    /// sampled: the target against 100 unseen items; full: against every item outside the history.
    #[arg(long, value_enum, default_value = "sampled")]
    pub protocol: Protocol,
    /// Users evaluated at most (a seeded sample when there are more; 0: all).
    #[arg(long, default_value_t = 10_000)]
    pub eval_users: usize,
    /// Seed of the user sample and the sampled negatives.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Folder for report.json and report.md (printed to stdout either way).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// cpu, wgpu or cuda[:N].
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

pub fn eval(command: EvalCommand) -> anyhow::Result<()> {
    match command {
        EvalCommand::Sasrec(args) => eval_sasrec(args),
    }
}

fn eval_sasrec(args: EvalSasrecArgs) -> anyhow::Result<()> {
    let device = device::parse(&args.device)?;
    let files = ModelFiles::read(&args.model, &device).with_context(|| format!("reading SASRec model {}", args.model.display()))?;
    let histories = Histories::from_dataset(&args.data)?;
    if histories.num_items != files.config.num_items {
        bail!("{} has {} items but the model {} was trained on {}; evaluate on the dataset it was trained on", args.data.display(), histories.num_items, args.model.display(), files.config.num_items);
    }
    let split = LeaveOneOut::new(&histories);
    let test = sample_cases(cases(&split, &histories, true), args.eval_users, args.seed);
    let report = evaluate(&files.model, &test, args.protocol, histories.num_items, args.seed);
    let popularity = evaluate(&Popularity::new(&split.train, histories.num_items), &test, args.protocol, histories.num_items, args.seed);
    let mut json = serde_json::to_value(&report)?;
    json["baselines"] = serde_json::json!({ "popularity": popularity.metrics });
    json["split"] = "leave-one-out test".into();
    json["model"] = args.model.display().to_string().into();
    json["data"] = args.data.display().to_string().into();
    if let Some(out) = &args.out {
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        simforge_data::fsutil::write_json(&out.join("report.json"), &json)?;
        let mut md = format!("# SASRec next-item ranking\n\nModel `{}` on `{}`, leave-one-out test targets, **{:?}** protocol, {} users.\n\n| metric | SASRec | popularity |\n|---|---|---|\n", args.model.display(), args.data.display(), report.protocol, report.users);
        for (name, value) in &report.metrics {
            md.push_str(&format!("| {name} | {value:.4} | {:.4} |\n", popularity.get(name)));
        }
        simforge_data::fsutil::write_text(&out.join("report.md"), &md)?;
    }
    super::print_json(&json)
}
