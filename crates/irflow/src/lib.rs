//! The `irflow` command: configuration, the CLI, the demo department, and wiring
//! of store and server. `main.rs` only parses arguments and calls [`run`].

pub mod bench;
pub mod bench_dicom;
pub mod cli;
pub mod config;
pub mod demo;
pub mod demo_day;
pub mod demo_history;
pub mod demo_imaging;
pub mod dicom;
pub mod import;
pub mod outbox;

use std::io::{BufRead, IsTerminal, Write};
use std::net::SocketAddr;

use anyhow::{Context, Result, bail};
use irflow_domain::{Actor, Role, Username};
use irflow_server::{AppState, auth};
use irflow_store::{NewUser, Store};

use crate::cli::{Cli, Command, TokenCommand, UserCommand};
use crate::config::{Config, LogFormat, redact_url};

/// Runs one CLI command to completion.
pub async fn run(cli: Cli) -> Result<()> {
    let env = |k: &str| std::env::var(k).ok();
    let overrides = cli.overrides();
    match cli.command {
        Command::Demo(args) => {
            refuse_unused(
                "irflow demo",
                "it always builds its own department on an embedded SQLite database in --data-dir; `irflow serve` runs on your configuration",
                [
                    ("--config", cli.config.is_some()),
                    ("--database-url", cli.database_url.is_some()),
                    ("--rules", cli.rules_dir.is_some()),
                ],
            )?;
            demo::run(args, cli.data_dir.clone()).await
        }
        // Its own fresh databases: only the --database-url flag is used, never the config.
        Command::Bench(cli::BenchCommand::Scheduling(args)) => {
            refuse_unused(
                "irflow bench scheduling",
                "it seeds fresh temporary databases with the built-in rules; only --database-url is read",
                [
                    ("--config", cli.config.is_some()),
                    ("--data-dir", cli.data_dir.is_some()),
                    ("--rules", cli.rules_dir.is_some()),
                ],
            )?;
            bench::scheduling(args, cli.database_url.clone()).await
        }
        // Its own temporary data directory and SQLite database.
        Command::Bench(cli::BenchCommand::Dicom(args)) => {
            refuse_unused(
                "irflow bench dicom",
                "it runs on its own temporary data directory and SQLite database",
                [
                    ("--config", cli.config.is_some()),
                    ("--data-dir", cli.data_dir.is_some()),
                    ("--database-url", cli.database_url.is_some()),
                    ("--rules", cli.rules_dir.is_some()),
                ],
            )?;
            bench_dicom::run(args).await
        }
        command => {
            let config = Config::load(&overrides, &env)?;
            init_logging(config.log_format, &config.log_level);
            match command {
                Command::Serve(_) => serve(&config).await,
                Command::Migrate => {
                    let url = config.effective_database_url()?;
                    let store = Store::connect(&url)
                        .await
                        .with_context(|| format!("database {}", redact_url(&url)))?;
                    let applied = store
                        .migrate()
                        .await
                        .context("could not migrate the database")?;
                    if applied.is_empty() {
                        println!("database is up to date");
                    } else {
                        println!("applied migrations: {}", applied.join(", "));
                    }
                    Ok(())
                }
                Command::User(cmd) => user_command(&config, cmd).await,
                Command::Screen => screen(&config),
                Command::Bench(cli::BenchCommand::Slots {
                    appointments,
                    searches,
                }) => bench::slots(appointments, searches),
                Command::Token(cmd) => token_command(&config, cmd).await,
                Command::Import(args) => import::run(&config, args).await,
                Command::Demo(_)
                | Command::Bench(cli::BenchCommand::Scheduling(_) | cli::BenchCommand::Dicom(_)) => {
                    unreachable!("handled above")
                }
            }
        }
    }
}

/// Refuses flags a command would otherwise silently ignore.
fn refuse_unused<const N: usize>(command: &str, why: &str, flags: [(&str, bool); N]) -> Result<()> {
    let given: Vec<&str> = flags
        .iter()
        .filter(|(_, given)| *given)
        .map(|(flag, _)| *flag)
        .collect();
    if given.is_empty() {
        return Ok(());
    }
    bail!("{command} does not take {}: {why}", given.join(" or "))
}

/// Sets up JSON (or pretty) logs on standard error. Idempotent.
pub fn init_logging(format: LogFormat, level: &str) {
    // PostgreSQL's notices (e.g. "relation irflow_migrations already exists, skipping"
    // at every start) are not news: shown only at debug, unless the level names them.
    let level = if level.contains("sqlx::postgres::notice") {
        level.to_owned()
    } else {
        format!("{level},sqlx::postgres::notice=warn")
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}

/// Connects to the configured database and applies migrations.
pub async fn connect(config: &Config) -> Result<Store> {
    let url = config.effective_database_url()?;
    let store = Store::connect(&url)
        .await
        .with_context(|| format!("database {}", redact_url(&url)))?;
    store
        .migrate()
        .await
        .context("could not migrate the database")?;
    Ok(store)
}

/// `irflow screen`: facts on stdin, decision on stdout.
fn screen(config: &Config) -> Result<()> {
    use std::io::Read;
    let pack = config.rule_pack()?;
    let tz = jiff::tz::TimeZone::get(&config.time_zone)?;
    let mut body = Vec::new();
    std::io::stdin()
        .read_to_end(&mut body)
        .context("could not read the facts from standard input")?;
    let today = jiff::Timestamp::now().to_zoned_datetime(tz.clone()).date();
    let facts = irflow_server::screening_json::parse_facts(&body, None, today)
        .map_err(anyhow::Error::msg)?;
    let decision = irflow_domain::screening::evaluate(&pack, &facts, &tz)?;
    let out = serde_json::to_string_pretty(&irflow_server::screening_json::decision_json(
        &decision, &tz,
    ))?;
    println!("{out}");
    Ok(())
}

async fn serve(config: &Config) -> Result<()> {
    let pack = config.rule_pack()?;
    let store = connect(config).await?;
    if store.list_users().await?.is_empty() {
        eprintln!(
            "irflow: no users yet. Create an administrator with:\n  irflow user add --username admin --role admin --name \"Your Name\""
        );
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| {
            format!(
                "could not listen on {}; is another program using it? choose another with --listen",
                config.listen
            )
        })?;
    let addr = listener.local_addr()?;
    println!(
        "irflow: serving http://{addr} ({} database, rule pack {} {})",
        store.backend().name(),
        pack.name,
        pack.version
    );
    let (worker, outbox) = outbox::start(config, store.clone())?;
    println!("irflow: {outbox}");
    let dicom = dicom::DicomListener::bind(&config.dicom).await?;
    if let Some(d) = &dicom {
        println!("irflow: DICOM: {}", d.describe());
    }
    let served = serve_on(listener, dicom, store, config.server_config(), pack).await;
    if let Some(worker) = worker {
        worker.stop().await;
    }
    served
}

/// Serves until Ctrl-C or SIGTERM.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    dicom: Option<dicom::DicomListener>,
    store: Store,
    server_config: irflow_server::ServerConfig,
    pack: irflow_domain::screening::RulePack,
) -> Result<()> {
    irflow_server::init_metrics();
    let addr: SocketAddr = listener.local_addr()?;
    let state = AppState::new(store, server_config, pack).map_err(anyhow::Error::msg)?;
    let receiver = dicom::DicomRunning::start(dicom, &state);
    tracing::info!(%addr, "listening");
    let served = irflow_server::serve(listener, state, shutdown_signal()).await;
    receiver.stop().await;
    served?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

fn read_password(args_password: Option<String>, from_stdin: bool) -> Result<String> {
    if let Some(p) = args_password {
        return Ok(p);
    }
    if from_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_owned());
    }
    if !std::io::stdin().is_terminal() {
        bail!(
            "no password given: use --password-stdin to read it from standard input, or run in a terminal to be asked"
        );
    }
    let first = rpassword::prompt_password("Password: ")?;
    let second = rpassword::prompt_password("Repeat the password: ")?;
    if first != second {
        bail!("the two passwords differ; nothing was changed");
    }
    Ok(first)
}

async fn user_command(config: &Config, cmd: UserCommand) -> Result<()> {
    let store = connect(config).await?;
    let actor = Actor::system("cli");
    match cmd {
        UserCommand::Add(args) => {
            let username =
                Username::parse(&args.username).map_err(|e| anyhow::anyhow!("--username: {e}"))?;
            let role: Role = args
                .role
                .parse()
                .map_err(|e| anyhow::anyhow!("--role: {e}"))?;
            if role == Role::Referrer && args.organization.is_none() {
                bail!("--organization is required for referrers (their clinic or practice)");
            }
            let email = args
                .email
                .as_deref()
                .map(irflow_domain::Email::parse)
                .transpose()
                .map_err(|e| anyhow::anyhow!("--email: {e}"))?;
            let password = read_password(args.password, args.password_stdin)?;
            let hash = auth::hash_password(&password).map_err(|e| anyhow::anyhow!("{e}"))?;
            let user = store
                .create_user(
                    &actor,
                    &NewUser {
                        display_name: args.name.unwrap_or_else(|| username.to_string()),
                        username,
                        role,
                        organization: args.organization,
                        password_hash: hash,
                    },
                )
                .await?;
            if let Some(email) = &email {
                store.set_user_email(&actor, user.id, Some(email)).await?;
            }
            println!(
                "created user {} ({}) with id {}",
                user.username, user.role, user.id
            );
        }
        UserCommand::List => {
            let users = store.list_users().await?;
            if users.is_empty() {
                eprintln!("no users yet; add the first administrator with `irflow user add`");
            }
            for u in users {
                println!(
                    "{:<20} {:<12} {:<30} {}{}",
                    u.username,
                    u.role.as_str(),
                    u.display_name,
                    u.organization.as_deref().unwrap_or(""),
                    if u.active { "" } else { " (disabled)" }
                );
            }
        }
        UserCommand::SetPassword(args) => {
            let user = store
                .user_by_username(&args.username.trim().to_ascii_lowercase())
                .await
                .map_err(|_| anyhow::anyhow!("no user named {:?}", args.username))?;
            let password = read_password(args.password, args.password_stdin)?;
            let hash = auth::hash_password(&password).map_err(|e| anyhow::anyhow!("{e}"))?;
            store.set_password_hash(&actor, user.id, &hash).await?;
            println!(
                "password changed for {}; their sessions have ended",
                user.username
            );
        }
    }
    Ok(())
}

async fn token_command(config: &Config, cmd: TokenCommand) -> Result<()> {
    let store = connect(config).await?;
    let actor = Actor::system("cli");
    match cmd {
        TokenCommand::Issue(args) => {
            let user = store
                .user_by_username(&args.user.trim().to_ascii_lowercase())
                .await
                .map_err(|_| {
                    anyhow::anyhow!(
                        "no user named {:?}; list users with `irflow user list`",
                        args.user
                    )
                })?;
            let token = auth::new_secret("irf_");
            let id = store
                .issue_api_token(
                    &actor,
                    user.id,
                    &auth::secret_hash(&token),
                    args.label.as_deref().unwrap_or("api"),
                )
                .await?;
            println!("{token}");
            eprintln!(
                "token {id} issued for {}; it is shown once, store it safely. Revoke with `irflow token revoke --id {id}`.",
                user.username
            );
        }
        TokenCommand::List => {
            for t in store.list_api_tokens().await? {
                println!(
                    "{:<6} {:<20} {:<20} issued {} {}",
                    t.id,
                    t.username,
                    t.label,
                    t.created_at,
                    match t.revoked_at {
                        Some(r) => format!("revoked {r}"),
                        None => "active".to_owned(),
                    }
                );
            }
        }
        TokenCommand::Revoke(args) => {
            store
                .revoke_api_token(&actor, args.id)
                .await
                .map_err(|_| anyhow::anyhow!("no active token with id {}", args.id))?;
            println!("token {} revoked", args.id);
        }
    }
    std::io::stdout().flush()?;
    Ok(())
}
