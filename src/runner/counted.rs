//! Counting round trips: `-v` says how many execs each host cost, which is what
//! makes a no-change rerun fast or slow. In check mode the same wrapper refuses any
//! script meant to change the host: the engine never sends one, and this proves it.

use crate::transport::{ExecOutput, Purpose, Script, Stream, Transport, TransportError};
use async_trait::async_trait;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Debug)]
pub struct Counted {
    inner: Arc<dyn Transport>,
    execs: AtomicUsize,
    read_only: bool,
}

impl Counted {
    pub fn new(inner: Arc<dyn Transport>, read_only: bool) -> Counted {
        Counted {
            inner,
            execs: AtomicUsize::new(0),
            read_only,
        }
    }

    pub fn execs(&self) -> usize {
        self.execs.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl Transport for Counted {
    async fn exec(&self, script: Script<'_>) -> Result<ExecOutput, TransportError> {
        if self.read_only && script.purpose == Purpose::Change {
            return Err(TransportError::Io(
                "check mode refused a script that changes the host (an engine bug)".into(),
            ));
        }
        self.execs.fetch_add(1, Ordering::Relaxed);
        self.inner.exec(script).await
    }

    /// Not counted: `-v` counts the round trips that module and probe work costs.
    async fn exec_stream(
        &self,
        body: &str,
        become_root: bool,
    ) -> Result<Box<dyn Stream>, TransportError> {
        self.inner.exec_stream(body, become_root).await
    }

    async fn connect_tcp(&self, host: &str, port: u16) -> Result<Box<dyn Stream>, TransportError> {
        self.inner.connect_tcp(host, port).await
    }

    fn login_is_root(&self) -> bool {
        self.inner.login_is_root()
    }

    async fn close(&self) {
        self.inner.close().await
    }
}
