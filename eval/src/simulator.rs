//! Simulators driven by a profile (METHODS.md sections 3 and 5). A simulator answers two
//! questions about a persona: which of these lettered items would you choose (the scene
//! prompt, its profile in place of or beside the history), and, for the behaviour-fidelity
//! metrics, would you pick this item (the probability of "Yes").

use simforge_data::chooser::RuleChooser;
use simforge_data::scenes::{lettered_items, persona_sections, render_history, render_item, render_prompt};
use simforge_data::tables::{Interaction, Item};
use simforge_trainer::distill::teacher::ANSWER_CUE;

use crate::error::Result;
use simforge_trainer::burn::tensor::Device;

use simforge_trainer::agent::{AgentSpec, EndpointSettings};

use crate::llm::{open_llm, LetterAsk, Llm};

/// Who the simulator plays: a profile, the history it is shown, or both.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Persona {
    pub profile: Option<String>,
    pub history: Vec<Interaction>,
}

/// Where a yes/no answer's letter is read.
pub const PICK_CUE: &str = "Answer: [";

pub trait Simulator {
    fn name(&self) -> String;
    /// For each (persona, candidate items): the distribution over the candidates.
    fn choose(&mut self, asks: &[(&Persona, &[u32])]) -> Result<Vec<Vec<f32>>>;
    /// For each (persona, item): the probability the persona would pick it.
    fn pick(&mut self, asks: &[(&Persona, u32)]) -> Result<Vec<f32>>;
}

/// Opens a simulator spec (`rule` or a language model); rule simulators read `items`.
pub fn open_simulator<'a>(spec: &AgentSpec, items: &'a [Item], endpoint: &EndpointSettings, device: &Device) -> Result<Box<dyn Simulator + 'a>> {
    Ok(match spec {
        AgentSpec::Rule => Box::new(RuleSimulator { items }),
        _ => Box::new(LmSimulator { llm: open_llm(spec, "simulator", endpoint, device)?, items }),
    })
}

/// The profile-driven rule chooser of data-prep: stated likes and dislikes score each item's
/// categories. Shown only a history, it takes the history's three most frequent categories as
/// likes.
pub struct RuleSimulator<'a> {
    pub items: &'a [Item],
}

impl RuleSimulator<'_> {
    fn chooser(&self, persona: &Persona) -> RuleChooser {
        if let Some(profile) = &persona.profile {
            return RuleChooser::from_profile_text(profile);
        }
        let mut counts: Vec<(String, usize)> = Vec::new();
        for x in &persona.history {
            for c in &self.items[x.item_id as usize].categories {
                match counts.iter_mut().find(|(name, _)| name == c) {
                    Some(entry) => entry.1 += 1,
                    None => counts.push((c.clone(), 1)),
                }
            }
        }
        counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        RuleChooser { likes: counts.into_iter().take(3).map(|c| c.0).collect(), dislikes: Vec::new() }
    }
}

impl Simulator for RuleSimulator<'_> {
    fn name(&self) -> String {
        "rule".into()
    }

    fn choose(&mut self, asks: &[(&Persona, &[u32])]) -> Result<Vec<Vec<f32>>> {
        Ok(asks
            .iter()
            .map(|(persona, candidates)| {
                let shown: Vec<&Item> = candidates.iter().map(|&c| &self.items[c as usize]).collect();
                let best = self.chooser(persona).choose(&shown);
                (0..candidates.len()).map(|i| if i == best { 1.0 } else { 0.0 }).collect()
            })
            .collect())
    }

    fn pick(&mut self, asks: &[(&Persona, u32)]) -> Result<Vec<f32>> {
        // Yes when the item touches a stated like more than a stated dislike.
        Ok(asks.iter().map(|(persona, item)| 1.0 / (1.0 + (1.0 - 2.0 * self.chooser(persona).score(&self.items[*item as usize]) as f32).exp())).collect())
    }
}

/// A language model answering the scene prompt (`Behavior: [`) and a yes/no question per item.
pub struct LmSimulator<'a> {
    pub llm: Box<dyn Llm>,
    pub items: &'a [Item],
}

impl LmSimulator<'_> {
    fn sections(&self, persona: &Persona) -> (String, String) {
        let profile = persona.profile.clone().unwrap_or_else(|| "(not given)".into());
        let history = if persona.history.is_empty() { "(not given)".into() } else { render_history(self.items, &persona.history) };
        (profile, history)
    }
}

impl Simulator for LmSimulator<'_> {
    fn name(&self) -> String {
        self.llm.name()
    }

    fn choose(&mut self, asks: &[(&Persona, &[u32])]) -> Result<Vec<Vec<f32>>> {
        let questions: Vec<LetterAsk> = asks
            .iter()
            .map(|(persona, candidates)| {
                let (profile, history) = self.sections(persona);
                let options = lettered_items(self.items, candidates);
                LetterAsk { system: None, user: render_prompt(&profile, &history, &options), cue: ANSWER_CUE, choices: candidates.len() }
            })
            .collect();
        self.llm.letters(&questions)
    }

    fn pick(&mut self, asks: &[(&Persona, u32)]) -> Result<Vec<f32>> {
        let questions: Vec<LetterAsk> = asks
            .iter()
            .map(|(persona, item)| {
                let (profile, history) = self.sections(persona);
                let user = format!(
                    "{}# Item\n{}\n\nWould you pick this item?\n[A] Yes\n[B] No",
                    persona_sections(&profile, &history),
                    render_item(&self.items[*item as usize])
                );
                LetterAsk { system: None, user, cue: PICK_CUE, choices: 2 }
            })
            .collect();
        Ok(self.llm.letters(&questions)?.into_iter().map(|p| p[0]).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(cats: &[&str]) -> Item {
        Item { categories: cats.iter().map(|c| c.to_string()).collect(), ..Item::default() }
    }

    #[test]
    fn the_rule_simulator_follows_the_profile_or_the_history() {
        let items = vec![item(&["Horror"]), item(&["Comedy"]), item(&["Drama", "Comedy"])];
        let mut sim = RuleSimulator { items: &items };
        let liked = Persona { profile: Some("Likes: Horror.\nDislikes: Comedy.".into()), history: Vec::new() };
        assert_eq!(sim.choose(&[(&liked, &[1, 0, 2])]).expect("choose"), vec![vec![0.0, 1.0, 0.0]]);
        let picks = sim.pick(&[(&liked, 0), (&liked, 1)]).expect("pick");
        assert!(picks[0] > 0.5 && picks[1] < 0.5, "{picks:?}");
        let x = |item_id| Interaction { user_id: 0, item_id, timestamp: 0, rating: None, review: None };
        let watcher = Persona { profile: None, history: vec![x(2), x(1)] };
        assert_eq!(simforge_data::rng::argmax(&sim.choose(&[(&watcher, &[0, 1])]).expect("choose")[0]), 1, "Comedy is the history's favourite");
    }
}
