//! A health-checked restart: when the service comes back unhealthy, the files changed for
//! it in this run are put back as they were, and it is restarted and checked again.

use crate::module::files::PreviousFile;
use crate::module::http::HealthCheck;
use crate::module::systemd;
use crate::module::{Command, Exec, Failure, FollowUp};
use async_trait::async_trait;

pub struct CheckedRestart<'a> {
    pub service: &'a str,
    pub health: &'a HealthCheck,
}

#[async_trait]
impl FollowUp for CheckedRestart<'_> {
    fn left_out(&self) -> String {
        format!(
            "restart of {} and GET {} not done",
            self.service, self.health.url.text
        )
    }

    async fn run(&self, exec: &dyn Exec) -> Result<(), Failure> {
        let Err(reason) = systemd::restart_checked(exec, self.service, Some(self.health)).await?
        else {
            return Ok(());
        };
        let unhealthy = format!("{} unhealthy after restart: {reason}", self.service);
        let files = exec.replaced_for(self.service);
        if files.is_empty() {
            return Err(Failure::new(format!(
                "{unhealthy}; no file was changed for it in this run, so nothing was restored"
            )));
        }
        let mut restores = Restores::default();
        for file in files.iter().rev() {
            restores.put_back(exec, file).await?;
        }
        // A restored unit file counts only once systemd read it again.
        exec.run(Command::new(
            "systemctl daemon-reload",
            "systemctl daemon-reload",
        ))
        .await?;
        let again = systemd::restart_checked(exec, self.service, Some(self.health)).await?;
        Err(Failure::new(restores.message(
            &unhealthy,
            self.service,
            again,
        )))
    }
}

/// What putting the files back came to, for the task's failure message.
#[derive(Debug, Default)]
struct Restores {
    restored: Vec<String>,
    removed: Vec<String>,
    /// Paths with why they could not be put back.
    kept: Vec<String>,
}

impl Restores {
    async fn put_back(&mut self, exec: &dyn Exec, file: &PreviousFile) -> Result<(), Failure> {
        let path = file.path.clone();
        let done = match file.restore() {
            Ok(command) => match exec.run(command).await {
                Ok(_) => Ok(()),
                Err(Failure::Task(why)) => Err(why),
                Err(lost) => return Err(lost),
            },
            Err(why) => Err(why),
        };
        match done {
            Ok(()) if file.state.exists() => self.restored.push(path),
            Ok(()) => self.removed.push(path),
            Err(why) => self.kept.push(format!("{path} ({why})")),
        }
        Ok(())
    }

    /// `UNHEALTHY; restored A and B to their previous content; removed C (new in this
    /// run); SERVICE is healthy again`.
    fn message(&self, unhealthy: &str, service: &str, again: Result<(), String>) -> String {
        let mut message = unhealthy.to_string();
        if !self.restored.is_empty() {
            let their = if self.restored.len() == 1 {
                "its"
            } else {
                "their"
            };
            message.push_str(&format!(
                "; restored {} to {their} previous content",
                and_list(&self.restored)
            ));
        }
        if !self.removed.is_empty() {
            message.push_str(&format!(
                "; removed {} (new in this run)",
                and_list(&self.removed)
            ));
        }
        if !self.kept.is_empty() {
            message.push_str(&format!("; could not restore {}", and_list(&self.kept)));
        }
        match again {
            Ok(()) => message.push_str(&format!("; {service} is healthy again")),
            Err(still) => message.push_str(&format!("; {service} is still unhealthy: {still}")),
        }
        message
    }
}

/// `a`, `a and b`, `a, b and c`.
fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_says_what_was_put_back() {
        let restores = Restores {
            restored: vec![
                "/etc/app/config.yml".into(),
                "/etc/systemd/system/app.service".into(),
            ],
            removed: vec!["/etc/app/extra.yml".into()],
            kept: Vec::new(),
        };
        assert_eq!(
            restores.message(
                "app unhealthy after restart: GET x returned 500 after 5 s",
                "app",
                Ok(())
            ),
            "app unhealthy after restart: GET x returned 500 after 5 s; restored /etc/app/config.yml \
             and /etc/systemd/system/app.service to their previous content; removed \
             /etc/app/extra.yml (new in this run); app is healthy again"
        );
        let one = Restores {
            restored: vec!["/etc/a".into()],
            removed: Vec::new(),
            kept: vec!["/srv/big (its previous content was not kept)".into()],
        };
        assert_eq!(
            one.message("app unhealthy after restart: X", "app", Err("Y".into())),
            "app unhealthy after restart: X; restored /etc/a to its previous content; could not \
             restore /srv/big (its previous content was not kept); app is still \
             unhealthy: Y"
        );
    }

    #[test]
    fn lists_read_as_english() {
        let l = |v: &[&str]| and_list(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(l(&["a"]), "a");
        assert_eq!(l(&["a", "b"]), "a and b");
        assert_eq!(l(&["a", "b", "c"]), "a, b and c");
    }
}
