//! Bastions (`ProxyJump`): hosts reached through an SSH connection to another host.
//! One connection per bastion carries the channels to every host behind it.

use super::TransportError;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Weak};

/// One hop of a `ProxyJump` chain: `[user@]host[:port]` (`[::1]:22` for IPv6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Hop {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

impl fmt::Display for Hop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(user) = &self.user {
            write!(f, "{user}@")?;
        }
        match (self.host.contains(':'), self.port) {
            (true, Some(port)) => write!(f, "[{}]:{port}", self.host),
            (false, Some(port)) => write!(f, "{}:{port}", self.host),
            (_, None) => f.write_str(&self.host),
        }
    }
}

/// A `ProxyJump` value: hops in the order they are passed through; `none` is no hop.
pub(super) fn parse_chain(text: &str) -> Result<Vec<Hop>, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    text.split(',').map(|hop| parse_hop(hop.trim())).collect()
}

fn parse_hop(text: &str) -> Result<Hop, String> {
    let bad = |why: &str| format!("bad ProxyJump hop {text:?}: {why}");
    // `ssh://user@host:port` is also accepted by OpenSSH.
    let rest = text.strip_prefix("ssh://").unwrap_or(text);
    let (user, rest) = match rest.rsplit_once('@') {
        Some((user, rest)) if !user.is_empty() => (Some(user.to_string()), rest),
        Some(_) => return Err(bad("empty user")),
        None => (None, rest),
    };
    let (host, port) = match rest.strip_prefix('[') {
        Some(bracketed) => {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or_else(|| bad("missing `]`"))?;
            (host, after.strip_prefix(':'))
        }
        None if rest.matches(':').count() > 1 => (rest, None),
        None => match rest.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        },
    };
    if host.is_empty() || host.starts_with('-') || host.contains(char::is_whitespace) {
        return Err(bad("expected [user@]host[:port]"));
    }
    let port = port
        .map(|p| p.parse::<u16>().ok().filter(|p| *p > 0))
        .map(|p| p.ok_or_else(|| bad("the port must be a number from 1 to 65535")))
        .transpose()?;
    Ok(Hop {
        user,
        host: host.to_string(),
        port,
    })
}

/// The bastion connections of one run, shared by the hosts behind them. A bastion
/// lives as long as a host's connection uses it; one that could not be reached is not
/// tried again for every host behind it.
pub struct Bastions<S> {
    open: tokio::sync::Mutex<HashMap<String, Result<Weak<S>, String>>>,
}

impl<S> Default for Bastions<S> {
    fn default() -> Self {
        Bastions {
            open: Default::default(),
        }
    }
}

impl<S> fmt::Debug for Bastions<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Bastions")
    }
}

impl<S> Bastions<S> {
    /// The connection known as `key`, opened with `connect` unless one is open already.
    pub(super) async fn get<F>(&self, key: &str, connect: F) -> Result<Arc<S>, String>
    where
        F: Future<Output = Result<S, TransportError>>,
    {
        // Held while connecting: the hosts behind a bastion wait for its one connection.
        let mut open = self.open.lock().await;
        match open.get(key) {
            Some(Ok(weak)) => {
                if let Some(session) = weak.upgrade() {
                    return Ok(session);
                }
            }
            Some(Err(reason)) => return Err(reason.clone()),
            None => {}
        }
        match connect.await {
            Ok(session) => {
                let session = Arc::new(session);
                open.insert(key.to_string(), Ok(Arc::downgrade(&session)));
                Ok(session)
            }
            Err(e) => {
                let reason = e.to_string();
                open.insert(key.to_string(), Err(reason.clone()));
                Err(reason)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop(user: Option<&str>, host: &str, port: Option<u16>) -> Hop {
        Hop {
            user: user.map(String::from),
            host: host.into(),
            port,
        }
    }

    #[test]
    fn chains_of_user_host_port() {
        assert_eq!(
            parse_chain("ops@bastion:2200, 10.0.0.1,ssh://me@[fd00::1]:22,fd00::2").unwrap(),
            [
                hop(Some("ops"), "bastion", Some(2200)),
                hop(None, "10.0.0.1", None),
                hop(Some("me"), "fd00::1", Some(22)),
                hop(None, "fd00::2", None),
            ]
        );
        assert_eq!(parse_chain("none").unwrap(), []);
        assert_eq!(
            hop(Some("ops"), "fd00::1", Some(22)).to_string(),
            "ops@[fd00::1]:22"
        );
    }

    #[test]
    fn bad_hops_are_refused() {
        for bad in [
            "",
            "a,,b",
            "@host",
            "host:0",
            "host:x",
            "-oProxyCommand=x",
            "a b",
        ] {
            assert!(parse_chain(bad).is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn one_connection_per_bastion_and_a_failure_is_remembered() {
        let bastions: Bastions<u32> = Bastions::default();
        let first = bastions.get("b", async { Ok(1) }).await.unwrap();
        let again = bastions.get("b", async { Ok(2) }).await.unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        let refused = || async {
            Err(TransportError::Connect {
                target: "b2".into(),
                reason: "refused".into(),
            })
        };
        assert!(bastions.get("b2", refused()).await.is_err());
        assert_eq!(
            bastions.get("b2", async { Ok(3) }).await.unwrap_err(),
            "cannot connect to b2: refused"
        );
        // Unused, it closes; a later host opens it again.
        drop((first, again));
        assert_eq!(*bastions.get("b", async { Ok(4) }).await.unwrap(), 4);
    }
}
