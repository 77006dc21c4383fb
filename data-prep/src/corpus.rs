//! `simforge corpus`: the domain-adaptive pre-training corpus, simulated interaction
//! transcripts as text, one document per row.

use std::fmt::Write as _;
use std::path::Path;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::parquet_io as pq;
use crate::profiles::{ProfileContext, ProfilesConfig};
use crate::scenes::render_item;
use crate::tables::{Dataset, TimeKind};

pub const CORPUS_FILE: &str = "corpus.parquet";

/// `simforge corpus` options (a recipe's `[corpus]`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CorpusConfig {
    /// Interactions per document; longer histories continue in further documents.
    pub events_per_doc: usize,
}

impl Default for CorpusConfig {
    fn default() -> Self {
        Self { events_per_doc: 40 }
    }
}

/// "2000-12-31" for Unix seconds (proleptic Gregorian, UTC).
pub fn date(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

pub fn corpus(data_dir: &Path, out: &Path, config: &CorpusConfig) -> Result<usize> {
    let dataset = Dataset::load(data_dir)?;
    let context = ProfileContext::new(&dataset, ProfilesConfig::default());
    let per_doc = config.events_per_doc.max(1);
    let docs: Vec<(u32, String)> = dataset
        .by_user()
        .par_iter()
        .enumerate()
        .flat_map_iter(|(u, history)| {
            let summary = context.build(&dataset.users[u], history).summary();
            let dataset = &dataset;
            history.chunks(per_doc).map(move |chunk| {
                let mut text = format!("{summary}\n");
                for x in chunk {
                    let when = match dataset.stats.time_kind {
                        TimeKind::Unix => format!("On {}", date(x.timestamp)),
                        TimeKind::Sequence => format!("At step {}", x.timestamp),
                    };
                    let _ = write!(text, "{when}, the user chose {}", render_item(&dataset.items[x.item_id as usize]));
                    if let Some(r) = x.rating {
                        let _ = write!(text, " and rated it {r}/5");
                    }
                    if let Some(review) = &x.review {
                        let short: String = review.chars().take(200).collect();
                        let _ = write!(text, ", writing: \"{}\"", short.replace('\n', " "));
                    }
                    text.push_str(".\n");
                }
                (u as u32, text)
            })
        })
        .collect();
    pq::write(
        &out.join(CORPUS_FILE),
        vec![
            ("doc_id", pq::u32_col(0..docs.len() as u32)),
            ("user_id", pq::u32_col(docs.iter().map(|d| d.0))),
            ("text", pq::str_col(docs.iter().map(|d| &d.1))),
        ],
    )?;
    Ok(docs.len())
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates() {
        assert_eq!(super::date(0), "1970-01-01");
        assert_eq!(super::date(978_300_760), "2000-12-31");
        assert_eq!(super::date(951_782_400), "2000-02-29");
    }
}
