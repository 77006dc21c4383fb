//! File helpers: atomic writes, sha256 of files, JSON output.

use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{DataError, Result};

/// The temporary sibling a write goes to before it is renamed into place.
pub fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(format!(".tmp-{}", std::process::id()));
    path.with_file_name(name)
}

/// Runs `write` on a temporary file and renames it to `path` only when it succeeded, so an
/// interrupted run never leaves a half-written file under the final name.
pub fn atomic_write_with(path: &Path, write: impl FnOnce(&mut BufWriter<File>) -> Result<()>) -> Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| DataError::io(parent, e))?;
    }
    let tmp = temp_path(path);
    let result = (|| {
        let file = File::create(&tmp).map_err(|e| DataError::io(&tmp, e))?;
        let mut writer = BufWriter::new(file);
        write(&mut writer)?;
        writer.flush().map_err(|e| DataError::io(&tmp, e))?;
        writer.get_ref().sync_all().map_err(|e| DataError::io(&tmp, e))?;
        drop(writer);
        fs::rename(&tmp, path).map_err(|e| DataError::io(path, e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

pub fn write_text(path: &Path, text: &str) -> Result<()> {
    atomic_write_with(path, |w| w.write_all(text.as_bytes()).map_err(|e| DataError::io(path, e)))
}

pub fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    atomic_write_with(path, |w| {
        serde_json::to_writer_pretty(&mut *w, value).map_err(|e| DataError::io(path, e.into()))?;
        w.write_all(b"\n").map_err(|e| DataError::io(path, e))
    })
}

pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| DataError::Parse { path: path.into(), line: e.line() as u64, expected: "valid JSON".into(), found: e.to_string() })
}

pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).map_err(|e| DataError::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

pub fn sha256_bytes(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
