//! SASRec as the other stages use it: training ([`train`]), ranking evaluation
//! ([`evaluate`]), and a trained [`Recommender`] that recommends, scores candidates and keeps
//! learning from appended interactions (co-evolution, the ensemble simulator's voter).
//!
//! A SASRec folder: `config.json` (the architecture), `model.safetensors` (parameters by
//! path), `trainer_state/` (settings, epoch, Adam moments) and, for a finished model,
//! `histories.parquet` (every user's items, which recommendations exclude).

pub mod data;
pub mod evaluate;
pub mod train;

use std::path::Path;

use burn::module::Module;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::checkpoint::write_dir_atomically;
use crate::error::{Result, TrainerError};
use crate::models::sasrec::{SasRec, SasRecConfig};
use crate::tensors::{load_parameter_tensors, parameter_tensors, read_safetensors, write_safetensors};
use crate::train::optim::AdamW;
use data::{sorted_set, Histories, HISTORIES_FILE};
use evaluate::NextItemScorer;
use train::{run_epoch, SasRecTrainConfig};

const CONFIG_FILE: &str = "config.json";
const WEIGHTS_FILE: &str = "model.safetensors";
const STATE_DIR: &str = "trainer_state";
const USERS_PER_BATCH: usize = 256;

/// Where training stands, saved with every checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrainerState {
    /// Epochs finished.
    pub epoch: usize,
    pub adam_step: u64,
    pub config: SasRecTrainConfig,
    pub best_ndcg10: f64,
    /// 0 until the first validation.
    pub best_epoch: usize,
    pub evals_since_best: usize,
}

impl TrainerState {
    pub fn new(config: &SasRecTrainConfig) -> Self {
        Self { epoch: 0, adam_step: 0, config: config.clone(), best_ndcg10: 0.0, best_epoch: 0, evals_since_best: 0 }
    }
}

/// The files of a SASRec folder, read or to be written.
pub struct ModelFiles {
    pub config: SasRecConfig,
    pub model: SasRec,
    pub optimizer: Option<AdamW>,
    pub state: Option<TrainerState>,
    pub histories: Option<Histories>,
}

impl ModelFiles {
    pub fn read(dir: &Path, device: &Device) -> Result<Self> {
        let config: SasRecConfig = simforge_data::fsutil::read_json(&dir.join(CONFIG_FILE))?;
        if let Some(problem) = config.problem() {
            return Err(TrainerError::checkpoint(dir.join(CONFIG_FILE), problem));
        }
        let weights = dir.join(WEIGHTS_FILE);
        let model = load_parameter_tensors(SasRec::init(&config, 0, device), read_safetensors(&weights)?, &weights)?;
        let state_file = dir.join(STATE_DIR).join("state.json");
        let state: Option<TrainerState> = if state_file.is_file() { Some(simforge_data::fsutil::read_json(&state_file)?) } else { None };
        let optimizer = match &state {
            Some(s) => {
                let mut adam = AdamW::adam(s.config.beta1, s.config.beta2);
                adam.step = s.adam_step;
                adam.read_moments(&dir.join(STATE_DIR).join("optimizer.safetensors"), device)?;
                Some(adam)
            }
            None => None,
        };
        let histories_file = dir.join(HISTORIES_FILE);
        let histories = if histories_file.is_file() { Some(Histories::read(&histories_file, config.num_items)?) } else { None };
        Ok(Self { config, model, optimizer, state, histories })
    }

    /// Writes the given parts into `dir` (an existing, empty folder).
    pub fn write_parts(
        dir: &Path,
        config: &SasRecConfig,
        model: &SasRec,
        optimizer: Option<&AdamW>,
        state: Option<&TrainerState>,
        histories: Option<&Histories>,
    ) -> Result<()> {
        simforge_data::fsutil::write_json(&dir.join(CONFIG_FILE), config)?;
        write_safetensors(&dir.join(WEIGHTS_FILE), &parameter_tensors(model))?;
        if let (Some(optimizer), Some(state)) = (optimizer, state) {
            let state_dir = dir.join(STATE_DIR);
            std::fs::create_dir_all(&state_dir).map_err(|e| TrainerError::io(&state_dir, e))?;
            simforge_data::fsutil::write_json(&state_dir.join("state.json"), state)?;
            optimizer.write_moments(&state_dir.join("optimizer.safetensors"))?;
        }
        if let Some(histories) = histories {
            histories.write(&dir.join(HISTORIES_FILE))?;
        }
        Ok(())
    }
}

/// A trained SASRec with its users' histories and optimizer state.
pub struct Recommender {
    pub model: SasRec,
    pub histories: Histories,
    pub state: TrainerState,
    optimizer: AdamW,
}

impl Recommender {
    /// Reads a finished SASRec folder (`model/` of `simforge train sasrec`).
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let files = ModelFiles::read(dir, device)?;
        let missing = |what: &str| TrainerError::checkpoint(dir, format!("has no {what}; expected the `model/` folder of `simforge train sasrec`"));
        let histories = files.histories.ok_or_else(|| missing(HISTORIES_FILE))?;
        let state = files.state.ok_or_else(|| missing("trainer_state/"))?;
        let optimizer = files.optimizer.ok_or_else(|| missing("optimizer state"))?;
        Ok(Self { model: files.model, histories, state, optimizer })
    }

    /// Writes the model, its optimizer state and the histories to `dir` (atomically).
    pub fn save(&self, dir: &Path) -> Result<()> {
        write_dir_atomically(dir, |tmp| {
            ModelFiles::write_parts(tmp, &self.state.config.model, &self.model, Some(&self.optimizer), Some(&self.state), Some(&self.histories))
        })
    }

    pub fn num_items(&self) -> usize {
        self.histories.num_items
    }

    /// The `k` best items (dataset ids, best first) for each user that the user has not
    /// interacted with.
    pub fn recommend(&self, users: &[u32], k: usize) -> Result<Vec<Vec<u32>>> {
        let mut out = Vec::with_capacity(users.len());
        for chunk in users.chunks(USERS_PER_BATCH) {
            for (user, row) in chunk.iter().zip(self.score_all(chunk)?) {
                let seen = sorted_set(&self.histories.sequences[*user as usize]);
                let mut ranked: Vec<(u32, f32)> = (1..row.len() as u32).filter(|i| seen.binary_search(i).is_err()).map(|i| (i, row[i as usize])).collect();
                let k = k.min(ranked.len());
                if k > 0 && k < ranked.len() {
                    ranked.select_nth_unstable_by(k - 1, |a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                }
                ranked.truncate(k);
                ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                out.push(ranked.into_iter().map(|(i, _)| i - 1).collect());
            }
        }
        Ok(out)
    }

    /// Scores of `items` (dataset ids) for `user`: the ensemble simulator's statistical vote.
    pub fn score(&self, user: u32, items: &[u32]) -> Result<Vec<f32>> {
        let row = self.score_all(&[user])?.pop().unwrap_or_default();
        items
            .iter()
            .map(|&i| {
                row.get(i as usize + 1)
                    .copied()
                    .ok_or_else(|| TrainerError::settings(format!("item {i}"), format!("outside the model's catalogue of {} items", self.num_items())))
            })
            .collect()
    }

    /// Scores of every item index (0 = padding) for each user, from their current histories.
    fn score_all(&self, users: &[u32]) -> Result<Vec<Vec<f32>>> {
        let mut sequences = Vec::with_capacity(users.len());
        for &u in users {
            let s = self
                .histories
                .sequences
                .get(u as usize)
                .ok_or_else(|| TrainerError::settings(format!("user {u}"), format!("unknown to the model ({} users)", self.histories.sequences.len())))?;
            sequences.push(s.as_slice());
        }
        Ok(self.model.score_every_item(&sequences))
    }

    /// Appends `(user, item)` interactions (dataset ids; new users are added) and trains
    /// `epochs` more epochs on every history, continuing the saved Adam state. Returns the
    /// last epoch's mean loss.
    pub fn fine_tune(&mut self, interactions: &[(u32, u32)], epochs: usize) -> Result<f64> {
        self.histories.append(interactions)?;
        let train: Vec<&[u32]> = self.histories.sequences.iter().map(Vec::as_slice).collect();
        let mut model = self.model.clone().train();
        let mut loss = f64::NAN;
        for _ in 0..epochs {
            (model, loss) = run_epoch(model, &mut self.optimizer, &train, &self.state.config, self.state.epoch, &mut |_, _| {})?;
            self.state.epoch += 1;
        }
        self.state.adam_step = self.optimizer.step;
        self.model = model.valid();
        Ok(loss)
    }
}
