//! `simforge data fetch`: downloads public datasets with sha256 verification, resuming an
//! interrupted download from its `.part` file, and unpacks archives. `--from-file` takes an
//! archive the user already has.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{DataError, Result};
use crate::fsutil::sha256_file;

/// A dataset simforge knows how to download.
#[derive(Debug, Clone, PartialEq)]
pub struct KnownDataset {
    pub name: String,
    pub url: String,
    /// Published checksum, when one is known; otherwise the first download's is reported.
    pub sha256: Option<String>,
    pub file_name: String,
    pub is_zip: bool,
}

const GROUPLENS: &str = "https://files.grouplens.org/datasets/movielens";
const AMAZON_2023: &str = "https://datarepo.eng.ucsd.edu/mcauley_group/data/amazon_2023/raw";

/// Resolves a dataset name: `ml-100k`, `ml-1m`, `ml-10m`, `ml-latest-small`,
/// `amazon-2023/CATEGORY` (reviews) or `amazon-2023-meta/CATEGORY` (item metadata).
pub fn known(name: &str) -> Option<KnownDataset> {
    // Checksums as published with the archives' sizes in TensorFlow Datasets' url_checksums.
    let movielens = |n: &str, sha: Option<&str>| KnownDataset {
        name: n.into(),
        url: format!("{GROUPLENS}/{n}.zip"),
        sha256: sha.map(str::to_owned),
        file_name: format!("{n}.zip"),
        is_zip: true,
    };
    match name {
        "ml-100k" => Some(movielens(name, Some("50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229"))),
        "ml-1m" => Some(movielens(name, Some("a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20"))),
        "ml-latest-small" => Some(movielens(name, Some("696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436"))),
        "ml-10m" => Some(KnownDataset { url: format!("{GROUPLENS}/ml-10m.zip"), ..movielens(name, None) }),
        _ => {
            let (kind, category) = name.split_once('/')?;
            if category.is_empty() || !category.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return None;
            }
            let (folder, file_name) = match kind {
                "amazon-2023" => ("review_categories", format!("{category}.jsonl.gz")),
                "amazon-2023-meta" => ("meta_categories", format!("meta_{category}.jsonl.gz")),
                _ => return None,
            };
            Some(KnownDataset { name: name.into(), url: format!("{AMAZON_2023}/{folder}/{file_name}"), sha256: None, file_name, is_zip: false })
        }
    }
}

pub const KNOWN_NAMES: &str = "ml-100k, ml-1m, ml-10m, ml-latest-small, amazon-2023/CATEGORY, amazon-2023-meta/CATEGORY";

/// What `fetch` did.
#[derive(Debug, serde::Serialize)]
pub struct FetchReport {
    pub name: String,
    pub file: PathBuf,
    pub sha256: String,
    pub bytes: u64,
    pub verified: bool,
    pub resumed_from: u64,
    /// Where the archive was unpacked, for zip archives.
    pub extracted: Option<PathBuf>,
}

#[derive(Debug, Clone, Default)]
pub struct FetchOptions {
    /// Download from here instead of the dataset's home (a mirror, or a test server).
    pub url: Option<String>,
    /// Expected sha256 (overrides the published one).
    pub sha256: Option<String>,
    /// Use this local archive instead of downloading.
    pub from_file: Option<PathBuf>,
    /// Show a progress bar.
    pub progress: bool,
}

pub fn fetch(name: &str, out: &Path, options: &FetchOptions) -> Result<FetchReport> {
    let dataset = known(name).ok_or_else(|| DataError::config("data fetch", format!("unknown dataset {name:?}; known: {KNOWN_NAMES}")))?;
    fs::create_dir_all(out).map_err(|e| DataError::io(out, e))?;
    let target = out.join(&dataset.file_name);
    let expected = options.sha256.clone().or(dataset.sha256.clone()).map(|s| s.to_lowercase());
    let mut resumed_from = 0;
    if let Some(local) = &options.from_file {
        let tmp = crate::fsutil::temp_path(&target);
        fs::copy(local, &tmp).map_err(|e| DataError::io(local, e))?;
        fs::rename(&tmp, &target).map_err(|e| DataError::io(&target, e))?;
    } else if !(target.is_file() && expected.as_deref().is_some_and(|e| sha256_file(&target).ok().as_deref() == Some(e))) {
        let url = options.url.clone().unwrap_or(dataset.url.clone());
        resumed_from = download(&url, &target, options.progress)?;
    }
    let sha256 = sha256_file(&target)?;
    let verified = match &expected {
        Some(e) if *e != sha256 => {
            let bad = target.with_extension("corrupt");
            let _ = fs::rename(&target, &bad);
            return Err(DataError::invalid(&target, format!("sha256 mismatch: expected {e}, got {sha256}; the file was moved to {}", bad.display())));
        }
        Some(_) => true,
        None => {
            tracing::warn!("no published checksum for {name}; sha256 of the download is {sha256} (pass --sha256 to pin it)");
            false
        }
    };
    let bytes = fs::metadata(&target).map_err(|e| DataError::io(&target, e))?.len();
    let extracted = if dataset.is_zip { Some(unzip(&target, out)?) } else { None };
    Ok(FetchReport { name: name.into(), file: target, sha256, bytes, verified, resumed_from, extracted })
}

/// Downloads `url` to `target` through `target.part`, continuing a previous partial download
/// with an HTTP range request. Returns the byte offset it resumed from.
pub fn download(url: &str, target: &Path, progress: bool) -> Result<u64> {
    download_with(url, target, progress, None)
}

/// The blocking client of downloads. Its timeout bounds each
/// operation (connecting, one read of the body), not the whole transfer, so a large archive
/// may take minutes while a stalled connection fails.
fn client() -> Result<reqwest::blocking::Client> {
    reqwest::blocking::Client::builder()
        .connect_timeout(Duration::from_secs(30))
        .timeout(Duration::from_secs(120))
        .build()
        .map_err(|e| DataError::Http { url: String::new(), message: format!("cannot build an HTTP client: {e}") })
}

fn get(url: &str, bearer: Option<&str>, range_from: u64) -> Result<reqwest::blocking::Response> {
    let mut request = client()?.get(url);
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    if range_from > 0 {
        request = request.header(reqwest::header::RANGE, format!("bytes={range_from}-"));
    }
    request.send().map_err(|e| DataError::Http { url: url.into(), message: e.to_string() })
}

/// The body of a small GET (an API answer), with an optional bearer token.
pub fn get_bytes(url: &str, bearer: Option<&str>) -> Result<Vec<u8>> {
    let http = |message: String| DataError::Http { url: url.into(), message };
    let response = get(url, bearer, 0)?;
    let status = response.status().as_u16();
    if status != 200 {
        return Err(http(format!("HTTP status {status}")));
    }
    Ok(response.bytes().map_err(|e| http(e.to_string()))?.to_vec())
}

/// [`download`] with an optional bearer token (private or gated files).
pub fn download_with(url: &str, target: &Path, progress: bool, bearer: Option<&str>) -> Result<u64> {
    let part = target.with_extension(format!("{}.part", target.extension().map(|e| e.to_string_lossy()).unwrap_or_default()));
    let have = fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    let http = |message: String| DataError::Http { url: url.into(), message };
    let mut response = get(url, bearer, have)?;
    let status = response.status().as_u16();
    let resumed = match status {
        206 => have,
        200 => 0,
        416 if have > 0 => {
            // The part file is already complete.
            fs::rename(&part, target).map_err(|e| DataError::io(target, e))?;
            return Ok(have);
        }
        _ => return Err(http(format!("HTTP status {status}"))),
    };
    let length = response.headers().get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    let mut file = OpenOptions::new().create(true).write(true).append(resumed > 0).truncate(resumed == 0).open(&part).map_err(|e| DataError::io(&part, e))?;
    let bar = crate::progress::bar("{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}", progress);
    bar.set_length(length.map_or(0, |l| l + resumed));
    bar.set_message(target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
    bar.set_position(resumed);
    let reader = &mut response;
    let mut buf = vec![0u8; 1 << 16];
    let mut received = 0u64;
    loop {
        let n = reader.read(&mut buf).map_err(|e| http(format!("download interrupted after {} bytes ({e}); run again to resume", resumed + received)))?;
        if n == 0 {
            break;
        }
        file.write_all(&buf[..n]).map_err(|e| DataError::io(&part, e))?;
        received += n as u64;
        bar.inc(n as u64);
    }
    file.sync_all().map_err(|e| DataError::io(&part, e))?;
    bar.finish_and_clear();
    if let Some(l) = length {
        if received != l {
            return Err(http(format!("expected {l} bytes, received {received}; run again to resume")));
        }
    }
    fs::rename(&part, target).map_err(|e| DataError::io(target, e))?;
    Ok(resumed)
}

/// Unpacks a zip archive into `out` and returns the folder it created (the archive's single
/// top folder, as GroupLens archives have, or `out` itself).
pub fn unzip(archive: &Path, out: &Path) -> Result<PathBuf> {
    let file = File::open(archive).map_err(|e| DataError::io(archive, e))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| DataError::invalid(archive, format!("not a readable zip archive: {e}")))?;
    let top: Option<String> = zip.file_names().next().and_then(|n| n.split('/').next()).map(str::to_owned);
    let single_top = top.as_ref().filter(|t| zip.file_names().all(|n| n.starts_with(&format!("{t}/"))));
    let single_top = single_top.cloned();
    // Unpacked beside its destination and moved in only when complete: a broken or hostile
    // archive leaves nothing half-written (the staging folder goes when dropped).
    // (One a killed fetch left behind goes first.)
    for stale in fs::read_dir(out).map_err(|e| DataError::io(out, e))?.flatten().filter(|e| e.file_name().to_string_lossy().starts_with(".unpack-")) {
        fs::remove_dir_all(stale.path()).map_err(|e| DataError::io(stale.path(), e))?;
    }
    let staging = tempfile::Builder::new().prefix(".unpack-").tempdir_in(out).map_err(|e| DataError::io(out, e))?;
    zip.extract(staging.path()).map_err(|e| DataError::invalid(archive, format!("cannot unpack: {e}")))?;
    for entry in fs::read_dir(staging.path()).map_err(|e| DataError::io(staging.path(), e))? {
        let entry = entry.map_err(|e| DataError::io(staging.path(), e))?;
        let target = out.join(entry.file_name());
        // A fetch again replaces what the same archive unpacked before.
        let replaced = if target.is_dir() {
            fs::remove_dir_all(&target)
        } else if target.exists() {
            fs::remove_file(&target)
        } else {
            Ok(())
        };
        replaced.and_then(|()| fs::rename(entry.path(), &target)).map_err(|e| DataError::io(&target, e))?;
    }
    Ok(single_top.map_or_else(|| out.to_path_buf(), |t| out.join(t)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve() {
        assert!(known("ml-100k").is_some_and(|d| d.is_zip && d.sha256.is_some()));
        let games = known("amazon-2023/Video_Games").expect("known");
        assert!(games.url.ends_with("/review_categories/Video_Games.jsonl.gz"));
        assert!(known("amazon-2023/../etc").is_none());
        assert!(known("nope").is_none());
    }
}
