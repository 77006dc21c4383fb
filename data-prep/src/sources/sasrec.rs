//! SASRec sequence files: `user item` per line (ids from 1), chronological within a user.
//! There are no timestamps: an interaction's time is its position in the user's sequence.

use std::path::Path;

use super::{LineReader, RawInteraction, ReadOptions, SourceData};
use crate::error::Result;
use crate::tables::TimeKind;

pub fn read(path: &Path, options: ReadOptions) -> Result<SourceData> {
    let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let mut data = SourceData { name, time_kind: TimeKind::Sequence, ..SourceData::default() };
    let mut lines = LineReader::open(path, options)?;
    let mut positions: Vec<i64> = Vec::new();
    while let Some(bytes) = lines.next_line()? {
        if bytes.is_empty() {
            continue;
        }
        let line = super::text(bytes);
        let mut fields = line.split_ascii_whitespace();
        let (Some(u), Some(i), None) = (fields.next(), fields.next(), fields.next()) else {
            lines.bad("two whitespace-separated ids `user item`", line.as_str())?;
            continue;
        };
        if u.parse::<u64>().is_err() || i.parse::<u64>().is_err() {
            lines.bad("integer ids `user item`", line.as_str())?;
            continue;
        }
        let user = data.user(u);
        let item = data.item(i);
        if positions.len() <= user as usize {
            positions.resize(user as usize + 1, 0);
        }
        positions[user as usize] += 1;
        data.interactions.push(RawInteraction { user, item, timestamp: positions[user as usize], rating: None, review: None });
    }
    for item in &mut data.items.records {
        item.title = format!("Item {}", item.raw_id);
    }
    data.catalog_items = data.items.len() as u64;
    data.skipped_lines += lines.skipped;
    data.files.push(path.into());
    Ok(data)
}
