//! The command line: `tollgate serve`, `tollgate check-config`, `tollgate print-default-config`.
//!
//! Exit status: 0 on success, 1 when the configuration is invalid or the server fails,
//! 2 for a usage error (clap's own code, kept so scripts can tell a typo from a bad file).
//! Configuration errors go to stderr as `file:line:column: key: what is wrong`, one per line.

use std::ffi::OsString;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, EMBEDDED_DEFAULT, EMBEDDED_ORIGIN};
use crate::gate::compile;
use crate::gate::preflight::Preflight;

/// Invalid configuration, or a failure while running.
pub const EXIT_FAILURE: u8 = 1;
/// Bad command line (clap exits with this itself).
pub const EXIT_USAGE: u8 = 2;

const EXAMPLES: &str = "\
Examples:
  tollgate serve
      Run on the embedded default configuration: HTTP on 127.0.0.1:8080, tiers anonymous
      100/h, basic 500/h, premium 2000/h, api_key 10000/h.
  tollgate serve --config /etc/tollgate/tollgate.toml
      Run on your own configuration. `kill -HUP <pid>` reloads it; a bad file is refused
      and the running configuration stays.
  tollgate check-config /etc/tollgate/tollgate.toml
      Validate a file, and the files, directories and environment variables it names, as
      they are where it runs: prints `FILE: ok` and a summary, or every problem (the key,
      the path, what to do) and exits 1. Add --file-only to check the file alone, e.g. in CI.
  tollgate print-default-config > tollgate.toml
      Start a configuration from the commented default.
  TOLLGATE_LOG=debug tollgate serve
      Override [log] level for one run.
  curl -i 'http://127.0.0.1:8080/check?key=ip:203.0.113.7&tier=anonymous'
      Ask a running tollgate.

Exit status: 0 ok, 1 invalid configuration or failure, 2 usage error.
Documentation: configuration.md and http-api.md in the docs/ folder of tollgate's source;
`tollgate print-default-config` shows every setting with its default, commented.";

/// tollgate: rate-limiter and JWT-auth sidecar.
#[derive(Debug, Parser)]
#[command(
    name = "tollgate",
    version,
    about = "Rate-limiter and JWT-auth sidecar: sliding-window limits, verified-token cache, \
             nginx auth_request, RESP protocol",
    after_help = EXAMPLES,
    arg_required_else_help = true,
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the sidecar until SIGTERM or SIGINT; SIGHUP reloads the configuration file.
    Serve {
        /// Configuration file (TOML). Without it, the embedded default (see
        /// print-default-config).
        #[arg(short, long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Validate a configuration file and what it names here (files, directories,
    /// environment variables): `FILE: ok` and a summary, or every problem and exit status 1.
    CheckConfig {
        /// The configuration file to check.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Check the file alone, not the files, directories and environment variables it
        /// names (for checking it away from where it runs, e.g. in CI).
        #[arg(long)]
        file_only: bool,
    },
    /// Print the embedded default configuration, commented, as a starting point.
    PrintDefaultConfig,
}

/// Parses the process's arguments and runs the command. What `main` calls.
pub fn main() -> ExitCode {
    run(Cli::parse_from(help_of_help(std::env::args_os())))
}

/// `tollgate help --help` (or `-h`) asks for the help of the `help` command itself, which
/// clap reads as a subcommand named `--help` and refuses; answer it with the main help.
fn help_of_help(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut args: Vec<OsString> = args.into_iter().collect();
    if args.len() >= 3 && args[1] == "help" && args[2..].iter().all(|a| a == "--help" || a == "-h")
    {
        args.truncate(1);
        args.push("--help".into());
    }
    args
}

/// Writes `text` to standard output. A reader that has gone away (`… | head -1`) is not an
/// error: what it wanted was written, and the rest is of no use to anyone.
fn print_out(text: &str) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tollgate: cannot write to standard output: {e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve { config } => serve(config),
        Command::CheckConfig { file, file_only } => check_config(file, file_only),
        Command::PrintDefaultConfig => print_out(EMBEDDED_DEFAULT),
    }
}

fn check_config(file: PathBuf, file_only: bool) -> ExitCode {
    let compiled = match compile::load(&file) {
        Ok(compiled) => compiled,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let mut report = format!("{}: ok\n{}\n", file.display(), compiled.config.summary());
    if file_only {
        report.push_str(
            "not checked (--file-only): the files, directories and environment variables it names\n",
        );
        return print_out(&report);
    }
    let preflight = Preflight::run(&compiled.config, &|v| std::env::var(v).ok());
    if !preflight.is_ok() {
        eprint!("{}", refusal(&file.display().to_string(), &preflight));
        return ExitCode::from(EXIT_FAILURE);
    }
    for note in &preflight.not_checked {
        report.push_str(&format!("not checked: {note}\n"));
    }
    print_out(&report)
}

/// What `check-config` and `serve` say about a configuration whose surroundings a start
/// would refuse: every problem, one a line, each naming its key.
fn refusal(origin: &str, preflight: &Preflight) -> String {
    let mut text = String::new();
    for problem in &preflight.problems {
        text.push_str(&format!("{origin}: {problem}\n"));
    }
    text.push_str(&format!(
        "{origin}: {} the server would refuse at start\n",
        match preflight.problems.len() {
            1 => "1 problem".to_string(),
            n => format!("{n} problems"),
        }
    ));
    text
}

fn serve(config_path: Option<PathBuf>) -> ExitCode {
    let loaded = match &config_path {
        Some(path) => {
            compile::load(path).map(|compiled| std::sync::Arc::unwrap_or_clone(compiled.config))
        }
        None => Ok(Config::embedded()),
    };
    // Logging is configured by the file, so a bad file is reported on plain stderr.
    let config = match loaded {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            eprintln!("tollgate: not starting: the configuration is invalid");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    // What the file names on this machine, checked before anything starts: every problem
    // at once, in check-config's words.
    let preflight = Preflight::run(&config, &|v| std::env::var(v).ok());
    if !preflight.is_ok() {
        let origin = config_path
            .as_ref()
            .map_or_else(|| EMBEDDED_ORIGIN.to_string(), |p| p.display().to_string());
        eprint!("{}", refusal(&origin, &preflight));
        eprintln!("tollgate: not starting: fix the problems above (tollgate check-config FILE checks them)");
        return ExitCode::from(EXIT_FAILURE);
    }
    if let Err(e) = crate::logging::init(&config.log) {
        eprintln!("tollgate: {e:#}");
        return ExitCode::from(EXIT_FAILURE);
    }
    let origin = config_path
        .as_ref()
        .map_or_else(|| EMBEDDED_ORIGIN.to_string(), |p| p.display().to_string());
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        config = %origin,
        "starting: {}",
        config.summary()
    );
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("tollgate")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}")),
    };
    match runtime.block_on(crate::server::run(config, config_path)) {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&format!("{e:#}")),
    }
}

/// Reports a fatal error through the logger when it would show an error, else on stderr
/// (so `level = "off"` never hides why the process exited).
fn fail(message: &str) -> ExitCode {
    if tracing::enabled!(tracing::Level::ERROR) {
        tracing::error!("stopping: {message}");
    } else {
        eprintln!("tollgate: {message}");
    }
    ExitCode::from(EXIT_FAILURE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn help_of_help_is_the_main_help() {
        let args = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        for asked in [
            &["tollgate", "help", "--help"][..],
            &["tollgate", "help", "-h"],
        ] {
            assert_eq!(help_of_help(args(asked)), args(&["tollgate", "--help"]));
        }
        for kept in [
            &["tollgate", "help", "serve"][..],
            &["tollgate", "help"],
            &["tollgate", "serve", "--help"],
        ] {
            assert_eq!(help_of_help(args(kept)), args(kept));
        }
    }

    #[test]
    fn parses_each_command() {
        let c = Cli::try_parse_from(["tollgate", "serve", "--config", "x.toml"]).unwrap();
        assert!(
            matches!(c.command, Command::Serve { config: Some(p) } if p == std::path::Path::new("x.toml"))
        );
        let c = Cli::try_parse_from(["tollgate", "serve"]).unwrap();
        assert!(matches!(c.command, Command::Serve { config: None }));
        let c = Cli::try_parse_from(["tollgate", "check-config", "y.toml"]).unwrap();
        assert!(matches!(c.command, Command::CheckConfig { .. }));
        let e = Cli::try_parse_from(["tollgate", "check-config"]).unwrap_err();
        assert_eq!(e.exit_code(), i32::from(EXIT_USAGE));
        let e = Cli::try_parse_from(["tollgate", "serve", "--bogus"]).unwrap_err();
        assert_eq!(e.exit_code(), i32::from(EXIT_USAGE));
    }
}
