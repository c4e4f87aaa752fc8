//! `concbench report --compare OTHER`: this report's paired ratios beside another
//! report's, as `compare-<other folder>.md` in this report's folder.
//!
//! Both sides are the engine's runs at their default worker count (`measure.json`,
//! schema 3, or 2 as one run). Per (group, parameter, style): each report's paired
//! speedup over the reference and efficiency against the capacity probe, and this
//! report's ÷ the other's. Rows only one report has are listed as such.

use std::fmt::Write;
use std::path::Path;

use measure::rows::{MEASURE_ROWS, MeasureRun};

use crate::summary::table_text;
use crate::{Loaded, MachineInfo, ReportError};

/// One (group, parameter, style) of either report.
#[derive(Debug, Clone, PartialEq)]
pub struct ComparedRow {
    /// The workload.
    pub group: String,
    /// The size.
    pub parameter: String,
    /// The style.
    pub style: String,
    /// This report's (speedup, efficiency); `None` when it has no such row.
    pub this: Option<(f64, Option<f64>)>,
    /// The other report's.
    pub other: Option<(f64, Option<f64>)>,
}

impl ComparedRow {
    /// This report's speedup ÷ the other's, when both have one.
    pub fn speedup_ratio(&self) -> Option<f64> {
        Some(self.this?.0 / self.other?.0)
    }

    /// This report's efficiency ÷ the other's, when both have one.
    pub fn efficiency_ratio(&self) -> Option<f64> {
        Some(self.this?.1? / self.other?.1?)
    }
}

/// Every (group, parameter, style) of `this` and `other`: this report's in its order,
/// then those only the other has. The reference's speedup is 1.
pub fn compared_rows(this: Option<&MeasureRun>, other: Option<&MeasureRun>) -> Vec<ComparedRow> {
    type Key = (String, String, String);
    let entries = |run: Option<&MeasureRun>| -> Vec<(Key, (f64, Option<f64>))> {
        run.into_iter()
            .flat_map(|run| &run.cohorts)
            .flat_map(|cohort| {
                cohort.styles.iter().map(move |row| {
                    (
                        (
                            cohort.group.clone(),
                            cohort.parameter.clone(),
                            row.style.clone(),
                        ),
                        (
                            row.speedup.map_or(1.0, |speedup| speedup.point),
                            row.efficiency.map(|efficiency| efficiency.point),
                        ),
                    )
                })
            })
            .collect()
    };
    let (mine, theirs) = (entries(this), entries(other));
    let find = |list: &[(Key, (f64, Option<f64>))], key: &Key| {
        list.iter()
            .find(|(other, _)| other == key)
            .map(|(_, values)| *values)
    };
    let row = |key: &Key, this, other| ComparedRow {
        group: key.0.clone(),
        parameter: key.1.clone(),
        style: key.2.clone(),
        this,
        other,
    };
    let mut rows: Vec<ComparedRow> = mine
        .iter()
        .map(|(key, values)| row(key, Some(*values), find(&theirs, key)))
        .collect();
    rows.extend(
        theirs
            .iter()
            .filter(|(key, _)| find(&mine, key).is_none())
            .map(|(key, values)| row(key, None, Some(*values))),
    );
    rows
}

/// Reads the report folder `other` and writes `compare-<its name>.md` into `folder`,
/// this report's (`loaded`, `machine`) beside it; returns the file's name. A missing
/// `measure.json` or `machine.json` in `other` is a line in the file; a corrupt one an
/// error naming it.
pub fn write_comparison(
    folder: &Path,
    loaded: &Loaded,
    machine: &MachineInfo,
    other: &Path,
) -> Result<String, ReportError> {
    if !other.is_dir() {
        return Err(ReportError::Read {
            path: other.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "not a report folder"),
        });
    }
    let other_name = other
        .canonicalize()
        .ok()
        .and_then(|path| {
            path.file_name()
                .map(|name| name.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "other".to_owned());
    let other_sweep = crate::read_measure(&other.join(MEASURE_ROWS))?;
    let machine_path = other.join("machine.json");
    let other_machine: Option<MachineInfo> = if machine_path.exists() {
        Some(crate::parse_json(&machine_path)?)
    } else {
        None
    };
    let other_run = other_sweep.as_ref().and_then(|sweep| sweep.primary());
    let this_name = folder.file_name().map_or_else(
        || "this report".to_owned(),
        |name| name.to_string_lossy().into_owned(),
    );

    let mut out = String::new();
    let _ = writeln!(out, "# {this_name} against {other_name}\n");
    let _ = writeln!(out, "- this report (`{this_name}`): {}", machine.one_line());
    let _ = writeln!(
        out,
        "- other report (`{other_name}`): {}\n",
        other_machine.as_ref().map_or_else(
            || format!("_no `machine.json` in `{}`_", other.display()),
            MachineInfo::one_line
        )
    );
    for (label, run, path) in [
        (
            "this report",
            loaded.measure.as_ref(),
            folder.join(MEASURE_ROWS),
        ),
        ("other report", other_run, other.join(MEASURE_ROWS)),
    ] {
        match run {
            Some(run) => {
                let _ = writeln!(
                    out,
                    "- {label}: the engine's run at {} workers (`{}`), target ±{:.1} %, budget {:.0} s \
                     per cohort",
                    run.workers,
                    table_text(&run.command),
                    run.stopping.target * 100.0,
                    run.stopping.budget.as_secs_f64()
                );
            }
            None => {
                let _ = writeln!(out, "- {label}: _no engine rows (`{}`)_", path.display());
            }
        }
    }
    out.push_str(
        "\nSpeedups are paired over each cohort's reference within each report's rounds; \
         efficiency is against the capacity probe in the same rounds, the figure that holds \
         across hosts. \"this ÷ other\" above 1.00 means this report's ratio is higher.\n\n",
    );
    out.push_str(
        "| group | parameter | style | this: speedup | this: efficiency | other: speedup | \
         other: efficiency | speedup this ÷ other | efficiency this ÷ other |\n\
         |---|---|---|---:|---:|---:|---:|---:|---:|\n",
    );
    let rows = compared_rows(loaded.measure.as_ref(), other_run);
    let speedup = |value: Option<(f64, Option<f64>)>, only: &str| {
        value.map_or_else(|| only.to_owned(), |(speedup, _)| format!("{speedup:.2}×"))
    };
    let efficiency = |value: Option<(f64, Option<f64>)>| match value {
        Some((_, Some(efficiency))) => format!("{:.0} %", efficiency * 100.0),
        _ => "—".to_owned(),
    };
    let ratio = |value: Option<f64>| value.map_or_else(|| "—".to_owned(), |r| format!("{r:.3}"));
    for row in &rows {
        let _ = writeln!(
            out,
            "| {} | {} | `{}` | {} | {} | {} | {} | {} | {} |",
            table_text(&row.group),
            table_text(&row.parameter),
            table_text(&row.style),
            speedup(row.this, "only in the other report"),
            efficiency(row.this),
            speedup(row.other, "only in this report"),
            efficiency(row.other),
            ratio(row.speedup_ratio()),
            ratio(row.efficiency_ratio()),
        );
    }
    let only_this = rows.iter().filter(|row| row.other.is_none()).count();
    let only_other = rows.iter().filter(|row| row.this.is_none()).count();
    let _ = writeln!(
        out,
        "\n{} rows in both, {only_this} only in this report, {only_other} only in the other.",
        rows.len() - only_this - only_other
    );
    let name = format!("compare-{other_name}.md");
    crate::write_file(&folder.join(&name), out.as_bytes())?;
    Ok(name)
}
