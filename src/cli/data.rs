//! The data-prep commands: prep, scenes, split, profiles, defects, corpus, data fetch.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use simforge_data::{corpus, defects, fetch, prep, profiles, scenes, split};

use super::print_json;

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  simforge prep --input ../shared/datasets/ml-100k --out data/ml-100k\n  \
simforge prep --format amazon --input Movies_and_TV_5.json --skip-invalid --out data/movies\n  \
simforge prep --format synthetic --seed 7 --out data/world")]
pub struct PrepArgs {
    #[command(flatten)]
    pub config: prep::PrepConfig,
    /// Folder for users.parquet, items.parquet, interactions.parquet and stats.json.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
#[command(after_help = "Example:\n  simforge scenes --data data/ml-100k --out data/ml-100k-scenes --train 5000 --eval 500 --seed 1")]
pub struct ScenesArgs {
    /// Folder written by `simforge prep`.
    #[arg(long)]
    pub data: PathBuf,
    /// Folder for scenes.parquet and scenes.json.
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub config: scenes::ScenesConfig,
}

#[derive(Debug, Args)]
#[command(after_help = "Example:\n  simforge split --data data/ml-100k --alpha 0.6 --test-frac 0.2 --out data/ml-100k-split")]
pub struct SplitArgs {
    /// Folder written by `simforge prep`.
    #[arg(long)]
    pub data: PathBuf,
    /// Folder for split.parquet and split.json.
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub config: split::SplitConfig,
}

#[derive(Debug, Args)]
#[command(after_help = "Example:\n  simforge profiles --data data/ml-100k --split data/ml-100k-split --out data/ml-100k-profiles")]
pub struct ProfilesArgs {
    /// Folder written by `simforge prep`.
    #[arg(long)]
    pub data: PathBuf,
    /// Folder written by `simforge split`.
    #[arg(long)]
    pub split: PathBuf,
    /// Folder for profiles.parquet.
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub config: profiles::ProfilesConfig,
}

#[derive(Debug, Args)]
#[command(after_help = "Example:\n  simforge defects --data data/ml-100k --profiles data/ml-100k-profiles --out data/ml-100k-defects --per-class 300")]
pub struct DefectsArgs {
    /// Folder written by `simforge prep`.
    #[arg(long)]
    pub data: PathBuf,
    /// Folder written by `simforge profiles`.
    #[arg(long)]
    pub profiles: PathBuf,
    /// Folder for defects.parquet and defects.json.
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub config: defects::DefectsConfig,
}

#[derive(Debug, Args)]
#[command(after_help = "Example:\n  simforge corpus --data data/ml-100k --out data/ml-100k-corpus")]
pub struct CorpusArgs {
    /// Folder written by `simforge prep`.
    #[arg(long)]
    pub data: PathBuf,
    /// Folder for corpus.parquet.
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub config: corpus::CorpusConfig,
}

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Download a public dataset (ml-100k, ml-1m, ml-10m, ml-latest-small, amazon-2023/CATEGORY,
    /// amazon-2023-meta/CATEGORY), verify its sha256 and unpack it. Interrupted downloads resume.
    #[command(after_help = "Examples:\n  simforge data fetch ml-1m --out downloads\n  \
simforge data fetch amazon-2023/Video_Games --out downloads\n  \
simforge data fetch ml-100k --from-file ~/Downloads/ml-100k.zip --out downloads")]
    Fetch {
        /// Dataset name.
        name: String,
        /// Folder for the download and its unpacked files.
        #[arg(long)]
        out: PathBuf,
        /// Download from this URL instead (a mirror).
        #[arg(long)]
        url: Option<String>,
        /// Expected sha256 (hex), overriding the published one.
        #[arg(long)]
        sha256: Option<String>,
        /// Use an archive you already have instead of downloading.
        #[arg(long)]
        from_file: Option<PathBuf>,
    },
}

pub fn prep(args: PrepArgs) -> anyhow::Result<()> {
    let stats = prep::prep(&args.config, &args.out)?;
    print_json(&stats)
}

pub fn scenes(args: ScenesArgs) -> anyhow::Result<()> {
    print_json(&scenes::scenes(&args.data, &args.out, &args.config)?)
}

pub fn split(args: SplitArgs) -> anyhow::Result<()> {
    print_json(&split::split(&args.data, &args.out, &args.config)?)
}

pub fn profiles(args: ProfilesArgs) -> anyhow::Result<()> {
    let users = profiles::profiles(&args.data, &args.split, &args.out, &args.config)?;
    print_json(&serde_json::json!({ "profiles": users }))
}

pub fn defects(args: DefectsArgs) -> anyhow::Result<()> {
    print_json(&defects::defects(&args.data, &args.profiles, &args.out, &args.config)?)
}

pub fn corpus(args: CorpusArgs) -> anyhow::Result<()> {
    let docs = corpus::corpus(&args.data, &args.out, &args.config)?;
    print_json(&serde_json::json!({ "documents": docs }))
}

pub fn data(command: DataCommand) -> anyhow::Result<()> {
    match command {
        DataCommand::Fetch { name, out, url, sha256, from_file } => {
            let options = fetch::FetchOptions { url, sha256, from_file, progress: std::io::stderr().is_terminal() };
            let report = fetch::fetch(&name, &out, &options).with_context(|| format!("fetching {name}"))?;
            print_json(&report)
        }
    }
}
