//! `concbench list`: the style × workload matrix.

use std::io::{self, Write};

use workloads::{Support, Workload};

/// Options of `concbench list`.
#[derive(Debug, clap::Args)]
pub(crate) struct ListArgs {
    /// Print a Markdown table (the README's matrix is this output).
    #[arg(long)]
    markdown: bool,
}

pub(crate) fn run(args: &ListArgs) -> anyhow::Result<()> {
    let mut stdout = io::stdout().lock();
    let text = if args.markdown { markdown() } else { plain() };
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

/// The matrix as a Markdown table; every n/a cell points to its reason, listed under the
/// table (the same reason is listed once, however many cells it explains).
pub(crate) fn markdown() -> String {
    let mut out = String::from("| style |");
    for workload in Workload::ALL {
        out.push_str(&format!(" {workload} |"));
    }
    out.push_str(" where the work runs |\n|---|");
    out.push_str(&"---|".repeat(Workload::ALL.len() + 1));
    out.push('\n');
    let mut reasons: Vec<&str> = Vec::new();
    for entry in catalog::STYLES {
        out.push_str(&format!("| `{}` |", entry.name));
        for workload in Workload::ALL {
            match (entry.support)(workload) {
                Support::Runs => out.push_str(" ✓ |"),
                Support::NotApplicable(reason) => {
                    let number = match reasons.iter().position(|known| *known == reason) {
                        Some(index) => index + 1,
                        None => {
                            reasons.push(reason);
                            reasons.len()
                        }
                    };
                    out.push_str(&format!(" n/a ({number}) |"));
                }
            }
        }
        out.push_str(&format!(" {} |\n", entry.summary));
    }
    if !reasons.is_empty() {
        out.push_str("\nn/a:\n\n");
        for (index, reason) in reasons.iter().enumerate() {
            out.push_str(&format!("{}. {reason}\n", index + 1));
        }
    }
    out
}

/// The matrix as aligned text, with the n/a reasons listed below it.
fn plain() -> String {
    let name_width = catalog::names()
        .map(str::len)
        .max()
        .unwrap_or(0)
        .max("style".len());
    let mut out = format!("{:name_width$}", "style");
    for workload in Workload::ALL {
        out.push_str(&format!("  {workload}"));
    }
    out.push('\n');
    let mut reasons = Vec::new();
    for entry in catalog::STYLES {
        out.push_str(&format!("{:name_width$}", entry.name));
        for workload in Workload::ALL {
            let cell = match (entry.support)(workload) {
                Support::Runs => "✓",
                Support::NotApplicable(reason) => {
                    reasons.push(format!("  {} × {workload}: {reason}", entry.name));
                    "n/a"
                }
            };
            // `format!` pads by characters, so the three-byte ✓ lines up.
            let width = workload.name().len();
            out.push_str(&format!("  {cell:width$}"));
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
    }
    if !reasons.is_empty() {
        out.push_str("\nn/a:\n");
        out.push_str(&reasons.join("\n"));
        out.push('\n');
    }
    out.push_str("\nwhere the work runs:\n");
    for entry in catalog::STYLES {
        out.push_str(&format!(
            "  {:name_width$}  {}\n",
            entry.name, entry.summary
        ));
    }
    out
}
