//! The command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::Overrides;

/// irflow runs an image-guided spine injection service.
#[derive(Debug, Parser)]
#[command(name = "irflow", version, about, long_about = None)]
pub struct Cli {
    /// Configuration file (default: ./irflow.toml if present).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory (embedded database, files).
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database URL: postgres://... or sqlite:... (default: SQLite in the data directory).
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// A rule pack directory to use instead of the built-in default (see rules/default).
    #[arg(long = "rules", global = true, value_name = "DIR")]
    pub rules_dir: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The flags that override configuration.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            config_file: self.config.clone(),
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone(),
            rules_dir: self.rules_dir.clone(),
            listen: match &self.command {
                Command::Serve(args) => args.listen.clone(),
                _ => None,
            },
        }
    }
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve irflow (production).
    Serve(ServeArgs),
    /// Build and serve a demo department on a fresh embedded database (loopback only).
    Demo(DemoArgs),
    /// Apply database migrations and exit.
    Migrate,
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage API bearer tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Evaluate screening facts (JSON on standard input) and print the decision (JSON).
    Screen,
    /// Import outside imaging (a DICOM file, a folder, a zip, or a CD's DICOMDIR).
    Import(ImportArgs),
    /// Benchmarks (see docs/BENCHMARKS.md).
    #[command(subcommand)]
    Bench(BenchCommand),
}

/// `irflow serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (overrides `listen` / IRFLOW_LISTEN; default 127.0.0.1:8080).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
}

/// `irflow demo` (its data lives in --data-dir, default ./irflow-demo, recreated on every start).
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
}

/// `irflow import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// A DICOM file, a folder (e.g. a CD copied to disk), a zip, or a DICOMDIR.
    pub path: PathBuf,
    /// The case the images were brought for (they are attached only if the patient matches).
    #[arg(long, value_name = "ID")]
    pub case: Option<i64>,
    /// Also render every stored image once, and report those that cannot be shown.
    #[arg(long)]
    pub verify_images: bool,
}

/// `irflow bench ...`.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// The slot finder, in-process, with a year of bookings.
    Slots {
        /// Appointments already booked.
        #[arg(long, default_value_t = 50_000)]
        appointments: usize,
        /// Slot searches to time.
        #[arg(long, default_value_t = 2_000)]
        searches: usize,
    },
    /// Scheduling end to end on a fresh database: slot searches in-process and over
    /// HTTP, and booking throughput with concurrent clients against the raw insert
    /// rate. Always on a temporary SQLite database; also on PostgreSQL when
    /// `--database-url postgres://...` is given (a fresh database is created next
    /// to the one named there and dropped afterwards).
    Scheduling(BenchSchedulingArgs),
    /// DICOM intake: a synthetic MR series sent by dcmtk's storescu to irflow's
    /// receiver and to Orthanc (same machine, same run), and `irflow import` of the
    /// same series from a DICOMDIR folder. Needs dcmtk; Orthanc unless --skip-orthanc.
    Dicom(BenchDicomArgs),
}

/// `irflow bench dicom`.
#[derive(Debug, Args)]
pub struct BenchDicomArgs {
    /// Images in the series.
    #[arg(long, default_value_t = 500)]
    pub instances: usize,
    /// Rows and columns of each image (16-bit).
    #[arg(long, default_value_t = 512)]
    pub size: u32,
    /// The Orthanc program (Debian package `orthanc`).
    #[arg(long, default_value = "Orthanc", value_name = "PROGRAM")]
    pub orthanc: String,
    /// Time irflow alone (no Orthanc on this machine).
    #[arg(long)]
    pub skip_orthanc: bool,
    /// Rounds of sends (each target once per round, fresh stores); medians are reported.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
}

/// `irflow bench scheduling`.
#[derive(Debug, Args)]
pub struct BenchSchedulingArgs {
    /// Appointments of history and future bookings to seed (over the past and coming year).
    #[arg(long, default_value_t = 50_000)]
    pub appointments: usize,
    /// Slot searches to time (in-process, and again over HTTP).
    #[arg(long, default_value_t = 2_000)]
    pub searches: usize,
    /// Bookings to make through the API (each for its own ready case).
    #[arg(long, default_value_t = 2_000)]
    pub bookings: usize,
    /// Concurrent booking clients.
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
}

/// `irflow user ...`.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user.
    Add(UserAddArgs),
    /// List users.
    List,
    /// Set a user's password (ends their sessions).
    SetPassword(SetPasswordArgs),
}

/// `irflow user add`.
#[derive(Debug, Args)]
pub struct UserAddArgs {
    /// Sign-in name (lowercase letters, digits, '.', '_', '-').
    #[arg(long)]
    pub username: String,
    /// admin, scheduler, nurse, radiologist or referrer.
    #[arg(long)]
    pub role: String,
    /// Name shown to people (default: the username).
    #[arg(long)]
    pub name: Option<String>,
    /// For referrers: their clinic or practice.
    #[arg(long)]
    pub organization: Option<String>,
    /// Email address (for referrers: where procedure reports are sent).
    #[arg(long)]
    pub email: Option<String>,
    /// The password (visible in shell history; prefer --password-stdin or the prompt).
    #[arg(long, conflicts_with = "password_stdin")]
    pub password: Option<String>,
    /// Read the password from the first line of standard input.
    #[arg(long)]
    pub password_stdin: bool,
}

/// `irflow user set-password`.
#[derive(Debug, Args)]
pub struct SetPasswordArgs {
    /// Whose password.
    #[arg(long)]
    pub username: String,
    /// The password (visible in shell history; prefer --password-stdin or the prompt).
    #[arg(long, conflicts_with = "password_stdin")]
    pub password: Option<String>,
    /// Read the password from the first line of standard input.
    #[arg(long)]
    pub password_stdin: bool,
}

/// `irflow token ...`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Issue a bearer token for a user (printed once).
    Issue(TokenIssueArgs),
    /// List tokens (never the secrets).
    List,
    /// Revoke a token.
    Revoke(TokenRevokeArgs),
}

/// `irflow token issue`.
#[derive(Debug, Args)]
pub struct TokenIssueArgs {
    /// The user the token acts as.
    #[arg(long)]
    pub user: String,
    /// What the token is for (e.g. the calling system's name).
    #[arg(long)]
    pub label: Option<String>,
}

/// `irflow token revoke`.
#[derive(Debug, Args)]
pub struct TokenRevokeArgs {
    /// The token's id (from `irflow token list`).
    #[arg(long)]
    pub id: i64,
}
