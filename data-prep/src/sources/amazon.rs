//! Amazon Reviews JSONL, plain or `.gz`: the 2018 release (`reviewerID, asin, overall,
//! unixReviewTime, reviewText, summary`) and the 2023 release (`user_id, parent_asin,
//! rating, timestamp` in milliseconds, `title, text`), with optional meta files
//! (`meta_*.json[l][.gz]`: title, categories, description).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{is_id, text, LineReader, RawInteraction, ReadOptions, SourceData, STAR_SCALE, TIMESTAMP_RANGE};
use crate::error::{DataError, Result};

#[derive(Deserialize)]
struct Review {
    #[serde(alias = "reviewerID")]
    user_id: Option<String>,
    asin: Option<String>,
    parent_asin: Option<String>,
    #[serde(alias = "overall")]
    rating: Option<f32>,
    #[serde(rename = "unixReviewTime")]
    unix_review_time: Option<i64>,
    /// 2023: milliseconds since 1970.
    timestamp: Option<i64>,
    #[serde(alias = "reviewText")]
    text: Option<String>,
    #[serde(alias = "summary")]
    title: Option<String>,
    /// 2018: the product format (`{"Format:": " DVD"}`), a category when there is no meta file.
    style: Option<HashMap<String, serde_json::Value>>,
}

#[derive(Deserialize)]
struct Meta {
    parent_asin: Option<String>,
    asin: Option<String>,
    title: Option<String>,
    #[serde(default, alias = "category")]
    categories: Vec<serde_json::Value>,
    main_category: Option<String>,
    #[serde(default)]
    description: serde_json::Value,
    date: Option<String>,
}

fn is_json(path: &Path) -> bool {
    let name = path.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
    let name = name.strip_suffix(".gz").unwrap_or(&name);
    name.ends_with(".json") || name.ends_with(".jsonl")
}

fn is_meta(path: &Path) -> bool {
    path.file_name().is_some_and(|n| n.to_string_lossy().starts_with("meta_"))
}

/// Review and meta files under `input` (a file or a folder).
pub fn files(input: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let all: Vec<PathBuf> = if input.is_file() {
        vec![input.to_path_buf()]
    } else {
        let mut v: Vec<PathBuf> = std::fs::read_dir(input)
            .map_err(|e| DataError::io(input, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && is_json(p))
            .collect();
        v.sort();
        v
    };
    let (meta, reviews): (Vec<_>, Vec<_>) = all.into_iter().partition(|p| is_meta(p));
    Ok((reviews, meta))
}

pub fn read(input: &Path, options: ReadOptions) -> Result<SourceData> {
    let (reviews, metas) = files(input)?;
    if reviews.is_empty() {
        return Err(DataError::invalid(input, "no Amazon review file found (expected *.json, *.jsonl or their .gz)"));
    }
    let name = reviews[0].file_name().map(|n| n.to_string_lossy().split('.').next().unwrap_or_default().to_owned()).unwrap_or_default();
    let mut data = SourceData { name, ..SourceData::default() };
    for path in &metas {
        read_meta(&mut data, path, options)?;
    }
    for path in &reviews {
        read_reviews(&mut data, path, options)?;
    }
    if metas.is_empty() {
        data.catalog_items = data.items.len() as u64;
    }
    Ok(data)
}

fn read_reviews(data: &mut SourceData, path: &Path, options: ReadOptions) -> Result<()> {
    let mut lines = LineReader::open(path, options)?;
    while let Some(line) = lines.next_line()? {
        let bytes = &line.to_vec();
        if bytes.iter().all(u8::is_ascii_whitespace) {
            // JSONL has one record per line: a blank line is where a record was lost.
            lines.bad("a JSON review record", "an empty line")?;
            continue;
        }
        let review: Review = match serde_json::from_slice(bytes) {
            Ok(r) => r,
            Err(e) => {
                let found = format!("{e} in {}", text(bytes));
                lines.bad("a complete JSON review record", found)?;
                continue;
            }
        };
        let Some(user_id) = review.user_id.as_deref().filter(|u| is_id(u)) else {
            lines.bad("a `reviewerID` (2018) or `user_id` (2023) field", text(bytes))?;
            continue;
        };
        let Some(asin) = review.parent_asin.as_deref().filter(|a| is_id(a)).or(review.asin.as_deref().filter(|a| is_id(a))) else {
            lines.bad("an `asin` or `parent_asin` field", text(bytes))?;
            continue;
        };
        if review.rating.is_some_and(|r| !STAR_SCALE.contains(&r)) {
            lines.bad("an `overall` (2018) or `rating` (2023) between 0 and 5 stars", text(bytes))?;
            continue;
        }
        let timestamp = match (review.unix_review_time, review.timestamp) {
            (Some(t), _) => Some(t),
            (None, Some(ms)) => Some(ms / 1000),
            (None, None) => None,
        };
        let Some(timestamp) = timestamp.filter(|t| TIMESTAMP_RANGE.contains(t)) else {
            lines.bad("a `unixReviewTime` (seconds) or `timestamp` (milliseconds) between 1970 and 2100", text(bytes))?;
            continue;
        };
        let user = data.user(user_id);
        let known = data.items.get(asin).is_some();
        let item = data.item(asin);
        if !known {
            if let Some(style) = &review.style {
                let record = &mut data.items.records[item as usize];
                record.categories = style.values().filter_map(|v| v.as_str()).map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect();
            }
        }
        let review_text = match (review.title.as_deref(), review.text.as_deref()) {
            (Some(t), Some(x)) if !t.is_empty() => Some(format!("{t}. {x}")),
            (_, Some(x)) => Some(x.to_owned()),
            (t, None) => t.map(str::to_owned),
        };
        data.interactions.push(RawInteraction { user, item, timestamp, rating: review.rating, review: review_text });
    }
    data.skipped_lines += lines.skipped;
    data.files.push(path.into());
    Ok(())
}

fn read_meta(data: &mut SourceData, path: &Path, options: ReadOptions) -> Result<()> {
    let mut lines = LineReader::open(path, options)?;
    while let Some(line) = lines.next_line()? {
        let bytes = &line.to_vec();
        if bytes.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let meta: Meta = match serde_json::from_slice(bytes) {
            Ok(m) => m,
            Err(e) => {
                lines.bad("a complete JSON meta record", format!("{e} in {}", text(bytes)))?;
                continue;
            }
        };
        let Some(asin) = meta.parent_asin.as_deref().or(meta.asin.as_deref()) else {
            lines.bad("an `asin` or `parent_asin` field", text(bytes))?;
            continue;
        };
        let item = data.item(asin);
        let record = &mut data.items.records[item as usize];
        if let Some(title) = meta.title.filter(|t| !t.trim().is_empty()) {
            record.title = title.trim().to_owned();
        }
        let mut categories: Vec<String> = meta.categories.iter().filter_map(|c| c.as_str()).map(str::to_owned).collect();
        if categories.is_empty() {
            categories.extend(meta.main_category);
        }
        record.categories = categories;
        record.description = match meta.description {
            serde_json::Value::String(s) => Some(s),
            serde_json::Value::Array(parts) => Some(parts.iter().filter_map(|p| p.as_str()).collect::<Vec<_>>().join(" ")).filter(|s| !s.is_empty()),
            _ => None,
        };
        record.year = meta.date.as_deref().and_then(|d| d.rsplit([' ', '-', ',']).find_map(|p| p.parse::<u32>().ok().filter(|y| *y > 1800)));
    }
    data.catalog_items = data.items.len() as u64;
    data.skipped_lines += lines.skipped;
    data.files.push(path.into());
    Ok(())
}
