//! Stage manifests: each stage of a run writes into its own folder with a `manifest.json`
//! (inputs and outputs with sha256, resolved config, code version, timings, outcome). A stage
//! whose manifest still matches is skipped, so a killed run resumes where it stopped.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::fsutil::{read_json, sha256_file, write_json};

pub const MANIFEST_FILE: &str = "manifest.json";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FileDigest {
    pub path: String,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub stage: String,
    pub config: serde_json::Value,
    pub inputs: Vec<FileDigest>,
    pub outputs: Vec<FileDigest>,
    pub code_version: String,
    pub started_unix: u64,
    pub seconds: f64,
    pub outcome: String,
}

/// Whether a stage ran or was found complete.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StageOutcome {
    Skipped,
    Ran { seconds: f64 },
}

/// Every file under `paths` (files, or folders walked recursively) with its sha256, sorted by
/// path; manifests themselves are left out.
pub fn digest(paths: &[PathBuf]) -> Result<Vec<FileDigest>> {
    let (mut files, mut seen) = (Vec::new(), std::collections::HashSet::new());
    for p in paths {
        collect(p, &mut files, &mut seen)?;
    }
    files.sort();
    files.into_iter().map(|f| Ok(FileDigest { sha256: sha256_file(&f)?, path: f.display().to_string() })).collect()
}

/// The most files a stage may read or write: a recipe's `prep.input` pointed at a home folder
/// would otherwise be hashed in full before anything is read.
const MAX_STAGE_FILES: usize = 100_000;

/// The files under `path`. Each folder is walked once (`seen` holds the canonical ones), so a
/// symbolic-link loop cannot recurse for ever.
fn collect(path: &Path, out: &mut Vec<PathBuf>, seen: &mut std::collections::HashSet<PathBuf>) -> Result<()> {
    if path.is_dir() {
        if !seen.insert(path.canonicalize().map_err(|e| DataError::io(path, e))?) {
            return Ok(());
        }
        for entry in fs::read_dir(path).map_err(|e| DataError::io(path, e))? {
            let entry = entry.map_err(|e| DataError::io(path, e))?;
            collect(&entry.path(), out, seen)?;
        }
    } else if path.is_file() {
        if path.file_name().is_some_and(|n| n != MANIFEST_FILE) {
            out.push(path.to_path_buf());
        }
        if out.len() > MAX_STAGE_FILES {
            return Err(DataError::invalid(path, format!("a stage's folders hold more than {MAX_STAGE_FILES} files; point it at the dataset's own folder")));
        }
    } else {
        return Err(DataError::io(path, std::io::Error::new(std::io::ErrorKind::NotFound, "stage input is missing")));
    }
    Ok(())
}

/// Outputs are recorded relative to the stage folder so a finished stage can be moved.
fn digest_outputs(dir: &Path) -> Result<Vec<FileDigest>> {
    Ok(digest(&[dir.to_path_buf()])?
        .into_iter()
        .map(|mut d| {
            d.path = Path::new(&d.path).strip_prefix(dir).map(|p| p.display().to_string()).unwrap_or(d.path);
            d
        })
        .collect())
}

/// Runs `work` into a fresh temporary folder and moves it to `stage_dir` with its manifest,
/// unless `stage_dir` already holds a complete run of the same config on the same inputs.
/// `work` fails with its own error type, which keeps its cause.
pub fn run_stage<E: From<DataError>>(
    stage_dir: &Path,
    stage: &str,
    config: &impl Serialize,
    inputs: &[PathBuf],
    code_version: &str,
    work: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<StageOutcome, E> {
    run_stage_with(stage_dir, stage, config, inputs, code_version, false, work)
}

/// As [`run_stage`], but a temporary folder left by a stopped run of the same config on the
/// same inputs is kept, so `work` can continue from what it holds (training checkpoints).
pub fn run_resumable_stage<E: From<DataError>>(
    stage_dir: &Path,
    stage: &str,
    config: &impl Serialize,
    inputs: &[PathBuf],
    code_version: &str,
    work: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<StageOutcome, E> {
    run_stage_with(stage_dir, stage, config, inputs, code_version, true, work)
}

/// What a kept temporary folder was started with.
const PARTIAL_KEY: &str = "partial.json";

fn run_stage_with<E: From<DataError>>(
    stage_dir: &Path,
    stage: &str,
    config: &impl Serialize,
    inputs: &[PathBuf],
    code_version: &str,
    resumable: bool,
    work: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<StageOutcome, E> {
    let config = serde_json::to_value(config).map_err(|e| DataError::config(stage, e.to_string()))?;
    let inputs = digest(inputs)?;
    let manifest_path = stage_dir.join(MANIFEST_FILE);
    if manifest_path.is_file() {
        if let Ok(old) = read_json::<Manifest>(&manifest_path) {
            if old.outcome == "complete" && old.config == config && old.inputs == inputs && digest_outputs(stage_dir)? == old.outputs {
                return Ok(StageOutcome::Skipped);
            }
        }
    }
    let partial = stage_dir.with_extension("partial");
    let key = serde_json::json!({ "config": config, "inputs": inputs });
    let same_work = resumable && read_json::<serde_json::Value>(&partial.join(PARTIAL_KEY)).is_ok_and(|k| k == key);
    if partial.exists() && !same_work {
        fs::remove_dir_all(&partial).map_err(|e| DataError::io(&partial, e))?;
    }
    fs::create_dir_all(&partial).map_err(|e| DataError::io(&partial, e))?;
    if resumable {
        write_json(&partial.join(PARTIAL_KEY), &key)?;
    }
    let started_unix = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let clock = Instant::now();
    work(&partial)?;
    if resumable {
        fs::remove_file(partial.join(PARTIAL_KEY)).map_err(|e| DataError::io(&partial, e))?;
    }
    let seconds = clock.elapsed().as_secs_f64();
    let manifest = Manifest {
        stage: stage.into(),
        config,
        inputs,
        outputs: digest_outputs(&partial)?,
        code_version: code_version.into(),
        started_unix,
        seconds,
        outcome: "complete".into(),
    };
    write_json(&partial.join(MANIFEST_FILE), &manifest)?;
    if stage_dir.exists() {
        fs::remove_dir_all(stage_dir).map_err(|e| DataError::io(stage_dir, e))?;
    }
    fs::rename(&partial, stage_dir).map_err(|e| DataError::io(stage_dir, e))?;
    Ok(StageOutcome::Ran { seconds })
}
