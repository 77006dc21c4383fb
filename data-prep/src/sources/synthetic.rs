//! The synthetic world (METHODS.md section 2), the embedded default: seeded users with known
//! likes, dislikes, popularity sensitivity and novelty taste (drifting for a share of users)
//! pick from exposure lists by a softmax over their true utilities. Its ground-truth
//! profiles let every later stage be measured against the truth.

use std::collections::HashSet;
use std::path::Path;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::{RawInteraction, SourceData};
use crate::error::{DataError, Result};
use crate::profile::Profile;
use crate::rng::{Cumulative, Rng};
use crate::tables::{Item, User};

pub const GENRES: [&str; 18] = [
    "Action",
    "Adventure",
    "Animation",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Family",
    "Fantasy",
    "Horror",
    "Music",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Sports",
    "Thriller",
    "War",
    "Western",
];

const ADJECTIVES: [&str; 32] = [
    "Silent",
    "Crimson",
    "Last",
    "Hidden",
    "Broken",
    "Golden",
    "Midnight",
    "Wild",
    "Distant",
    "Frozen",
    "Burning",
    "Lost",
    "Electric",
    "Paper",
    "Velvet",
    "Iron",
    "Secret",
    "Endless",
    "Hollow",
    "Bright",
    "Savage",
    "Quiet",
    "Shattered",
    "Northern",
    "Restless",
    "Glass",
    "Scarlet",
    "Wandering",
    "Fallen",
    "Neon",
    "Stolen",
    "Little",
];
const NOUNS: [&str; 32] = [
    "River", "Empire", "Garden", "Horizon", "Kingdom", "Promise", "Harbor", "Storm", "Mirror", "Voyage", "Signal", "Orchard", "Frontier", "Carnival",
    "Lantern", "Machine", "Summer", "Winter", "Island", "Witness", "Shadow", "Symphony", "Station", "Highway", "Letter", "Circus", "Canyon", "Engine", "Crown",
    "Tide", "Forest", "City",
];
const OCCUPATIONS: [&str; 10] = ["student", "engineer", "teacher", "artist", "nurse", "writer", "lawyer", "retired", "programmer", "salesperson"];

/// Sizes and behaviour of the world; every field has a default, and a TOML file may set any.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WorldConfig {
    /// Number of users (≥ 1).
    pub users: usize,
    /// Number of items (≥ 20).
    pub items: usize,
    /// Interactions per user, used when `interactions` is not set (≥ 4).
    pub interactions_per_user: usize,
    /// Total interactions, spread as evenly as possible over the users (overrides the above).
    pub interactions: Option<u64>,
    /// Items shown at each step, from which the user picks one (≥ 2).
    pub exposure: usize,
    /// Softmax temperature over utilities (> 0): lower is more decisive.
    pub temperature: f64,
    /// Share of users whose likes drift over time (0–1).
    pub drift_share: f64,
    /// First timestamp (Unix seconds).
    pub start: i64,
}

const MAX_ITEMS: usize = 1_000_000;
const MAX_INTERACTIONS: u64 = 50_000_000;

impl Default for WorldConfig {
    fn default() -> Self {
        Self { users: 500, items: 800, interactions_per_user: 40, interactions: None, exposure: 10, temperature: 0.35, drift_share: 0.3, start: 946_684_800 }
    }
}

impl WorldConfig {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
        let config: Self = toml::from_str(&text).map_err(|e| DataError::config(path.display().to_string(), e.to_string()))?;
        config.validate(path)?;
        Ok(config)
    }

    pub fn validate(&self, path: &Path) -> Result<()> {
        let fail = |m: &str| Err(DataError::config(path.display().to_string(), m.to_owned()));
        if self.users == 0 {
            return fail("users must be at least 1");
        }
        if self.items < 20 {
            return fail("items must be at least 20");
        }
        if self.exposure < 2 || self.exposure > self.items {
            return fail("exposure must be between 2 and items");
        }
        if !(self.temperature > 0.0) {
            return fail("temperature must be positive");
        }
        if !(0.0..=1.0).contains(&self.drift_share) {
            return fail("drift_share must be between 0 and 1");
        }
        let per_user = self.interactions.map_or(self.interactions_per_user as u64, |t| t / self.users as u64);
        if per_user < 4 || per_user as usize > self.items / 2 {
            return fail("interactions per user must be between 4 and half the items");
        }
        // The world is built in memory (about 100 bytes per interaction with its exposure list).
        if self.items > MAX_ITEMS {
            return fail(&format!("a world holds at most {MAX_ITEMS} items"));
        }
        if (self.users as u64).saturating_mul(per_user) > MAX_INTERACTIONS {
            return fail(&format!("a world holds at most {MAX_INTERACTIONS} interactions"));
        }
        // A user's history spans at most 180 days of start offset plus about 4 days per choice.
        let span = (180 + 5 * per_user as i64) * 86_400;
        if !super::TIMESTAMP_RANGE.contains(&self.start) || !super::TIMESTAMP_RANGE.contains(&self.start.saturating_add(span)) {
            return fail("start must be a Unix time (seconds) from 1970 that leaves the histories before 2100");
        }
        Ok(())
    }
}

/// A user's true preferences.
#[derive(Debug, Clone)]
pub struct Persona {
    /// Weight of each genre at the start and at the end of the user's history.
    like_start: Vec<f64>,
    like_end: Vec<f64>,
    dislikes: Vec<usize>,
    popularity_sensitivity: f64,
    novelty: f64,
}

impl Persona {
    fn utility(&self, item: &WorldItem, progress: f64, previous: Option<&WorldItem>) -> f64 {
        let mut taste = 0.0;
        for &g in &item.genres {
            taste += self.like_start[g] * (1.0 - progress) + self.like_end[g] * progress;
            if self.dislikes.contains(&g) {
                taste -= 1.5;
            }
        }
        // Scaled by √(genres) so that an item's appeal has the same spread whatever its number
        // of genres: otherwise the item with the most genres is most often the best of a list
        // for any user, and "pick the most genres" beats chance without knowing the user.
        let mut u = taste / (item.genres.len().max(1) as f64).sqrt();
        u += self.popularity_sensitivity * item.log_popularity;
        if let Some(prev) = previous {
            if !item.genres.iter().any(|g| prev.genres.contains(g)) {
                u += self.novelty * 0.5;
            }
        }
        u
    }

    /// The ground truth as a profile: the final likes by weight, and the dislikes.
    fn profile(&self, demographics: String) -> Profile {
        let mut likes: Vec<(usize, f64)> = self.like_end.iter().copied().enumerate().filter(|(_, w)| *w > 0.0).collect();
        likes.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let taste = if self.popularity_sensitivity > 0.25 {
            "mainstream (mostly popular titles)"
        } else if self.popularity_sensitivity < -0.25 {
            "niche (seeks out lesser-known titles)"
        } else {
            "mixed (popular and lesser-known titles)"
        };
        Profile {
            demographics: Some(demographics),
            likes: likes.iter().map(|(g, _)| GENRES[*g].to_owned()).collect(),
            dislikes: self.dislikes.iter().map(|&g| GENRES[g].to_owned()).collect(),
            eras: Vec::new(),
            taste: Some(taste.to_owned()),
            mean_rating: None,
        }
    }
}

#[derive(Debug, Clone)]
struct WorldItem {
    genres: Vec<usize>,
    log_popularity: f64,
}

/// Ground-truth profile of one user, keyed by raw id.
#[derive(Debug, Clone)]
pub struct Truth {
    pub raw_user_id: String,
    pub profile: Profile,
}

/// The items shown at each of a user's steps, the chosen one among them.
type Impressions = Vec<Vec<u32>>;

/// Generates the world: users, items, interactions and the ground truth.
pub fn generate(config: &WorldConfig, seed: u64) -> Result<(SourceData, Vec<Truth>)> {
    config.validate(Path::new("synthetic world"))?;
    let (items, world_items) = world_items(config, seed);
    let exposure_prior = Cumulative::new(world_items.iter().map(|it| it.log_popularity.exp()));

    let per_user = interactions_per_user(config);

    // Per user: who they are, their truth, their choices and what each was chosen from.
    let generated: Vec<(User, Truth, Vec<RawInteraction>, Impressions)> = (0..config.users)
        .into_par_iter()
        .map(|u| {
            let mut rng = Rng::stream(seed, "synthetic-user", u as u64);
            let persona = persona(&mut rng, config.drift_share);
            let age = rng.range_inclusive(18, 70) as u32;
            let gender = if rng.chance(0.5) { "F" } else { "M" };
            let occupation = OCCUPATIONS[rng.below(OCCUPATIONS.len())];
            let raw_id = format!("u{}", u + 1);
            let user =
                User { raw_id: raw_id.clone(), age: Some(age), gender: Some(gender.to_owned()), occupation: Some(occupation.to_owned()), location: None };
            let demographics = format!("{age}-year-old {}, {occupation}", if gender == "F" { "female" } else { "male" });
            let truth = Truth { raw_user_id: raw_id, profile: persona.profile(demographics) };
            let n = per_user[u];
            let mut seen = vec![false; config.items];
            let mut time = config.start + rng.below(180 * 86_400) as i64;
            let mut previous: Option<usize> = None;
            let mut history = Vec::with_capacity(n);
            let mut impressions = Vec::with_capacity(n);
            let mut shown = Vec::with_capacity(config.exposure);
            let mut utilities = Vec::with_capacity(config.exposure);
            for step in 0..n {
                shown.clear();
                while shown.len() < config.exposure {
                    let candidate = if rng.chance(0.5) { exposure_prior.sample(&mut rng) } else { rng.below(config.items) };
                    if !seen[candidate] && !shown.contains(&candidate) {
                        shown.push(candidate);
                    }
                }
                let progress = progress(step, n);
                utilities.clear();
                utilities.extend(shown.iter().map(|&i| persona.utility(&world_items[i], progress, previous.map(|p| &world_items[p]))));
                let max = utilities.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let weights: Vec<f64> = utilities.iter().map(|u| ((u - max) / config.temperature).exp()).collect();
                let pick = rng.weighted(&weights);
                let item = shown[pick];
                seen[item] = true;
                previous = Some(item);
                let rating = (3.0 + 0.9 * utilities[pick] + 0.6 * rng.normal()).round().clamp(1.0, 5.0) as f32;
                time += 3_600 + rng.below(4 * 86_400) as i64;
                history.push(RawInteraction { user: u as u32, item: item as u32, timestamp: time, rating: Some(rating), review: None });
                impressions.push(shown.iter().map(|&i| i as u32).collect());
            }
            (user, truth, history, impressions)
        })
        .collect();

    let mut data = SourceData { name: "synthetic".into(), catalog_items: config.items as u64, ..SourceData::default() };
    for item in items {
        let raw = item.raw_id.clone();
        data.items.intern(&raw, || item);
    }
    let mut truths = Vec::with_capacity(config.users);
    for (user, truth, history, impressions) in generated {
        let raw = user.raw_id.clone();
        data.users.intern(&raw, || user);
        truths.push(truth);
        data.interactions.extend(history);
        data.impressions.extend(impressions);
    }
    Ok((data, truths))
}

fn interactions_per_user(config: &WorldConfig) -> Vec<usize> {
    match config.interactions {
        Some(total) => {
            let base = (total / config.users as u64) as usize;
            let extra = (total % config.users as u64) as usize;
            (0..config.users).map(|u| base + usize::from(u < extra)).collect()
        }
        None => vec![config.interactions_per_user; config.users],
    }
}

/// How far through their `n` interactions a user is at `step` (drives the taste drift).
fn progress(step: usize, n: usize) -> f64 {
    step as f64 / n.max(2) as f64
}

/// How a world was made: enough to make it again (`world.json` beside a prepared world).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WorldSpec {
    pub config: WorldConfig,
    pub seed: u64,
}

pub const WORLD_FILE: &str = "world.json";

/// The world's hidden truth, remade from its [`WorldSpec`]: every user's true choice
/// probabilities and the reasons behind them. Users and items are raw indices (`u7` is 6).
pub struct Oracle {
    temperature: f64,
    personas: Vec<Persona>,
    items: Vec<WorldItem>,
    per_user: Vec<usize>,
}

/// Why an item appeals to a user at one moment, in the world's own terms.
#[derive(Debug, Clone, PartialEq)]
pub struct Reasons {
    pub liked_genres: Vec<&'static str>,
    pub disliked_genres: Vec<&'static str>,
    /// The item's log-popularity (standard normal over the catalogue).
    pub log_popularity: f64,
    /// > 0: the user seeks popular titles; < 0: lesser-known ones.
    pub popularity_sensitivity: f64,
    /// A change of genre from the previous item, which this user enjoys.
    pub novel: bool,
    pub utility: f64,
}

impl Oracle {
    pub fn new(spec: &WorldSpec) -> Result<Self> {
        spec.config.validate(Path::new(WORLD_FILE))?;
        let personas = (0..spec.config.users).map(|u| persona(&mut Rng::stream(spec.seed, "synthetic-user", u as u64), spec.config.drift_share)).collect();
        Ok(Self {
            temperature: spec.config.temperature,
            personas,
            items: world_items(&spec.config, spec.seed).1,
            per_user: interactions_per_user(&spec.config),
        })
    }

    /// The oracle of a prepared synthetic dataset; `None` for other sources.
    pub fn load(data_dir: &Path) -> Result<Option<Self>> {
        let path = data_dir.join(WORLD_FILE);
        if !path.exists() {
            return Ok(None);
        }
        Self::new(&crate::fsutil::read_json(&path)?).map(Some)
    }

    /// The index behind a raw id of this world (`u12` → 11, `i3` → 2).
    pub fn raw_index(raw_id: &str) -> Option<usize> {
        raw_id.get(1..)?.parse::<usize>().ok()?.checked_sub(1)
    }

    /// The reasons `user` has for `item` at their `step`-th interaction, after `previous`.
    /// `None` when an index is outside the world.
    pub fn reasons(&self, user: usize, item: usize, step: usize, previous: Option<usize>) -> Option<Reasons> {
        let persona = self.personas.get(user)?;
        let world_item = self.items.get(item)?;
        let progress = progress(step, self.per_user[user]);
        let previous = previous.and_then(|p| self.items.get(p));
        let weight = |g: usize| persona.like_start[g] * (1.0 - progress) + persona.like_end[g] * progress;
        Some(Reasons {
            liked_genres: world_item.genres.iter().filter(|&&g| weight(g) > 0.3).map(|&g| GENRES[g]).collect(),
            disliked_genres: world_item.genres.iter().filter(|g| persona.dislikes.contains(g)).map(|&g| GENRES[g]).collect(),
            log_popularity: world_item.log_popularity,
            popularity_sensitivity: persona.popularity_sensitivity,
            novel: previous.is_some_and(|p| !world_item.genres.iter().any(|g| p.genres.contains(g))) && persona.novelty > 0.5,
            utility: persona.utility(world_item, progress, previous),
        })
    }

    /// The user's true choice probabilities over `shown` (the world's softmax over utilities).
    pub fn choice_probabilities(&self, user: usize, shown: &[usize], step: usize, previous: Option<usize>) -> Option<Vec<f64>> {
        let utilities: Vec<f64> = shown.iter().map(|&i| self.reasons(user, i, step, previous).map(|r| r.utility)).collect::<Option<_>>()?;
        let max = utilities.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let weights: Vec<f64> = utilities.iter().map(|u| ((u - max) / self.temperature).exp()).collect();
        let total: f64 = weights.iter().sum();
        Some(weights.iter().map(|w| w / total).collect())
    }
}

/// The catalogue: shown items and their hidden genres and popularity.
fn world_items(config: &WorldConfig, seed: u64) -> (Vec<Item>, Vec<WorldItem>) {
    let mut rng = Rng::stream(seed, "synthetic-items", 0);
    let first_year = crate::corpus::date(config.start)[..4].parse::<u32>().unwrap_or(2000);
    let mut titles = HashSet::new();
    let mut items = Vec::with_capacity(config.items);
    let mut world_items = Vec::with_capacity(config.items);
    for i in 0..config.items {
        let mut title = format!("The {} {}", ADJECTIVES[rng.below(32)], NOUNS[rng.below(32)]);
        if rng.chance(0.4) {
            title = format!("{title} of {}", NOUNS[rng.below(32)]);
        }
        let mut unique = title.clone();
        let mut n = 2;
        while !titles.insert(unique.clone()) {
            unique = format!("{title} {n}");
            n += 1;
        }
        let genre_count = [1, 1, 1, 1, 1, 2, 2, 2, 2, 3][rng.below(10)];
        let mut genres: Vec<usize> = Vec::new();
        while genres.len() < genre_count {
            let g = rng.below(GENRES.len());
            if !genres.contains(&g) {
                genres.push(g);
            }
        }
        // Every title is out before the world's clock starts, so no one consumes an item before
        // its release and a scene's dates say nothing about which option was chosen.
        let year = first_year - 1 - (rng.f64().powf(1.7) * 60.0) as u32;
        let log_popularity = rng.normal();
        items.push(Item {
            raw_id: format!("i{}", i + 1),
            title: unique,
            year: Some(year),
            categories: genres.iter().map(|&g| GENRES[g].to_owned()).collect(),
            description: None,
            popularity: 0,
        });
        world_items.push(WorldItem { genres, log_popularity });
    }
    (items, world_items)
}

fn persona(rng: &mut Rng, drift_share: f64) -> Persona {
    let n = GENRES.len();
    let mut order: Vec<usize> = (0..n).collect();
    rng.shuffle(&mut order);
    let liked = rng.range_inclusive(2, 4);
    let disliked = rng.range_inclusive(1, 3);
    let mut like_start = vec![0.0; n];
    for &g in &order[..liked] {
        like_start[g] = 0.6 + rng.f64();
    }
    let dislikes = order[liked..liked + disliked].to_vec();
    let mut like_end = like_start.clone();
    if rng.chance(drift_share) {
        // One liked genre fades and a neutral one takes its place over the user's history.
        let fading = order[0];
        let rising = order[liked + disliked];
        like_end[rising] = like_end[fading];
        like_end[fading] = 0.0;
    }
    // As many users seek lesser-known titles as popular ones, so that popularity alone says
    // nothing about which option a user picks: a scene's answer must come from the user.
    Persona { like_start, like_end, dislikes, popularity_sensitivity: -0.55 + 1.1 * rng.f64(), novelty: rng.f64() }
}

/// Writes the world in MovieLens-1M's `.dat` layout (latin-1, `::` separated), so the real
/// reader can be exercised at any size.
pub fn write_movielens_dat(data: &SourceData, dir: &Path) -> Result<()> {
    use std::fmt::Write as _;
    std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    let number = |raw: &str| raw.trim_start_matches(['u', 'i']).to_owned();
    let mut movies = String::new();
    for item in &data.items.records {
        let year = item.year.map(|y| format!(" ({y})")).unwrap_or_default();
        let _ = writeln!(movies, "{}::{}{}::{}", number(&item.raw_id), item.title, year, item.categories.join("|"));
    }
    let mut users = String::new();
    for user in &data.users.records {
        let age = match user.age.unwrap_or(30) {
            0..=17 => 1,
            18..=24 => 18,
            25..=34 => 25,
            35..=44 => 35,
            45..=49 => 45,
            50..=55 => 50,
            _ => 56,
        };
        let _ = writeln!(users, "{}::{}::{age}::{}::00000", number(&user.raw_id), user.gender.as_deref().unwrap_or("M"), number(&user.raw_id).len() % 21);
    }
    let mut ratings = String::with_capacity(data.interactions.len() * 24);
    for x in &data.interactions {
        let _ = writeln!(
            ratings,
            "{}::{}::{}::{}",
            number(&data.users.records[x.user as usize].raw_id),
            number(&data.items.records[x.item as usize].raw_id),
            x.rating.unwrap_or(3.0) as u32,
            x.timestamp
        );
    }
    for (name, text) in [("movies.dat", movies), ("users.dat", users), ("ratings.dat", ratings)] {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| DataError::io(&path, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oracle_remade_from_its_spec_knows_the_users_and_their_choices() {
        let spec = WorldSpec { config: WorldConfig { users: 40, items: 120, interactions_per_user: 20, ..WorldConfig::default() }, seed: 9 };
        let (data, truths) = generate(&spec.config, spec.seed).expect("world");
        let oracle = Oracle::new(&spec).expect("oracle");
        let last = spec.config.interactions_per_user;
        for (u, truth) in truths.iter().enumerate() {
            assert_eq!(Oracle::raw_index(&truth.raw_user_id), Some(u));
            // Any item of a disliked genre is reported as such, at any moment.
            for (i, item) in oracle.items.iter().enumerate() {
                let reasons = oracle.reasons(u, i, last, None).expect("in the world");
                let disliked: Vec<&str> = item.genres.iter().map(|&g| GENRES[g]).filter(|g| truth.profile.dislikes.iter().any(|d| d == g)).collect();
                assert_eq!(reasons.disliked_genres, disliked);
            }
        }
        // The real choices are far likelier under the oracle than by chance: each chosen item
        // against four items the user never picked.
        let mut rng = Rng::new(1);
        let (mut hit, mut count) = (0.0, 0);
        for u in 0..spec.config.users {
            let chosen: Vec<usize> = data.interactions.iter().filter(|x| x.user as usize == u).map(|x| x.item as usize).collect();
            for (step, &item) in chosen.iter().enumerate() {
                let mut shown = vec![item];
                while shown.len() < 5 {
                    let other = rng.below(spec.config.items);
                    if !chosen.contains(&other) && !shown.contains(&other) {
                        shown.push(other);
                    }
                }
                let previous = step.checked_sub(1).map(|p| chosen[p]);
                hit += oracle.choice_probabilities(u, &shown, step, previous).expect("in the world")[0];
                count += 1;
            }
        }
        let mean = hit / f64::from(count);
        assert!(mean > 0.45, "mean probability of the real choice {mean:.3} (chance 0.2)");
        assert!(oracle.reasons(40, 0, 0, None).is_none() && Oracle::raw_index("x").is_none());
    }
}
