//! Treatments (METHODS.md section 5): rewrite a profile given a discrepancy case and, for
//! DGDPO, its diagnosis. A language model gets a prompt that names the defect, quotes the case
//! and asks for a minimal edit; the rule treatment edits the structured statistical profile.
//! Without a diagnosis (the refinement baseline) both are told only that the profile is wrong.

use simforge_data::defects::DefectKind;
use simforge_data::diagnosis::DiscrepancyCase;
use simforge_data::profile::Profile;
use simforge_data::tables::Item;

use crate::error::Result;
use simforge_trainer::burn::tensor::Device;

use simforge_trainer::agent::{AgentSpec, EndpointSettings};

use crate::llm::{open_llm, Llm, WriteAsk};

pub trait Treatment {
    fn name(&self) -> String;
    /// The rewritten profile of each case.
    fn treat(&mut self, cases: &[(&DiscrepancyCase, Option<DefectKind>)]) -> Result<Vec<String>>;
}

/// Opens a treatment spec; the rule treatment reads `items`, a model writes at most
/// `max_new_tokens`.
pub fn open_treatment<'a>(
    spec: &AgentSpec,
    items: &'a [Item],
    max_new_tokens: usize,
    endpoint: &EndpointSettings,
    device: &Device,
) -> Result<Box<dyn Treatment + 'a>> {
    Ok(match spec {
        AgentSpec::Rule => Box::new(RuleTreatment { items }),
        _ => Box::new(LlmTreatment { llm: open_llm(spec, "treatment", endpoint, device)?, max_new_tokens }),
    })
}

/// Edits the `Likes:` and `Dislikes:` lines, keeping every other line as it is. Incomplete:
/// like the real choice's unstated categories that the case's recent history chose at least
/// twice more (a one-off choice reveals no preference); Inaccurate: drop the stated dislikes
/// the real choice has, and the stated likes that drew the simulated choice without support
/// in the recent history; Both: both. Without a diagnosis: like all the real choice's categories
/// and stop liking the simulated choice's (the evidence taken at face value).
pub struct RuleTreatment<'a> {
    pub items: &'a [Item],
}

/// Earlier choices of a category in the case's history that make it a preference.
const REPEATED_CHOICES: usize = 2;

impl RuleTreatment<'_> {
    pub fn rewrite(&self, case: &DiscrepancyCase, diagnosis: Option<DefectKind>) -> String {
        let (mut likes, mut dislikes) = Profile::stated_preferences(&case.profile);
        let real = &self.items[case.candidate_items[case.real] as usize].categories;
        let simulated = &self.items[case.candidate_items[case.simulated] as usize].categories;
        let (add, drop_dislikes, drop_likes) = match diagnosis {
            Some(DefectKind::Incomplete) => (true, false, false),
            Some(DefectKind::Inaccurate) => (false, true, false),
            Some(DefectKind::Both) => (true, true, false),
            None => (true, true, true),
        };
        let needed_evidence = if diagnosis.is_some() { REPEATED_CHOICES } else { 0 };
        let evidence = |c: &String| case.history_items.iter().filter(|&&i| self.items[i as usize].categories.contains(c)).count();
        if drop_dislikes {
            dislikes.retain(|d| !real.contains(d));
        }
        if drop_likes {
            likes.retain(|l| !simulated.contains(l) || real.contains(l));
        } else if drop_dislikes {
            likes.retain(|l| !simulated.contains(l) || real.contains(l) || evidence(l) >= REPEATED_CHOICES);
        }
        if add {
            for c in real {
                if !likes.contains(c) && !dislikes.contains(c) && evidence(c) >= needed_evidence {
                    likes.push(c.clone());
                }
            }
        }
        replace_preferences(&case.profile, &likes, &dislikes)
    }
}

/// `profile` with its likes and dislikes lines replaced (added after the first line when
/// missing), other lines untouched.
fn replace_preferences(profile: &str, likes: &[String], dislikes: &[String]) -> String {
    let rendered = Profile { likes: likes.to_vec(), dislikes: dislikes.to_vec(), ..Profile::default() }.render();
    let mut new_lines = rendered.lines();
    let (likes_line, dislikes_line) = (new_lines.next().unwrap_or_default(), new_lines.next().unwrap_or_default());
    let mut out: Vec<&str> = Vec::new();
    let (mut placed_likes, mut placed_dislikes) = (false, false);
    for line in profile.lines() {
        if line.trim_start().starts_with("Likes: ") {
            out.push(likes_line);
            placed_likes = true;
        } else if line.trim_start().starts_with("Dislikes: ") {
            out.push(dislikes_line);
            placed_dislikes = true;
        } else {
            out.push(line);
        }
    }
    let at = out.len().min(1);
    if !placed_dislikes {
        out.insert(at, dislikes_line);
    }
    if !placed_likes {
        out.insert(at, likes_line);
    }
    out.join("\n")
}

impl Treatment for RuleTreatment<'_> {
    fn name(&self) -> String {
        "rule".into()
    }

    fn treat(&mut self, cases: &[(&DiscrepancyCase, Option<DefectKind>)]) -> Result<Vec<String>> {
        Ok(cases.iter().map(|(case, diagnosis)| self.rewrite(case, *diagnosis)).collect())
    }
}

/// What each diagnosis tells the rewriting model.
fn defect_description(kind: DefectKind) -> &'static str {
    match kind {
        DefectKind::Inaccurate => "Inaccurate: it states a preference that the real choice contradicts",
        DefectKind::Incomplete => "Incomplete: it lacks a preference that explains the real choice",
        DefectKind::Both => "Both inaccurate and incomplete: it states a preference that the real choice contradicts, and lacks one that explains it",
    }
}

/// The treatment prompt: the defect (or only that the profile is wrong), the case, and the
/// request for a minimal edit in the same format.
pub fn treatment_prompt(case: &DiscrepancyCase, diagnosis: Option<DefectKind>) -> String {
    let finding = match diagnosis {
        Some(kind) => format!(
            "A diagnosis found the profile {}. Fix exactly that with the smallest edit, keeping the rest of the profile word for word.",
            defect_description(kind)
        ),
        None => "The profile is wrong. Rewrite it so that it fits the real user.".to_owned(),
    };
    format!("A simulated user driven by the profile below chose differently from the real user.\n{finding}\nReply with the new profile only, in the same line format.\n\n{}", case.render())
}

/// A language model rewriting the profile; an empty or unusable answer keeps the old profile
/// (the re-check then rejects nothing, since nothing changed).
pub struct LlmTreatment {
    pub llm: Box<dyn Llm>,
    pub max_new_tokens: usize,
}

/// The profile in a model's answer: code fences and a leading "Profile:" heading removed.
fn answer_profile(answer: &str) -> &str {
    let text = answer.trim().trim_start_matches("```text").trim_start_matches("```").trim_end_matches("```").trim();
    text.strip_prefix("# User Profile").or_else(|| text.strip_prefix("Profile:")).unwrap_or(text).trim()
}

impl Treatment for LlmTreatment {
    fn name(&self) -> String {
        self.llm.name()
    }

    fn treat(&mut self, cases: &[(&DiscrepancyCase, Option<DefectKind>)]) -> Result<Vec<String>> {
        let asks: Vec<WriteAsk> = cases
            .iter()
            .map(|(case, diagnosis)| WriteAsk { system: None, user: treatment_prompt(case, *diagnosis), max_new_tokens: self.max_new_tokens })
            .collect();
        let answers = self.llm.write(&asks)?;
        Ok(cases
            .iter()
            .zip(answers)
            .map(|((case, _), answer)| {
                let profile = answer_profile(&answer);
                if profile.is_empty() {
                    case.profile.clone()
                } else {
                    profile.to_owned()
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_edits_follow_the_diagnosis_and_keep_other_lines() {
        let item = |cats: &[&str]| Item { categories: cats.iter().map(|c| c.to_string()).collect(), ..Item::default() };
        let items = vec![item(&["Horror"]), item(&["Drama", "War"]), item(&["Drama"])];
        let rule = RuleTreatment { items: &items };
        let case = DiscrepancyCase {
            profile: "Demographics: 30 years old.\nLikes: Horror.\nDislikes: War.\nTaste: mixed.".into(),
            history: String::new(),
            history_items: vec![2, 0, 2],
            candidate_items: vec![0, 1],
            candidates: vec!["[A] a".into(), "[B] b".into()],
            simulated: 0,
            real: 1,
        };
        assert_eq!(rule.rewrite(&case, Some(DefectKind::Incomplete)), "Demographics: 30 years old.\nLikes: Horror, Drama.\nDislikes: War.\nTaste: mixed.");
        // Horror drew the simulated choice and the history chose it only once: dropped.
        assert_eq!(
            rule.rewrite(&case, Some(DefectKind::Inaccurate)),
            "Demographics: 30 years old.\nLikes: nothing in particular.\nDislikes: nothing in particular.\nTaste: mixed."
        );
        // War was chosen only this once: not a preference yet.
        assert_eq!(rule.rewrite(&case, Some(DefectKind::Both)), "Demographics: 30 years old.\nLikes: Drama.\nDislikes: nothing in particular.\nTaste: mixed.");
        assert_eq!(rule.rewrite(&case, None), "Demographics: 30 years old.\nLikes: Drama, War.\nDislikes: nothing in particular.\nTaste: mixed.");
        assert_eq!(replace_preferences("Taste: x.", &["A".into()], &[]), "Taste: x.\nLikes: A.\nDislikes: nothing in particular.");
        assert!(treatment_prompt(&case, Some(DefectKind::Incomplete)).contains("lacks a preference"));
        assert!(treatment_prompt(&case, None).contains("The profile is wrong."));
        assert_eq!(answer_profile("```\nLikes: A.\n```"), "Likes: A.");
    }
}
