//! Diagnosers (METHODS.md section 5): label a discrepancy case Inaccurate, Incomplete or Both.
//! A language model reads the fixed diagnosis prompt and its label letter's probability; the
//! rule diagnoser compares the real choice's categories with the profile's stated likes and
//! dislikes. Diagnostic accuracy with per-class precision, recall and F1 and the confusion
//! matrix on the held-out users of `defects.parquet`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use simforge_data::defects::DefectKind;
use simforge_data::diagnosis::{diagnosis_prompt, DiscrepancyCase, DIAGNOSIS_CUE};
use simforge_data::parquet_io::Table;
use simforge_data::profile::Profile;
use simforge_data::tables::Item;

use crate::error::{EvalError, Result};
use simforge_trainer::burn::tensor::Device;

use crate::llm::{open_llm, AgentSpec, LetterAsk, Llm};
use crate::simulator::argmax;

pub trait Diagnoser {
    fn name(&self) -> String;
    /// For each case, the probability of each label in `DefectKind::ALL` order.
    fn diagnose(&mut self, cases: &[DiscrepancyCase]) -> Result<Vec<Vec<f32>>>;
}

/// Opens a diagnoser spec; the rule diagnoser reads `items`.
pub fn open_diagnoser<'a>(spec: &AgentSpec, items: &'a [Item], concurrency: usize, device: &Device) -> Result<Box<dyn Diagnoser + 'a>> {
    Ok(match spec {
        AgentSpec::Rule => Box::new(RuleDiagnoser { items }),
        _ => Box::new(LmDiagnoser { llm: open_llm(spec, concurrency, device)? }),
    })
}

/// A diagnoser reported under another name.
pub struct Renamed<'a> {
    pub name: String,
    pub inner: Box<dyn Diagnoser + 'a>,
}

impl Diagnoser for Renamed<'_> {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn diagnose(&mut self, cases: &[DiscrepancyCase]) -> Result<Vec<Vec<f32>>> {
        self.inner.diagnose(cases)
    }
}

/// The most likely label of a distribution in `DefectKind::ALL` order.
pub fn label(p: &[f32]) -> DefectKind {
    DefectKind::ALL[argmax(p).min(2)]
}

/// A language model asked the diagnosis prompt, its answer letter read after `Diagnosis: [`.
pub struct LmDiagnoser {
    pub llm: Box<dyn Llm>,
}

impl Diagnoser for LmDiagnoser {
    fn name(&self) -> String {
        self.llm.name()
    }

    fn diagnose(&mut self, cases: &[DiscrepancyCase]) -> Result<Vec<Vec<f32>>> {
        let asks: Vec<LetterAsk> =
            cases.iter().map(|c| LetterAsk { system: None, user: diagnosis_prompt(&c.render()), cue: DIAGNOSIS_CUE, choices: 3 }).collect();
        self.llm.letters(&asks)
    }
}

/// The real choice against the stated preferences: a category of it stated as disliked is a
/// contradiction (Inaccurate); no category of it among the likes is a gap (Incomplete); both
/// at once is Both. With neither, the profile over-states what drew the simulated choice.
pub struct RuleDiagnoser<'a> {
    pub items: &'a [Item],
}

impl RuleDiagnoser<'_> {
    pub fn label(&self, case: &DiscrepancyCase) -> DefectKind {
        let (likes, dislikes) = Profile::stated_preferences(&case.profile);
        let real = &self.items[case.candidate_items[case.real] as usize].categories;
        let contradicted = real.iter().any(|c| dislikes.contains(c));
        let missing = !real.iter().any(|c| likes.contains(c));
        match (contradicted, missing) {
            (true, true) => DefectKind::Both,
            (false, true) => DefectKind::Incomplete,
            _ => DefectKind::Inaccurate,
        }
    }
}

impl Diagnoser for RuleDiagnoser<'_> {
    fn name(&self) -> String {
        "rule".into()
    }

    fn diagnose(&mut self, cases: &[DiscrepancyCase]) -> Result<Vec<Vec<f32>>> {
        Ok(cases.iter().map(|c| DefectKind::ALL.iter().map(|k| if *k == self.label(c) { 1.0 } else { 0.0 }).collect()).collect())
    }
}

/// The labelled cases of one split of a `defects.parquet`.
pub fn read_defect_cases(path: &Path, split: &str) -> Result<Vec<(DiscrepancyCase, DefectKind)>> {
    let t = Table::read(path)?;
    let splits = t.strings("split")?;
    let labels = t.strings("label")?;
    let profiles = t.strings("profile")?;
    let histories = t.strings("history")?;
    let items = t.u32_lists("candidate_items")?;
    let lines = t.string_lists("candidates")?;
    let simulated = t.u32s("simulated_choice")?;
    let real = t.u32s("real_choice")?;
    let mut out = Vec::new();
    for row in (0..t.rows()).filter(|&r| splits[r] == split) {
        let at = |what: String| EvalError::Invalid(format!("{} record {row}: {what}", path.display()));
        let kind = DefectKind::parse(&labels[row]).ok_or_else(|| at(format!("label {:?}; expected inaccurate, incomplete or both", labels[row])))?;
        let k = items[row].len();
        if lines[row].len() != k || simulated[row] as usize >= k || real[row] as usize >= k {
            return Err(at(format!("{k} candidate items, {} candidate lines, choices {} and {}", lines[row].len(), simulated[row], real[row])));
        }
        let case = DiscrepancyCase {
            profile: profiles[row].clone(),
            history: histories[row].clone(),
            history_items: Vec::new(),
            candidate_items: items[row].clone(),
            candidates: lines[row].clone(),
            simulated: simulated[row] as usize,
            real: real[row] as usize,
        };
        out.push((case, kind));
    }
    Ok(out)
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ClassScores {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Cases of this class.
    pub support: usize,
}

/// `report.json` of `simforge eval diagnosis` for one diagnoser.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DiagnosisScores {
    pub diagnoser: String,
    pub samples: usize,
    pub accuracy: f64,
    /// Keyed `inaccurate`, `incomplete`, `both`.
    pub per_class: BTreeMap<String, ClassScores>,
    /// Rows are the true label, columns the predicted one, both in the order inaccurate,
    /// incomplete, both.
    pub confusion: [[usize; 3]; 3],
    /// Mean probability given to the true label.
    pub mean_true_probability: f64,
}

fn index(kind: DefectKind) -> usize {
    DefectKind::ALL.iter().position(|k| *k == kind).unwrap_or(0)
}

pub fn diagnosis_scores(diagnoser: &str, truth: &[DefectKind], probs: &[Vec<f32>]) -> DiagnosisScores {
    let mut confusion = [[0usize; 3]; 3];
    for (t, p) in truth.iter().zip(probs) {
        confusion[index(*t)][index(label(p))] += 1;
    }
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let per_class = DefectKind::ALL
        .iter()
        .enumerate()
        .map(|(k, kind)| {
            let tp = confusion[k][k];
            let predicted: usize = (0..3).map(|r| confusion[r][k]).sum();
            let support: usize = confusion[k].iter().sum();
            let (precision, recall) = (ratio(tp, predicted), ratio(tp, support));
            let f1 = if precision + recall > 0.0 { 2.0 * precision * recall / (precision + recall) } else { 0.0 };
            (kind.name().to_owned(), ClassScores { precision, recall, f1, support })
        })
        .collect();
    DiagnosisScores {
        diagnoser: diagnoser.into(),
        samples: truth.len(),
        accuracy: ratio((0..3).map(|k| confusion[k][k]).sum(), truth.len()),
        per_class,
        confusion,
        mean_true_probability: truth.iter().zip(probs).map(|(t, p)| f64::from(p[index(*t)])).sum::<f64>() / truth.len().max(1) as f64,
    }
}

/// Diagnoses every case in batches of `batch_size`, logging progress.
pub fn diagnose_all(diagnoser: &mut dyn Diagnoser, cases: &[DiscrepancyCase], batch_size: usize) -> Result<Vec<Vec<f32>>> {
    let mut out = Vec::with_capacity(cases.len());
    for chunk in cases.chunks(batch_size.max(1)) {
        out.extend(diagnoser.diagnose(chunk)?);
        if out.len() % (batch_size * 20).max(1) < chunk.len() || out.len() == cases.len() {
            tracing::info!("{}: diagnosed {} of {} cases", diagnoser.name(), out.len(), cases.len());
        }
    }
    Ok(out)
}

impl DiagnosisScores {
    /// A Markdown row: accuracy, then F1 per class.
    pub fn markdown_row(&self, method: &str) -> String {
        let f1 = |k: &str| self.per_class.get(k).map_or(0.0, |c| c.f1);
        format!("| {method} | `{}` | {} | {:.4} | {:.4} | {:.4} | {:.4} |\n", self.diagnoser, self.samples, self.accuracy, f1("inaccurate"), f1("incomplete"), f1("both"))
    }

    pub fn confusion_markdown(&self) -> String {
        let mut md = String::from("| true \\ predicted | inaccurate | incomplete | both |\n|---|---|---|---|\n");
        for (kind, row) in DefectKind::ALL.iter().zip(self.confusion) {
            md.push_str(&format!("| {} | {} | {} | {} |\n", kind.name(), row[0], row[1], row[2]));
        }
        md
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_of_a_known_confusion() {
        use DefectKind::*;
        let one_hot = |k: DefectKind| DefectKind::ALL.iter().map(|x| if *x == k { 0.8 } else { 0.1 }).collect::<Vec<f32>>();
        let truth = [Inaccurate, Inaccurate, Incomplete, Both];
        let predicted = [Inaccurate, Incomplete, Incomplete, Incomplete];
        let probs: Vec<Vec<f32>> = predicted.iter().map(|&k| one_hot(k)).collect();
        let s = diagnosis_scores("x", &truth, &probs);
        assert_eq!(s.confusion, [[1, 1, 0], [0, 1, 0], [0, 1, 0]]);
        assert_eq!(s.accuracy, 0.5);
        let inc = &s.per_class["incomplete"];
        assert!((inc.precision - 1.0 / 3.0).abs() < 1e-12 && inc.recall == 1.0 && (inc.f1 - 0.5).abs() < 1e-12);
        assert_eq!(s.per_class["both"].f1, 0.0);
        assert!((s.mean_true_probability - (0.8 + 0.1 + 0.8 + 0.1) / 4.0).abs() < 1e-6);
    }

    #[test]
    fn the_rule_diagnoser_reads_the_real_choice_against_the_profile() {
        let item = |cats: &[&str]| Item { categories: cats.iter().map(|c| c.to_string()).collect(), ..Item::default() };
        let items = vec![item(&["Horror"]), item(&["Comedy"]), item(&["Drama"])];
        let rule = RuleDiagnoser { items: &items };
        let case = |profile: &str, real: usize| DiscrepancyCase {
            profile: profile.into(),
            history: String::new(),
            history_items: Vec::new(),
            candidate_items: vec![0, 1, 2],
            candidates: vec!["[A] a".into(), "[B] b".into(), "[C] c".into()],
            simulated: 0,
            real,
        };
        assert_eq!(rule.label(&case("Likes: Horror, Comedy.\nDislikes: Drama.", 2)), DefectKind::Both);
        assert_eq!(rule.label(&case("Likes: Horror.\nDislikes: Drama.", 1)), DefectKind::Incomplete);
        assert_eq!(rule.label(&case("Likes: Comedy, Horror.\nDislikes: nothing in particular.", 1)), DefectKind::Inaccurate);
    }
}
