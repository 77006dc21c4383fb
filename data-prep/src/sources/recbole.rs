//! RecBole atomic files: `NAME.inter`, `NAME.item`, `NAME.user`, tab separated, with a header
//! of `field:type` (token, token_seq, float, float_seq). This opens every dataset RecBole
//! publishes; the column names below cover its collection.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{
    insert_unique, is_id, parse_rating, parse_timestamp, split_title_year, text, LineReader, RatingScale, RawInteraction, ReadOptions, SourceData, STAR_SCALE,
};
use crate::error::{DataError, Result};
use crate::tables::{Item, TimeKind, User};

const TITLE: &[&str] = &["movie_title", "title", "item_name", "name"];
const YEAR: &[&str] = &["release_year", "year"];
const CATEGORIES: &[&str] = &["class", "genre", "genres", "categories", "category"];
const DESCRIPTION: &[&str] = &["description", "desc"];
const RATING: &[&str] = &["rating", "score", "overall"];
const REVIEW: &[&str] = &["review", "review_text", "text"];

/// The atomic files of one dataset: `.inter` is required, `.item` and `.user` optional.
pub fn files(input: &Path) -> Option<(PathBuf, Option<PathBuf>, Option<PathBuf>)> {
    let inter = if input.is_file() {
        input.to_path_buf()
    } else {
        std::fs::read_dir(input).ok()?.filter_map(|e| e.ok().map(|e| e.path())).find(|p| p.extension().is_some_and(|e| e == "inter"))?
    };
    let sibling = |ext: &str| Some(inter.with_extension(ext)).filter(|p| p.is_file());
    Some((inter.clone(), sibling("item"), sibling("user")))
}

/// The header of an atomic file: field name → column index.
struct Header {
    columns: HashMap<String, usize>,
    len: usize,
}

impl Header {
    fn read(lines: &mut LineReader) -> Result<Self> {
        let Some(bytes) = lines.next_line()? else {
            return Err(DataError::Empty { path: lines.path.clone() });
        };
        let line = text(bytes);
        let mut columns = HashMap::new();
        for (i, field) in line.split('\t').enumerate() {
            let Some((name, kind)) = field.split_once(':') else {
                return Err(lines.error("a RecBole header of `name:type` fields", field));
            };
            if !matches!(kind, "token" | "token_seq" | "float" | "float_seq") {
                return Err(lines.error("a field type of token, token_seq, float or float_seq", field));
            }
            columns.insert(name.to_owned(), i);
        }
        Ok(Self { len: columns.len(), columns })
    }

    fn find(&self, names: &[&str]) -> Option<usize> {
        names.iter().find_map(|n| self.columns.get(*n).copied())
    }

    fn require(&self, name: &str, path: &Path) -> Result<usize> {
        self.columns.get(name).copied().ok_or_else(|| DataError::MissingColumn { path: path.into(), column: name.into() })
    }
}

/// Ratings must be stars (0–5) unless `scale` says what they are; then they map onto 1–5.
pub fn read(input: &Path, options: ReadOptions, scale: Option<RatingScale>) -> Result<SourceData> {
    let (inter, item, user) =
        files(input).ok_or_else(|| DataError::invalid(input, "no RecBole `.inter` file found (expected NAME.inter with a `field:type` header)"))?;
    let name = inter.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let mut data = SourceData { name, ..SourceData::default() };
    if let Some(path) = item {
        read_items(&mut data, &path, options)?;
    }
    if let Some(path) = user {
        read_users(&mut data, &path, options)?;
    }
    read_inter(&mut data, &inter, options, scale)?;
    Ok(data)
}

/// Splits a `token_seq` value: RecBole separates tokens with spaces; Amazon-style category
/// lists written as `'A', 'B'` use commas.
fn token_seq(value: &str) -> Vec<String> {
    let parts: Vec<&str> = if value.contains(',') { value.split(',').collect() } else { value.split_whitespace().collect() };
    parts.into_iter().map(|p| p.trim().trim_matches(|c| c == '\'' || c == '"' || c == '[' || c == ']').to_owned()).filter(|p| !p.is_empty()).collect()
}

fn fields(line: &str) -> Vec<&str> {
    line.split('\t').collect()
}

fn read_items(data: &mut SourceData, path: &Path, options: ReadOptions) -> Result<()> {
    let mut lines = LineReader::open(path, options)?;
    let header = Header::read(&mut lines)?;
    let id = header.require("item_id", path)?;
    let (title, year, cats, desc) = (header.find(TITLE), header.find(YEAR), header.find(CATEGORIES), header.find(DESCRIPTION));
    let mut first_lines = HashMap::new();
    while let Some(bytes) = lines.next_line()? {
        let line = text(bytes);
        if line.is_empty() {
            continue;
        }
        let f = fields(&line);
        if f.len() != header.len {
            lines.bad(format!("{} tab-separated fields as in the header", header.len), line.as_str())?;
            continue;
        }
        let raw_id = f[id];
        let (name, title_year) = title.map(|c| split_title_year(f[c])).unwrap_or_else(|| (raw_id.to_owned(), None));
        let year = year.and_then(|c| f[c].trim().parse().ok()).or(title_year);
        let item = Item {
            raw_id: raw_id.to_owned(),
            title: if name.is_empty() { raw_id.to_owned() } else { name },
            year,
            categories: cats.map(|c| token_seq(f[c])).unwrap_or_default(),
            description: desc.map(|c| f[c].to_owned()).filter(|d| !d.is_empty()),
            popularity: 0,
        };
        insert_unique(&mut data.items, &mut first_lines, &lines, raw_id, || item)?;
    }
    data.catalog_items = data.items.len() as u64;
    data.skipped_lines += lines.skipped;
    data.files.push(path.into());
    Ok(())
}

fn read_users(data: &mut SourceData, path: &Path, options: ReadOptions) -> Result<()> {
    let mut lines = LineReader::open(path, options)?;
    let header = Header::read(&mut lines)?;
    let id = header.require("user_id", path)?;
    let (age, gender, occupation, location) =
        (header.find(&["age"]), header.find(&["gender"]), header.find(&["occupation"]), header.find(&["zip_code", "location"]));
    let mut first_lines = HashMap::new();
    while let Some(bytes) = lines.next_line()? {
        let line = text(bytes);
        if line.is_empty() {
            continue;
        }
        let f = fields(&line);
        if f.len() != header.len {
            lines.bad(format!("{} tab-separated fields as in the header", header.len), line.as_str())?;
            continue;
        }
        let get = |c: Option<usize>| c.map(|c| f[c].to_owned()).filter(|v| !v.is_empty());
        let user = User {
            raw_id: f[id].to_owned(),
            age: age.and_then(|c| f[c].trim().parse().ok()),
            gender: get(gender),
            occupation: get(occupation),
            location: get(location),
        };
        insert_unique(&mut data.users, &mut first_lines, &lines, f[id], || user)?;
    }
    data.skipped_lines += lines.skipped;
    data.files.push(path.into());
    Ok(())
}

fn read_inter(data: &mut SourceData, path: &Path, options: ReadOptions, scale: Option<RatingScale>) -> Result<()> {
    let mut lines = LineReader::open(path, options)?;
    let header = Header::read(&mut lines)?;
    let user_col = header.require("user_id", path)?;
    let item_col = header.require("item_id", path)?;
    let (rating_col, review_col, time_col) = (header.find(RATING), header.find(REVIEW), header.find(&["timestamp"]));
    if time_col.is_none() {
        data.time_kind = TimeKind::Sequence;
    }
    let mut position = 0i64;
    while let Some(bytes) = lines.next_line()? {
        let line = text(bytes);
        if line.is_empty() {
            continue;
        }
        let f = fields(&line);
        if f.len() != header.len {
            lines.bad(format!("{} tab-separated fields as in the header", header.len), line.as_str())?;
            continue;
        }
        let rating = match rating_col {
            Some(c) => match (parse_rating(f[c]), scale) {
                (Some(r), None) if STAR_SCALE.contains(&r) => Some(r),
                (Some(r), Some(scale)) if scale.to_stars(r).is_some() => scale.to_stars(r),
                (_, None) => {
                    lines.bad("a rating between 0 and 5 stars (give --rating-scale LOW:HIGH for another scale)", line.as_str())?;
                    continue;
                }
                (_, Some(scale)) => {
                    lines.bad(format!("a rating between {} and {} (--rating-scale)", scale.low, scale.high), line.as_str())?;
                    continue;
                }
            },
            None => None,
        };
        let timestamp = match time_col {
            Some(c) => match parse_timestamp(f[c]) {
                Some(t) => t,
                None => {
                    lines.bad("a Unix timestamp between 1970 and 2100", line.as_str())?;
                    continue;
                }
            },
            None => {
                position += 1;
                position
            }
        };
        if !is_id(f[user_col]) || !is_id(f[item_col]) {
            lines.bad("a user id and an item id", line.as_str())?;
            continue;
        }
        let user = data.user(f[user_col]);
        let item = data.item(f[item_col]);
        let review = review_col.map(|c| f[c].to_owned()).filter(|r| !r.is_empty());
        data.interactions.push(RawInteraction { user, item, timestamp, rating, review });
    }
    if data.catalog_items == 0 {
        data.catalog_items = data.items.len() as u64;
    }
    data.skipped_lines += lines.skipped;
    data.files.push(path.into());
    Ok(())
}
