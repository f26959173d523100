//! What one `converge` invocation printed and returned, and the checks tests make on it.

/// What one `converge` invocation printed and returned.
#[derive(Debug, PartialEq, Eq)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn of(args: &[&str], out: std::process::Output) -> Run {
        let run = Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        eprintln!(
            "$ converge {}\n{}{}(exit {})",
            args.join(" "),
            run.stdout,
            run.stderr,
            run.code
        );
        run
    }

    /// Exit code and both outputs, for an assertion's message.
    pub fn context(&self) -> String {
        format!(
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    pub fn expect_code(&self, code: i32) -> &Run {
        assert_eq!(
            self.code, code,
            "exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// The recap line of `host`, parsed: (ok, changed, failed, skipped, unreachable).
    pub fn recap(&self, host: &str) -> (usize, usize, usize, usize, usize) {
        let prefix = format!("{host}  ok=");
        let line = self
            .stdout
            .lines()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no recap line for {host} in:\n{}", self.stdout));
        let numbers: Vec<usize> = line
            .split_whitespace()
            .skip(1)
            .map(|kv| {
                kv.split_once('=')
                    .and_then(|(_, v)| v.parse().ok())
                    .expect("recap number")
            })
            .collect();
        (numbers[0], numbers[1], numbers[2], numbers[3], numbers[4])
    }

    pub fn expect_changed(&self, host: &str, changed: usize) -> &Run {
        assert_eq!(
            self.recap(host).1,
            changed,
            "changed on {host}:\n{}",
            self.stdout
        );
        self
    }

    pub fn expect_stdout_contains(&self, text: &str) -> &Run {
        assert!(
            self.stdout.contains(text),
            "stdout lacks {text:?}:\n{}",
            self.stdout
        );
        self
    }

    pub fn expect_stderr_contains(&self, text: &str) -> &Run {
        assert!(
            self.stderr.contains(text),
            "stderr lacks {text:?}:\n{}",
            self.stderr
        );
        self
    }
}
