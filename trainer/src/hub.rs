//! Hub ids (`Qwen/Qwen3-0.6B`, optionally `@revision`) resolve to a snapshot folder in the
//! standard Hugging Face cache (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
//! `~/.cache/huggingface/hub`), downloading what a model needs unless offline. The endpoint is
//! `$HF_ENDPOINT` (default `https://huggingface.co`), the token `$HF_TOKEN`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Result, TrainerError};

/// Files a model folder is made of; the weights come as one file or as indexed shards.
const MODEL_FILES: [&str; 5] = ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"];

/// `model` itself when it is a local folder; otherwise the cached snapshot of the hub id,
/// fetched first when missing (never with `offline` or `HF_HUB_OFFLINE=1`).
pub fn resolve(model: &Path, offline: bool) -> Result<PathBuf> {
    if model.exists() {
        return Ok(model.to_path_buf());
    }
    let text = model.to_string_lossy();
    let (id, revision) = text.split_once('@').unwrap_or((&text, "main"));
    let looks_like_id = id.split('/').count() == 2 && !id.starts_with(['.', '/']) && id.split('/').all(|p| !p.is_empty());
    if !looks_like_id {
        return Err(TrainerError::io(model, std::io::Error::new(std::io::ErrorKind::NotFound, "no such model folder (nor a hub id like Qwen/Qwen3-0.6B)")));
    }
    let repo = cache_root().join(format!("models--{}", id.replace('/', "--")));
    let offline = offline || std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    if let Some(snapshot) = cached_snapshot(&repo, revision) {
        if offline || snapshot.join("config.json").is_file() && crate::checkpoint::has_full_weights(&snapshot) {
            return Ok(snapshot);
        }
    }
    // `runs/tiny` beside a `runs/` folder, and not in the cache, is a mistyped path, not a
    // model to download.
    if id.split('/').next().is_some_and(|owner| Path::new(owner).is_dir()) {
        return Err(TrainerError::io(
            model,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such model folder (its parent folder exists, so it is not read as a hub id)"),
        ));
    }
    if offline {
        return Err(TrainerError::settings(
            format!("{id}@{revision}"),
            format!("not in the Hugging Face cache {} and downloads are off (offline)", repo.display()),
        ));
    }
    download(id, revision, &repo)
}

fn cache_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("HF_HUB_CACHE") {
        return PathBuf::from(dir);
    }
    if let Some(home) = std::env::var_os("HF_HOME") {
        return PathBuf::from(home).join("hub");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache/huggingface/hub")
}

fn cached_snapshot(repo: &Path, revision: &str) -> Option<PathBuf> {
    let commit = std::fs::read_to_string(repo.join("refs").join(revision)).ok().map(|s| s.trim().to_string()).unwrap_or_else(|| revision.to_string());
    let snapshot = repo.join("snapshots").join(commit);
    snapshot.is_dir().then_some(snapshot)
}

#[derive(Deserialize)]
struct ModelInfo {
    sha: String,
    siblings: Vec<Sibling>,
}

#[derive(Deserialize)]
struct Sibling {
    rfilename: String,
}

fn endpoint() -> String {
    std::env::var("HF_ENDPOINT").unwrap_or_else(|_| "https://huggingface.co".into()).trim_end_matches('/').to_string()
}

fn download(id: &str, revision: &str, repo: &Path) -> Result<PathBuf> {
    let token = std::env::var("HF_TOKEN").ok();
    let info_url = format!("{}/api/models/{id}/revision/{revision}", endpoint());
    let info: ModelInfo = serde_json::from_slice(&simforge_data::fetch::get_bytes(&info_url, token.as_deref())?)
        .map_err(|e| TrainerError::endpoint(&info_url, format!("not a model description: {e}")))?;
    // Only top-level files are fetched: a listed name cannot lead outside the snapshot folder.
    let names: Vec<&str> = info.siblings.iter().map(|s| s.rfilename.as_str()).filter(|n| crate::tensors::is_plain_file_name(n)).collect();
    let mut wanted: Vec<String> = MODEL_FILES.iter().filter(|f| names.contains(f)).map(|f| f.to_string()).collect();
    if names.contains(&"model.safetensors") {
        wanted.push("model.safetensors".into());
    } else if names.contains(&"model.safetensors.index.json") {
        wanted.push("model.safetensors.index.json".into());
        wanted.extend(names.iter().filter(|n| n.starts_with("model-") && n.ends_with(".safetensors")).map(|n| n.to_string()));
    } else {
        return Err(TrainerError::endpoint(&info_url, format!("{id}@{revision} has no safetensors weights (model.safetensors or an index)")));
    }
    if !names.contains(&"config.json") {
        return Err(TrainerError::endpoint(&info_url, format!("{id}@{revision} has no config.json")));
    }
    let snapshot = repo.join("snapshots").join(&info.sha);
    std::fs::create_dir_all(&snapshot).map_err(|e| TrainerError::io(&snapshot, e))?;
    for name in &wanted {
        let target = snapshot.join(name);
        if target.is_file() {
            continue;
        }
        tracing::info!("downloading {id}/{name}");
        let url = format!("{}/{id}/resolve/{}/{name}", endpoint(), info.sha);
        simforge_data::fetch::download_with(&url, &target, std::io::IsTerminal::is_terminal(&std::io::stderr()), token.as_deref())?;
    }
    let refs = repo.join("refs");
    std::fs::create_dir_all(&refs).map_err(|e| TrainerError::io(&refs, e))?;
    std::fs::write(refs.join(revision), &info.sha).map_err(|e| TrainerError::io(&refs, e))?;
    Ok(snapshot)
}
