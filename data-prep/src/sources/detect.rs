//! Format detection from the files themselves. A folder or file that matches no format is
//! an error naming what was expected, never a silent guess.

use std::io::{BufRead, BufReader};
use std::path::Path;

use super::{amazon, movielens, recbole, Format};
use crate::error::{DataError, Result};

pub fn detect(input: &Path) -> Result<Format> {
    if !input.exists() {
        return Err(DataError::io(input, std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or folder")));
    }
    if input.is_dir() && movielens::layout(input).is_some() {
        return Ok(Format::Movielens);
    }
    if recbole::files(input).is_some() && (input.is_dir() || input.extension().is_some_and(|e| e == "inter")) {
        return Ok(Format::Recbole);
    }
    if let Ok((reviews, _)) = amazon::files(input) {
        if let Some(first) = reviews.first() {
            if first_line(first)?.trim_start().starts_with('{') {
                return Ok(Format::Amazon);
            }
        }
    }
    if input.is_file() {
        let line = first_line(input)?;
        let fields: Vec<&str> = line.split_ascii_whitespace().collect();
        if fields.len() == 2 && fields.iter().all(|f| f.parse::<u64>().is_ok()) {
            return Ok(Format::Sasrec);
        }
    }
    Err(DataError::invalid(
        input,
        "cannot detect the dataset format: expected a MovieLens folder (u.data or ratings.dat), RecBole atomic files \
         (NAME.inter), Amazon review JSONL, or a SASRec `user item` file; pass --format to say which",
    ))
}

fn first_line(path: &Path) -> Result<String> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut reader: Box<dyn BufRead> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(file)))
    } else {
        Box::new(BufReader::new(file))
    };
    let mut buf = Vec::new();
    let _ = reader.read_until(b'\n', &mut buf);
    Ok(super::text(&buf))
}

/// A dataset's name: its folder's name, or the file's stem.
pub fn dataset_name(input: &Path) -> String {
    let path = if input.is_dir() { input } else { input.parent().unwrap_or(input) };
    path.canonicalize().ok().and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned())).unwrap_or_else(|| "dataset".into())
}
