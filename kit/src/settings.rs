//! Settings more than one service reads. Each is an environment variable and
//! a `--flag`; a bad value stops start-up with one line naming the setting.

use std::str::FromStr;

use clap::{error::ErrorKind, parser::ValueSource, ArgMatches, Args, FromArgMatches, Parser};

use crate::redis_primary as kit_primary;

/// Where ballots are queued: `REDIS_URL` (its user, e.g.
/// `redis://vote@redis:6379`), and the password from `REDIS_PASSWORD_FILE`
/// when that is set (a Docker or Kubernetes secret mounted as a file).
/// With `REDIS_SENTINELS`, the primary is the member the Sentinels name
/// `REDIS_MASTER_NAME`; REDIS_URL then gives only the user, password and
/// database.
#[derive(Clone, Debug)]
pub struct RedisArgs {
    pub redis_url: String,
    password: Option<Password>,
    sentinels: Option<Sentinels>,
}

/// `host:port` pairs (one value to clap, not a list of values).
#[derive(Clone, Debug)]
struct Addresses(Vec<(String, u16)>);

/// Where the Sentinels are and the name they know the primary by.
#[derive(Clone, Debug)]
struct Sentinels {
    addresses: Vec<(String, u16)>,
    master_name: String,
}

/// The flags and variables behind [`RedisArgs`].
#[derive(Args, Clone, Debug)]
struct RedisFlags {
    /// Where ballots are queued, with the Redis user to log in as.
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379", value_parser = redis_url)]
    redis_url: String,
    /// A file holding the password of REDIS_URL's user (read once at start;
    /// trailing newlines dropped). REDIS_URL must then carry none.
    #[arg(long, env = "REDIS_PASSWORD_FILE", value_parser = password_file)]
    redis_password_file: Option<Password>,
    /// Redis with Sentinel: the Sentinels, `host:port,host:port,...`. The
    /// primary is then whichever member they name, found again after a
    /// failover; REDIS_URL gives the user, password and database only.
    #[arg(long, env = "REDIS_SENTINELS", value_parser = sentinel_addresses)]
    redis_sentinels: Option<Addresses>,
    /// The name the Sentinels know the primary by (with REDIS_SENTINELS;
    /// default voting).
    #[arg(long, env = "REDIS_MASTER_NAME", value_parser = master_name)]
    redis_master_name: Option<String>,
}

/// Where votes are stored and counted: `DATABASE_URL`, and the password from
/// `POSTGRES_PASSWORD_FILE` when that is set (a Docker or Kubernetes secret
/// mounted as a file, so the password is in no environment variable).
#[derive(Clone, Debug)]
pub struct DatabaseArgs {
    pub database_url: String,
    password: Option<Password>,
}

/// The flags and variables behind [`DatabaseArgs`]; the two are checked
/// against each other once both are parsed.
#[derive(Args, Clone, Debug)]
struct DatabaseFlags {
    /// Where votes are stored and counted.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres:postgres@127.0.0.1:5432/postgres",
        value_parser = database_url
    )]
    database_url: String,
    /// A file holding the database password (read once at start; trailing
    /// newlines dropped). It replaces the default URL's password; a
    /// DATABASE_URL that is set must then carry none.
    #[arg(long, env = "POSTGRES_PASSWORD_FILE", value_parser = password_file)]
    postgres_password_file: Option<Password>,
}

/// A password read from a file; never printed.
#[derive(Clone)]
struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(..)")
    }
}

impl RedisArgs {
    /// A client for REDIS_URL, logging in with the password from the file
    /// if there is one. Connects only when asked to.
    pub fn client(&self) -> redis::Client {
        let info = redis::IntoConnectionInfo::into_connection_info(self.redis_url.as_str())
            .expect("validated when parsed");
        let info = match &self.password {
            Some(Password(password)) => {
                let settings = info.redis_settings().clone().set_password(password);
                info.set_redis_settings(settings)
            }
            None => info,
        };
        redis::Client::open(info).expect("validated when parsed")
    }

    /// Where the primary is: REDIS_URL's server, or the member the
    /// Sentinels name, looked up at each new connection.
    pub fn primary(&self) -> kit_primary::RedisPrimary {
        match &self.sentinels {
            None => kit_primary::RedisPrimary::direct(self.client()),
            Some(s) => kit_primary::RedisPrimary::through_sentinels(
                self.client(),
                &s.addresses,
                &s.master_name,
            ),
        }
    }
}

impl FromArgMatches for RedisArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let flags = RedisFlags::from_arg_matches(matches)?;
        let url_has_password =
            redis::IntoConnectionInfo::into_connection_info(flags.redis_url.as_str())
                .is_ok_and(|info| info.redis_settings().password().is_some());
        if flags.redis_password_file.is_some() && url_has_password {
            return Err(clap::Error::raw(
                ErrorKind::ArgumentConflict,
                "REDIS_PASSWORD_FILE is set and REDIS_URL carries a password too: \
                 give the password one way only\n",
            ));
        }
        let sentinels =
            match (flags.redis_sentinels, flags.redis_master_name) {
                (Some(Addresses(addresses)), name) => Some(Sentinels {
                    addresses,
                    master_name: name.unwrap_or_else(|| "voting".into()),
                }),
                (None, Some(_)) => return Err(clap::Error::raw(
                    ErrorKind::MissingRequiredArgument,
                    "REDIS_MASTER_NAME is set but REDIS_SENTINELS is not: set both, or neither\n",
                )),
                (None, None) => None,
            };
        Ok(RedisArgs {
            redis_url: flags.redis_url,
            password: flags.redis_password_file,
            sentinels,
        })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl Args for RedisArgs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        RedisFlags::augment_args(cmd)
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        RedisFlags::augment_args_for_update(cmd)
    }
}

impl DatabaseArgs {
    pub fn pg_config(&self) -> tokio_postgres::Config {
        let mut config =
            tokio_postgres::Config::from_str(&self.database_url).expect("validated when parsed");
        if let Some(Password(password)) = &self.password {
            config.password(password);
        }
        config
    }
}

impl FromArgMatches for DatabaseArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let flags = DatabaseFlags::from_arg_matches(matches)?;
        let url_set = matches
            .value_source("database_url")
            .is_some_and(|source| source != ValueSource::DefaultValue);
        let url_has_password = tokio_postgres::Config::from_str(&flags.database_url)
            .is_ok_and(|config| config.get_password().is_some());
        if flags.postgres_password_file.is_some() && url_set && url_has_password {
            return Err(clap::Error::raw(
                ErrorKind::ArgumentConflict,
                "POSTGRES_PASSWORD_FILE is set and DATABASE_URL carries a password too: \
                 give the password one way only\n",
            ));
        }
        Ok(DatabaseArgs {
            database_url: flags.database_url,
            password: flags.postgres_password_file,
        })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl Args for DatabaseArgs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        DatabaseFlags::augment_args(cmd)
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        DatabaseFlags::augment_args_for_update(cmd)
    }
}

fn redis_url(value: &str) -> Result<String, String> {
    redis::Client::open(value)
        .map(|_| value.to_string())
        .map_err(|e| format!("expected a URL like redis://host:6379 ({e})"))
}

/// `host:port,host:port,...`, at least one.
fn sentinel_addresses(value: &str) -> Result<Addresses, String> {
    value
        .split(',')
        .map(|address| {
            let address = address.trim();
            let bad = || format!("expected host:port,host:port,... (not {address:?})");
            let (host, port) = address.rsplit_once(':').ok_or_else(bad)?;
            let port = port
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(bad)?;
            match host.is_empty() || host.contains(char::is_whitespace) {
                true => Err(bad()),
                false => Ok((host.to_string(), port)),
            }
        })
        .collect::<Result<_, _>>()
        .map(Addresses)
}

fn master_name(value: &str) -> Result<String, String> {
    match value.is_empty() || value.contains(char::is_whitespace) {
        true => Err("expected a name without spaces, such as voting".into()),
        false => Ok(value.to_string()),
    }
}

/// One host (`postgres://user@host:5432/db`) or several, tried in turn
/// (`postgres://user@h1:5432,h2:5432/db?target_session_attrs=read-write`
/// connects to whichever takes writes). What tokio-postgres would only
/// refuse when connecting, and so retry for ever, is refused here.
fn database_url(value: &str) -> Result<String, String> {
    let looks_like_url = value.starts_with("postgres://") || value.starts_with("postgresql://");
    let config = match tokio_postgres::Config::from_str(value) {
        Ok(_) if !looks_like_url => {
            return Err("expected a URL like postgres://user:password@host:5432/db".into())
        }
        Ok(config) => config,
        Err(e) => return Err(e.to_string()),
    };
    let hosts = config.get_hosts().len().max(config.get_hostaddrs().len());
    let ports = config.get_ports().len();
    if hosts == 0 {
        return Err("names no host: expected postgres://user@host:5432/db".into());
    }
    if ports > 1 && ports != hosts {
        return Err(format!(
            "{ports} ports for {hosts} host(s): give each host its port \
             (postgres://user@h1:5432,h2:5432/db), not ?port= as well"
        ));
    }
    Ok(value.to_string())
}

/// A page's address for a link to it (`RESULT_PAGE_URL`, `VOTE_PAGE_URL`):
/// an absolute http or https URL, as the browser must be able to follow it
/// from anywhere.
pub fn page_url(value: &str) -> Result<String, String> {
    let expected = "expected an address like http://localhost:5001";
    let uri: axum::http::Uri = value.parse().map_err(|e| format!("{expected} ({e})"))?;
    let web = matches!(uri.scheme_str(), Some("http" | "https"));
    if !web || uri.host().is_none_or(str::is_empty) {
        return Err(expected.to_string());
    }
    Ok(value.to_string())
}

fn password_file(path: &str) -> Result<Password, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let password = text.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        return Err(format!("{path} is empty"));
    }
    Ok(Password(password.to_string()))
}

/// Parses the command line and environment; on a bad setting prints one line
/// that names it and exits with status 2. `--help` and `--version` print as usual.
pub fn parse<T: Parser>() -> T {
    let parsed = T::try_parse().unwrap_or_else(|err| match err.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => err.exit(),
        _ => {
            let rendered = err.render().to_string();
            unusable(rendered.lines().next().unwrap_or("error: bad setting"))
        }
    });
    let variables = std::env::vars_os().filter_map(|(name, _)| name.into_string().ok());
    if let Some(line) = retired_rocket_setting(&T::command(), variables) {
        unusable(&line);
    }
    parsed
}

/// A setting that can never work: its line, status 2.
fn unusable(line: &str) -> ! {
    eprintln!("{line}");
    std::process::exit(2);
}

/// result and the worker ran on Rocket, which read any `ROCKET_*` variable
/// itself. None is read now (but those a service declares, such as vote's
/// `ROCKET_WORKERS`); one still set would silently do nothing, so the
/// service refuses to start, naming it and what replaces it.
fn retired_rocket_setting(
    command: &clap::Command,
    variables: impl Iterator<Item = String>,
) -> Option<String> {
    let declared: Vec<String> = command
        .get_arguments()
        .filter_map(|arg| arg.get_env()?.to_str().map(String::from))
        .collect();
    let mut retired: Vec<String> = variables
        .filter(|name| name.starts_with("ROCKET_") && !declared.contains(name))
        .collect();
    retired.sort();
    let name = retired.into_iter().next()?;
    let instead = match name.as_str() {
        "ROCKET_PORT" => "set PORT",
        "ROCKET_ADDRESS" => "every service listens on all interfaces",
        "ROCKET_LOG_LEVEL" | "ROCKET_CLI_COLORS" => "set RUST_LOG and LOG_FORMAT",
        "ROCKET_WORKERS" => "run more replicas",
        "ROCKET_KEEP_ALIVE" => "idle connections are closed after 10 s",
        "ROCKET_SHUTDOWN" => "set SHUTDOWN_DRAIN",
        _ => "see the README's settings",
    };
    Some(format!(
        "{name} is set, but {} no longer runs on Rocket and reads no ROCKET_* \
         setting: {instead}",
        command.get_name()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        redis: RedisArgs,
        #[command(flatten)]
        db: DatabaseArgs,
    }

    /// POSTGRES_PASSWORD_FILE is read from the process's environment: tests
    /// that parse take turns.
    static ENV: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn env_lock() -> std::sync::MutexGuard<'static, ()> {
        ENV.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A file in a fresh temp dir holding `text`; removed with the dir.
    struct SecretFile(std::path::PathBuf);

    impl SecretFile {
        fn new(name: &str, text: &str) -> SecretFile {
            let dir = std::env::temp_dir().join(format!(
                "ballot-config-{}-{name}-{:x}",
                std::process::id(),
                rand_suffix()
            ));
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join("postgres_password");
            std::fs::write(&path, text).unwrap();
            SecretFile(path)
        }

        fn path(&self) -> &str {
            self.0.to_str().unwrap()
        }
    }

    impl Drop for SecretFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(self.0.parent().unwrap());
        }
    }

    fn rand_suffix() -> u128 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    }

    /// What `parse` prints before it exits 2: the first line of the error.
    fn first_line(err: &clap::Error) -> String {
        err.render().to_string().lines().next().unwrap().to_string()
    }

    #[test]
    fn a_rocket_setting_left_set_is_named_with_what_replaces_it() {
        let command = <Cli as clap::CommandFactory>::command().name("result");
        let vars = |names: &[&str]| {
            names
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .into_iter()
        };
        assert_eq!(
            retired_rocket_setting(&command, vars(&["PORT", "HOME"])),
            None
        );
        let line = retired_rocket_setting(&command, vars(&["ROCKET_PORT", "ROCKET_WORKERS"]));
        let line = line.unwrap();
        assert!(line.starts_with("ROCKET_PORT is set, but result"), "{line}");
        assert!(line.ends_with("set PORT"), "{line}");
        // One a service still declares (vote's ROCKET_WORKERS) is its own.
        let command = command.arg(
            clap::Arg::new("workers")
                .long("workers")
                .env("ROCKET_WORKERS"),
        );
        assert_eq!(
            retired_rocket_setting(&command, vars(&["ROCKET_WORKERS"])),
            None
        );
    }

    #[test]
    fn a_page_url_must_be_an_absolute_web_address() {
        for good in [
            "http://localhost:5001",
            "https://results.example.com/",
            "http://10.0.0.7:31001/results",
        ] {
            assert_eq!(page_url(good).as_deref(), Ok(good));
        }
        for bad in [
            "",
            "localhost:5001",
            "/results",
            "ftp://host/",
            "http://",
            "http://a b/",
        ] {
            let why = page_url(bad).unwrap_err();
            assert!(why.starts_with("expected an address like"), "{bad}: {why}");
        }
    }

    #[test]
    fn defaults_point_at_localhost() {
        let _env = env_lock();
        let cli = Cli::try_parse_from(["x"]).unwrap();
        assert_eq!(cli.redis.redis_url, "redis://127.0.0.1:6379");
        assert_eq!(cli.db.pg_config().get_dbname(), Some("postgres"));
    }

    #[test]
    fn bad_urls_name_the_setting() {
        let _env = env_lock();
        for bad in ["localhost", "redis://host:notaport"] {
            let err = Cli::try_parse_from(["x", "--redis-url", bad]).unwrap_err();
            assert!(err.to_string().contains("REDIS_URL"), "{err}");
        }
        let err = Cli::try_parse_from(["x", "--database-url", "nope"]).unwrap_err();
        assert!(err.to_string().contains("DATABASE_URL"), "{err}");
    }

    #[test]
    fn several_hosts_are_tried_in_turn_for_the_one_that_takes_writes() {
        let _env = env_lock();
        let secret = SecretFile::new("multi", "s3cret");
        let url = "postgres://app@db1:5432,db2:5433/votes?target_session_attrs=read-write";
        let cli = Cli::try_parse_from([
            "x",
            "--database-url",
            url,
            "--postgres-password-file",
            secret.path(),
        ]);
        let config = cli.unwrap().db.pg_config();
        let hosts: Vec<String> = config
            .get_hosts()
            .iter()
            .map(|h| format!("{h:?}"))
            .collect();
        assert_eq!(hosts, [r#"Tcp("db1")"#, r#"Tcp("db2")"#]);
        assert_eq!(config.get_ports(), [5432, 5433]);
        assert_eq!(
            config.get_target_session_attrs(),
            tokio_postgres::config::TargetSessionAttrs::ReadWrite
        );
        // One password for every host.
        assert_eq!(config.get_password(), Some(&b"s3cret"[..]));
        for bad in [
            "postgres://app@db1,db2/votes?target_session_attrs=any-primary",
            "postgres://app@db1:5432,db2:x/votes",
            "postgres://app@db1,db2/votes?port=1,2,3",
            "postgres:///votes",
        ] {
            let err = Cli::try_parse_from(["x", "--database-url", bad]).unwrap_err();
            let line = first_line(&err);
            assert!(line.contains("DATABASE_URL"), "{bad}: {line}");
            assert_eq!(err.kind(), ErrorKind::ValueValidation, "{bad}: {line}");
        }
    }

    #[test]
    fn the_password_comes_from_a_file_given_by_flag_or_by_environment() {
        let _env = env_lock();
        let secret = SecretFile::new("given", "s3cret pass\n");
        // By flag, with the default URL: its password is replaced.
        let cli = Cli::try_parse_from(["x", "--postgres-password-file", secret.path()]).unwrap();
        let config = cli.db.pg_config();
        assert_eq!(config.get_password(), Some(&b"s3cret pass"[..]));
        assert_eq!(config.get_user(), Some("postgres"));
        assert!(!format!("{cli:?}").contains("s3cret"), "{cli:?}");
        // By environment, beside a URL without a password.
        std::env::set_var("POSTGRES_PASSWORD_FILE", secret.path());
        let parsed = Cli::try_parse_from(["x", "--database-url", "postgres://app@db:5432/votes"]);
        std::env::remove_var("POSTGRES_PASSWORD_FILE");
        let config = parsed.unwrap().db.pg_config();
        assert_eq!(config.get_password(), Some(&b"s3cret pass"[..]));
        assert_eq!(config.get_user(), Some("app"));
        assert_eq!(config.get_dbname(), Some("votes"));
        // Without the file, the URL's own password, as before.
        let cli = Cli::try_parse_from(["x", "--database-url", "postgres://app:pw@db/votes"]);
        assert_eq!(cli.unwrap().db.pg_config().get_password(), Some(&b"pw"[..]));
    }

    #[test]
    fn a_password_given_both_ways_is_refused_in_one_line() {
        let _env = env_lock();
        let secret = SecretFile::new("both", "s3cret");
        let url = "postgres://app:other@db:5432/votes";
        for env in [false, true] {
            let mut args = vec!["x", "--database-url", url];
            if env {
                std::env::set_var("POSTGRES_PASSWORD_FILE", secret.path());
            } else {
                args.extend(["--postgres-password-file", secret.path()]);
            }
            let parsed = Cli::try_parse_from(args);
            std::env::remove_var("POSTGRES_PASSWORD_FILE");
            let err = parsed.unwrap_err();
            let line = first_line(&err);
            assert!(line.contains("POSTGRES_PASSWORD_FILE"), "{line}");
            assert!(line.contains("DATABASE_URL"), "{line}");
            assert!(!line.contains("other"), "{line}");
            assert_eq!(err.kind(), ErrorKind::ArgumentConflict);
        }
    }

    #[test]
    fn the_redis_password_comes_from_a_file_and_the_user_from_the_url() {
        let _env = env_lock();
        let secret = SecretFile::new("redis", "s3cret pass\n");
        let redis_of = |cli: Cli| {
            let client = cli.redis.client();
            let settings = client.get_connection_info().redis_settings().clone();
            (
                settings.username().map(String::from),
                settings.password().map(String::from),
            )
        };
        let url = "redis://vote@redis:6379";
        let cli = Cli::try_parse_from([
            "x",
            "--redis-url",
            url,
            "--redis-password-file",
            secret.path(),
        ]);
        let cli = cli.unwrap();
        assert!(!format!("{cli:?}").contains("s3cret"), "{cli:?}");
        let pass = Some("s3cret pass".to_string());
        assert_eq!(redis_of(cli), (Some("vote".into()), pass.clone()));
        // By environment, with the default URL: the default user's password.
        std::env::set_var("REDIS_PASSWORD_FILE", secret.path());
        let parsed = Cli::try_parse_from(["x"]);
        std::env::remove_var("REDIS_PASSWORD_FILE");
        assert_eq!(redis_of(parsed.unwrap()), (None, pass));
        // Without the file, the URL's own, as before.
        let cli = Cli::try_parse_from(["x", "--redis-url", "redis://vote:pw@redis:6379"]);
        assert_eq!(
            redis_of(cli.unwrap()),
            (Some("vote".into()), Some("pw".into()))
        );
    }

    #[test]
    fn sentinel_settings_are_checked_and_name_themselves() {
        let _env = env_lock();
        let cli = Cli::try_parse_from(["x"]).unwrap();
        assert!(!cli.redis.primary().replicated());
        let sentinels = "s1:26379, s2:26379,10.0.0.3:26380";
        let cli = Cli::try_parse_from(["x", "--redis-sentinels", sentinels]).unwrap();
        let s = cli.redis.sentinels.as_ref().unwrap();
        assert_eq!(s.addresses[1], ("s2".to_string(), 26379));
        assert_eq!(s.master_name, "voting");
        assert!(cli.redis.primary().replicated());
        for bad in ["", "s1", "s1:0", "s1:x", ":26379", "s1:26379,,s2:26379"] {
            let err = Cli::try_parse_from(["x", "--redis-sentinels", bad]).unwrap_err();
            let line = first_line(&err);
            assert!(line.contains("REDIS_SENTINELS"), "{line}");
        }
        let err = Cli::try_parse_from(["x", "--redis-master-name", "voting"]).unwrap_err();
        let line = first_line(&err);
        assert!(line.contains("REDIS_MASTER_NAME") && line.contains("REDIS_SENTINELS"));
        let args = [
            "x",
            "--redis-sentinels",
            "s1:1",
            "--redis-master-name",
            "a b",
        ];
        let line = first_line(&Cli::try_parse_from(args).unwrap_err());
        assert!(line.contains("REDIS_MASTER_NAME"), "{line}");
    }

    #[test]
    fn a_redis_password_given_both_ways_is_refused_in_one_line() {
        let _env = env_lock();
        let secret = SecretFile::new("redis-both", "s3cret");
        let url = "redis://vote:other@redis:6379";
        for env in [false, true] {
            let mut args = vec!["x", "--redis-url", url];
            if env {
                std::env::set_var("REDIS_PASSWORD_FILE", secret.path());
            } else {
                args.extend(["--redis-password-file", secret.path()]);
            }
            let parsed = Cli::try_parse_from(args);
            std::env::remove_var("REDIS_PASSWORD_FILE");
            let err = parsed.unwrap_err();
            let line = first_line(&err);
            assert!(line.contains("REDIS_PASSWORD_FILE"), "{line}");
            assert!(line.contains("REDIS_URL"), "{line}");
            assert!(!line.contains("other"), "{line}");
            assert_eq!(err.kind(), ErrorKind::ArgumentConflict);
        }
    }

    #[test]
    fn a_missing_unreadable_or_empty_password_file_is_named_in_one_line() {
        let _env = env_lock();
        let empty = SecretFile::new("empty", "\n");
        let missing = format!("{}/no-such-secret", std::env::temp_dir().display());
        // A directory cannot be read as a file, even by root.
        let unreadable = std::env::temp_dir().display().to_string();
        let settings = [
            ("--postgres-password-file", "POSTGRES_PASSWORD_FILE"),
            ("--redis-password-file", "REDIS_PASSWORD_FILE"),
        ];
        let paths = [missing.as_str(), unreadable.as_str(), empty.path()];
        for ((flag, name), path) in settings.into_iter().flat_map(|s| paths.map(|p| (s, p))) {
            let err = Cli::try_parse_from(["x", flag, path]).unwrap_err();
            let line = first_line(&err);
            assert!(line.contains(name), "{line}");
            assert!(line.contains(path), "{line}");
            // Anything but help or version: `parse` prints the line, exits 2.
            assert_eq!(err.kind(), ErrorKind::ValueValidation, "{line}");
        }
    }
}
