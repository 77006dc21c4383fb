//! Next-item ranking of a trained SASRec model on its dataset's leave-one-out test targets,
//! against the popularity baseline (`simforge eval sasrec`).

use std::path::Path;

use simforge_trainer::burn::tensor::Device;
use simforge_trainer::sasrec::data::{Histories, LeaveOneOut};
use simforge_trainer::sasrec::evaluate::{evaluate, sample_cases, Popularity, Protocol};
use simforge_trainer::sasrec::train::cases;
use simforge_trainer::sasrec::ModelFiles;

use crate::error::{EvalError, Result};
use crate::report::MarkdownTable;

/// The report (`report.json`) and its Markdown: HR/NDCG/MRR under `protocol` for at most
/// `eval_users` users (a seeded sample; 0: all), beside the popularity baseline's.
pub fn evaluate_sasrec(model: &Path, data: &Path, protocol: Protocol, eval_users: usize, seed: u64, device: &Device) -> Result<(serde_json::Value, String)> {
    let files = ModelFiles::read(model, device)?;
    let histories = Histories::from_dataset(data)?;
    if histories.num_items != files.config.num_items {
        return Err(EvalError::settings(
            model.display().to_string(),
            format!(
                "trained on {} items but {} has {}; evaluate on the dataset it was trained on",
                files.config.num_items,
                data.display(),
                histories.num_items
            ),
        ));
    }
    let split = LeaveOneOut::new(&histories);
    let test = sample_cases(cases(&split, &histories, true), eval_users, seed);
    let report = evaluate(&files.model, &test, protocol, histories.num_items, seed);
    let popularity = evaluate(&Popularity::new(&split.train, histories.num_items), &test, protocol, histories.num_items, seed);
    let mut json = serde_json::to_value(&report)?;
    json["baselines"] = serde_json::json!({ "popularity": popularity.metrics });
    json["split"] = "leave-one-out test".into();
    json["model"] = model.display().to_string().into();
    json["data"] = data.display().to_string().into();
    let mut table = MarkdownTable::new(&["metric", "SASRec", "popularity"]);
    for (name, value) in &report.metrics {
        table.row(&[name.clone(), format!("{value:.4}"), format!("{:.4}", popularity.get(name))]);
    }
    let md = format!(
        "# SASRec next-item ranking\n\nModel `{}` on `{}`, leave-one-out test targets, **{:?}** protocol, {} users.\n\n{}",
        model.display(),
        data.display(),
        report.protocol,
        report.users,
        table.render()
    );
    Ok((json, md))
}
