//! Table (default on a terminal), JSON and CSV output.

use serde_json::Value;
use std::io::IsTerminal;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

impl Format {
    /// Table on a terminal, JSON when piped.
    pub fn resolve(choice: Option<Format>) -> Format {
        choice.unwrap_or(if std::io::stdout().is_terminal() {
            Format::Table
        } else {
            Format::Json
        })
    }
}

fn csv_field(v: &str) -> String {
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v.to_owned()
    }
}

/// Prints a line on standard output; a reader that went away (`| head`)
/// ends the command quietly, as it ends `ls`.
pub fn emit(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{line}") {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
    }
}

/// Prints rows under `headers`; `json` is the same data for `--format json`.
pub fn print(format: Format, headers: &[&str], rows: &[Vec<String>], json: serde_json::Value) {
    match format {
        Format::Json => emit(&serde_json::to_string_pretty(&json).unwrap_or_default()),
        Format::Csv => {
            emit(&headers.join(","));
            for row in rows {
                emit(
                    &row.iter()
                        .map(|v| csv_field(v))
                        .collect::<Vec<_>>()
                        .join(","),
                );
            }
        }
        Format::Table => {
            let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
            for row in rows {
                for (i, v) in row.iter().enumerate() {
                    widths[i] = widths[i].max(v.chars().count());
                }
            }
            let line = |cells: Vec<&str>| {
                cells
                    .iter()
                    .enumerate()
                    .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
                    .collect::<Vec<_>>()
                    .join("  ")
                    .trim_end()
                    .to_owned()
            };
            emit(&line(headers.to_vec()));
            emit(
                &widths
                    .iter()
                    .map(|w| "-".repeat(*w))
                    .collect::<Vec<_>>()
                    .join("  "),
            );
            for row in rows {
                emit(&line(row.iter().map(String::as_str).collect()));
            }
        }
    }
}

/// A JSON value as a table cell.
pub fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Array(items) => items.iter().map(s).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

/// The items of a list answer, or a single answer as one item.
pub fn items(v: &Value) -> Vec<Value> {
    v.as_array().cloned().unwrap_or_else(|| vec![v.clone()])
}

/// A table whose headers are its keys.
pub fn columns(format: Format, keys: &[&str], items: &Value) {
    table(format, keys, keys, items)
}

/// The keys of each item of a list answer as a table's rows.
pub fn table(format: Format, headers: &[&str], keys: &[&str], items: &Value) {
    let rows: Vec<Vec<String>> = items
        .as_array()
        .map(|a| {
            a.iter()
                .map(|item| keys.iter().map(|k| s(&item[*k])).collect())
                .collect()
        })
        .unwrap_or_default();
    print(format, headers, &rows, items.clone());
}

/// Writes a file only its owner can read (keys, personal data).
pub fn write_owner_only(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    use anyhow::Context;
    civic_hub::keys::write_private(path, text)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// A progress bar on standard error when it is a terminal; nothing when
/// it is piped.
pub fn progress_bar(len: u64, template: &str) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(template)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}
