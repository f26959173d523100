//! SSH transport on russh. (Being written: see the transport brief.)

use super::{ExecOutput, Script, Stream, Transport, TransportError};
use async_trait::async_trait;
use std::path::PathBuf;
use std::time::Duration;

/// Where and how to connect; inventory values already merged over `~/.ssh/config`.
#[derive(Debug, Clone)]
pub struct SshOptions {
    /// Inventory host name, used in messages and as the `~/.ssh/config` Host alias.
    pub alias: String,
    /// Address to connect to (`ansible_host`), when the inventory gives one.
    pub address: Option<String>,
    pub port: Option<u16>,
    pub user: Option<String>,
    /// `ansible_ssh_private_key_file`; tried before the agent and the default keys.
    pub identity_file: Option<PathBuf>,
    pub connect_timeout: Duration,
    /// Trust on first use: append unknown keys to `~/.ssh/known_hosts`.
    pub accept_new_host_keys: bool,
}

#[derive(Debug)]
pub struct SshTransport {}

impl SshTransport {
    pub async fn connect(_options: &SshOptions) -> Result<SshTransport, TransportError> {
        unimplemented!("ssh transport")
    }
}

#[async_trait]
impl Transport for SshTransport {
    async fn exec(&self, _script: Script<'_>) -> Result<ExecOutput, TransportError> {
        unimplemented!()
    }
    async fn connect_tcp(
        &self,
        _host: &str,
        _port: u16,
    ) -> Result<Box<dyn Stream>, TransportError> {
        unimplemented!()
    }
    fn login_is_root(&self) -> bool {
        unimplemented!()
    }
    async fn close(&self) {}
}
