//! The ensemble simulator of METHODS.md section 8 as a teacher, for real data without an LLM.
//!
//! Three voters per (user, candidate), each from the user's history before the scene:
//! keyword matching (the candidate's keywords shared with liked items of its categories, minus
//! those shared with disliked ones), similarity (the best cosine of keyword sets against a
//! liked item, minus the best against a disliked one) and, with a trained SASRec, the
//! statistical vote (sigmoid of its score above 0.5). An option's utility is its votes plus
//! each voter's margin; the letter distribution is a softmax of the utilities, and each
//! decision draws a letter from it and cites the voters' evidence in an EKB rationale.
//! Keywords come from an item's categories and the frequent words of its description and
//! reviews (no LLM).

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use simforge_data::rng::Rng;
use simforge_data::scenes::letter;
use simforge_data::tables::{Dataset, Interaction};

use super::teacher::{Decision, DecisionScene, Teacher};
use crate::error::Result;
use crate::sasrec::evaluate::NextItemScorer;
use crate::sasrec::Recommender;

/// Ratings at or above this are likes, at or below `DISLIKE_AT` dislikes; without ratings every
/// interaction is a like.
const LIKE_AT: f32 = 4.0;
const DISLIKE_AT: f32 = 2.0;
/// Words kept per item from its description and reviews.
const TEXT_KEYWORDS: usize = 8;
/// How sharply utilities turn into choice probabilities.
const TEMPERATURE: f64 = 0.5;

pub struct EnsembleTeacher {
    label: String,
    dataset: Dataset,
    keywords: Vec<BTreeSet<String>>,
    /// Each user's interactions, in time order.
    histories: Vec<Vec<Interaction>>,
    recommender: Option<Recommender>,
}

/// What the voters say about one option.
#[derive(Debug, Clone, Default, PartialEq)]
struct Votes {
    keyword: f64,
    similarity: f64,
    /// Sigmoid of SASRec's score, when there is a SASRec.
    statistical: Option<f64>,
    /// Shared keywords with liked items, for the rationale.
    shared: Vec<String>,
    /// The most similar liked and disliked items.
    nearest_liked: Option<u32>,
    nearest_disliked: Option<u32>,
}

impl Votes {
    fn likes(&self) -> usize {
        usize::from(self.keyword > 0.0) + usize::from(self.similarity > 0.0) + self.statistical.map_or(0, |p| usize::from(p > 0.5))
    }

    fn utility(&self) -> f64 {
        self.likes() as f64 + self.keyword.tanh() + self.similarity + self.statistical.map_or(0.0, |p| p - 0.5)
    }
}

fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| w.len() >= 4 && !STOPWORDS.contains(&w.to_lowercase().as_str())).map(str::to_lowercase)
}

const STOPWORDS: &[&str] = &[
    "this", "that", "with", "have", "from", "they", "were", "what", "when", "which", "there", "their", "would", "could", "about", "been", "very", "just",
    "more", "some", "than", "then", "them", "these", "into", "only", "also", "will", "your", "like", "much", "well", "even", "really", "because", "after",
    "before", "other", "does", "dont", "didn", "it's", "here", "over", "most", "such", "make", "made", "good", "great", "time", "product", "item", "movie",
    "film", "book", "game",
];

/// An item's keywords: its categories, then its description's and reviews' frequent words.
fn item_keywords(dataset: &Dataset) -> Vec<BTreeSet<String>> {
    let mut counts: Vec<HashMap<String, usize>> = vec![HashMap::new(); dataset.items.len()];
    for x in &dataset.interactions {
        if let Some(review) = &x.review {
            for w in words(review) {
                *counts[x.item_id as usize].entry(w).or_default() += 1;
            }
        }
    }
    dataset
        .items
        .iter()
        .zip(counts)
        .map(|(item, mut counts)| {
            for w in item.description.as_deref().map(words).into_iter().flatten() {
                *counts.entry(w).or_default() += 1;
            }
            let mut frequent: Vec<(String, usize)> = counts.into_iter().collect();
            frequent.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            item.categories.iter().map(|c| c.to_lowercase()).chain(frequent.into_iter().take(TEXT_KEYWORDS).map(|(w, _)| w)).collect()
        })
        .collect()
}

fn cosine(a: &BTreeSet<String>, b: &BTreeSet<String>) -> f64 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    a.intersection(b).count() as f64 / ((a.len() * b.len()) as f64).sqrt()
}

impl EnsembleTeacher {
    /// The prepared dataset the scenes come from, and optionally a SASRec `model/` folder
    /// trained on it (its statistical voter).
    pub fn load(data: &Path, sasrec: Option<&Path>, device: &burn::tensor::Device) -> Result<Self> {
        let dataset = Dataset::load(data)?;
        let keywords = item_keywords(&dataset);
        let histories = dataset.by_user().into_iter().map(<[Interaction]>::to_vec).collect();
        let recommender = sasrec.map(|dir| Recommender::load(dir, device)).transpose()?;
        let label = match sasrec {
            Some(dir) => format!("ensemble:{}", dir.display()),
            None => "ensemble".into(),
        };
        Ok(Self { label, dataset, keywords, histories, recommender })
    }

    /// The user's interactions before the scene's choice.
    fn before<'a>(&'a self, scene: &DecisionScene) -> &'a [Interaction] {
        let Some(all) = self.histories.get(scene.user_id as usize) else { return &[] };
        let end = all
            .iter()
            .position(|x| x.item_id == scene.target_item && x.timestamp == scene.timestamp)
            .unwrap_or_else(|| all.partition_point(|x| x.timestamp < scene.timestamp));
        &all[..end]
    }

    fn votes(&self, scene: &DecisionScene) -> Result<Vec<Votes>> {
        let history = self.before(scene);
        let liked: Vec<u32> = history.iter().filter(|x| x.rating.is_none_or(|r| r >= LIKE_AT)).map(|x| x.item_id).collect();
        let disliked: Vec<u32> = history.iter().filter(|x| x.rating.is_some_and(|r| r <= DISLIKE_AT)).map(|x| x.item_id).collect();
        let statistical = match &self.recommender {
            Some(r) if !history.is_empty() => {
                let sequence: Vec<u32> = history.iter().map(|x| x.item_id + 1).collect();
                let row = r.model.score_every_item(&[sequence.as_slice()]).pop().unwrap_or_default();
                Some(scene.exposure.iter().map(|&i| row.get(i as usize + 1).map_or(0.5, |&s| 1.0 / (1.0 + (-f64::from(s)).exp()))).collect::<Vec<_>>())
            }
            _ => None,
        };
        Ok(scene
            .exposure
            .iter()
            .enumerate()
            .map(|(k, &item)| {
                let own = &self.keywords[item as usize];
                let categories = &self.dataset.items[item as usize].categories;
                let same_category =
                    |other: &u32| categories.is_empty() || self.dataset.items[*other as usize].categories.iter().any(|c| categories.contains(c));
                let union = |items: &[u32]| -> BTreeSet<String> {
                    items.iter().filter(|i| same_category(i)).flat_map(|&i| self.keywords[i as usize].iter().cloned()).collect()
                };
                let (pro, con) = (union(&liked), union(&disliked));
                let shared: Vec<String> = own.intersection(&pro).cloned().collect();
                let keyword = shared.len() as f64 - own.intersection(&con).count() as f64;
                let nearest =
                    |items: &[u32]| items.iter().map(|&i| (cosine(own, &self.keywords[i as usize]), i)).max_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)));
                let (best_liked, best_disliked) = (nearest(&liked), nearest(&disliked));
                Votes {
                    keyword,
                    similarity: best_liked.map_or(0.0, |b| b.0) - best_disliked.map_or(0.0, |b| b.0),
                    statistical: statistical.as_ref().map(|s| s[k]),
                    shared,
                    nearest_liked: best_liked.filter(|b| b.0 > 0.0).map(|b| b.1),
                    nearest_disliked: best_disliked.filter(|b| b.0 > 0.0).map(|b| b.1),
                }
            })
            .collect())
    }

    /// An EKB rationale for choosing `pick`, citing the voters.
    fn rationale(&self, scene: &DecisionScene, votes: &[Votes], pick: usize, style: &str) -> String {
        let title = |i: u32| self.dataset.items[i as usize].title.clone();
        let v = &votes[pick];
        let chosen = title(scene.exposure[pick]);
        let mut knowledge = Vec::new();
        if !v.shared.is_empty() {
            knowledge.push(format!("it shares {} with what I enjoyed", v.shared.iter().take(3).cloned().collect::<Vec<_>>().join(", ")));
        }
        if let Some(i) = v.nearest_liked {
            knowledge.push(format!("it reminds me of {}, which I liked", title(i)));
        }
        if let Some(i) = v.nearest_disliked {
            knowledge.push(format!("it is a bit like {}, which I did not like", title(i)));
        }
        if let Some(p) = v.statistical {
            knowledge.push(format!("it fits the way my choices have been going ({:.0}% likely)", p * 100.0));
        }
        if knowledge.is_empty() {
            knowledge.push("I know little about it, so I go by its description".into());
        }
        let total = 2 + usize::from(v.statistical.is_some());
        format!(
            "Stimulus: {chosen} stands out in the list.\nKnowledge: {}.\nEvaluation: {style}; {} of {total} of the things I weigh speak for it.\nBehavior: [{}]",
            knowledge.join("; "),
            v.likes(),
            letter(pick)
        )
    }
}

/// Choice probabilities: a softmax of the options' utilities.
fn choice_probabilities(votes: &[Votes]) -> Vec<f32> {
    let utilities: Vec<f64> = votes.iter().map(|v| v.utility() / TEMPERATURE).collect();
    let max = utilities.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let weights: Vec<f64> = utilities.iter().map(|u| (u - max).exp()).collect();
    let total: f64 = weights.iter().sum();
    weights.iter().map(|w| (w / total) as f32).collect()
}

impl Teacher for EnsembleTeacher {
    fn name(&self) -> String {
        self.label.clone()
    }

    fn decide(&mut self, scenes: &[DecisionScene], samples: usize, seed: u64) -> Result<Vec<Vec<Decision>>> {
        let styles = ["logical", "intuitive", "habitual", "impulsive"];
        scenes
            .iter()
            .map(|scene| {
                let votes = self.votes(scene)?;
                let letters = choice_probabilities(&votes);
                let weights: Vec<f64> = letters.iter().map(|&p| f64::from(p)).collect();
                let mut rng = Rng::stream(seed, "ensemble-decision", u64::from(scene.scene_id));
                Ok((0..samples)
                    .map(|_| {
                        let sampled = rng.weighted(&weights);
                        let style = styles[rng.below(styles.len())];
                        Decision { text: self.rationale(scene, &votes, sampled, style), letters: letters.clone(), sampled }
                    })
                    .collect())
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(words: &[&str]) -> BTreeSet<String> {
        words.iter().map(|w| (*w).to_owned()).collect()
    }

    #[test]
    fn votes_turn_into_utilities_and_probabilities() {
        assert!((cosine(&set(&["a", "b"]), &set(&["b", "c", "d", "e"])) - 1.0 / 8f64.sqrt()).abs() < 1e-12);
        assert_eq!(cosine(&set(&[]), &set(&["a"])), 0.0);
        let liked = Votes { keyword: 2.0, similarity: 0.4, statistical: Some(0.7), ..Votes::default() };
        let split = Votes { keyword: 1.0, similarity: -0.2, statistical: Some(0.3), ..Votes::default() };
        let disliked = Votes { keyword: -1.0, similarity: -0.5, statistical: Some(0.2), ..Votes::default() };
        assert_eq!((liked.likes(), split.likes(), disliked.likes()), (3, 1, 0));
        let p = choice_probabilities(&[liked, split, disliked]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(p[0] > p[1] && p[1] > p[2], "{p:?}");
        assert!(words("The Haunting of a GREAT house, really").eq(["haunting", "house"].map(String::from)));
    }
}
