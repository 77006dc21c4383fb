//! Readers for the real dataset formats. Each reader fills a [`SourceData`] with raw ids as
//! they appear in the files; [`crate::prep`] then filters and assigns dense ids.

pub mod amazon;
pub mod detect;
pub mod movielens;
pub mod recbole;
pub mod sasrec;
pub mod synthetic;

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};
use crate::tables::{Item, TimeKind, User};

/// The source formats simforge reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// MovieLens 100K (u.data, u.item, u.user) or 1M/10M (ratings.dat, movies.dat, users.dat).
    Movielens,
    /// RecBole atomic files (.inter, .item, .user) with `name:type` headers.
    Recbole,
    /// Amazon Reviews 2018 or 2023 JSONL (optionally .gz), with optional meta JSONL.
    Amazon,
    /// SASRec sequence files: `user item` per line, chronological.
    Sasrec,
    /// The seeded synthetic world with known preferences (the embedded default).
    Synthetic,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Movielens => "movielens",
            Format::Recbole => "recbole",
            Format::Amazon => "amazon",
            Format::Sasrec => "sasrec",
            Format::Synthetic => "synthetic",
        }
    }
}

/// Records keyed by their raw id, in first-seen order.
#[derive(Debug, Default)]
pub struct Catalog<T> {
    index: HashMap<String, u32>,
    pub records: Vec<T>,
}

impl<T: Default> Catalog<T> {
    /// The index of `raw_id`, adding a default record when it is new.
    pub fn intern(&mut self, raw_id: &str, make: impl FnOnce() -> T) -> u32 {
        if let Some(&i) = self.index.get(raw_id) {
            return i;
        }
        let i = self.records.len() as u32;
        self.index.insert(raw_id.to_owned(), i);
        self.records.push(make());
        i
    }

    pub fn get(&self, raw_id: &str) -> Option<u32> {
        self.index.get(raw_id).copied()
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

/// One interaction as read, with catalogue indexes instead of dense ids.
#[derive(Debug, Clone)]
pub struct RawInteraction {
    pub user: u32,
    pub item: u32,
    pub timestamp: i64,
    pub rating: Option<f32>,
    pub review: Option<String>,
}

/// Everything a reader found, before filtering.
#[derive(Debug, Default)]
pub struct SourceData {
    pub users: Catalog<User>,
    pub items: Catalog<Item>,
    pub interactions: Vec<RawInteraction>,
    /// Items listed in the source's catalogue file (or seen, where there is none).
    pub catalog_items: u64,
    pub skipped_lines: u64,
    pub time_kind: TimeKind,
    /// Every file read, for `stats.json`'s `source_sha256`.
    pub files: Vec<PathBuf>,
    /// The dataset's name (folder or file stem).
    pub name: String,
    /// Where the source logged them (the synthetic world does): for each interaction, the
    /// items shown when it was made, the chosen one among them. Empty otherwise.
    pub impressions: Vec<Vec<u32>>,
}

impl SourceData {
    pub fn user(&mut self, raw_id: &str) -> u32 {
        self.users.intern(raw_id, || User { raw_id: raw_id.to_owned(), ..User::default() })
    }

    pub fn item(&mut self, raw_id: &str) -> u32 {
        self.items.intern(raw_id, || Item { raw_id: raw_id.to_owned(), title: raw_id.to_owned(), ..Item::default() })
    }
}

/// Options every reader takes.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadOptions {
    /// Skip malformed lines (counting them) instead of stopping at the first.
    pub skip_invalid: bool,
}

/// Line-by-line reading with the error policy of `--skip-invalid`: a malformed line is an
/// error naming the file and line, or is counted and skipped.
pub struct LineReader {
    pub path: PathBuf,
    reader: Box<dyn BufRead>,
    buf: Vec<u8>,
    pub line: u64,
    skip_invalid: bool,
    pub skipped: u64,
}

impl LineReader {
    /// Opens a text file, decompressing `.gz` transparently. Missing and empty files are errors.
    pub fn open(path: &Path, options: ReadOptions) -> Result<Self> {
        let file = File::open(path).map_err(|e| DataError::io(path, e))?;
        let len = file.metadata().map_err(|e| DataError::io(path, e))?.len();
        if len == 0 {
            return Err(DataError::Empty { path: path.into() });
        }
        let raw: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") { Box::new(flate2::read::MultiGzDecoder::new(file)) } else { Box::new(file) };
        Ok(Self {
            path: path.into(),
            reader: Box::new(BufReader::with_capacity(1 << 20, raw)),
            buf: Vec::with_capacity(1024),
            line: 0,
            skip_invalid: options.skip_invalid,
            skipped: 0,
        })
    }

    /// The next line without its line ending, or `None` at the end of the file.
    pub fn next_line(&mut self) -> Result<Option<&[u8]>> {
        self.buf.clear();
        let n = self.reader.read_until(b'\n', &mut self.buf).map_err(|e| DataError::io(&self.path, e))?;
        if n == 0 {
            return Ok(None);
        }
        self.line += 1;
        while matches!(self.buf.last(), Some(b'\n' | b'\r')) {
            self.buf.pop();
        }
        Ok(Some(&self.buf))
    }

    /// Reports a malformed current line: an error, or a skip under `--skip-invalid`.
    pub fn bad(&mut self, expected: impl Into<String>, found: impl Into<String>) -> Result<()> {
        if self.skip_invalid {
            self.skipped += 1;
            return Ok(());
        }
        Err(self.error(expected, found))
    }

    pub fn error(&self, expected: impl Into<String>, found: impl Into<String>) -> DataError {
        let mut found: String = found.into();
        if found.len() > 120 {
            let cut = (0..=120).rev().find(|&i| found.is_char_boundary(i)).unwrap_or(0);
            found.truncate(cut);
            found.push('…');
        }
        DataError::Parse { path: self.path.clone(), line: self.line, expected: expected.into(), found }
    }
}

/// ISO-8859-1: every byte is the code point of the same value.
pub fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| b as char).collect()
}

/// UTF-8 where valid, else ISO-8859-1 (RecBole's MovieLens files are latin-1 in places).
pub fn text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => latin1(bytes),
    }
}

/// Splits "Toy Story (1995)" into ("Toy Story", Some(1995)); titles without a trailing
/// four-digit year in parentheses come back unchanged.
pub fn split_title_year(title: &str) -> (String, Option<u32>) {
    let t = title.trim();
    if let Some(open) = t.strip_suffix(')').and_then(|s| s.rfind('(')) {
        let inner = &t[open + 1..t.len() - 1];
        if inner.len() == 4 && inner.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(year) = inner.parse() {
                return (t[..open].trim_end().to_owned(), Some(year));
            }
        }
    }
    (t.to_owned(), None)
}

/// Earliest and latest timestamps accepted (1970 to 2100): anything else is a corrupt value.
pub const TIMESTAMP_RANGE: std::ops::RangeInclusive<i64> = 0..=4_102_444_800;

/// Parses a Unix timestamp in seconds (integer or float text) and checks its range.
pub fn parse_timestamp(field: &str) -> Option<i64> {
    let t = field.trim();
    let secs = t.parse::<i64>().ok().or_else(|| t.parse::<f64>().ok().filter(|f| f.is_finite()).map(|f| f as i64))?;
    TIMESTAMP_RANGE.contains(&secs).then_some(secs)
}

/// Parses a rating as f32, rejecting non-finite values.
pub fn parse_rating(field: &str) -> Option<f32> {
    field.trim().parse::<f32>().ok().filter(|r| r.is_finite())
}

/// The star scale of MovieLens (0.5–5 in half stars) and Amazon reviews (1–5), which every
/// rendering of a rating assumes (`rated 4/5`).
pub const STAR_SCALE: std::ops::RangeInclusive<f32> = 0.0..=5.0;

/// The scale of a source whose ratings are not stars (RecBole's collection holds 1–10 and
/// −10–10 datasets), written `LOW:HIGH`: its ratings map linearly onto 1–5 stars.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RatingScale {
    pub low: f32,
    pub high: f32,
}

impl RatingScale {
    /// `rating` in stars, or None when it lies outside the scale.
    pub fn to_stars(self, rating: f32) -> Option<f32> {
        (self.low..=self.high).contains(&rating).then(|| 1.0 + 4.0 * (rating - self.low) / (self.high - self.low))
    }
}

impl std::str::FromStr for RatingScale {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, String> {
        let bounds = text.split_once(':').map(|(low, high)| (parse_rating(low), parse_rating(high)));
        match bounds {
            Some((Some(low), Some(high))) if low < high => Ok(Self { low, high }),
            _ => Err(format!("rating scale `{text}`: expected LOW:HIGH with finite LOW < HIGH, such as 1:10")),
        }
    }
}

impl TryFrom<String> for RatingScale {
    type Error = String;

    fn try_from(text: String) -> std::result::Result<Self, String> {
        text.parse()
    }
}

impl From<RatingScale> for String {
    fn from(scale: RatingScale) -> String {
        format!("{}:{}", scale.low, scale.high)
    }
}

/// True for an id field that names something: not empty, not only spaces.
pub fn is_id(field: &str) -> bool {
    !field.trim().is_empty()
}

/// Reads a catalogue file's record into `catalog`, rejecting an id listed twice.
pub fn insert_unique<T: Default>(
    catalog: &mut Catalog<T>,
    first_lines: &mut HashMap<u32, u64>,
    reader: &LineReader,
    raw_id: &str,
    make: impl FnOnce() -> T,
) -> Result<u32> {
    if let Some(existing) = catalog.get(raw_id) {
        if let Some(&first_line) = first_lines.get(&existing) {
            return Err(DataError::DuplicateId { path: reader.path.clone(), line: reader.line, first_line, id: raw_id.into() });
        }
    }
    let index = catalog.intern(raw_id, make);
    first_lines.insert(index, reader.line);
    Ok(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn title_year_split() {
        assert_eq!(split_title_year("Toy Story (1995)"), ("Toy Story".into(), Some(1995)));
        assert_eq!(
            split_title_year("City of Lost Children, The (Cité des enfants perdus, La) (1995)"),
            ("City of Lost Children, The (Cité des enfants perdus, La)".into(), Some(1995))
        );
        assert_eq!(split_title_year("Heat"), ("Heat".into(), None));
        assert_eq!(split_title_year("Movie (abcd)"), ("Movie (abcd)".into(), None));
    }

    #[test]
    fn latin1_decodes_every_byte() {
        assert_eq!(latin1(b"Cit\xe9"), "Cité");
        assert_eq!(text(b"Cit\xc3\xa9"), "Cité");
        assert_eq!(text(b"Cit\xe9"), "Cité");
    }

    #[test]
    fn timestamps_checked() {
        assert_eq!(parse_timestamp("881250949"), Some(881250949));
        assert_eq!(parse_timestamp("881250949.0"), Some(881250949));
        assert_eq!(parse_timestamp("-5"), None);
        assert_eq!(parse_timestamp("99999999999"), None);
        assert_eq!(parse_timestamp("x"), None);
    }
}
