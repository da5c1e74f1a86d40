//! A site's Redis data in a final sync: its keys on the source (queued, reserved and delayed
//! jobs, Horizon, sessions) restored on the target with their TTLs once the source's workers
//! stopped, so that no job stays behind. A Redis both servers share is left alone.
//!
//! Each side's `.env` says where its Redis is (`REDIS_HOST`, `REDIS_PORT`, `REDIS_DB`,
//! `REDIS_USERNAME`, `REDIS_PASSWORD`) and which keys are the site's (`REDIS_PREFIX` and
//! `HORIZON_PREFIX`, with Laravel's defaults; an empty `REDIS_PREFIX` makes the whole database
//! the site's). The keys stream from `redis.sh send` on the source into `redis.sh receive` on
//! the target, which first removes the target's own keys under those prefixes: the target ends
//! with exactly the source's.

use serde::{Deserialize, Serialize};

use crate::transport::quote::Command;
use crate::transport::{Exit, QuoteError, Stdin, Transport, TransportError};

const SCRIPT: &str = include_str!("scripts/redis.sh");

/// Where one side's `.env` puts the site's Redis, and what is there.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RedisSide {
    pub host: String,
    pub port: u16,
    pub db: u32,
    /// SCAN patterns of the site's keys.
    pub patterns: Vec<String>,
    /// `up`, `down` (nothing answers) or `no-client` (no redis-cli on the server).
    pub state: String,
    /// The site's keys there (when it answers).
    pub keys: u64,
}

impl RedisSide {
    /// Reads what `redis.sh config` prints.
    pub fn parse(text: &str) -> Result<RedisSide, String> {
        let mut side = RedisSide::default();
        for line in text.lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let number = |what: &str| format!("`{what}={value}` is not a number");
            match key {
                "host" => side.host = value.to_owned(),
                "port" => side.port = value.parse().map_err(|_| number(key))?,
                "db" => side.db = value.parse().map_err(|_| number(key))?,
                "patterns" => side.patterns = value.split(' ').map(str::to_owned).collect(),
                "state" => side.state = value.to_owned(),
                "keys" => side.keys = value.parse().map_err(|_| number(key))?,
                _ => {}
            }
        }
        if side.host.is_empty() || side.state.is_empty() {
            return Err(format!("unexpected answer: {text:?}"));
        }
        Ok(side)
    }

    /// `host:port` (database N), for messages.
    pub fn address(&self) -> String {
        format!("{}:{} (database {})", self.host, self.port, self.db)
    }

    /// Whether the Redis is the server's own (its loopback).
    fn is_local(&self) -> bool {
        matches!(self.host.as_str(), "127.0.0.1" | "localhost" | "::1")
            || self.host.starts_with('/')
    }
}

/// What the final sync does with the site's Redis data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The keys move from the source's Redis to the target's.
    Move,
    /// Nothing moves, for the reason given.
    LeaveAlone(String),
}

/// Whether the site's keys move. A Redis elsewhere that both `.env`s name is shared: the
/// target already sees the source's keys. A source with no Redis answering has nothing to move
/// unless the spec requires Redis; a target whose Redis does not answer cannot take the keys.
pub fn decide(source: &RedisSide, target: &RedisSide, required: bool) -> Result<Decision, String> {
    if !source.is_local()
        && (source.host.as_str(), source.port, source.db)
            == (target.host.as_str(), target.port, target.db)
    {
        return Ok(Decision::LeaveAlone(format!(
            "both servers use the Redis at {}: shared, left alone",
            source.address()
        )));
    }
    if source.state != "up" {
        let why = format!(
            "no Redis answers at {} on the source ({})",
            source.address(),
            source.state
        );
        return if required {
            Err(why)
        } else {
            Ok(Decision::LeaveAlone(why))
        };
    }
    if target.state != "up" {
        return Err(format!(
            "no Redis answers at {} on the target ({}), so the source's {} keys cannot move",
            target.address(),
            target.state,
            source.keys
        ));
    }
    Ok(Decision::Move)
}

/// What the final sync did with the site's Redis data.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RedisMoved {
    /// The source's Redis, `host:port (database N)`.
    pub source: String,
    pub target: String,
    /// Keys restored on the target (and found there afterwards).
    pub keys: u64,
    /// Bytes of their DUMP payloads.
    pub bytes: u64,
    /// Why nothing moved, when nothing did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub left_alone: Option<String>,
    pub millis: u64,
}

/// Why the site's Redis data could not move.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    #[error("{what} on {endpoint} failed")]
    Transport {
        what: &'static str,
        endpoint: String,
        #[source]
        source: Box<TransportError>,
    },
    #[error("{what} on {endpoint} failed with status {status}: {stderr}")]
    Script {
        what: &'static str,
        endpoint: String,
        status: u32,
        stderr: String,
    },
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Quote(#[from] QuoteError),
}

/// Moves the site's Redis keys from the source to the target (see the module's text).
pub async fn move_redis(
    source: &impl Transport,
    target: &impl Transport,
    source_env: &str,
    target_env: &str,
    required: bool,
) -> Result<RedisMoved, RedisError> {
    let started = std::time::Instant::now();
    let (from, to) = tokio::join!(config(source, source_env), config(target, target_env));
    let (from, to) = (from?, to?);
    let mut moved = RedisMoved {
        source: from.address(),
        target: to.address(),
        ..RedisMoved::default()
    };
    match decide(&from, &to, required).map_err(RedisError::Refused)? {
        Decision::LeaveAlone(why) => moved.left_alone = Some(why),
        Decision::Move => {
            let (sent, restored, present) =
                stream(source, target, source_env, target_env, &from).await?;
            if restored != sent.lines || present != sent.lines {
                return Err(RedisError::Refused(format!(
                    "{} keys left the source, {restored} were restored on the target and {present} are there",
                    sent.lines
                )));
            }
            moved.keys = sent.lines;
            moved.bytes = sent.payload_bytes();
        }
    }
    moved.millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    Ok(moved)
}

/// Removes the site's keys from the source's Redis, unless the target shares it (then they are
/// the target's keys now). For `onSource: remove`, before the site's `.env` goes. Returns how
/// many keys went.
pub async fn clear_source(
    source: &impl Transport,
    target: &impl Transport,
    source_env: &str,
    target_env: &str,
) -> Result<u64, RedisError> {
    let (from, to) = tokio::join!(config(source, source_env), config(target, target_env));
    let (from, to) = (from?, to?);
    if from.state != "up" || matches!(decide(&from, &to, false), Ok(Decision::LeaveAlone(_))) {
        return Ok(0);
    }
    let command = Command::script(SCRIPT)
        .arg("clear")
        .arg(source_env)
        .render()?;
    let output =
        source
            .exec(&command, Stdin::Empty)
            .await
            .map_err(|error| RedisError::Transport {
                what: "removing the site's Redis keys",
                endpoint: source.endpoint().to_owned(),
                source: Box::new(error),
            })?;
    if !output.success() {
        return Err(RedisError::Script {
            what: "removing the site's Redis keys",
            endpoint: source.endpoint().to_owned(),
            status: output.status,
            stderr: output.stderr_lossy(),
        });
    }
    let text = output.stdout_lossy();
    text.lines()
        .find_map(|line| line.strip_prefix("cleared="))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| RedisError::Refused(format!("unexpected answer: {text:?}")))
}

async fn config(transport: &impl Transport, env: &str) -> Result<RedisSide, RedisError> {
    let command = Command::script(SCRIPT).arg("config").arg(env).render()?;
    let output = transport
        .exec(&command, Stdin::Empty)
        .await
        .map_err(|source| RedisError::Transport {
            what: "reading the site's Redis settings",
            endpoint: transport.endpoint().to_owned(),
            source: Box::new(source),
        })?;
    if !output.success() {
        return Err(RedisError::Script {
            what: "reading the site's Redis settings",
            endpoint: transport.endpoint().to_owned(),
            status: output.status,
            stderr: output.stderr_lossy(),
        });
    }
    RedisSide::parse(&output.stdout_lossy()).map_err(RedisError::Refused)
}

/// The keys from `send` on the source into `receive` on the target: what left, and the
/// target's `restored` and `present` counts.
async fn stream(
    source: &impl Transport,
    target: &impl Transport,
    source_env: &str,
    target_env: &str,
    from: &RedisSide,
) -> Result<(Sent, u64, u64), RedisError> {
    let send = Command::script(SCRIPT)
        .arg("send")
        .arg(source_env)
        .render()?;
    let mut receive = Command::script(SCRIPT).arg("receive").arg(target_env);
    for pattern in &from.patterns {
        receive = receive.arg(pattern);
    }
    let receive = receive.render()?;
    let meter = crate::migrate::progress::Meter::none();
    let relayed = crate::migrate::relay::relay((source, &send), (target, &receive), &meter)
        .await
        .map_err(|error| RedisError::Transport {
            what: "opening the channels of the Redis stream",
            endpoint: format!("{} and {}", source.endpoint(), target.endpoint()),
            source: Box::new(error),
        })?;
    let sent = Sent {
        lines: relayed.lines,
        bytes: relayed.bytes,
    };
    let (sent_exit, received_exit, output) = (relayed.sent, relayed.received, relayed.output);
    check_exit(source, "sending the site's Redis keys", sent_exit)?;
    check_exit(target, "restoring the site's Redis keys", received_exit)?;
    let text = String::from_utf8_lossy(&output);
    let count = |key: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
            .and_then(|value| value.parse::<u64>().ok())
            .ok_or_else(|| {
                RedisError::Refused(format!("the target did not count its keys: {text:?}"))
            })
    };
    Ok((sent, count("restored")?, count("present")?))
}

fn check_exit(
    transport: &impl Transport,
    what: &'static str,
    exit: Result<Exit, TransportError>,
) -> Result<(), RedisError> {
    let exit = exit.map_err(|source| RedisError::Transport {
        what,
        endpoint: transport.endpoint().to_owned(),
        source: Box::new(source),
    })?;
    if exit.status == 0 && exit.signal.is_none() {
        return Ok(());
    }
    Err(RedisError::Script {
        what,
        endpoint: transport.endpoint().to_owned(),
        status: exit.status,
        stderr: crate::transport::stderr_excerpt(&exit.stderr),
    })
}

/// What left the source: lines (one a key) and bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Sent {
    lines: u64,
    bytes: u64,
}

impl Sent {
    /// The payloads' bytes: each line is hex (two characters a byte) with a TTL and blanks.
    fn payload_bytes(self) -> u64 {
        self.bytes / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(host: &str, db: u32, state: &str) -> RedisSide {
        RedisSide {
            host: host.into(),
            port: 6379,
            db,
            patterns: vec!["shop_*".into()],
            state: state.into(),
            keys: 3,
        }
    }

    #[test]
    fn the_config_answer_is_read() {
        let text = "host=127.0.0.1\nport=6380\ndb=2\npatterns=shop_* my_shop_horizon:*\nstate=up\nkeys=6\n";
        let side = RedisSide::parse(text).unwrap();
        assert_eq!(side.address(), "127.0.0.1:6380 (database 2)");
        assert_eq!(side.patterns, ["shop_*", "my_shop_horizon:*"]);
        assert_eq!((side.state.as_str(), side.keys), ("up", 6));
        assert!(RedisSide::parse("nonsense").is_err());
    }

    #[test]
    fn each_servers_own_redis_moves_and_a_shared_one_is_left_alone() {
        let local = side("127.0.0.1", 0, "up");
        assert_eq!(decide(&local, &local, true), Ok(Decision::Move));
        let shared = side("redis.internal", 0, "up");
        let Ok(Decision::LeaveAlone(why)) = decide(&shared, &shared, true) else {
            panic!("a shared Redis is left alone");
        };
        assert!(why.contains("shared"), "{why}");
        // Another database of the same Redis is another place.
        assert_eq!(
            decide(&shared, &side("redis.internal", 1, "up"), true),
            Ok(Decision::Move)
        );
    }

    #[test]
    fn a_redis_that_does_not_answer_fails_the_move_only_when_it_matters() {
        let up = side("127.0.0.1", 0, "up");
        let down = side("127.0.0.1", 0, "down");
        assert!(matches!(
            decide(&down, &up, false),
            Ok(Decision::LeaveAlone(_))
        ));
        assert!(
            decide(&down, &up, true)
                .unwrap_err()
                .contains("on the source")
        );
        assert!(
            decide(&up, &down, false)
                .unwrap_err()
                .contains("on the target")
        );
    }
}
