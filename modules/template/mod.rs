//! `template`: a local handlebars file rendered with the host's variables, then
//! managed exactly like `file` with that content.

use crate::error::InputResult;
use crate::module::files::Content;
use crate::module::{Account, Action, HostPath, ManagedFile, Mode, Module, Params};
use crate::playbook::template::{engine, template_help};
use serde::Deserialize;

pub struct Template;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateParams {
    src: String,
    dest: HostPath,
    owner: Option<Account>,
    group: Option<Account>,
    mode: Option<Mode>,
    validate: Option<String>,
}

impl Module for Template {
    fn name(&self) -> &'static str {
        "template"
    }

    fn key_param(&self) -> Option<&'static str> {
        Some("dest")
    }

    fn prepare(&self, params: &Params<'_>) -> InputResult<Vec<Box<dyn Action>>> {
        let p: TemplateParams = params.parse()?;
        let local = params.local_path(&p.src);
        let bytes = std::fs::read(&local).map_err(|e| {
            params
                .error_at("src", format!("cannot read {}: {e}", local.display()))
                .help("src is a handlebars file on this machine, relative to the playbook's folder")
        })?;
        let text = String::from_utf8(bytes).map_err(|_| {
            params
                .error_at("src", format!("{} is not UTF-8 text", p.src))
                .help("copy binary files with `file: {path: ..., src: ...}`")
        })?;
        let content = engine()
            .render_file(&text, params.vars)
            .map_err(|failure| {
                let at = match failure.position {
                    Some((line, column)) => format!("{}:{line}:{column}", p.src),
                    None => p.src.clone(),
                };
                params
                    .error_at("src", format!("{at}: {}", failure.message))
                    .label("in this template")
                    .help(template_help(&failure.message))
            })?;
        let secret = params.taint.record_text(&text, params.vars);
        Ok(vec![Box::new(ManagedFile {
            path: p.dest.into(),
            content: Content::Bytes(content.into_bytes()),
            owner: p.owner.map(String::from),
            group: p.group.map(String::from),
            mode: p.mode,
            validate: p.validate,
            secret,
        })])
    }
}

#[cfg(test)]
mod tests;
