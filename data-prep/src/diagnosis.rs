//! The discrepancy case (METHODS.md section 5) as the diagnostic model reads it, the fixed
//! diagnosis prompt, and the chat records its defect fine-tuning trains on. The label is
//! generated text after the prompt (`Diagnosis: [A] Inaccurate`), so a Hugging Face export of
//! the diagnostic model works with plain generation, and its probability is read like an
//! option letter after `Diagnosis: [`.

use std::path::Path;

use crate::defects::DefectKind;
use crate::error::{DataError, Result};
use crate::parquet_io::{self as pq, Table};
use crate::scenes::{letter, lettered_items, render_history};
use crate::tables::{Interaction, Item};

/// Where a diagnosis's label letter is read.
pub const DIAGNOSIS_CUE: &str = "Diagnosis: [";

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
}

/// The user message asking for a diagnosis of `case` (a rendered [`DiscrepancyCase`]).
pub fn diagnosis_prompt(case: &str) -> String {
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

/// Chat records (`prompt`, `response`, `split`) for defect fine-tuning from a
/// `defects.parquet`; its `split` column keeps the held-out users out of training.
pub fn write_diagnostic_records(defects: &Path, out: &Path) -> Result<usize> {
    let table = Table::read(defects)?;
    let cases = table.strings("case")?;
    let labels = table.strings("label")?;
    let splits = table.strings("split")?;
    let mut answers = Vec::with_capacity(labels.len());
    for (row, label) in labels.iter().enumerate() {
        let kind = DefectKind::parse(label)
            .ok_or_else(|| DataError::invalid(defects, format!("record {row}: label {label:?}; expected inaccurate, incomplete or both")))?;
        answers.push(diagnosis_answer(kind));
    }
    pq::write(
        out,
        vec![("prompt", pq::str_col(cases.iter().map(|c| diagnosis_prompt(c)))), ("response", pq::str_col(&answers)), ("split", pq::str_col(&splits))],
    )?;
    Ok(answers.len())
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
        assert!(diagnosis_prompt(&text).contains(&text));
    }
}
