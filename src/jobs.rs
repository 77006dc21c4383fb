//! Long jobs (training, distillation) as the commands and the pipeline run them: a progress bar
//! on a terminal, periodic log lines otherwise.

use std::path::Path;

use simforge_data::progress::terminal_bar as progress_bar;
use simforge_trainer::agent::AgentSpec;
use simforge_trainer::burn::tensor::Device;
use simforge_trainer::distill::{self, open_teacher, DistillConfig, DistillJob, Selection};
use simforge_trainer::sasrec::train::{Progress as SasRecProgress, SasRecJob, SasRecSummary, SasRecTrainConfig};
use simforge_trainer::train::config::{Objective, TrainConfig};
use simforge_trainer::train::{StepMetrics, TrainJob, TrainSummary};

use crate::pipeline::Result;

/// Runs `job` with a reporter of its optimizer steps: the bar, or a log line every ten steps.
pub fn with_training_progress<T>(job: impl FnOnce(&mut dyn FnMut(&StepMetrics, usize)) -> simforge_trainer::Result<T>) -> Result<T> {
    let bar = progress_bar("{msg} [{bar:30}] {pos}/{len} steps, eta {eta}");
    let mut report = |m: &StepMetrics, total: usize| {
        bar.set_length(total as u64);
        bar.set_position(m.step as u64);
        bar.set_message(format!("loss {:.4}", m.loss));
        if bar.is_hidden() && (m.step % 10 == 0 || m.step == total || m.eval_loss.is_some()) {
            let eval = m.eval_loss.map(|e| format!(", eval loss {e:.4}")).unwrap_or_default();
            tracing::info!("step {}/{total}: loss {:.4}{eval}, lr {:.2e}, grad norm {:.3}, {:.0} tokens/s", m.step, m.loss, m.lr, m.grad_norm, m.tokens_per_s);
        }
    };
    let result = job(&mut report)?;
    bar.finish_and_clear();
    Ok(result)
}

/// Trains a causal LM (`objective` on `data`, from `init`) into `out`.
pub fn train_lm(objective: Objective, init: &Path, data: &Path, out: &Path, config: &TrainConfig, device: &Device, resume: bool) -> Result<TrainSummary> {
    let job = TrainJob { objective, data, init, out, config, device: device.clone(), resume };
    with_training_progress(|report| simforge_trainer::train::train(&job, report))
}

/// Trains SASRec into `out` with a bar per epoch (a log line per epoch otherwise).
pub fn train_sasrec(data: &Path, out: &Path, config: &SasRecTrainConfig, device: &Device, resume: bool) -> Result<SasRecSummary> {
    let job = SasRecJob { data, out, config, device: device.clone(), resume };
    let bar = progress_bar("epoch {msg} [{bar:30}] {pos}/{len} batches");
    let mut report = |p: SasRecProgress| match p {
        SasRecProgress::Batch { epoch, batch, batches } => {
            bar.set_length(batches as u64);
            bar.set_position(batch as u64);
            bar.set_message(format!("{epoch}/{}", config.epochs));
        }
        SasRecProgress::Epoch(m) => {
            let valid =
                m.valid.as_ref().map(|v| format!(", valid ({:?}) HR@10 {:.4} NDCG@10 {:.4}", v.protocol, v.get("hr@10"), v.get("ndcg@10"))).unwrap_or_default();
            bar.suspend(|| tracing::info!("epoch {}/{}: loss {:.4} in {:.1}s{valid}", m.epoch, config.epochs, m.loss, m.seconds));
        }
    };
    let summary = simforge_trainer::sasrec::train::train_sasrec(&job, &mut report)?;
    bar.finish_and_clear();
    Ok(summary)
}

/// Distils `config.teacher` into `student` on the training scenes of `scenes`, into `out`.
pub fn distill(scenes: &Path, student: &AgentSpec, data: Option<&Path>, out: &Path, config: &DistillConfig, device: &Device) -> Result<Selection> {
    let sampling = config.sampling();
    let mut teacher = open_teacher(&config.teacher, "teacher", data, &sampling, &config.endpoint, device)?;
    let mut student = open_teacher(student, "student", data, &sampling, &config.endpoint, device)?;
    let bar = progress_bar("distilling [{bar:30}] {pos}/{len} scenes, eta {eta}");
    let mut logged = 0;
    let mut progress = |done: usize, total: usize| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        if bar.is_hidden() && (done >= logged + total.div_ceil(10) || done == total) {
            logged = done;
            tracing::info!("decisions for {done} of {total} scenes");
        }
    };
    let job = DistillJob { scenes, teacher: teacher.as_mut(), student: student.as_mut(), out, config };
    let selection = distill::distill(job, &mut progress)?;
    bar.finish_and_clear();
    Ok(selection)
}
