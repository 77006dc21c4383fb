//! The discrepancy case (METHODS.md section 5) as the diagnostic model reads it, the fixed
//! diagnosis prompt, and the records its defect fine-tuning trains on. The label is generated
//! text after the prompt (`Diagnosis: [A] Inaccurate`), so a Hugging Face export of the
//! diagnostic model works with plain generation, and its probability is read like an option
//! letter after `Diagnosis: [`; or, under the option readout, a score at the end of each label's
//! line. A case is written in either of the scenes' renderings: UserMirrorer's (titles, years,
//! the whole profile) or compact (categories only, for small models); a model trained on one
//! records it in `diagnosis.json` and is asked in it.

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::defects::DefectKind;
use crate::error::{DataError, Result};
use crate::fsutil::write_json;
use crate::parquet_io::{self as pq, Table};
use crate::profile::Profile;
use crate::scenes::{compact_item, letter, lettered_items, render_history, Rendering};
use crate::tables::{Interaction, Item};

/// Where a diagnosis's label letter is read.
pub const DIAGNOSIS_CUE: &str = "Diagnosis: [";

/// Beside a diagnostic model's weights: how it reads cases ([`CaseFormat`]).
pub const CASE_FORMAT_FILE: &str = "diagnosis.json";

/// How a diagnostic model was trained to read cases, so that evaluation and DGDPO ask it the
/// same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseFormat {
    pub rendering: Rendering,
}

impl CaseFormat {
    /// The format recorded in model folder `dir`, if any.
    pub fn read(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join(CASE_FORMAT_FILE);
        if !path.is_file() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path).map_err(|e| DataError::io(&path, e))?;
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| DataError::invalid(&path, format!("{e}; expected {{\"rendering\": \"usermirrorer\" or \"compact\"}}")))
    }

    pub fn write(&self, dir: &Path) -> Result<()> {
        write_json(&dir.join(CASE_FORMAT_FILE), self)
    }
}

/// A simulated choice that differs from the real one, with what led to it.
#[derive(Debug, Clone, PartialEq)]
pub struct DiscrepancyCase {
    pub profile: String,
    /// Recent history lines before the choice, newest last.
    pub history: String,
    /// The item ids of those lines (empty where only the text is known).
    pub history_items: Vec<u32>,
    /// Candidate item ids in letter order.
    pub candidate_items: Vec<u32>,
    /// `[A] item` lines.
    pub candidates: Vec<String>,
    pub simulated: usize,
    pub real: usize,
}

impl DiscrepancyCase {
    /// The case of `profile` choosing `simulated` where the user chose `real` among
    /// `candidate_items`, after the `recent` history.
    pub fn new(items: &[Item], profile: String, recent: &[Interaction], candidate_items: Vec<u32>, simulated: usize, real: usize) -> Self {
        Self {
            profile,
            history: render_history(items, recent),
            history_items: recent.iter().map(|x| x.item_id).collect(),
            candidates: lettered_items(items, &candidate_items),
            candidate_items,
            simulated,
            real,
        }
    }

    /// The case as the diagnostic model sees it (the `case` column of `defects.parquet`). Both
    /// choices are quoted in full, so the evidence sits next to the question.
    pub fn render(&self) -> String {
        format!(
            "# User Profile\n{}\n\n## Recent History\n{}\n\n# Candidates\n{}\n\nSimulated choice: {}\nReal choice: {}",
            self.profile,
            if self.history.is_empty() { "(none)" } else { &self.history },
            self.candidates.join("\n"),
            self.candidates[self.simulated],
            self.candidates[self.real]
        )
    }

    /// The case in few tokens, for small models: the stated likes and dislikes, the history
    /// and the candidates as their categories (like a compact scene), both choices quoted.
    /// `items` is the dataset the ids index.
    pub fn render_compact(&self, items: &[Item]) -> String {
        let item = |id: u32| items.get(id as usize).map_or_else(|| format!("item {id}"), compact_item);
        let list = |v: Vec<String>| if v.is_empty() { "-".to_owned() } else { v.join(", ") };
        let (likes, dislikes) = Profile::stated_preferences(&self.profile);
        let mut s = format!("Likes: {}\nDislikes: {}\nHistory:\n", list(likes), list(dislikes));
        for &id in &self.history_items {
            let _ = writeln!(s, "- {}", item(id));
        }
        let candidates: Vec<String> = self.candidate_items.iter().enumerate().map(|(i, &id)| format!("[{}] {}", letter(i), item(id))).collect();
        let _ = write!(s, "Options:\n{}\nSimulated choice: {}\nReal choice: {}", candidates.join("\n"), candidates[self.simulated], candidates[self.real]);
        s
    }

    /// The case in `rendering` (the compact one reads `items`).
    pub fn render_as(&self, rendering: Rendering, items: &[Item]) -> String {
        match rendering {
            Rendering::Usermirrorer => self.render(),
            Rendering::Compact => self.render_compact(items),
        }
    }
}

/// The user message asking for a diagnosis of `case` (a [`DiscrepancyCase`] rendered in
/// `rendering`). The compact one has no instructions (a small model's tokenizer spells
/// unfamiliar prose out letter by letter) and ends with one line per label: the real choice's
/// categories, then the label (`[A] Drama, Crime: Inaccurate`). The option readout scores the
/// end of each line as it scores a scene's options; the categories there are what must be
/// matched against the profile (without them a tiny model stays at chance on the same budget),
/// and the label last puts the score on the label's own tokens, which the three lines do not
/// share (BENCHMARKS.md).
pub fn diagnosis_prompt(case: &str, rendering: Rendering) -> String {
    if rendering == Rendering::Compact {
        let real = case.rsplit_once("Real choice: [").and_then(|(_, line)| line.split_once("] ")).map_or("", |(_, categories)| categories);
        let labels: Vec<String> = DefectKind::ALL.iter().map(|k| format!("[{}] {real}: {}", letter(k.index()), k.title())).collect();
        return format!("{case}\nDiagnosis:\n{}", labels.join("\n"));
    }
    format!(
        "A simulated user, driven by the profile below, chose differently from the real user. \
         Diagnose the profile:\n\
         [A] Inaccurate: it states a preference that the real choice contradicts.\n\
         [B] Incomplete: it lacks a preference that explains the real choice.\n\
         [C] Both: it states a contradicted preference and lacks an explaining one.\n\n\
         {case}\n\nAnswer as \"Diagnosis: [X] Label\"."
    )
}

/// The answer the diagnostic model is trained to write.
pub fn diagnosis_answer(kind: DefectKind) -> String {
    let index = kind.index();
    format!("{DIAGNOSIS_CUE}{}] {}", letter(index), kind.title())
}

/// Records for defect fine-tuning from a `defects.parquet`: chat records (`prompt`,
/// `response`), read as scenes under the option readout too (`target_pos`, the label's
/// index, among `choice_cnt` = 3), and `split`, which keeps the held-out users out of training. Returns
/// how many, and the rendering of the cases (its `rendering` column; UserMirrorer's in files
/// written before it existed).
pub fn write_diagnostic_records(defects: &Path, out: &Path) -> Result<(usize, Rendering)> {
    let table = Table::read(defects)?;
    let cases = table.strings("case")?;
    let labels = table.strings("label")?;
    let splits = table.strings("split")?;
    let rendering = case_rendering(&table, defects)?;
    let kinds = labels
        .iter()
        .enumerate()
        .map(|(row, label)| {
            DefectKind::parse(label)
                .ok_or_else(|| DataError::invalid(defects, format!("record {row}: label {label:?}; expected inaccurate, incomplete or both")))
        })
        .collect::<Result<Vec<_>>>()?;
    pq::write(
        out,
        vec![
            ("prompt", pq::str_col(cases.iter().map(|c| diagnosis_prompt(c, rendering)))),
            ("response", pq::str_col(kinds.iter().map(|&k| diagnosis_answer(k)))),
            ("target_pos", pq::u32_col(kinds.iter().map(|k| k.index() as u32))),
            ("choice_cnt", pq::u32_col(kinds.iter().map(|_| DefectKind::ALL.len() as u32))),
            ("split", pq::str_col(&splits)),
        ],
    )?;
    Ok((kinds.len(), rendering))
}

/// The one rendering of every case in a defects table.
fn case_rendering(table: &Table, path: &Path) -> Result<Rendering> {
    if !table.has_column("rendering") {
        return Ok(Rendering::Usermirrorer);
    }
    let mut first = None;
    for (row, name) in table.strings("rendering")?.iter().enumerate() {
        let rendering =
            Rendering::parse(name).ok_or_else(|| DataError::invalid(path, format!("record {row}: rendering {name:?}; expected usermirrorer or compact")))?;
        match first {
            None => first = Some(rendering),
            Some(r) if r != rendering => {
                return Err(DataError::invalid(
                    path,
                    format!("record {row}: rendering {name:?}, but record 0 is {:?}; one model reads one rendering", r.name()),
                ));
            }
            Some(_) => {}
        }
    }
    Ok(first.unwrap_or(Rendering::Usermirrorer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_letter_the_labels_in_order() {
        assert_eq!(diagnosis_answer(DefectKind::Inaccurate), "Diagnosis: [A] Inaccurate");
        assert_eq!(diagnosis_answer(DefectKind::Both), "Diagnosis: [C] Both");
        let case = DiscrepancyCase {
            profile: "Likes: Drama.".into(),
            history: String::new(),
            history_items: Vec::new(),
            candidate_items: vec![4, 7],
            candidates: vec!["[A] X".into(), "[B] Y".into()],
            simulated: 0,
            real: 1,
        };
        let text = case.render();
        assert!(text.contains("## Recent History\n(none)") && text.ends_with("Simulated choice: [A] X\nReal choice: [B] Y"), "{text}");
        assert!(diagnosis_prompt(&text, Rendering::Usermirrorer).contains(&text));
    }

    #[test]
    fn a_compact_case_names_items_by_their_categories() {
        let item = |title: &str, categories: &[&str]| Item {
            raw_id: title.into(),
            title: title.into(),
            year: Some(1990),
            categories: categories.iter().map(|c| (*c).to_owned()).collect(),
            description: None,
            popularity: 1,
        };
        let items = vec![item("Heat", &["Crime", "Drama"]), item("Up", &["Animation"]), item("Alien", &["Horror"])];
        let case = DiscrepancyCase::new(
            &items,
            "Demographics: 30-year-old.\nLikes: Horror.\nDislikes: nothing in particular.".into(),
            &[Interaction { user_id: 0, item_id: 1, timestamp: 0, rating: Some(4.0), review: None }],
            vec![2, 0],
            0,
            1,
        );
        let text = case.render_as(Rendering::Compact, &items);
        assert_eq!(
            text,
            "Likes: Horror\nDislikes: -\nHistory:\n- Animation\nOptions:\n[A] Horror\n[B] Crime, Drama\nSimulated choice: [A] Horror\nReal choice: [B] Crime, Drama"
        );
        let prompt = diagnosis_prompt(&text, Rendering::Compact);
        assert!(
            prompt.ends_with("Real choice: [B] Crime, Drama\nDiagnosis:\n[A] Crime, Drama: Inaccurate\n[B] Crime, Drama: Incomplete\n[C] Crime, Drama: Both"),
            "{prompt}"
        );
        assert_eq!(crate::scenes::option_line_ends(&prompt, 3).map(|e| e[2]), Some(prompt.len()), "the labels are the readout's options");
        assert_eq!(case.render_as(Rendering::Usermirrorer, &items), case.render());
    }
}
