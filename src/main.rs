//! The `verigate` command: serve, check a configuration, import a data
//! file into SQLite, sign a request.

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use verigate::{
    configuration::{SecretRef, Settings},
    domain::timestamp::now_millis,
    sign,
    startup::{Application, StartupError},
    telemetry::{LogFormat, get_subscriber, init_subscriber},
};

/// Exit code of a refused configuration.
const EXIT_CONFIG: u8 = 2;

#[derive(Parser)]
#[command(
    name = "verigate",
    version,
    about = "Signed-request verification gateway"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the configured routes.
    Serve {
        /// Configuration file (default: verigate.toml in the working directory).
        #[arg(long, env = "VERIGATE_CONFIG")]
        config: Option<PathBuf>,
        /// Log line format.
        #[arg(long, value_enum, default_value_t = LogFormat::Human)]
        log_format: LogFormat,
    },
    /// Validate a configuration and print its routes; exit 2 when invalid.
    CheckConfig {
        /// Configuration file (default: verigate.toml in the working directory).
        #[arg(long, env = "VERIGATE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Build a sqlite backend's table from a JSON or CSV data file.
    Import {
        /// The sqlite backend whose `table` is (re)created.
        #[arg(long)]
        backend: String,
        /// A `.json` file (array of objects) or a `.csv` file (header row).
        file: PathBuf,
        /// Configuration file (default: verigate.toml in the working directory).
        #[arg(long, env = "VERIGATE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Print the headers and a curl line for a signed request.
    #[command(subcommand)]
    Sign(SignCommand),
    /// Load a running verigate with signed Contiple lookups (and a no-op
    /// baseline) and print throughput and latency percentiles.
    Bench {
        /// The Contiple route's URL (http, loopback).
        #[arg(long, default_value = "http://127.0.0.1:8080/contiple/customer")]
        url: String,
        /// The route's key: a literal, env:NAME or file:PATH.
        #[arg(long)]
        key: String,
        /// A JSON object body; each request adds a unique "_n" member.
        #[arg(long, default_value = r#"{"callNum":"1","nation":"korea"}"#)]
        body: String,
        /// Requests per measured run.
        #[arg(long, default_value_t = 20_000)]
        requests: usize,
        /// Concurrent keep-alive connections.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// The no-op path measured first as the baseline ("" to skip).
        #[arg(long, default_value = "/healthz")]
        baseline: String,
    },
}

#[derive(Subcommand)]
enum SignCommand {
    /// A Contiple customer lookup (X-TC-Timestamp + Authorization).
    Contiple {
        /// The security key: a literal, env:NAME or file:PATH.
        #[arg(long)]
        key: String,
        /// The JSON body, or @FILE to read it (bytes signed as they are).
        #[arg(long)]
        body: String,
        /// Sign uri+body+timestamp with this path and query.
        #[arg(long)]
        uri: Option<String>,
        /// The URL in the curl line.
        #[arg(long)]
        url: Option<String>,
        /// Epoch milliseconds to sign with (default: now).
        #[arg(long)]
        timestamp: Option<i64>,
    },
}

fn main() -> ExitCode {
    // One TLS provider for every crate (sqlx and, later, HTTP clients),
    // chosen before anything could pick another. An error means one is
    // already installed, which is as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config, log_format } => serve(config, log_format),
        Command::CheckConfig { config } => check_config(config),
        Command::Import {
            backend,
            file,
            config,
        } => import(config, &backend, &file),
        Command::Sign(SignCommand::Contiple {
            key,
            body,
            uri,
            url,
            timestamp,
        }) => sign_contiple(&key, &body, uri, url, timestamp),
        Command::Bench {
            url,
            key,
            body,
            requests,
            concurrency,
            baseline,
        } => bench(&url, &key, &body, requests, concurrency, &baseline),
    }
}

fn serve(config: Option<PathBuf>, log_format: LogFormat) -> ExitCode {
    init_subscriber(get_subscriber("info", log_format, std::io::stdout));
    let settings = match Settings::load(config.as_deref()) {
        Ok(settings) => settings,
        Err(e) => return refuse(&e),
    };
    let runtime = match actix_web::rt::System::new().block_on(async { run(settings).await }) {
        Ok(()) => return ExitCode::SUCCESS,
        Err(e) => e,
    };
    match runtime {
        StartupError::Config(e) => refuse(&e),
        other => {
            eprintln!("error: {other}");
            tracing::error!(error = %other, "verigate stopped");
            ExitCode::FAILURE
        }
    }
}

async fn run(settings: Settings) -> Result<(), StartupError> {
    let application = Application::build(&settings).await?;
    tracing::info!(
        port = application.port(),
        metrics_port = application.metrics_port(),
        version = env!("CARGO_PKG_VERSION"),
        "verigate listening"
    );
    application
        .run_until_stopped()
        .await
        .map_err(|source| StartupError::Bind {
            address: settings.server.bind.to_string(),
            source,
        })?;
    tracing::info!("verigate stopped");
    Ok(())
}

fn check_config(config: Option<PathBuf>) -> ExitCode {
    // Database pools are built (without connecting) inside a runtime.
    let report = Settings::load(config.as_deref()).and_then(|s| {
        actix_web::rt::System::new().block_on(async { verigate::check_config::check(&s) })
    });
    match report {
        Ok(report) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => refuse(&e),
    }
}

fn import(config: Option<PathBuf>, backend: &str, file: &std::path::Path) -> ExitCode {
    use verigate::import::ImportError;
    let settings = match Settings::load(config.as_deref()) {
        Ok(settings) => settings,
        Err(e) => return refuse(&e),
    };
    let outcome = actix_web::rt::System::new()
        .block_on(async { verigate::import::import(&settings, backend, file).await });
    match outcome {
        Ok(report) => {
            println!(
                "imported {} rows into table {} of {} (columns: {})",
                report.rows,
                report.table,
                report.database.display(),
                report.columns.join(", ")
            );
            ExitCode::SUCCESS
        }
        Err(ImportError::Config(e)) => refuse(&e),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn refuse(error: &verigate::configuration::ConfigError) -> ExitCode {
    eprintln!("error: {error}");
    ExitCode::from(EXIT_CONFIG)
}

fn sign_contiple(
    key: &str,
    body: &str,
    uri: Option<String>,
    url: Option<String>,
    timestamp: Option<i64>,
) -> ExitCode {
    use secrecy::ExposeSecret;
    let key = match SecretRef::new(key).resolve("--key") {
        Ok((key, _)) => key,
        Err(e) => return refuse(&e),
    };
    let bytes = match body.strip_prefix('@') {
        Some(path) => match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) => {
                eprintln!("error: --body: cannot read {path}: {e}");
                return ExitCode::from(EXIT_CONFIG);
            }
        },
        None => body.as_bytes().to_vec(),
    };
    let headers = sign::contiple(
        key.expose_secret().as_bytes(),
        uri.as_deref(),
        &bytes,
        timestamp.unwrap_or_else(now_millis),
    );
    let url = url.unwrap_or_else(|| {
        format!(
            "http://127.0.0.1:8080{}",
            uri.as_deref().unwrap_or("/contiple/customer")
        )
    });
    println!("X-TC-Timestamp: {}", headers.timestamp);
    println!("Authorization: {}", headers.authorization);
    println!("{}", sign::contiple_curl(&url, &headers, body));
    ExitCode::SUCCESS
}

fn bench(
    url: &str,
    key: &str,
    body: &str,
    requests: usize,
    concurrency: usize,
    baseline: &str,
) -> ExitCode {
    use secrecy::ExposeSecret;
    use verigate::loadgen;
    let key = match SecretRef::new(key).resolve("--key") {
        Ok((key, _)) => key,
        Err(e) => return refuse(&e),
    };
    let Some(rest) = url.strip_prefix("http://") else {
        eprintln!("error: --url must be an http:// URL");
        return ExitCode::from(EXIT_CONFIG);
    };
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        if !baseline.is_empty() {
            let prepared = loadgen::get_requests(host, baseline, requests);
            let report = loadgen::run(
                &format!("GET {baseline} (no-op)"),
                host,
                prepared,
                concurrency,
            )
            .await?;
            println!("{report}");
        }
        let prepared = loadgen::signed_contiple_requests(
            key.expose_secret().as_bytes(),
            host,
            path,
            body,
            requests,
        );
        let report = loadgen::run(
            &format!("POST {path} (signed)"),
            host,
            prepared,
            concurrency,
        )
        .await?;
        println!("{report}");
        Ok::<_, std::io::Error>(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
