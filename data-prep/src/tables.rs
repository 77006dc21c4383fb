//! The canonical tables (METHODS.md section 1): users, items and interactions with dense ids,
//! and `stats.json`. Every later stage reads a dataset through [`Dataset::load`].

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::fsutil::{read_json, write_json};
use crate::parquet_io::{self as pq, Table};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct User {
    pub raw_id: String,
    pub age: Option<u32>,
    pub gender: Option<String>,
    pub occupation: Option<String>,
    pub location: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Item {
    pub raw_id: String,
    pub title: String,
    pub year: Option<u32>,
    pub categories: Vec<String>,
    pub description: Option<String>,
    /// Interactions with this item in the written table.
    pub popularity: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Interaction {
    pub user_id: u32,
    pub item_id: u32,
    /// Unix seconds; for sources without time (SASRec sequences) the position in the sequence.
    pub timestamp: i64,
    pub rating: Option<f32>,
    pub review: Option<String>,
}

/// Which part of a table a row belongs to: what models train on, or the held-out rows they
/// are measured on (scenes, defect samples, chat records).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Eval,
}

impl Split {
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Eval => "eval",
        }
    }
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Split {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "train" => Ok(Split::Train),
            "eval" => Ok(Split::Eval),
            other => Err(format!("unknown split {other:?}: expected train or eval")),
        }
    }
}

/// What the timestamps of a dataset mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TimeKind {
    /// Seconds since 1970; comparable across users.
    #[default]
    Unix,
    /// Positions within each user's sequence; comparable within a user only.
    Sequence,
}

/// `stats.json`: what a prepared dataset holds and what it was built from.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct Stats {
    pub dataset: String,
    pub format: String,
    pub users: u64,
    pub items: u64,
    pub interactions: u64,
    pub ratings_present: u64,
    pub reviews_present: u64,
    pub catalog_items: u64,
    pub skipped_lines: u64,
    pub time_kind: TimeKind,
    /// File name → sha256 of every input file read.
    pub source_sha256: BTreeMap<String, String>,
    pub min_user_interactions: u32,
    pub min_item_interactions: u32,
}

/// A prepared dataset: the three tables, sorted and with dense ids.
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    pub users: Vec<User>,
    pub items: Vec<Item>,
    /// Sorted by (user_id, timestamp, source order).
    pub interactions: Vec<Interaction>,
    /// For each interaction, the exposure list it was chosen from (the chosen item among the
    /// shown ones), where the source logged it (the synthetic world; `impressions.parquet`).
    pub impressions: Option<Vec<Vec<u32>>>,
    pub stats: Stats,
}

pub const USERS_FILE: &str = "users.parquet";
pub const ITEMS_FILE: &str = "items.parquet";
pub const INTERACTIONS_FILE: &str = "interactions.parquet";
pub const STATS_FILE: &str = "stats.json";
pub const IMPRESSIONS_FILE: &str = "impressions.parquet";

impl Dataset {
    pub fn write(&self, dir: &Path) -> Result<()> {
        let users = &self.users;
        pq::write(
            &dir.join(USERS_FILE),
            vec![
                ("user_id", pq::u32_col(0..users.len() as u32)),
                ("raw_id", pq::str_col(users.iter().map(|u| &u.raw_id))),
                ("age", pq::opt_u32_col(users.iter().map(|u| u.age))),
                ("gender", pq::opt_str_col(users.iter().map(|u| u.gender.as_deref()))),
                ("occupation", pq::opt_str_col(users.iter().map(|u| u.occupation.as_deref()))),
                ("location", pq::opt_str_col(users.iter().map(|u| u.location.as_deref()))),
            ],
        )?;
        let items = &self.items;
        pq::write(
            &dir.join(ITEMS_FILE),
            vec![
                ("item_id", pq::u32_col(0..items.len() as u32)),
                ("raw_id", pq::str_col(items.iter().map(|i| &i.raw_id))),
                ("title", pq::str_col(items.iter().map(|i| &i.title))),
                ("year", pq::opt_u32_col(items.iter().map(|i| i.year))),
                ("categories", pq::str_list_col(items.iter().map(|i| i.categories.as_slice()))),
                ("description", pq::opt_str_col(items.iter().map(|i| i.description.as_deref()))),
                ("popularity", pq::u32_col(items.iter().map(|i| i.popularity))),
            ],
        )?;
        let inter = &self.interactions;
        pq::write(
            &dir.join(INTERACTIONS_FILE),
            vec![
                ("user_id", pq::u32_col(inter.iter().map(|x| x.user_id))),
                ("item_id", pq::u32_col(inter.iter().map(|x| x.item_id))),
                ("timestamp", pq::i64_col(inter.iter().map(|x| x.timestamp))),
                ("rating", pq::opt_f32_col(inter.iter().map(|x| x.rating))),
                ("review", pq::opt_str_col(inter.iter().map(|x| x.review.as_deref()))),
            ],
        )?;
        if let Some(shown) = &self.impressions {
            pq::write(
                &dir.join(IMPRESSIONS_FILE),
                vec![
                    ("user_id", pq::u32_col(inter.iter().map(|x| x.user_id))),
                    ("timestamp", pq::i64_col(inter.iter().map(|x| x.timestamp))),
                    ("item_id", pq::u32_col(inter.iter().map(|x| x.item_id))),
                    ("shown", pq::u32_list_col(shown.iter().map(Vec::as_slice))),
                ],
            )?;
        }
        write_json(&dir.join(STATS_FILE), &self.stats)
    }

    pub fn load(dir: &Path) -> Result<Self> {
        let stats: Stats = read_json(&dir.join(STATS_FILE))?;
        let t = Table::read(&dir.join(USERS_FILE))?;
        let users = zip5(t.strings("raw_id")?, t.opt_u32s("age")?, t.opt_strings("gender")?, t.opt_strings("occupation")?, t.opt_strings("location")?)
            .map(|(raw_id, age, gender, occupation, location)| User { raw_id, age, gender, occupation, location })
            .collect();
        let t = Table::read(&dir.join(ITEMS_FILE))?;
        let (raw, title, year, cats, desc, pop) = (
            t.strings("raw_id")?,
            t.strings("title")?,
            t.opt_u32s("year")?,
            t.string_lists("categories")?,
            t.opt_strings("description")?,
            t.u32s("popularity")?,
        );
        let items = raw
            .into_iter()
            .zip(title)
            .zip(year)
            .zip(cats)
            .zip(desc)
            .zip(pop)
            .map(|(((((raw_id, title), year), categories), description), popularity)| Item { raw_id, title, year, categories, description, popularity })
            .collect();
        let t = Table::read(&dir.join(INTERACTIONS_FILE))?;
        let interactions: Vec<Interaction> = t
            .u32s("user_id")?
            .into_iter()
            .zip(t.u32s("item_id")?)
            .zip(t.i64s("timestamp")?)
            .zip(t.opt_f32s("rating")?)
            .zip(t.opt_strings("review")?)
            .map(|((((user_id, item_id), timestamp), rating), review)| Interaction { user_id, item_id, timestamp, rating, review })
            .collect();
        let path = dir.join(IMPRESSIONS_FILE);
        let impressions = if path.is_file() {
            let shown = Table::read(&path)?.u32_lists("shown")?;
            if shown.len() != interactions.len() {
                return Err(crate::DataError::invalid(&path, format!("{} exposure lists for {} interactions", shown.len(), interactions.len())));
            }
            Some(shown)
        } else {
            None
        };
        let dataset = Self { users, items, interactions, impressions, stats };
        // Checked before sorting, so an error names the record's row in the file.
        dataset.check(dir)?;
        let (interactions, impressions) = sorted_by_user_and_time(dataset.interactions, dataset.impressions);
        Ok(Self { interactions, impressions, ..dataset })
    }

    /// Ids in the interactions must point into the user and item tables.
    fn check(&self, dir: &Path) -> Result<()> {
        let (nu, ni) = (self.users.len() as u32, self.items.len() as u32);
        if let Some((row, _)) = self
            .impressions
            .iter()
            .flatten()
            .enumerate()
            .find(|(row, shown)| shown.iter().any(|&i| i >= ni) || !shown.contains(&self.interactions[*row].item_id))
        {
            return Err(crate::DataError::invalid(
                dir.join(IMPRESSIONS_FILE),
                format!("record {row}: an exposure list outside the items table, or without the chosen item"),
            ));
        }
        if let Some((row, x)) = self.interactions.iter().enumerate().find(|(_, x)| x.user_id >= nu || x.item_id >= ni) {
            return Err(crate::DataError::invalid(
                dir.join(INTERACTIONS_FILE),
                format!("record {row}: user {} / item {} outside the tables ({nu} users, {ni} items)", x.user_id, x.item_id),
            ));
        }
        Ok(())
    }

    /// Each user's interactions as a contiguous slice, indexed by user id.
    pub fn by_user(&self) -> Vec<&[Interaction]> {
        let mut out = vec![&self.interactions[..0]; self.users.len()];
        let mut start = 0;
        while start < self.interactions.len() {
            let user = self.interactions[start].user_id;
            let end = start + self.interactions[start..].partition_point(|x| x.user_id == user);
            out[user as usize] = &self.interactions[start..end];
            start = end;
        }
        out
    }
}

/// Interactions (with their exposure lists, where logged) in the order every stage reads them:
/// each user's as one time-ordered run (`by_user`), equal timestamps in their given order.
/// `prep` sorts with it; a table another tool wrote may need it on reading.
pub(crate) fn sorted_by_user_and_time(interactions: Vec<Interaction>, impressions: Option<Vec<Vec<u32>>>) -> (Vec<Interaction>, Option<Vec<Vec<u32>>>) {
    let key = |x: &Interaction| (x.user_id, x.timestamp);
    if interactions.windows(2).all(|w| key(&w[0]) <= key(&w[1])) {
        return (interactions, impressions);
    }
    let logged = impressions.is_some();
    let mut rows: Vec<(Interaction, Vec<u32>)> =
        interactions.into_iter().zip(impressions.into_iter().flatten().chain(std::iter::repeat_with(Vec::new))).collect();
    rows.sort_by_key(|(x, _)| key(x));
    let (interactions, shown): (Vec<Interaction>, Vec<Vec<u32>>) = rows.into_iter().unzip();
    (interactions, logged.then_some(shown))
}

fn zip5<A, B, C, D, E>(a: Vec<A>, b: Vec<B>, c: Vec<C>, d: Vec<D>, e: Vec<E>) -> impl Iterator<Item = (A, B, C, D, E)> {
    a.into_iter().zip(b).zip(c).zip(d).zip(e).map(|((((a, b), c), d), e)| (a, b, c, d, e))
}
