//! Users' item sequences for SASRec: read from a prepared dataset or a model folder's
//! `histories.parquet`, split leave-one-out, and the negatives sampled against them.

use std::path::Path;

use simforge_data::parquet_io as pq;
use simforge_data::rng::Rng;
use simforge_data::tables::Dataset;

use crate::error::{Result, TrainerError};

pub const HISTORIES_FILE: &str = "histories.parquet";

/// Every user's items in time order, as model indices (dataset item id + 1; 0 pads).
#[derive(Debug, Clone, PartialEq)]
pub struct Histories {
    pub sequences: Vec<Vec<u32>>,
    pub num_items: usize,
}

impl Histories {
    /// The interactions of a data-prep dataset folder.
    pub fn from_dataset(dir: &Path) -> Result<Self> {
        let dataset = Dataset::load(dir)?;
        let sequences = dataset.by_user().into_iter().map(|xs| xs.iter().map(|x| x.item_id + 1).collect()).collect();
        Ok(Self { sequences, num_items: dataset.items.len() })
    }

    /// `histories.parquet`: `user_id` and `items` (dataset item ids) per user.
    pub fn write(&self, path: &Path) -> Result<()> {
        let items: Vec<Vec<u32>> = self.sequences.iter().map(|s| s.iter().map(|i| i - 1).collect()).collect();
        pq::write(path, vec![("user_id", pq::u32_col(0..self.sequences.len() as u32)), ("items", pq::u32_list_col(items.iter().map(Vec::as_slice)))])?;
        Ok(())
    }

    pub fn read(path: &Path, num_items: usize) -> Result<Self> {
        let table = pq::Table::read(path)?;
        let users = table.u32s("user_id")?;
        let lists = table.u32_lists("items")?;
        let rows = users.len();
        let mut sequences = vec![Vec::new(); rows];
        for (row, (user, items)) in users.into_iter().zip(lists).enumerate() {
            if let Some(&bad) = items.iter().find(|&&i| i as usize >= num_items) {
                return Err(TrainerError::checkpoint(path, format!("row {row}: item {bad} outside the model's {num_items} items")));
            }
            let slot =
                sequences.get_mut(user as usize).ok_or_else(|| TrainerError::checkpoint(path, format!("row {row}: user {user}, expected ids below {rows}")))?;
            *slot = items.into_iter().map(|i| i + 1).collect();
        }
        Ok(Self { sequences, num_items })
    }

    /// Appends `(user, dataset item id)` pairs in order, adding users as needed; nothing is
    /// appended when any item is outside the catalogue.
    pub fn append(&mut self, interactions: &[(u32, u32)]) -> Result<()> {
        if let Some((n, (_, item))) = interactions.iter().enumerate().find(|(_, (_, item))| *item as usize >= self.num_items) {
            return Err(TrainerError::settings(
                format!("interaction {n}"),
                format!("item {item} is outside the model's catalogue of {} items", self.num_items),
            ));
        }
        for &(user, item) in interactions {
            let user = user as usize;
            if user >= self.sequences.len() {
                self.sequences.resize(user + 1, Vec::new());
            }
            self.sequences[user].push(item + 1);
        }
        Ok(())
    }
}

/// Leave-one-out: the last item is the test target, the one before it the validation target,
/// the rest trains. Users with fewer than three items only train.
#[derive(Debug, Clone)]
pub struct LeaveOneOut<'a> {
    pub train: Vec<&'a [u32]>,
    pub valid: Vec<Option<u32>>,
    pub test: Vec<Option<u32>>,
}

impl<'a> LeaveOneOut<'a> {
    pub fn new(histories: &'a Histories) -> Self {
        let mut split = Self { train: Vec::new(), valid: Vec::new(), test: Vec::new() };
        for s in &histories.sequences {
            if s.len() < 3 {
                split.train.push(s);
                split.valid.push(None);
                split.test.push(None);
            } else {
                split.train.push(&s[..s.len() - 2]);
                split.valid.push(Some(s[s.len() - 2]));
                split.test.push(Some(s[s.len() - 1]));
            }
        }
        split
    }
}

/// A uniformly random item index in 1..=num_items that is not in `seen` (sorted). Falls back
/// to any item when the user has seen them all.
pub fn sample_unseen(rng: &mut Rng, num_items: usize, seen: &[u32]) -> u32 {
    if seen.len() >= num_items {
        return 1 + rng.below(num_items) as u32;
    }
    loop {
        let item = 1 + rng.below(num_items) as u32;
        if seen.binary_search(&item).is_err() {
            return item;
        }
    }
}

/// `items` sorted and deduplicated, for [`sample_unseen`] and exclusion checks.
pub fn sorted_set(items: &[u32]) -> Vec<u32> {
    let mut set = items.to_vec();
    set.sort_unstable();
    set.dedup();
    set
}
