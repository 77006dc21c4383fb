//! Statistical user profiles (`simforge profiles`): liked and disliked categories from
//! ratings (or, without ratings, from how often a user picks a category compared with
//! everyone), favourite eras, popularity taste and demographics; plus a leakage-safe summary
//! that names no title. Scenes use the same builder for their profile section.

use std::collections::HashMap;
use std::path::Path;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::parquet_io as pq;
use crate::prep::read_truth;
use crate::profile::Profile;
use crate::split::{read_split, Part};
use crate::tables::{Dataset, Interaction, Item, User};

pub const PROFILES_FILE: &str = "profiles.parquet";

/// `simforge profiles` options (a recipe's `[profiles]`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ProfilesConfig {
    /// Most liked categories stated in a profile.
    pub max_likes: usize,
    /// Most disliked categories stated in a profile.
    pub max_dislikes: usize,
}

impl Default for ProfilesConfig {
    fn default() -> Self {
        Self { max_likes: 3, max_dislikes: 2 }
    }
}

/// Dataset-wide facts a profile is measured against, computed once.
pub struct ProfileContext<'a> {
    items: &'a [Item],
    categories: Vec<String>,
    item_categories: Vec<Vec<u32>>,
    global_share: Vec<f64>,
    popularity_percentile: Vec<f32>,
    config: ProfilesConfig,
}

impl<'a> ProfileContext<'a> {
    pub fn new(dataset: &'a Dataset, config: ProfilesConfig) -> Self {
        let mut index: HashMap<&str, u32> = HashMap::new();
        let mut categories = Vec::new();
        let item_categories: Vec<Vec<u32>> = dataset
            .items
            .iter()
            .map(|item| {
                item.categories
                    .iter()
                    .map(|c| {
                        *index.entry(c.as_str()).or_insert_with(|| {
                            categories.push(c.clone());
                            categories.len() as u32 - 1
                        })
                    })
                    .collect()
            })
            .collect();
        let mut counts = vec![0f64; categories.len()];
        for x in &dataset.interactions {
            for &c in &item_categories[x.item_id as usize] {
                counts[c as usize] += 1.0;
            }
        }
        let total = dataset.interactions.len().max(1) as f64;
        let global_share = counts.iter().map(|c| c / total).collect();
        let mut order: Vec<usize> = (0..dataset.items.len()).collect();
        order.sort_by_key(|&i| dataset.items[i].popularity);
        let mut popularity_percentile = vec![0f32; dataset.items.len()];
        let denominator = dataset.items.len().saturating_sub(1).max(1) as f32;
        for (rank, &i) in order.iter().enumerate() {
            popularity_percentile[i] = rank as f32 / denominator;
        }
        Self { items: &dataset.items, categories, item_categories, global_share, popularity_percentile, config }
    }

    /// The profile of `user` from the interactions given (typically those before some time).
    pub fn build(&self, user: &User, history: &[Interaction]) -> Profile {
        let mut per_category: HashMap<u32, (f64, f64, f64)> = HashMap::new(); // count, rated count, rating sum
        let (mut rated, mut rating_sum) = (0f64, 0f64);
        let mut decades: HashMap<u32, u32> = HashMap::new();
        let mut percentiles = Vec::with_capacity(history.len());
        for x in history {
            let entry_rating = x.rating.map(f64::from);
            if let Some(r) = entry_rating {
                rated += 1.0;
                rating_sum += r;
            }
            for &c in &self.item_categories[x.item_id as usize] {
                let e = per_category.entry(c).or_default();
                e.0 += 1.0;
                if let Some(r) = entry_rating {
                    e.1 += 1.0;
                    e.2 += r;
                }
            }
            if let Some(y) = self.items[x.item_id as usize].year {
                *decades.entry(y / 10 * 10).or_default() += 1;
            }
            percentiles.push(self.popularity_percentile[x.item_id as usize]);
        }
        let n = history.len().max(1) as f64;
        let mean = (rated > 0.0).then(|| rating_sum / rated);
        let mut likes: Vec<(u32, f64)> = Vec::new();
        let mut dislikes: Vec<(u32, f64)> = Vec::new();
        for (&c, &(count, rated_count, sum)) in &per_category {
            let lift = (count / n) / self.global_share[c as usize].max(1e-9);
            match mean {
                Some(user_mean) if rated_count >= 2.0 => {
                    let cat_mean = sum / rated_count;
                    if cat_mean >= user_mean + 0.2 || (cat_mean >= 4.0 && lift > 1.0) {
                        likes.push((c, (cat_mean - user_mean) * count.sqrt() + lift));
                    } else if cat_mean <= (user_mean - 0.4).min(3.0) {
                        dislikes.push((c, (user_mean - cat_mean) * count.sqrt()));
                    }
                }
                None if count >= 2.0 && lift > 1.3 => likes.push((c, lift * count.sqrt())),
                _ => {}
            }
        }
        if history.len() >= 10 {
            // People rarely rate what they avoid, so a popular category the user all but
            // never picks is a dislike too (the only evidence where there are no ratings).
            for (c, &share) in self.global_share.iter().enumerate() {
                let user_share = per_category.get(&(c as u32)).map_or(0.0, |e| e.0 / n);
                if share >= 0.05 && user_share < 0.25 * share && !dislikes.iter().any(|d| d.0 == c as u32) {
                    dislikes.push((c as u32, share * (1.0 - user_share / share)));
                }
            }
        }
        let ranked = |mut v: Vec<(u32, f64)>, k: usize| -> Vec<String> {
            v.sort_by(|a, b| b.1.total_cmp(&a.1).then(self.categories[a.0 as usize].cmp(&self.categories[b.0 as usize])));
            v.into_iter().take(k).map(|(c, _)| self.categories[c as usize].clone()).collect()
        };
        let mut eras: Vec<(u32, u32)> = decades.into_iter().filter(|(_, c)| f64::from(*c) >= 0.3 * n).collect();
        eras.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        percentiles.sort_by(f32::total_cmp);
        let taste = percentiles.get(percentiles.len() / 2).map(|&median| {
            if median >= 0.75 {
                "mainstream (mostly popular titles)"
            } else if median <= 0.4 {
                "niche (seeks out lesser-known titles)"
            } else {
                "mixed (popular and lesser-known titles)"
            }
            .to_owned()
        });
        Profile {
            demographics: demographics(user),
            likes: ranked(likes, self.config.max_likes),
            dislikes: ranked(dislikes, self.config.max_dislikes),
            eras: eras.into_iter().take(2).map(|(d, _)| format!("{d}s")).collect(),
            taste,
            mean_rating: mean.map(|m| m as f32),
        }
    }
}

/// "24-year-old male, technician" from whatever attributes the source has.
pub fn demographics(user: &User) -> Option<String> {
    let gender = user.gender.as_deref().map(|g| match g {
        "M" | "m" => "male",
        "F" | "f" => "female",
        other => other,
    });
    let mut parts = Vec::new();
    match (user.age, gender) {
        (Some(a), Some(g)) => parts.push(format!("{a}-year-old {g}")),
        (Some(a), None) => parts.push(format!("{a} years old")),
        (None, Some(g)) => parts.push(g.to_owned()),
        (None, None) => {}
    }
    parts.extend(user.occupation.clone());
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// Builds every user's profile from their D_ini part and writes `profiles.parquet`.
pub fn profiles(data_dir: &Path, split_dir: &Path, out: &Path, config: &ProfilesConfig) -> Result<usize> {
    let dataset = Dataset::load(data_dir)?;
    let split = read_split(split_dir, &dataset)?;
    let context = ProfileContext::new(&dataset, config.clone());
    let truth = read_truth(data_dir)?;
    let by_user = dataset.by_user();
    let rows: Vec<(u32, Profile)> = (0..dataset.users.len())
        .into_par_iter()
        .filter_map(|u| {
            let parts = split.get(u)?.as_ref()?;
            let initial: Vec<Interaction> = by_user[u].iter().zip(parts).filter(|(_, p)| **p == Part::Initial).map(|(x, _)| x.clone()).collect();
            (!initial.is_empty()).then(|| (u as u32, context.build(&dataset.users[u], &initial)))
        })
        .collect();
    let ground_truth: Vec<Option<String>> = rows.iter().map(|(u, _)| truth.as_ref().and_then(|t| t.get(*u as usize)).map(Profile::render)).collect();
    pq::write(
        &out.join(PROFILES_FILE),
        vec![
            ("user_id", pq::u32_col(rows.iter().map(|r| r.0))),
            ("profile", pq::str_col(rows.iter().map(|r| r.1.render()))),
            ("summary", pq::str_col(rows.iter().map(|r| r.1.summary()))),
            ("likes", pq::str_list_col(rows.iter().map(|r| r.1.likes.as_slice()))),
            ("dislikes", pq::str_list_col(rows.iter().map(|r| r.1.dislikes.as_slice()))),
            ("ground_truth", pq::opt_str_col(ground_truth.iter().map(Option::as_deref))),
        ],
    )?;
    Ok(rows.len())
}

/// A profile row as later stages read it.
#[derive(Debug, Clone)]
pub struct ProfileRow {
    pub user_id: u32,
    pub profile: String,
    pub ground_truth: Option<String>,
}

pub fn read_profiles(dir: &Path) -> Result<Vec<ProfileRow>> {
    let t = pq::Table::read(&dir.join(PROFILES_FILE))?;
    Ok(t.u32s("user_id")?
        .into_iter()
        .zip(t.strings("profile")?)
        .zip(t.opt_strings("ground_truth")?)
        .map(|((user_id, profile), ground_truth)| ProfileRow { user_id, profile, ground_truth })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prep::synthetic_dataset;
    use crate::sources::synthetic::WorldConfig;

    #[test]
    fn summaries_name_no_title_and_profiles_recover_the_truth() {
        let config = WorldConfig { users: 120, items: 300, interactions_per_user: 40, drift_share: 0.0, ..WorldConfig::default() };
        let (dataset, truth) = synthetic_dataset(&config, 11).expect("world");
        let context = ProfileContext::new(&dataset, ProfilesConfig::default());
        let (mut stated, mut true_stated) = (0usize, 0usize);
        for (u, history) in dataset.by_user().iter().enumerate() {
            let profile = context.build(&dataset.users[u], history);
            let summary = profile.summary();
            for x in *history {
                assert!(!summary.contains(&dataset.items[x.item_id as usize].title), "summary leaks a title: {summary}");
            }
            stated += profile.likes.len();
            true_stated += profile.likes.iter().filter(|l| truth[u].likes.contains(l)).count();
        }
        // Statistical likes should mostly be true likes of the simulated users.
        let precision = true_stated as f64 / stated.max(1) as f64;
        assert!(precision > 0.7, "like precision {precision:.2}");
    }

    #[test]
    fn demographics_read_naturally() {
        let user = User { age: Some(24), gender: Some("M".into()), occupation: Some("technician".into()), ..User::default() };
        assert_eq!(demographics(&user).as_deref(), Some("24-year-old male, technician"));
        assert_eq!(demographics(&User::default()), None);
    }
}
