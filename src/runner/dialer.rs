//! Opening a host's connection: what the inventory says about reaching the host
//! ([`Connection`]) plus what the run adds to every host (the default timeout, trust on
//! first use, the prompted become password, the bastion connections), and the host lock.

use super::RunOptions;
use super::counted::Counted;
use super::host_lock::{self, HostLock, Taken};
use crate::inventory::Connection;
use crate::transport::{
    Bastions, BecomePassword, ExecOutput, LocalTransport, Script, Session, SshOptions,
    SshTransport, Transport, TransportError,
};
use std::sync::{Arc, Weak};
use std::time::Duration;

pub struct Dialer {
    timeout: Duration,
    accept_new_host_keys: bool,
    /// `--ask-become-pass`: for the hosts whose inventory gives none.
    become_password: Option<BecomePassword>,
    /// One connection per bastion, shared by every host behind it, for the whole run.
    bastions: Arc<Bastions<Session>>,
    /// Every host reached with the local connection is this machine: they share its one
    /// lock, which lives while any of them holds it.
    local_lock: tokio::sync::Mutex<Weak<HostLock>>,
}

impl Dialer {
    pub fn new(options: &RunOptions) -> Dialer {
        Dialer {
            timeout: options.timeout,
            accept_new_host_keys: options.accept_new_host_keys,
            become_password: options.become_password.clone(),
            bastions: Arc::default(),
            local_lock: tokio::sync::Mutex::default(),
        }
    }

    /// Connect to `host`; `read_only` (check mode) refuses every script meant to change it.
    pub async fn open(
        &self,
        host: &str,
        connection: &Connection,
        read_only: bool,
    ) -> Result<Arc<Counted>, TransportError> {
        // As in Ansible, the inventory's password wins over the prompted one.
        let become_password = connection
            .become_password
            .clone()
            .or_else(|| self.become_password.clone());
        let inner: Arc<dyn Transport> = if connection.local {
            Arc::new(LocalTransport::new().with_become_password(become_password))
        } else {
            let options = SshOptions {
                address: connection.address.clone(),
                port: connection.port,
                user: connection.user.clone(),
                identity_file: connection.identity_file.clone(),
                connect_timeout: connection.timeout.map_or(self.timeout, Duration::from_secs),
                accept_new_host_keys: self.accept_new_host_keys,
                become_password,
                proxy_jump: connection.proxy_jump.clone(),
                bastions: self.bastions.clone(),
                ..SshOptions::new(host)
            };
            Arc::new(SshTransport::connect(&options).await?)
        };
        Ok(Arc::new(Counted::new(inner, read_only)))
    }

    /// Take the lock of the host behind `transport`, or learn who holds it; with `read`,
    /// run it in the lock's exec (see [`host_lock::take`]). Its output is None when the
    /// lock was already this run's (a local host sharing the machine's): run it apart.
    pub async fn lock(
        &self,
        connection: &Connection,
        transport: &dyn Transport,
        read: Option<&Script<'_>>,
    ) -> Result<(Taken, Option<ExecOutput>), TransportError> {
        if !connection.local {
            return host_lock::take(transport, read).await;
        }
        let mut shared = self.local_lock.lock().await;
        if let Some(lock) = shared.upgrade() {
            return Ok((Taken::Held(lock), None));
        }
        let taken = host_lock::take(transport, read).await?;
        if let (Taken::Held(lock), _) = &taken {
            *shared = Arc::downgrade(lock);
        }
        Ok(taken)
    }
}
