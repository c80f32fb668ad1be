//! The edge (HAProxy) as its stats page shows it: one row per server slot of
//! a backend, with its address, state and counters (`/stats;csv`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use serde::{Deserialize, Serialize};
use tokio::time::sleep;

/// One server slot of a backend. Slots `server-template` keeps for replicas
/// that do not exist have no address and are in maintenance.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Server {
    /// The slot's name, e.g. `vote3`.
    pub name: String,
    /// The replica's address (`172.18.0.5:5000`); empty for an unused slot.
    pub addr: String,
    /// `UP`, `DOWN`, `MAINT (resolution)`, `UP 1/2`, `no check`...
    pub status: String,
    /// Requests (sessions) sent to it since the edge started.
    pub sent: u64,
    /// Requests or tunnels (websockets) open on it now.
    pub current: u64,
    /// Responses with a 2xx status it returned.
    pub ok: u64,
}

impl Server {
    /// In rotation: HAProxy sends it new requests.
    pub fn is_up(&self) -> bool {
        self.status == "UP" || self.status.starts_with("UP ")
    }

    /// The address without the port.
    pub fn ip(&self) -> &str {
        self.addr.rsplit_once(':').map_or(&self.addr, |(ip, _)| ip)
    }
}

pub struct Stats {
    http: reqwest::Client,
    url: String,
}

impl Stats {
    /// `stats_url`: the edge's stats port, e.g. `http://172.18.0.9:8404`.
    pub fn new(stats_url: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()?;
        Ok(Stats {
            http,
            url: format!("{}/stats;csv;norefresh", stats_url.trim_end_matches('/')),
        })
    }

    /// The server slots of `backend` that have an address.
    pub async fn servers(&self, backend: &str) -> anyhow::Result<Vec<Server>> {
        Ok(self
            .all_servers(backend)
            .await?
            .into_iter()
            .filter(|server| !server.addr.is_empty())
            .collect())
    }

    /// Requests sent to the servers of `backend` since the edge started, over
    /// every slot (a slot keeps its count when its replica goes).
    pub async fn sent(&self, backend: &str) -> anyhow::Result<u64> {
        Ok(self
            .all_servers(backend)
            .await?
            .iter()
            .map(|s| s.sent)
            .sum())
    }

    /// Every server slot of `backend`, used or not.
    pub async fn all_servers(&self, backend: &str) -> anyhow::Result<Vec<Server>> {
        let response = self
            .http
            .get(&self.url)
            .send()
            .await
            .with_context(|| format!("GET {}", self.url))?;
        ensure!(
            response.status().is_success(),
            "GET {} answered {}",
            self.url,
            response.status()
        );
        let csv = response.text().await?;
        parse(&csv, backend)
    }
}

/// The rows of `backend`'s servers in HAProxy's stats CSV.
pub fn parse(csv: &str, backend: &str) -> anyhow::Result<Vec<Server>> {
    let mut lines = csv.lines();
    let header = lines
        .next()
        .and_then(|line| line.strip_prefix("# "))
        .context("not HAProxy's stats CSV (no '# pxname,...' header)")?;
    let columns: BTreeMap<&str, usize> = header
        .split(',')
        .enumerate()
        .map(|(i, name)| (name, i))
        .collect();
    let column = |name: &str| {
        columns
            .get(name)
            .copied()
            .with_context(|| format!("the stats CSV has no column {name}"))
    };
    let (pxname, svname, addr, status, stot, scur, ok) = (
        column("pxname")?,
        column("svname")?,
        column("addr")?,
        column("status")?,
        column("stot")?,
        column("scur")?,
        column("hrsp_2xx")?,
    );
    let number = |fields: &[&str], i: usize| -> anyhow::Result<u64> {
        match fields.get(i).copied().unwrap_or("") {
            "" => Ok(0),
            value => value
                .parse()
                .with_context(|| format!("not a number in the stats CSV: {value}")),
        }
    };
    let mut servers = Vec::new();
    for line in lines.filter(|line| !line.is_empty()) {
        let fields: Vec<&str> = line.split(',').collect();
        let field = |i: usize| fields.get(i).copied().unwrap_or("").to_string();
        if field(pxname) != backend || ["FRONTEND", "BACKEND"].contains(&&*field(svname)) {
            continue;
        }
        servers.push(Server {
            name: field(svname),
            addr: field(addr),
            status: field(status),
            sent: number(&fields, stot)?,
            current: number(&fields, scur)?,
            ok: number(&fields, ok)?,
        });
    }
    if servers.is_empty() && !csv.lines().any(|l| l.starts_with(&format!("{backend},"))) {
        bail!("the edge has no backend {backend}");
    }
    Ok(servers)
}

/// Waits until exactly `vote` vote replicas and `result` result replicas
/// are in rotation; how long that took.
pub async fn wait_in_rotation(
    stats: &Stats,
    vote: usize,
    result: usize,
    limit: Duration,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    loop {
        let up = |servers: &[Server]| servers.iter().filter(|s| s.is_up()).count();
        let (votes, results) = (stats.servers("vote").await?, stats.servers("result").await?);
        if up(&votes) == vote && up(&results) == result {
            return Ok(start.elapsed());
        }
        if start.elapsed() > limit {
            bail!(
                "after {limit:?} the edge has {} of {vote} vote and {} of {result} result \
                 replicas in rotation: {}",
                up(&votes),
                up(&results),
                describe(votes.iter().chain(&results))
            );
        }
        sleep(Duration::from_millis(250)).await;
    }
}

pub fn describe<'a>(servers: impl IntoIterator<Item = &'a Server>) -> String {
    servers
        .into_iter()
        .filter(|s| !s.addr.is_empty())
        .map(|s| format!("{} {} {}", s.name, s.addr, s.status))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Each server's 2xx responses since `before`: fails unless every server in
/// rotation answered at least `min_share` of them.
pub fn shares(before: &[Server], after: &[Server], min_share: f64) -> anyhow::Result<String> {
    let answered = |server: &Server| {
        let earlier = before
            .iter()
            .find(|b| b.name == server.name && b.addr == server.addr)
            .map_or(0, |b| b.ok);
        server.ok.saturating_sub(earlier)
    };
    let serving: Vec<&Server> = after
        .iter()
        .filter(|s| s.is_up() && !s.addr.is_empty())
        .collect();
    let total: u64 = serving.iter().map(|s| answered(s)).sum();
    ensure!(total > 0, "no replica answered anything");
    let mut report = Vec::new();
    let mut short = Vec::new();
    for server in &serving {
        let share = answered(server) as f64 / total as f64;
        report.push(format!(
            "{} ({}) {} = {:.1}%",
            server.name,
            server.ip(),
            answered(server),
            share * 100.0
        ));
        if share < min_share {
            short.push(server.name.clone());
        }
    }
    let report = format!("{total} answers: {}", report.join(", "));
    ensure!(
        short.is_empty(),
        "{} answered less than {:.0}%: {report}",
        short.join(", "),
        min_share * 100.0
    );
    Ok(report)
}

/// What the edge did once a replica was stopped (at the moment this was
/// called): when it took the replica out of rotation and when it last sent
/// it a request.
pub struct Drained {
    pub out_of_rotation: Duration,
    pub last_sent: Duration,
    pub sent_after_stop: u64,
    pub name: String,
    pub ip: String,
}

/// The server slot of `backend` holding one of `ips` (a replica's
/// addresses, one per network).
pub async fn slot_of(stats: &Stats, backend: &str, ips: &[String]) -> anyhow::Result<Server> {
    let servers = stats.servers(backend).await?;
    servers
        .iter()
        .find(|s| ips.iter().any(|ip| s.ip() == ip))
        .cloned()
        .with_context(|| {
            format!(
                "no {backend} server at {}: {}",
                ips.join(" or "),
                describe(&servers)
            )
        })
}

/// Follows the server slot `name` of `backend` (its replica being stopped
/// as this starts) until it is out of rotation and has been sent nothing for
/// 3 s (or `limit` passes).
pub async fn follow_drain(
    stats: &Stats,
    backend: &str,
    name: &str,
    limit: Duration,
) -> anyhow::Result<Drained> {
    let start = Instant::now();
    let servers = stats.all_servers(backend).await?;
    let server = servers
        .iter()
        .find(|s| s.name == name)
        .with_context(|| format!("the edge has no server {name} in {backend}"))?;
    let (name, first_sent, ip) = (server.name.clone(), server.sent, server.ip().to_string());
    let (mut sent, mut last_sent) = (first_sent, Duration::ZERO);
    let mut out_of_rotation = None;
    loop {
        let now = start.elapsed();
        let servers = stats.all_servers(backend).await?;
        let slot = servers.iter().find(|s| s.name == name);
        // A slot whose replica left the DNS answer is in maintenance and
        // keeps its counters.
        let (up, slot_sent) = slot.map_or((false, sent), |s| (s.is_up() && s.ip() == ip, s.sent));
        if ip.is_empty() {
            bail!("{name} had no address when its replica stopped: look it up before the stop");
        }
        if slot_sent > sent {
            sent = slot_sent;
            last_sent = now;
        }
        if !up && out_of_rotation.is_none() {
            out_of_rotation = Some(now);
        }
        if let Some(out) = out_of_rotation {
            if now.saturating_sub(out.max(last_sent)) >= Duration::from_secs(3) {
                return Ok(Drained {
                    out_of_rotation: out,
                    last_sent,
                    sent_after_stop: sent - first_sent,
                    name,
                    ip,
                });
            }
        }
        if now > limit {
            bail!(
                "after {limit:?} the edge still has {name} ({ip}) in rotation \
                 (last request sent to it after {last_sent:?})"
            );
        }
        sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSV: &str = "# pxname,svname,qcur,scur,stot,status,addr,hrsp_2xx,\n\
        vote,FRONTEND,,3,120,OPEN,,100,\n\
        vote,vote1,0,1,60,UP,172.18.0.5:5000,50,\n\
        vote,vote2,0,0,55,DOWN,172.18.0.6:5000,50,\n\
        vote,vote3,0,0,0,MAINT (resolution),,,\n\
        vote,BACKEND,0,1,115,UP,,100,\n\
        result,result1,0,2,7,UP 1/2,172.18.0.7:5001,5,\n";

    #[test]
    fn reads_the_servers_of_one_backend() {
        let servers = parse(CSV, "vote").unwrap();
        assert_eq!(servers.len(), 3);
        assert_eq!(servers[0].name, "vote1");
        assert_eq!(servers[0].ip(), "172.18.0.5");
        assert_eq!(
            (servers[0].sent, servers[0].current, servers[0].ok),
            (60, 1, 50)
        );
        assert!(servers[0].is_up());
        assert!(!servers[1].is_up());
        assert_eq!(servers[2].addr, "");
        assert_eq!(servers[2].sent, 0);
        assert!(parse(CSV, "result").unwrap()[0].is_up());
    }

    fn server(name: &str, status: &str, ok: u64) -> Server {
        Server {
            name: name.into(),
            addr: format!("10.0.0.{}:5000", name.len()),
            status: status.into(),
            sent: ok,
            current: 0,
            ok,
        }
    }

    #[test]
    fn shares_count_the_answers_since_before() {
        let before = [server("vote1", "UP", 100), server("vote22", "UP", 0)];
        let after = [server("vote1", "UP", 160), server("vote22", "UP", 40)];
        let report = shares(&before, &after, 0.10).unwrap();
        assert!(report.starts_with("100 answers"), "{report}");
        assert!(report.contains("vote1 (10.0.0.5) 60 = 60.0%"), "{report}");
        let error = shares(&before, &after, 0.45).unwrap_err().to_string();
        assert!(
            error.starts_with("vote22 answered less than 45%"),
            "{error}"
        );
        // A replica out of rotation is not expected to serve.
        let after = [server("vote1", "UP", 160), server("vote22", "DOWN", 0)];
        assert!(shares(&before, &after, 0.10).is_ok());
    }

    #[test]
    fn refuses_what_is_not_the_stats_csv() {
        assert!(parse("<html>", "vote").is_err());
        assert!(parse(CSV, "nothing").is_err());
        assert!(parse("# pxname,svname\nvote,vote1\n", "vote").is_err());
    }
}
