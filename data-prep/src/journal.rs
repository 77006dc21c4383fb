//! An append-only journal of a long loop's completed steps, one JSON line each, so a stopped
//! run resumes after its last complete step. Its first line is the key of the run that wrote
//! it; a run with another key starts a new journal. A line cut short by a kill is dropped.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::error::{DataError, Result};
use crate::fsutil::write_text;

pub struct Journal {
    path: PathBuf,
    file: File,
}

impl Journal {
    /// Opens the journal at `path` for the run identified by `key`: the records an earlier
    /// run of the same key completed, in order, or none (a journal of another key, or one
    /// that cannot be read, is replaced).
    pub fn open<R: DeserializeOwned>(path: &Path, key: &Value) -> Result<(Self, Vec<R>)> {
        let header = serde_json::to_string(&serde_json::json!({ "key": key })).map_err(|e| DataError::io(path, e.into()))?;
        let (records, complete) = fs::read(path).map(|bytes| Self::replay(&bytes, &header)).unwrap_or_default();
        if complete == 0 {
            write_text(path, &format!("{header}\n"))?;
        } else {
            // Cut a torn last line so that the next record starts on a line of its own.
            let file = OpenOptions::new().write(true).open(path).map_err(|e| DataError::io(path, e))?;
            file.set_len(complete as u64).map_err(|e| DataError::io(path, e))?;
        }
        let file = OpenOptions::new().append(true).open(path).map_err(|e| DataError::io(path, e))?;
        Ok((Self { path: path.to_owned(), file }, records))
    }

    /// The records after a matching header, and the length of the header and the lines that
    /// parsed (0 when the header does not match).
    fn replay<R: DeserializeOwned>(bytes: &[u8], header: &str) -> (Vec<R>, usize) {
        let mut lines = bytes.split_inclusive(|&b| b == b'\n');
        match lines.next() {
            Some(first) if first.strip_suffix(b"\n") == Some(header.as_bytes()) => {}
            _ => return (Vec::new(), 0),
        }
        let (mut records, mut complete) = (Vec::new(), header.len() + 1);
        for line in lines {
            let Some(record) = line.strip_suffix(b"\n").and_then(|l| serde_json::from_slice(l).ok()) else { break };
            records.push(record);
            complete += line.len();
        }
        (records, complete)
    }

    /// Appends one completed step, on disk before this returns.
    pub fn append(&mut self, record: &impl Serialize) -> Result<()> {
        let mut line = serde_json::to_vec(record).map_err(|e| DataError::io(&self.path, e.into()))?;
        line.push(b'\n');
        self.file.write_all(&line).and_then(|()| self.file.sync_data()).map_err(|e| DataError::io(&self.path, e))
    }

    /// Removes the journal of a run whose results are written.
    pub fn finish(self) -> Result<()> {
        fs::remove_file(&self.path).map_err(|e| DataError::io(&self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_resumes_after_its_last_complete_line_and_another_key_starts_over() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("progress.jsonl");
        let key = serde_json::json!({ "seed": 1 });
        let (mut journal, old) = Journal::open::<u32>(&path, &key).expect("open");
        assert!(old.is_empty());
        journal.append(&1u32).expect("append");
        journal.append(&2u32).expect("append");
        drop(journal);
        // A kill in the middle of the third line.
        OpenOptions::new().append(true).open(&path).expect("open").write_all(b"3").expect("torn");
        let (mut journal, old) = Journal::open::<u32>(&path, &key).expect("reopen");
        assert_eq!(old, [1, 2]);
        journal.append(&4u32).expect("append");
        drop(journal);
        let (journal, old) = Journal::open::<u32>(&path, &key).expect("reopen");
        assert_eq!(old, [1, 2, 4], "the torn line is gone, the next record on a line of its own");
        drop(journal);
        let (journal, old) = Journal::open::<u32>(&path, &serde_json::json!({ "seed": 2 })).expect("other key");
        assert!(old.is_empty());
        journal.finish().expect("finish");
        assert!(!path.exists());
    }
}
