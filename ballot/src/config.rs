//! Settings more than one service reads. Each is an environment variable and
//! a `--flag`; a bad value stops start-up with one line naming the setting.

use std::str::FromStr;

use clap::{error::ErrorKind, Args, Parser};

#[derive(Args, Clone, Debug)]
pub struct RedisArgs {
    /// Where ballots are queued.
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379", value_parser = redis_url)]
    pub redis_url: String,
}

#[derive(Args, Clone, Debug)]
pub struct DatabaseArgs {
    /// Where votes are stored and counted.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres:postgres@127.0.0.1:5432/postgres",
        value_parser = database_url
    )]
    pub database_url: String,
}

impl DatabaseArgs {
    pub fn pg_config(&self) -> tokio_postgres::Config {
        tokio_postgres::Config::from_str(&self.database_url).expect("validated when parsed")
    }
}

fn redis_url(value: &str) -> Result<String, String> {
    redis::Client::open(value)
        .map(|_| value.to_string())
        .map_err(|e| format!("expected a URL like redis://host:6379 ({e})"))
}

fn database_url(value: &str) -> Result<String, String> {
    let looks_like_url = value.starts_with("postgres://") || value.starts_with("postgresql://");
    match tokio_postgres::Config::from_str(value) {
        Ok(_) if looks_like_url => Ok(value.to_string()),
        Ok(_) => Err("expected a URL like postgres://user:password@host:5432/db".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Parses the command line and environment; on a bad setting prints one line
/// that names it and exits with status 2. `--help` and `--version` print as usual.
pub fn parse<T: Parser>() -> T {
    T::try_parse().unwrap_or_else(|err| match err.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => err.exit(),
        _ => {
            let rendered = err.render().to_string();
            let line = rendered.lines().next().unwrap_or("error: bad setting");
            eprintln!("{line}");
            std::process::exit(2);
        }
    })
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

    #[test]
    fn defaults_point_at_localhost() {
        let cli = Cli::try_parse_from(["x"]).unwrap();
        assert_eq!(cli.redis.redis_url, "redis://127.0.0.1:6379");
        assert_eq!(cli.db.pg_config().get_dbname(), Some("postgres"));
    }

    #[test]
    fn bad_urls_name_the_setting() {
        for bad in ["localhost", "redis://host:notaport"] {
            let err = Cli::try_parse_from(["x", "--redis-url", bad]).unwrap_err();
            assert!(err.to_string().contains("REDIS_URL"), "{err}");
        }
        let err = Cli::try_parse_from(["x", "--database-url", "nope"]).unwrap_err();
        assert!(err.to_string().contains("DATABASE_URL"), "{err}");
    }
}
