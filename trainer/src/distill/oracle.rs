//! The `oracle` teacher of the embedded default: the synthetic world's true choice
//! probabilities, and rationales that cite the true reasons.

use std::path::Path;

use simforge_data::rng::Rng;
use simforge_data::scenes::letter;
use simforge_data::sources::synthetic::{Oracle, Reasons};
use simforge_data::tables::Dataset;

use crate::distill::teacher::{Decision, DecisionScene, Teacher};
use crate::error::{Result, TrainerError};

/// Knows every user's utilities. Its letter distribution is the world's own choice
/// probabilities whatever rationale it wrote (its reasoning adds nothing it did not know),
/// so its expected entropy is the entropy of the truth.
pub struct OracleTeacher {
    oracle: Oracle,
    /// Per canonical user: the raw index and the canonical items in time order.
    users: Vec<(usize, Vec<u32>)>,
    /// Per canonical item: the raw index and title.
    items: Vec<(usize, String)>,
}

impl OracleTeacher {
    /// The oracle of a prepared synthetic dataset (`world.json` beside its tables).
    pub fn load(data_dir: &Path) -> Result<Self> {
        let oracle = Oracle::load(data_dir)?.ok_or_else(|| {
            TrainerError::Data(simforge_data::DataError::invalid(
                data_dir,
                "no world.json; the oracle teacher needs a dataset prepared with --format synthetic",
            ))
        })?;
        let dataset = Dataset::load(data_dir)?;
        let raw = |id: &str| {
            Oracle::raw_index(id)
                .ok_or_else(|| TrainerError::Data(simforge_data::DataError::invalid(data_dir, format!("`{id}` is not an id of the synthetic world"))))
        };
        let histories = dataset.by_user();
        let users = dataset.users.iter().zip(&histories).map(|(u, h)| Ok((raw(&u.raw_id)?, h.iter().map(|x| x.item_id).collect()))).collect::<Result<_>>()?;
        let items = dataset.items.iter().map(|i| Ok((raw(&i.raw_id)?, i.title.clone()))).collect::<Result<_>>()?;
        Ok(Self { oracle, users, items })
    }

    /// The truth for one scene: each option's reasons and the choice probabilities.
    fn truth(&self, scene: &DecisionScene) -> Result<(Vec<Reasons>, Vec<f64>)> {
        let missing =
            || TrainerError::settings(format!("scene {}", scene.scene_id), format!("user {} or an exposed item is not in the oracle's dataset", scene.user_id));
        let (user, history) = self.users.get(scene.user_id as usize).ok_or_else(missing)?;
        let step = history.iter().position(|&i| i == scene.target_item).ok_or_else(missing)?;
        let raw_item = |i: u32| self.items.get(i as usize).map(|x| x.0).ok_or_else(missing);
        let previous = step.checked_sub(1).map(|p| raw_item(history[p])).transpose()?;
        let shown = scene.exposure.iter().map(|&i| raw_item(i)).collect::<Result<Vec<_>>>()?;
        let reasons = shown.iter().map(|&i| self.oracle.reasons(*user, i, step, previous).ok_or_else(missing)).collect::<Result<_>>()?;
        let probabilities = self.oracle.choice_probabilities(*user, &shown, step, previous).ok_or_else(missing)?;
        Ok((reasons, probabilities))
    }

    /// The world's true choice probabilities over a scene's options.
    pub fn choice_probabilities(&self, scene: &DecisionScene) -> Result<Vec<f64>> {
        Ok(self.truth(scene)?.1)
    }

    fn title(&self, item: u32) -> &str {
        self.items.get(item as usize).map_or("", |x| x.1.as_str())
    }
}

/// An EKB rationale for choosing option `pick`, in the user's voice, from the true reasons.
fn rationale(pick: usize, titles: &[&str], reasons: &[Reasons], probabilities: &[f64]) -> String {
    let r = &reasons[pick];
    let title = titles[pick];
    let stimulus = if let Some(genre) = r.liked_genres.first() {
        format!("I am in the mood for {genre}, as so often.")
    } else if r.novel {
        "After my last pick I want a change of genre.".to_owned()
    } else if r.popularity_sensitivity > 0.4 && r.log_popularity > 0.5 {
        format!("Everyone seems to be talking about {title}.")
    } else {
        "Nothing on the list speaks to me strongly, so I go with the least bad option.".to_owned()
    };
    let mut knowledge = Vec::new();
    if !r.liked_genres.is_empty() {
        knowledge.push(format!("{title} is {}, which I enjoy", r.liked_genres.join(" and ")));
    }
    if !r.disliked_genres.is_empty() {
        knowledge.push(format!("it is also {}, which I usually avoid", r.disliked_genres.join(" and ")));
    }
    knowledge.push(if r.log_popularity > 0.5 {
        format!("{title} is a popular title")
    } else if r.log_popularity < -0.5 {
        format!("{title} is a lesser-known title")
    } else {
        format!("{title} is moderately known")
    });
    if r.popularity_sensitivity > 0.4 {
        knowledge.push("I tend to go for what is popular".to_owned());
    } else if r.popularity_sensitivity < 0.0 {
        knowledge.push("I like discovering lesser-known titles".to_owned());
    }
    // The strongest alternative and why it loses.
    if let Some(other) = (0..reasons.len()).filter(|&i| i != pick).max_by(|&a, &b| probabilities[a].total_cmp(&probabilities[b])) {
        let o = &reasons[other];
        let why = if let Some(g) = o.disliked_genres.first() {
            format!("it is {g}, which I avoid")
        } else if o.liked_genres.is_empty() {
            "it is not my kind of thing".to_owned()
        } else {
            format!("I still lean towards {title}")
        };
        knowledge.push(format!("{} was the other candidate, but {why}", titles[other]));
    }
    let margin = probabilities[pick];
    let style = if margin > 0.7 {
        "logical"
    } else if margin > 0.4 {
        "intuitive"
    } else {
        "impulsive"
    };
    let evaluation = match style {
        "logical" => format!("Weighing it up, {title} clearly fits my taste best."),
        "intuitive" => format!("{title} simply feels right to me."),
        _ => format!("It is a close call; I just go with {title}."),
    };
    format!("Stimulus: {stimulus}\nKnowledge: {}.\nEvaluation ({style}): {evaluation}\nBehavior: [{}]", knowledge.join("; "), letter(pick))
}

impl Teacher for OracleTeacher {
    fn name(&self) -> String {
        "oracle".into()
    }

    fn decide(&mut self, scenes: &[DecisionScene], samples: usize, seed: u64) -> Result<Vec<Vec<Decision>>> {
        scenes
            .iter()
            .map(|scene| {
                let (reasons, probabilities) = self.truth(scene)?;
                let titles: Vec<&str> = scene.exposure.iter().map(|&i| self.title(i)).collect();
                let letters: Vec<f32> = probabilities.iter().map(|&p| p as f32).collect();
                let mut rng = Rng::stream(seed, "oracle-decision", u64::from(scene.scene_id));
                Ok((0..samples)
                    .map(|_| {
                        let sampled = rng.weighted(&probabilities);
                        Decision { text: rationale(sampled, &titles, &reasons, &probabilities), letters: letters.clone(), sampled }
                    })
                    .collect())
            })
            .collect()
    }
}
