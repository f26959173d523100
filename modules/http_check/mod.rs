//! `http_check`: wait until a URL, as the host sees it, answers the expected status.

use crate::error::InputResult;
use crate::module::http::{CheckParams, HealthCheck};
use crate::module::{Action, Failure, HostView, Module, Params, Plan, Probed};

pub struct HttpCheck;

impl Module for HttpCheck {
    fn name(&self) -> &'static str {
        "http_check"
    }

    fn key_param(&self) -> Option<&'static str> {
        Some("url")
    }

    fn prepare(&self, params: &Params<'_>) -> InputResult<Vec<Box<dyn Action>>> {
        let p: CheckParams = params.parse()?;
        let check = HealthCheck::prepare(params, &[], p)?;
        Ok(vec![Box::new(HttpCheckAction { check })])
    }
}

#[derive(Debug)]
struct HttpCheckAction {
    check: HealthCheck,
}

impl Action for HttpCheckAction {
    fn probe(&self) -> String {
        // Nothing to read on the host; `:` keeps the batched probe script valid.
        ":\n".into()
    }

    fn plan<'a>(&'a self, _: &'a Probed, _: &HostView<'_>) -> Result<Plan<'a>, Failure> {
        Ok(Plan {
            follow_up: Some(Box::new(self.check.clone())),
            ..Plan::unchanged()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::HttpCheck;
    use crate::module::testing::{FakeHost, prepare};
    use crate::module::{RestartBook, Status};
    use std::collections::HashSet;
    use std::path::Path;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn run(yaml: &str, apply: bool) -> Result<Status, String> {
        let action = prepare(&HttpCheck, yaml, Path::new("."), &serde_json::Value::Null)?.remove(0);
        FakeHost::new()
            .run(
                &*action,
                apply,
                &mut RestartBook::default(),
                &HashSet::new(),
            )
            .await
            .map(|o| o.status)
            .map_err(|f| f.to_string())
    }

    #[tokio::test]
    async fn healthy_is_ok_not_changed() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 512];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let code = if buf[..n].starts_with(b"GET /ready ") {
                    204
                } else {
                    404
                };
                let _ = s
                    .write_all(format!("HTTP/1.1 {code} X\r\n\r\n").as_bytes())
                    .await;
            }
        });
        let url = format!("http://127.0.0.1:{port}");
        assert_eq!(
            run(&format!("{{url: '{url}/ready', status: 204}}"), true).await,
            Ok(Status::Ok)
        );
        let err = run(&format!("{{url: '{url}/other', timeout: 1}}"), true)
            .await
            .unwrap_err();
        assert_eq!(err, format!("GET {url}/other returned 404 after 1 s"));
    }

    #[tokio::test]
    async fn check_mode_sends_nothing() {
        let status = run("{url: 'http://127.0.0.1:1/'}", false).await.unwrap();
        assert_eq!(
            status,
            Status::Skipped("check mode: GET http://127.0.0.1:1/ not sent".into())
        );
    }

    #[tokio::test]
    async fn bad_parameters_are_located() {
        let err = run("{url: 'https://127.0.0.1/'}", true).await.unwrap_err();
        assert!(
            err.starts_with("play.yml:1:7: http_check: `url`: https is not supported"),
            "{err}"
        );
        let err = run("{url: 'http://x/', status: 42}", true)
            .await
            .unwrap_err();
        assert!(
            err.starts_with("play.yml:1:28: http_check: `status`: 42 is not"),
            "{err}"
        );
        let err = run("{url: 'http://x/', code: 200}", true)
            .await
            .unwrap_err();
        assert!(err.contains("unknown parameter `code`"), "{err}");
    }
}
