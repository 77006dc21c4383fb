//! `simforge serve`: a simforge model behind an OpenAI-compatible endpoint.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use simforge_trainer::device::Device;
use simforge_trainer::openai::server::{bind, serve, ServeConfig, ServedModel};

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  simforge serve --model checkpoints/quickstart/dpo/model --port 8000\n  curl -s 127.0.0.1:8000/v1/models\n  curl -s 127.0.0.1:8000/v1/chat/completions -H 'Content-Type: application/json' \\\n    -d '{\"model\": \"model\", \"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"max_tokens\": 16, \"logprobs\": true, \"top_logprobs\": 5}'\n  simforge distill ... --teacher openai:model@http://127.0.0.1:8000/v1     # use it as a teacher\n\nServes POST /v1/chat/completions (n, seed, temperature, top_p, max_tokens, logprobs, top_logprobs,\nand vLLM's continue_final_message) and GET /v1/models, --workers requests at a time, each for at most\n--request-timeout seconds of generation."
)]
pub struct ServeArgs {
    /// Model folder (Hugging Face layout) or hub id.
    #[arg(long)]
    pub model: PathBuf,
    /// The model name clients send (default: the folder's name).
    #[arg(long)]
    pub served_model_name: Option<String>,
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// 0 picks a free port (printed at start).
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// cpu, wgpu[:N] or cuda[:N].
    #[arg(long, default_value_t = Device::default())]
    pub device: Device,
    /// Requests answered at once, each on its own thread.
    #[arg(long, default_value_t = ServeConfig::default().workers)]
    pub workers: usize,
    /// Seconds a request may generate; then its completions end with finish_reason "length".
    #[arg(long, value_parser = crate::cli::flags::finite, default_value_t = ServeConfig::default().request_timeout)]
    pub request_timeout: f64,
}

pub fn serve_command(args: ServeArgs) -> anyhow::Result<()> {
    let device = super::open(args.device)?;
    let dir = super::model_dir(&args.model)?;
    let config = ServeConfig { workers: args.workers, request_timeout: args.request_timeout };
    let model = ServedModel::load(&dir, args.served_model_name, &config, &device).with_context(|| format!("loading {}", dir.display()))?;
    let http = bind(&format!("{}:{}", args.host, args.port))?;
    let addr = http.server_addr().to_ip().map_or_else(|| format!("{}:{}", args.host, args.port), |a| a.to_string());
    // One line on stdout, so a script (or a test) can read the address and the name.
    println!("serving {} at http://{addr}/v1", model.name);
    tracing::info!("serving {} from {} at http://{addr}/v1", model.name, dir.display());
    serve(&http, &model);
    Ok(())
}
