//! The data-prep commands: prep, scenes, split, profiles, defects, corpus, data fetch.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde::Serialize;
use simforge_data::corpus::CorpusConfig;
use simforge_data::defects::DefectsConfig;
use simforge_data::prep::PrepConfig;
use simforge_data::profiles::ProfilesConfig;
use simforge_data::scenes::{ExposureSource, Rendering, ScenesConfig};
use simforge_data::sources::{Format, RatingScale};
use simforge_data::split::SplitConfig;
use simforge_data::{corpus, defects, fetch, prep, profiles, scenes, split};

use super::flags::{apply, parse};
use super::print_json;

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  simforge prep --input ../shared/datasets/ml-100k --out data/ml-100k\n  \
simforge prep --format amazon --input Movies_and_TV_5.json --skip-invalid --out data/movies\n  \
simforge prep --format synthetic --seed 7 --out data/world")]
pub struct PrepArgs {
    #[command(flatten)]
    pub flags: PrepFlags,
    /// Folder for users.parquet, items.parquet, interactions.parquet and stats.json.
    #[arg(long)]
    pub out: PathBuf,
}

/// `[prep]` as flags.
#[derive(Debug, Args, Serialize)]
pub struct PrepFlags {
    /// Source format: movielens, recbole, amazon, sasrec or synthetic; detected from the files when omitted.
    #[arg(long, value_parser = parse::<Format>)]
    pub format: Option<Format>,
    /// Dataset file or folder. For `synthetic`, an optional TOML file of world parameters.
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Keep only users with at least N interactions (applied with the item filter until stable).
    #[arg(long, default_value_t = PrepConfig::default().min_user_interactions)]
    pub min_user_interactions: u32,
    /// Keep only items with at least N interactions.
    #[arg(long, default_value_t = PrepConfig::default().min_item_interactions)]
    pub min_item_interactions: u32,
    /// Skip malformed lines, counting them in `stats.json`, instead of stopping at the first.
    #[arg(long)]
    pub skip_invalid: bool,
    /// The scale of a RecBole file's ratings when they are not 0–5 stars, as LOW:HIGH (such as
    /// 1:10); they are mapped linearly onto 1–5 stars.
    #[arg(long, value_parser = parse::<RatingScale>)]
    pub rating_scale: Option<RatingScale>,
    /// Seed of the synthetic world (other formats use none).
    #[arg(long)]
    pub seed: Option<u64>,
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
    pub flags: ScenesFlags,
}

/// `[scenes]` as flags.
#[derive(Debug, Args, Serialize)]
pub struct ScenesFlags {
    /// Training scenes to build (fewer when the data has fewer targets).
    #[arg(long, default_value_t = ScenesConfig::default().train)]
    pub train: usize,
    /// Evaluation scenes to build, from each user's latest interactions.
    #[arg(long, default_value_t = ScenesConfig::default().eval)]
    pub eval: usize,
    /// Shortest exposure list of a training scene (≥ 2).
    #[arg(long, default_value_t = ScenesConfig::default().min_exposure)]
    pub min_exposure: usize,
    /// Longest exposure list of a training scene (≤ 26).
    #[arg(long, default_value_t = ScenesConfig::default().max_exposure)]
    pub max_exposure: usize,
    /// Exposure length of every evaluation scene.
    #[arg(long, default_value_t = ScenesConfig::default().eval_exposure)]
    pub eval_exposure: usize,
    /// Most history items shown; each scene shows randint(2, max-history).
    #[arg(long, default_value_t = ScenesConfig::default().max_history)]
    pub max_history: usize,
    /// Evaluation targets reserved per user (their latest), kept out of training.
    #[arg(long, default_value_t = ScenesConfig::default().eval_per_user)]
    pub eval_per_user: usize,
    /// Where the other options come from: sampled (unseen items; the default) or impressions
    /// (the exposure list the choice was made from; the synthetic world logs them).
    #[arg(long, value_parser = parse::<ExposureSource>)]
    pub exposure: Option<ExposureSource>,
    /// How prompts are written: usermirrorer (the default) or compact (few tokens, for small models).
    #[arg(long, value_parser = parse::<Rendering>)]
    pub rendering: Option<Rendering>,
    /// Seed for every random choice.
    #[arg(long)]
    pub seed: Option<u64>,
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
    pub flags: SplitFlags,
}

/// `[split]` as flags.
#[derive(Debug, Args, Serialize)]
pub struct SplitFlags {
    /// Share of the non-test history that forms D_ini (0 < alpha < 1).
    #[arg(long, value_parser = crate::cli::flags::finite, default_value_t = SplitConfig::default().alpha)]
    pub alpha: f64,
    /// Share of each history held out as the test part (at least `min_test` items).
    #[arg(long, value_parser = crate::cli::flags::finite, default_value_t = SplitConfig::default().test_frac)]
    pub test_frac: f64,
    /// Fewest test items per user.
    #[arg(long, default_value_t = SplitConfig::default().min_test)]
    pub min_test: usize,
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
    pub flags: ProfilesFlags,
}

/// `[profiles]` as flags.
#[derive(Debug, Args, Serialize)]
pub struct ProfilesFlags {
    /// Most liked categories stated in a profile.
    #[arg(long, default_value_t = ProfilesConfig::default().max_likes)]
    pub max_likes: usize,
    /// Most disliked categories stated in a profile.
    #[arg(long, default_value_t = ProfilesConfig::default().max_dislikes)]
    pub max_dislikes: usize,
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
    pub flags: DefectsFlags,
}

/// `[defects]` as flags.
#[derive(Debug, Args, Serialize)]
pub struct DefectsFlags {
    /// Samples per class (the classes are kept balanced: fewer if the data allows fewer).
    #[arg(long, default_value_t = DefectsConfig::default().per_class)]
    pub per_class: usize,
    /// Candidate items shown in a case (≥ 2).
    #[arg(long, default_value_t = DefectsConfig::default().candidates)]
    pub candidates: usize,
    /// Share of users whose samples form the held-out evaluation split.
    #[arg(long, value_parser = crate::cli::flags::finite, default_value_t = DefectsConfig::default().eval_frac)]
    pub eval_frac: f64,
    /// History items quoted in a case.
    #[arg(long, default_value_t = DefectsConfig::default().recent)]
    pub recent: usize,
    /// How cases are written: usermirrorer (the default) or compact (few tokens, for small
    /// models); a diagnostic model trained on them is asked the same way.
    #[arg(long, value_parser = parse::<Rendering>)]
    pub rendering: Option<Rendering>,
    /// Seed for every random choice.
    #[arg(long)]
    pub seed: Option<u64>,
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
    pub flags: CorpusFlags,
}

/// `[corpus]` as flags.
#[derive(Debug, Args, Serialize)]
pub struct CorpusFlags {
    /// Interactions per document; longer histories continue in further documents.
    #[arg(long, default_value_t = CorpusConfig::default().events_per_doc)]
    pub events_per_doc: usize,
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
    print_json(&prep::prep(&apply(&PrepConfig::default(), &args.flags)?, &args.out)?)
}

pub fn scenes(args: ScenesArgs) -> anyhow::Result<()> {
    print_json(&scenes::scenes(&args.data, &args.out, &apply(&ScenesConfig::default(), &args.flags)?)?)
}

pub fn split(args: SplitArgs) -> anyhow::Result<()> {
    print_json(&split::split(&args.data, &args.out, &apply(&SplitConfig::default(), &args.flags)?)?)
}

pub fn profiles(args: ProfilesArgs) -> anyhow::Result<()> {
    let users = profiles::profiles(&args.data, &args.split, &args.out, &apply(&ProfilesConfig::default(), &args.flags)?)?;
    print_json(&serde_json::json!({ "profiles": users }))
}

pub fn defects(args: DefectsArgs) -> anyhow::Result<()> {
    print_json(&defects::defects(&args.data, &args.profiles, &args.out, &apply(&DefectsConfig::default(), &args.flags)?)?)
}

pub fn corpus(args: CorpusArgs) -> anyhow::Result<()> {
    let docs = corpus::corpus(&args.data, &args.out, &apply(&CorpusConfig::default(), &args.flags)?)?;
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

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn command(args: &str) -> Command {
        Cli::try_parse_from(args.split_whitespace()).unwrap_or_else(|e| panic!("{args}: {e}")).command
    }

    /// Every data command's flag defaults are the library's, and given flags land on their fields.
    #[test]
    fn data_flags_map_onto_the_library_configs() {
        let Command::Prep(a) = command("simforge prep --out o") else { panic!() };
        assert_eq!(apply(&PrepConfig::default(), &a.flags).expect("prep"), PrepConfig::default());
        let Command::Scenes(a) = command("simforge scenes --data d --out o") else { panic!() };
        assert_eq!(apply(&ScenesConfig::default(), &a.flags).expect("scenes"), ScenesConfig::default());
        let Command::Scenes(a) = command("simforge scenes --data d --out o --exposure impressions --rendering compact --train 7") else { panic!() };
        let c = apply(&ScenesConfig::default(), &a.flags).expect("scenes");
        assert_eq!((c.exposure, c.rendering, c.train), (ExposureSource::Impressions, Rendering::Compact, 7));
        let Command::Split(a) = command("simforge split --data d --out o") else { panic!() };
        assert_eq!(apply(&SplitConfig::default(), &a.flags).expect("split"), SplitConfig::default());
        let Command::Profiles(a) = command("simforge profiles --data d --split s --out o") else { panic!() };
        assert_eq!(apply(&ProfilesConfig::default(), &a.flags).expect("profiles"), ProfilesConfig::default());
        let Command::Defects(a) = command("simforge defects --data d --profiles p --out o") else { panic!() };
        assert_eq!(apply(&DefectsConfig::default(), &a.flags).expect("defects"), DefectsConfig::default());
        let Command::Corpus(a) = command("simforge corpus --data d --out o") else { panic!() };
        assert_eq!(apply(&CorpusConfig::default(), &a.flags).expect("corpus"), CorpusConfig::default());
        assert!(Cli::try_parse_from(["simforge", "scenes", "--data", "d", "--out", "o", "--exposure", "logged"]).is_err());
    }
}
