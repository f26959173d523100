//! The integration tests, in one binary: the command line on playbooks in temp dirs
//! (`cli`), the SSH transport against OpenSSH on loopback (`transport`), and end to end
//! against real Debian hosts in containers (`e2e`, run one at a time: nextest's `hosts`
//! group). `Run` is what one `converge` invocation printed and returned, for all of them.

mod cli;
mod e2e;
mod run;
mod scenario;
mod support;
mod transport;
