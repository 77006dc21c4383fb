//! `simforge scenes`: UserMirrorer simulation scenes (METHODS.md section 3). Each scene is a
//! user's profile, recent history and a lettered exposure list holding the real next item
//! (the target) among negatives the user never interacted with.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::fsutil::write_json;
use crate::parquet_io as pq;
use crate::profile::Profile;
use crate::profiles::{ProfileContext, ProfilesConfig};
use crate::rng::{Cumulative, Rng};
use crate::tables::{Dataset, Interaction, Item, Split, TimeKind};

pub const SCENES_FILE: &str = "scenes.parquet";
/// A target needs at least this many earlier interactions.
pub const MIN_EARLIER: usize = 3;
const LETTERS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const SECONDS_PER_YEAR: i64 = 31_556_952;

/// Where the other options of a scene come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExposureSource {
    /// Items the user never interacted with, drawn from a mix of uniform, popularity and
    /// co-occurrence sources (METHODS.md section 3; real data has no other).
    #[default]
    Sampled,
    /// The exposure list the real choice was made from, where the data logged it (the
    /// synthetic world's `impressions.parquet`): the world's own choice model is then the best
    /// possible simulator, and no construction artefact tells the answer.
    Impressions,
}

/// How a scene is written for the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Rendering {
    /// UserMirrorer's layout: the full profile, history lines with title, year, categories and
    /// rating, and lettered items with title, year and categories.
    #[default]
    Usermirrorer,
    /// The same choice in few tokens, for small models: stated likes, dislikes and taste,
    /// history and options as their categories (the history with its ratings), no boilerplate.
    Compact,
}

impl Rendering {
    /// Its name in recipes and in the scenes table's `rendering` column.
    pub fn name(self) -> &'static str {
        match self {
            Rendering::Usermirrorer => "usermirrorer",
            Rendering::Compact => "compact",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        [Rendering::Usermirrorer, Rendering::Compact].into_iter().find(|r| r.name() == name)
    }
}

/// `simforge scenes` options (a recipe's `[scenes]`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ScenesConfig {
    /// Training scenes to build (fewer when the data has fewer targets).
    pub train: usize,
    /// Evaluation scenes to build, from each user's latest interactions.
    pub eval: usize,
    /// Shortest exposure list of a training scene (≥ 2).
    pub min_exposure: usize,
    /// Longest exposure list of a training scene (≤ 26).
    pub max_exposure: usize,
    /// Exposure length of every evaluation scene.
    pub eval_exposure: usize,
    /// Most history items shown; each scene shows randint(2, max-history).
    pub max_history: usize,
    /// Evaluation targets reserved per user (their latest), kept out of training.
    pub eval_per_user: usize,
    /// Where the other options come from: sampled or impressions.
    pub exposure: ExposureSource,
    /// How the prompt is written: usermirrorer or compact.
    pub rendering: Rendering,
    /// Seed for every random choice.
    pub seed: Option<u64>,
}

impl Default for ScenesConfig {
    fn default() -> Self {
        Self {
            train: 1000,
            eval: 200,
            min_exposure: 2,
            max_exposure: 12,
            eval_exposure: 5,
            max_history: 10,
            eval_per_user: 1,
            exposure: ExposureSource::Sampled,
            rendering: Rendering::Usermirrorer,
            seed: None,
        }
    }
}

impl ScenesConfig {
    fn validate(&self) -> Result<()> {
        let fail = |m: &str| Err(DataError::config("scenes", m.to_owned()));
        if self.min_exposure < 2 || self.min_exposure > self.max_exposure {
            return fail("need 2 <= min-exposure <= max-exposure");
        }
        if self.max_exposure > LETTERS.len() || self.eval_exposure > LETTERS.len() || self.eval_exposure < 2 {
            return fail("exposure lists hold 2 to 26 items (one letter each)");
        }
        if self.max_history < 2 {
            return fail("max-history must be at least 2");
        }
        if self.eval_per_user == 0 {
            return fail("eval-per-user must be at least 1");
        }
        Ok(())
    }
}

/// One simulation scene, as written to `scenes.parquet`.
#[derive(Debug, Clone, PartialEq)]
pub struct Scene {
    pub scene_id: u32,
    pub split: Split,
    pub user_id: u32,
    pub target_item: u32,
    pub timestamp: i64,
    pub profile: String,
    pub history: String,
    /// The items of the history lines, oldest first.
    pub history_items: Vec<u32>,
    pub exposure: Vec<u32>,
    pub options: Vec<String>,
    pub target_pos: u32,
    pub prompt: String,
    pub rendering: Rendering,
    /// Positions of the options that hold a category the profile states as liked: the labels
    /// of the reading exercise, a dense task read off the prompt itself that teaches a small
    /// model to compare option lines with the profile before it learns the noisy choice.
    pub liked_options: Vec<u32>,
}

#[derive(Debug, Serialize)]
pub struct ScenesStats {
    pub train: usize,
    pub eval: usize,
    pub train_candidates: usize,
    pub eval_candidates: usize,
    pub shortened_lists: usize,
    pub dropped: usize,
    /// How often simple rules on item metadata pick the real choice of the evaluation scenes:
    /// a rule far above random is a shortcut a model can learn instead of the user.
    pub shortcuts: crate::shortcuts::ShortcutReport,
}

/// "Toy Story (1995) | Animation, Children's, Comedy": how an item appears in a prompt.
pub fn render_item(item: &Item) -> String {
    let mut s = item.title.clone();
    if let Some(y) = item.year {
        let _ = write!(s, " ({y})");
    }
    if !item.categories.is_empty() {
        let _ = write!(s, " | {}", item.categories.join(", "));
    }
    s
}

/// A history line: the item, the rating and a short review where the source has them.
pub fn render_history_line(item: &Item, x: &Interaction) -> String {
    let mut s = format!("- {}", render_item(item));
    if let Some(r) = x.rating {
        let _ = write!(s, " | rated {r}/5");
    }
    if let Some(review) = &x.review {
        let short: String = review.chars().take(160).collect();
        let ellipsis = if short.len() < review.len() { "…" } else { "" };
        let _ = write!(s, " | review: \"{}{ellipsis}\"", short.replace('\n', " "));
    }
    s
}

/// The history lines of `recent`, newest last.
pub fn render_history(items: &[Item], recent: &[Interaction]) -> String {
    recent.iter().map(|x| render_history_line(&items[x.item_id as usize], x)).collect::<Vec<_>>().join("\n")
}

/// The `[A] item` lines of `ids`, in order.
pub fn lettered_items(items: &[Item], ids: &[u32]) -> Vec<String> {
    ids.iter().enumerate().map(|(i, &c)| format!("[{}] {}", letter(i), render_item(&items[c as usize]))).collect()
}

/// `count` distinct items outside `consumed` (sorted), drawn uniformly from `items` ids; fewer
/// when fewer remain.
pub fn unseen_items(rng: &mut Rng, consumed: &[u32], items: usize, count: usize) -> Vec<u32> {
    let distinct = consumed.windows(2).filter(|w| w[0] != w[1]).count() + usize::from(!consumed.is_empty());
    let count = count.min(items.saturating_sub(distinct));
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        let c = rng.below(items) as u32;
        if consumed.binary_search(&c).is_err() && !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

pub fn letter(i: usize) -> char {
    LETTERS[i] as char
}

/// The byte offset where each of the `count` option lines of `prompt` ends. Both renderings end
/// a prompt with the lettered option lines (`[A] …`, `[B] …`); `None` when its last lines are
/// not `count` such lines in order.
pub fn option_line_ends(prompt: &str, count: usize) -> Option<Vec<usize>> {
    let mut ends = Vec::with_capacity(count);
    let mut end = prompt.len();
    for i in (0..count).rev() {
        let start = prompt[..end].rfind('\n').map_or(0, |n| n + 1);
        if !prompt[start..end].starts_with(&format!("[{}] ", letter(i))) {
            return None;
        }
        ends.push(end);
        end = start.checked_sub(1)?;
    }
    ends.reverse();
    Some(ends)
}

/// An item as the compact rendering shows it: its categories (its title where it has none).
pub(crate) fn compact_item(item: &Item) -> String {
    if item.categories.is_empty() {
        item.title.clone()
    } else {
        item.categories.join(", ")
    }
}

/// The compact prompt of a scene: the stated preferences, the history with ratings, and the
/// lettered options, each as categories.
pub fn render_compact_prompt(profile: &Profile, items: &[Item], recent: &[Interaction], exposure: &[u32]) -> String {
    let list = |v: &[String]| if v.is_empty() { "-".to_owned() } else { v.join(", ") };
    let mut s = format!("Likes: {}\nDislikes: {}\n", list(&profile.likes), list(&profile.dislikes));
    if let Some(taste) = &profile.taste {
        let _ = writeln!(s, "Taste: {}", taste.split(" (").next().unwrap_or(taste));
    }
    s.push_str("History:\n");
    for x in recent {
        let rating = x.rating.map(|r| format!(" ({r})")).unwrap_or_default();
        let _ = writeln!(s, "- {}{rating}", compact_item(&items[x.item_id as usize]));
    }
    s.push_str("Options:");
    for (i, &c) in exposure.iter().enumerate() {
        let _ = write!(s, "\n[{}] {}", letter(i), compact_item(&items[c as usize]));
    }
    s
}

/// Who the simulated user is, as every simulator prompt opens: the profile, then the history.
pub fn persona_sections(profile: &str, history: &str) -> String {
    format!("# User Profile\n{profile}\n\n## History\n{history}\n\n")
}

/// The user message of a scene (METHODS.md section 3).
pub fn render_prompt(profile: &str, history: &str, options: &[String]) -> String {
    format!("{}# Exposure List\n{}", persona_sections(profile, history), options.join("\n"))
}

/// Where negatives come from and what they must avoid.
struct NegativeSampler<'a> {
    items: &'a [Item],
    popularity: Cumulative,
    /// Items that co-occur with each item in users' sequences (the collaborative source).
    neighbours: Vec<Vec<u32>>,
    /// First time each item was interacted with, when timestamps are comparable.
    first_seen: Option<Vec<i64>>,
}

impl<'a> NegativeSampler<'a> {
    fn new(dataset: &'a Dataset, by_user: &[&[Interaction]]) -> Self {
        let n = dataset.items.len();
        let mut co: Vec<HashMap<u32, u32>> = vec![HashMap::new(); n];
        for history in by_user {
            for w in history.windows(3) {
                for a in 0..3 {
                    for b in 0..3 {
                        if a != b && w[a].item_id != w[b].item_id {
                            *co[w[a].item_id as usize].entry(w[b].item_id).or_default() += 1;
                        }
                    }
                }
            }
        }
        let neighbours = co
            .into_par_iter()
            .map(|m| {
                let mut v: Vec<(u32, u32)> = m.into_iter().collect();
                v.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                v.into_iter().take(20).map(|(i, _)| i).collect()
            })
            .collect();
        let first_seen = (dataset.stats.time_kind == TimeKind::Unix).then(|| {
            let mut f = vec![i64::MAX; n];
            for x in &dataset.interactions {
                f[x.item_id as usize] = f[x.item_id as usize].min(x.timestamp);
            }
            f
        });
        Self { items: &dataset.items, popularity: Cumulative::new(dataset.items.iter().map(|i| f64::from(i.popularity) + 1.0)), neighbours, first_seen }
    }

    /// Up to `count` distinct negatives for a target at `time`: never an item of `consumed`
    /// (the user's sorted items), never one released or first seen after `time`.
    fn sample(&self, rng: &mut Rng, count: usize, consumed: &[u32], history: &[Interaction], time: i64) -> Vec<u32> {
        let target_year = self.first_seen.as_ref().map(|_| 1970 + time / SECONDS_PER_YEAR);
        let allowed = |i: u32| {
            consumed.binary_search(&i).is_err()
                && self.first_seen.as_ref().is_none_or(|f| f[i as usize] <= time)
                && match (target_year, self.items[i as usize].year) {
                    (Some(t), Some(y)) => i64::from(y) <= t,
                    _ => true,
                }
        };
        let mut out: Vec<u32> = Vec::with_capacity(count);
        let n = self.items.len();
        for _ in 0..count * 30 {
            if out.len() == count {
                break;
            }
            let roll = rng.f64();
            let candidate = if roll < 0.4 {
                rng.below(n) as u32
            } else if roll < 0.75 {
                self.popularity.sample(rng) as u32
            } else {
                let anchor = history[rng.below(history.len())].item_id as usize;
                match self.neighbours[anchor].as_slice() {
                    [] => rng.below(n) as u32,
                    near => near[rng.below(near.len())],
                }
            };
            if !out.contains(&candidate) && allowed(candidate) {
                out.push(candidate);
            }
        }
        out
    }
}

/// A chosen target: user and position in that user's history.
#[derive(Debug, Clone, Copy)]
struct Target {
    user: u32,
    index: usize,
    eval: bool,
}

pub fn scenes(data_dir: &Path, out: &Path, config: &ScenesConfig) -> Result<ScenesStats> {
    config.validate()?;
    let dataset = Dataset::load(data_dir)?;
    let (scenes, stats) = build_scenes(&dataset, config)?;
    write_scenes(&out.join(SCENES_FILE), &dataset.stats.dataset, &scenes)?;
    write_json(&out.join("scenes.json"), &stats)?;
    Ok(stats)
}

pub fn build_scenes(dataset: &Dataset, config: &ScenesConfig) -> Result<(Vec<Scene>, ScenesStats)> {
    config.validate()?;
    let seed = config.seed.unwrap_or(0);
    let by_user = dataset.by_user();

    // Per user, the latest `eval_per_user` eligible targets are reserved for evaluation, and
    // training targets must come strictly earlier in time than all of them.
    let mut eval_candidates = Vec::new();
    let mut train_candidates = Vec::new();
    for (u, history) in by_user.iter().enumerate() {
        if history.len() <= MIN_EARLIER {
            continue;
        }
        let eligible = MIN_EARLIER..history.len();
        let reserved = eligible.len().min(config.eval_per_user);
        let first_eval = history.len() - reserved;
        eval_candidates.extend((first_eval..history.len()).map(|index| Target { user: u as u32, index, eval: true }));
        let cutoff = history[first_eval].timestamp;
        train_candidates.extend((MIN_EARLIER..first_eval).filter(|&i| history[i].timestamp < cutoff).map(|index| Target {
            user: u as u32,
            index,
            eval: false,
        }));
    }
    let mut rng = Rng::stream(seed, "scene-targets", 0);
    let (n_eval_candidates, n_train_candidates) = (eval_candidates.len(), train_candidates.len());
    rng.shuffle(&mut eval_candidates);
    rng.shuffle(&mut train_candidates);

    let consumed: Vec<Vec<u32>> = by_user
        .par_iter()
        .map(|h| {
            let mut v: Vec<u32> = h.iter().map(|x| x.item_id).collect();
            v.sort_unstable();
            v.dedup();
            v
        })
        .collect();
    let sampler = NegativeSampler::new(dataset, &by_user);
    let profiles = ProfileContext::new(dataset, ProfilesConfig::default());
    let impressions = match config.exposure {
        ExposureSource::Sampled => None,
        ExposureSource::Impressions => Some(dataset.impressions.as_ref().ok_or_else(|| {
            DataError::config("scenes", "exposure = impressions, but the dataset logged no exposure lists (impressions.parquet; only the synthetic world has them): use exposure = sampled")
        })?),
    };
    // Where each user's interactions start in the dataset's table (and its impressions).
    let starts: Vec<usize> = by_user.iter().scan(0, |at, h| Some(std::mem::replace(at, *at + h.len()))).collect();
    let build = |t: &Target| -> Option<(Scene, bool)> {
        // Seeded by the target itself, so a scene does not change when others are dropped.
        let mut rng = Rng::stream(seed, "scene", (u64::from(t.user) << 32) | t.index as u64);
        let history = by_user[t.user as usize];
        let target = &history[t.index];
        let earlier = &history[..t.index];
        let shown = rng.range_inclusive(2, config.max_history).min(earlier.len());
        let recent = &earlier[earlier.len() - shown..];
        let wanted = if t.eval { config.eval_exposure } else { rng.range_inclusive(config.min_exposure, config.max_exposure) };
        let negatives = match impressions {
            None => sampler.sample(&mut rng, wanted - 1, &consumed[t.user as usize], recent, target.timestamp),
            Some(lists) => {
                // Any wanted-1 of the other shown items: the choice among a random subset of
                // what was shown follows the same choice model as among all of it.
                let mut others: Vec<u32> = lists[starts[t.user as usize] + t.index].iter().copied().filter(|&i| i != target.item_id).collect();
                rng.shuffle(&mut others);
                others.truncate(wanted - 1);
                others
            }
        };
        if negatives.is_empty() {
            return None;
        }
        let shortened = negatives.len() < wanted - 1;
        let target_pos = rng.below(negatives.len() + 1);
        let mut exposure = negatives;
        exposure.insert(target_pos, target.item_id);
        let stated = profiles.build(&dataset.users[t.user as usize], earlier);
        let profile = stated.render();
        let history_text = render_history(&dataset.items, recent);
        let options = lettered_items(&dataset.items, &exposure);
        let prompt = match config.rendering {
            Rendering::Usermirrorer => render_prompt(&profile, &history_text, &options),
            Rendering::Compact => render_compact_prompt(&stated, &dataset.items, recent, &exposure),
        };
        let liked_options =
            (0..exposure.len() as u32).filter(|&i| dataset.items[exposure[i as usize] as usize].categories.iter().any(|c| stated.likes.contains(c))).collect();
        let scene = Scene {
            scene_id: 0,
            split: if t.eval { Split::Eval } else { Split::Train },
            user_id: t.user,
            target_item: target.item_id,
            timestamp: target.timestamp,
            profile,
            history: history_text,
            history_items: recent.iter().map(|x| x.item_id).collect(),
            exposure,
            options,
            target_pos: target_pos as u32,
            prompt,
            rendering: config.rendering,
            liked_options,
        };
        Some((scene, shortened))
    };
    // Targets whose scene cannot be built (no admissible negative at that time) are replaced
    // by the next candidates in the shuffled order.
    let mut dropped = 0;
    let mut shortened_lists = 0;
    // Sized by what the data can give, not by what was asked (which may be any number).
    let mut scenes: Vec<Scene> = Vec::with_capacity(config.train.min(train_candidates.len()) + config.eval.min(eval_candidates.len()));
    for (candidates, wanted) in [(&train_candidates, config.train), (&eval_candidates, config.eval)] {
        let mut next = 0;
        let mut built = 0;
        while built < wanted && next < candidates.len() {
            let batch = &candidates[next..(next + wanted - built).min(candidates.len())];
            next += batch.len();
            for result in batch.par_iter().map(build).collect::<Vec<_>>() {
                match result {
                    Some((scene, shortened)) => {
                        built += 1;
                        shortened_lists += usize::from(shortened);
                        scenes.push(scene);
                    }
                    None => dropped += 1,
                }
            }
        }
        if built < wanted {
            tracing::warn!("asked for {wanted} scenes of one split but the data allows only {built}");
        }
    }
    scenes.sort_by_key(|s| (s.split, s.user_id, s.timestamp, s.target_item));
    for (i, s) in scenes.iter_mut().enumerate() {
        s.scene_id = i as u32;
    }
    let stats = ScenesStats {
        train: scenes.iter().filter(|s| s.split == Split::Train).count(),
        eval: scenes.iter().filter(|s| s.split == Split::Eval).count(),
        train_candidates: n_train_candidates,
        eval_candidates: n_eval_candidates,
        shortened_lists,
        dropped,
        shortcuts: crate::shortcuts::shortcut_report(&dataset.items, &sampler.neighbours, scenes.iter().filter(|s| s.split == Split::Eval)),
    };
    Ok((scenes, stats))
}

pub fn write_scenes(path: &Path, dataset_name: &str, scenes: &[Scene]) -> Result<()> {
    pq::write(
        path,
        vec![
            ("scene_id", pq::u32_col(scenes.iter().map(|s| s.scene_id))),
            ("dataset", pq::str_col(scenes.iter().map(|_| dataset_name))),
            ("split", pq::str_col(scenes.iter().map(|s| s.split.name()))),
            ("user_id", pq::u32_col(scenes.iter().map(|s| s.user_id))),
            ("target_item", pq::u32_col(scenes.iter().map(|s| s.target_item))),
            ("timestamp", pq::i64_col(scenes.iter().map(|s| s.timestamp))),
            ("profile", pq::str_col(scenes.iter().map(|s| &s.profile))),
            ("history", pq::str_col(scenes.iter().map(|s| &s.history))),
            ("history_items", pq::u32_list_col(scenes.iter().map(|s| s.history_items.as_slice()))),
            ("exposure", pq::u32_list_col(scenes.iter().map(|s| s.exposure.as_slice()))),
            ("options", pq::str_list_col(scenes.iter().map(|s| s.options.as_slice()))),
            ("target_pos", pq::u32_col(scenes.iter().map(|s| s.target_pos))),
            ("choice_cnt", pq::u32_col(scenes.iter().map(|s| s.exposure.len() as u32))),
            ("prompt", pq::str_col(scenes.iter().map(|s| &s.prompt))),
            ("rendering", pq::str_col(scenes.iter().map(|s| s.rendering.name()))),
            ("liked_options", pq::u32_list_col(scenes.iter().map(|s| s.liked_options.as_slice()))),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prep::synthetic_dataset;
    use crate::sources::synthetic::WorldConfig;

    fn world() -> Dataset {
        let config = WorldConfig { users: 150, items: 300, interactions_per_user: 30, ..WorldConfig::default() };
        synthetic_dataset(&config, 5).expect("world").0
    }

    fn build(dataset: &Dataset, seed: u64) -> Vec<Scene> {
        let config = ScenesConfig { train: 3000, eval: 150, eval_per_user: 1, seed: Some(seed), ..ScenesConfig::default() };
        build_scenes(dataset, &config).expect("scenes").0
    }

    #[test]
    fn exposure_lists_hold_the_target_once_and_only_unseen_negatives() {
        let dataset = world();
        let by_user = dataset.by_user();
        let scenes = build(&dataset, 1);
        assert_eq!(scenes.iter().filter(|s| s.split == Split::Eval).count(), 150);
        assert_eq!(scenes.iter().filter(|s| s.split == Split::Train).count(), 3000);
        for s in &scenes {
            let mut sorted = s.exposure.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), s.exposure.len(), "duplicate item in scene {}", s.scene_id);
            assert_eq!(s.exposure[s.target_pos as usize], s.target_item);
            assert_eq!(s.options.len(), s.exposure.len());
            assert!(s.options[s.target_pos as usize].starts_with(&format!("[{}] ", letter(s.target_pos as usize))));
            let history = by_user[s.user_id as usize];
            for (i, &item) in s.exposure.iter().enumerate() {
                if i != s.target_pos as usize {
                    assert!(history.iter().all(|x| x.item_id != item), "scene {} shows item {item} the user consumed", s.scene_id);
                    let year = dataset.items[item as usize].year.expect("synthetic items have years");
                    assert!(i64::from(year) <= 1970 + s.timestamp / SECONDS_PER_YEAR, "negative released after the target");
                }
            }
            let len = s.exposure.len();
            if s.split == Split::Eval {
                assert_eq!(len, 5);
            } else {
                assert!((2..=12).contains(&len), "length {len}");
            }
            assert!(s.prompt.starts_with("# User Profile\n") && s.prompt.contains("\n## History\n") && s.prompt.contains("\n# Exposure List\n[A] "));
        }
    }

    #[test]
    fn target_position_is_uniform_including_the_last() {
        let dataset = world();
        let config = ScenesConfig { train: 4000, eval: 0, min_exposure: 4, max_exposure: 4, seed: Some(2), ..ScenesConfig::default() };
        let scenes = build_scenes(&dataset, &config).expect("scenes").0;
        let mut counts = [0usize; 4];
        for s in scenes.iter().filter(|s| s.exposure.len() == 4) {
            counts[s.target_pos as usize] += 1;
        }
        let expected = counts.iter().sum::<usize>() as f64 / 4.0;
        for c in counts {
            assert!((c as f64 - expected).abs() < 0.1 * expected, "positions {counts:?}");
        }
    }

    #[test]
    fn eval_scenes_come_after_train_scenes_of_the_same_user() {
        let dataset = world();
        let scenes = build(&dataset, 3);
        let mut latest_train: HashMap<u32, i64> = HashMap::new();
        for s in scenes.iter().filter(|s| s.split == Split::Train) {
            let e = latest_train.entry(s.user_id).or_insert(i64::MIN);
            *e = (*e).max(s.timestamp);
        }
        for s in scenes.iter().filter(|s| s.split == Split::Eval) {
            if let Some(&t) = latest_train.get(&s.user_id) {
                assert!(s.timestamp > t, "user {}: eval at {} not after train at {t}", s.user_id, s.timestamp);
            }
        }
        let keys: std::collections::HashSet<(u32, i64, u32)> = scenes.iter().map(|s| (s.user_id, s.timestamp, s.target_item)).collect();
        assert_eq!(keys.len(), scenes.len(), "a (user, time) target is used twice");
    }

    #[test]
    fn option_lines_end_where_both_renderings_end_each_option() {
        let dataset = world();
        for rendering in [Rendering::Usermirrorer, Rendering::Compact] {
            let config = ScenesConfig { train: 200, eval: 20, rendering, seed: Some(4), ..ScenesConfig::default() };
            for s in build_scenes(&dataset, &config).expect("scenes").0 {
                let ends = option_line_ends(&s.prompt, s.exposure.len()).expect("the prompt ends with its option lines");
                for (i, &end) in ends.iter().enumerate() {
                    let line = &s.prompt[s.prompt[..end].rfind('\n').map_or(0, |n| n + 1)..end];
                    assert!(line.starts_with(&format!("[{}] ", letter(i))) && !line.contains('\n'), "{line:?}");
                }
                assert_eq!(*ends.last().expect("options"), s.prompt.len());
                for (i, &item) in s.exposure.iter().enumerate() {
                    let liked = dataset.items[item as usize].categories.iter().any(|c| s.profile.contains(c.as_str()));
                    assert!(!s.liked_options.contains(&(i as u32)) || liked, "option {i} is marked liked without a stated category");
                }
            }
        }
        assert_eq!(option_line_ends("Options:\n[A] x\n[B] y", 2), Some(vec![14, 20]));
        assert_eq!(option_line_ends("Options:\n[A] x\n[C] y", 2), None);
        assert_eq!(option_line_ends("[B] y", 2), None);
    }

    #[test]
    fn same_seed_same_scenes() {
        let dataset = world();
        assert_eq!(build(&dataset, 9), build(&dataset, 9));
        assert_ne!(build(&dataset, 9), build(&dataset, 10));
    }
}
