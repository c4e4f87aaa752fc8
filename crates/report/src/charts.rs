//! SVG charts, drawn with plotters: they load on GitHub through relative links.

use std::path::Path;

use plotters::prelude::*;
use scenarios::{BeazleyRow, ConnectionsRow, IoRow, Phase, TaskRow};

use crate::ReportError;
use crate::results::{ResultRow, format_nanos};

/// One colour per series, readable on white.
const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

const WIDTH: u32 = 900;
const BAR_HEIGHT: u32 = 22;

/// A horizontal bar per (style, parameter) of one criterion group: its median time per
/// element (per input, unit, message or request, where the group declares elements;
/// else per iteration) on a log scale, so that styles orders of magnitude apart still
/// show; each bar is labelled with its ratio to the group's base.
pub(crate) fn group_chart(
    path: &Path,
    group: &str,
    rows: &[&ResultRow],
    axis_label: &str,
) -> Result<(), ReportError> {
    let mut parameters: Vec<&str> = Vec::new();
    let bars: Vec<(String, f64, f64, usize)> = rows
        .iter()
        .map(|row| {
            let value = row.benchmark.value.as_deref().unwrap_or("");
            let series = parameters
                .iter()
                .position(|known| *known == value)
                .unwrap_or_else(|| {
                    parameters.push(value);
                    parameters.len() - 1
                });
            let label = if value.is_empty() {
                row.benchmark.function.clone()
            } else {
                format!("{} ({value})", row.benchmark.function)
            };
            let per_element =
                row.benchmark.median.point / row.benchmark.elements.unwrap_or(1).max(1) as f64;
            (label, per_element.max(1e-3), row.ratio, series)
        })
        .collect();
    let height = 90 + BAR_HEIGHT * bars.len() as u32;
    let root = SVGBackend::new(path, (WIDTH, height)).into_drawing_area();
    draw(path, || {
        root.fill(&WHITE)?;
        let max = bars
            .iter()
            .map(|bar| bar.1)
            .fold(f64::MIN_POSITIVE, f64::max)
            * 8.0;
        let min = bars.iter().map(|bar| bar.1).fold(max, f64::min) / 3.0;
        let count = bars.len();
        let mut chart = ChartBuilder::on(&root)
            .caption(group, ("sans-serif", 20))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(230)
            .build_cartesian_2d((min..max).log_scale(), (0..count).into_segmented())?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_desc(axis_label)
            .x_label_formatter(&|nanos| format_nanos(*nanos))
            .y_labels(count)
            .y_label_formatter(&|position| match position {
                SegmentValue::CenterOf(index) => bars
                    .get(*index)
                    .map_or_else(String::new, |bar| bar.0.clone()),
                _ => String::new(),
            })
            .draw()?;
        chart.draw_series(
            bars.iter()
                .enumerate()
                .map(|(index, (_, time, _, series))| {
                    let color = PALETTE[series % PALETTE.len()];
                    Rectangle::new(
                        [
                            (min, SegmentValue::Exact(index)),
                            (*time, SegmentValue::Exact(index + 1)),
                        ],
                        color.filled(),
                    )
                }),
        )?;
        chart.draw_series(bars.iter().enumerate().map(|(index, (_, time, ratio, _))| {
            Text::new(
                format!(" {} ({ratio:.2}×)", format_nanos(*time)),
                (*time, SegmentValue::CenterOf(index)),
                ("sans-serif", 13),
            )
        }))?;
        root.present()?;
        Ok(())
    })
}

/// Per server: its p99 at one connection without hogs, then the probe's p99 at each hog
/// count of the sweep (log scale, milliseconds): one thin bar per series, stacked within
/// the server's band.
pub(crate) fn hog_chart(path: &Path, rows: &[BeazleyRow]) -> Result<(), ReportError> {
    let mut hog_counts: Vec<Option<usize>> = rows
        .iter()
        .filter(|row| row.phase == Phase::Hog)
        .map(|row| row.hogs)
        .collect();
    hog_counts.sort_unstable();
    hog_counts.dedup();
    // Per server: idle p99, then one p99 per hog count (None: that phase is missing).
    let mut servers: Vec<(String, Vec<Option<f64>>)> = Vec::new();
    for row in rows.iter().filter(|row| row.phase == Phase::Hog) {
        if servers.iter().any(|(style, _)| *style == row.style) {
            continue;
        }
        let idle = rows
            .iter()
            .filter(|idle| idle.style == row.style && idle.phase == Phase::Throughput)
            .min_by_key(|idle| idle.connections);
        let Some(idle) = idle else { continue };
        let mut values = vec![idle.p99_us.map(|p99| p99 as f64 / 1e3)];
        for &count in &hog_counts {
            values.push(
                rows.iter()
                    .find(|hog| {
                        hog.style == row.style && hog.phase == Phase::Hog && hog.hogs == count
                    })
                    // A probe with no latency at all (nothing due) has nothing to draw.
                    .and_then(|hog| hog.p99_us)
                    .map(|p99| p99 as f64 / 1e3),
            );
        }
        servers.push((row.style.clone(), values));
    }
    let series_count = 1 + hog_counts.len();
    let labels: Vec<String> = std::iter::once("idle (1 connection)".to_owned())
        .chain(hog_counts.iter().map(|count| match count {
            Some(count) => format!("probe with {count} hogs"),
            None => "probe with hogs".to_owned(),
        }))
        .collect();
    let bar = BAR_HEIGHT * 2 / 3;
    let height = 110 + bar * series_count as u32 * servers.len() as u32;
    let root = SVGBackend::new(path, (WIDTH, height)).into_drawing_area();
    draw(path, || {
        root.fill(&WHITE)?;
        let values = || {
            servers
                .iter()
                .flat_map(|(_, values)| values.iter().flatten())
        };
        // Room on the right for the legend.
        let max = values().copied().fold(1.0_f64, f64::max) * 30.0;
        let min = values().copied().fold(max, f64::min).max(1e-3) / 2.0;
        // Each server's band is `series_count` slots tall, one per series.
        let slots = servers.len() * series_count;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "fib(1) p99 latency: idle and across the hog sweep",
                ("sans-serif", 20),
            )
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(160)
            .build_cartesian_2d((min..max).log_scale(), (0..slots).into_segmented())?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_desc("p99 latency, ms (log scale; probes never answered count with the time they waited)")
            .x_label_formatter(&|millis| format_count(*millis))
            .y_labels(slots)
            .y_label_formatter(&|position| match position {
                SegmentValue::CenterOf(slot) if slot % series_count == 0 => servers
                    .get(slot / series_count)
                    .map_or_else(String::new, |server| server.0.clone()),
                _ => String::new(),
            })
            .draw()?;
        for (series, label) in labels.iter().enumerate() {
            let color = PALETTE[series % PALETTE.len()];
            chart
                .draw_series(servers.iter().enumerate().filter_map(|(index, server)| {
                    let value = server.1[series]?;
                    let slot = index * series_count + series;
                    Some(Rectangle::new(
                        [
                            (min, SegmentValue::Exact(slot)),
                            (value, SegmentValue::Exact(slot + 1)),
                        ],
                        color.filled(),
                    ))
                }))?
                .label(label.as_str())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled())
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
        Ok(())
    })
}

/// Bytes per unit against the number of units, one line per style (log-log).
pub(crate) fn bytes_per_task_chart(path: &Path, rows: &[TaskRow]) -> Result<(), ReportError> {
    let mut styles: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for row in rows {
        let (Some(bytes), n_tasks) = (row.bytes_per_task, row.n_tasks) else {
            continue;
        };
        let point = (n_tasks as f64, bytes.max(1.0));
        match styles.iter_mut().find(|(style, _)| *style == row.style) {
            Some((_, points)) => points.push(point),
            None => styles.push((row.style.clone(), vec![point])),
        }
    }
    let root = SVGBackend::new(path, (WIDTH, 520)).into_drawing_area();
    draw(path, || {
        root.fill(&WHITE)?;
        let points = styles.iter().flat_map(|(_, points)| points.iter());
        let (x_max, y_max) = points.clone().fold((10.0_f64, 10.0_f64), |(x, y), point| {
            (x.max(point.0), y.max(point.1))
        });
        let (x_min, y_min) = points.fold((x_max, y_max), |(x, y), point| {
            (x.min(point.0), y.min(point.1))
        });
        let mut chart = ChartBuilder::on(&root)
            .caption("memory per sleeping unit", ("sans-serif", 20))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(
                (x_min / 2.0..x_max * 2.0).log_scale(),
                (y_min / 2.0..y_max * 2.0).log_scale(),
            )?;
        chart
            .configure_mesh()
            .x_desc("units held at once (log scale)")
            .y_desc("bytes per unit (log scale)")
            .x_label_formatter(&|units| format_count(*units))
            .y_label_formatter(&|bytes| format_bytes(*bytes))
            .draw()?;
        for (series, (style, points)) in styles.iter().enumerate() {
            let color = PALETTE[series % PALETTE.len()];
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    color.stroke_width(2),
                ))?
                .label(style.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                });
            chart.draw_series(
                points
                    .iter()
                    .map(|&point| Circle::new(point, 3, color.filled())),
            )?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
        Ok(())
    })
}

/// One line per series: its points in the order of `x`.
type Lines = Vec<(String, Vec<(f64, f64)>)>;

/// Adds `point` to the line named `name`, starting it where it is new.
fn add_point(lines: &mut Lines, name: &str, point: (f64, f64)) {
    match lines.iter_mut().find(|(line, _)| line == name) {
        Some((_, points)) => points.push(point),
        None => lines.push((name.to_owned(), vec![point])),
    }
}

/// The smallest and largest x of `lines` (10 and 10 when there are none).
fn x_range(lines: &Lines) -> (f64, f64) {
    let xs = || {
        lines
            .iter()
            .flat_map(|(_, points)| points.iter().map(|point| point.0))
    };
    let max = xs().fold(f64::MIN_POSITIVE, f64::max).max(1.0);
    (xs().fold(max, f64::min).max(1.0), max)
}

/// Draws each line of `lines` with its points, in palette order, with its legend entry.
fn draw_lines<DB: DrawingBackend>(
    chart: &mut ChartContext<
        '_,
        DB,
        Cartesian2d<
            plotters::coord::combinators::LogCoord<f64>,
            plotters::coord::types::RangedCoordf64,
        >,
    >,
    lines: &Lines,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    for (series, (name, points)) in lines.iter().enumerate() {
        let color = PALETTE[series % PALETTE.len()];
        let mut points = points.clone();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))?
            .label(name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
            });
        chart.draw_series(
            points
                .iter()
                .map(|&point| Circle::new(point, 3, color.filled())),
        )?;
    }
    Ok(())
}

/// KiB per held connection against the connections held (log scale), one line per
/// server: the `connections` scenario's PSS growth above each server's idle baseline.
pub(crate) fn connections_chart(path: &Path, rows: &[ConnectionsRow]) -> Result<(), ReportError> {
    let mut lines: Lines = Vec::new();
    for row in rows.iter().filter(|row| row.not_attempted.is_none()) {
        if let Some(bytes) = row.bytes_per_connection {
            add_point(
                &mut lines,
                &row.style,
                (row.connections as f64, bytes / 1024.0),
            );
        }
    }
    let root = SVGBackend::new(path, (WIDTH, 520)).into_drawing_area();
    draw(path, || {
        root.fill(&WHITE)?;
        let (x_min, x_max) = x_range(&lines);
        let ys = || {
            lines
                .iter()
                .flat_map(|(_, points)| points.iter().map(|point| point.1))
        };
        // From 0 (or below, where a tree shrank), with room above for the legend.
        let y_max = ys().fold(1.0_f64, f64::max) * 1.4;
        let y_min = ys().fold(0.0_f64, f64::min) * 1.2;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "memory per held connection (PSS above the idle server)",
                ("sans-serif", 20),
            )
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d((x_min / 2.0..x_max * 2.0).log_scale(), y_min..y_max)?;
        chart
            .configure_mesh()
            .x_max_light_lines(1)
            .x_desc("connections held at once, N (log scale)")
            .y_desc("KiB per connection")
            .x_label_formatter(&|connections| format_count(*connections))
            .y_label_formatter(&|kib| format!("{}", (kib * 100.0).round() / 100.0))
            .draw()?;
        draw_lines(&mut chart, &lines)?;
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
        Ok(())
    })
}

/// Achieved ÷ ideal rate against the concurrency C (log scale), one line per server (the
/// backend driven directly among them), with the ideal, 1.0, dashed.
pub(crate) fn io_chart(path: &Path, rows: &[IoRow]) -> Result<(), ReportError> {
    let mut lines: Lines = Vec::new();
    for style in crate::io_wait::styles(rows) {
        let name = if style == crate::io_wait::BACKEND {
            format!("{style} (driven directly)")
        } else {
            style.to_owned()
        };
        for row in rows
            .iter()
            .filter(|row| row.style == style && row.not_attempted.is_none())
        {
            let point = (row.concurrency as f64, crate::io_wait::efficiency(row));
            add_point(&mut lines, &name, point);
        }
    }
    let root = SVGBackend::new(path, (WIDTH, 520)).into_drawing_area();
    draw(path, || {
        root.fill(&WHITE)?;
        let (x_min, x_max) = x_range(&lines);
        let (x_low, x_high) = (x_min / 2.0, x_max * 2.0);
        let y_max = lines
            .iter()
            .flat_map(|(_, points)| points.iter().map(|point| point.1))
            .fold(1.1_f64, f64::max)
            * 1.02;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "requests waiting on a backend: achieved ÷ ideal (C / delay)",
                ("sans-serif", 20),
            )
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d((x_low..x_high).log_scale(), 0.0..y_max)?;
        chart
            .configure_mesh()
            .x_max_light_lines(1)
            .x_desc("concurrency C: connections, one request outstanding each (log scale)")
            .y_desc("achieved ÷ ideal")
            .x_label_formatter(&|concurrency| format_count(*concurrency))
            .y_label_formatter(&|share| format!("{:.0} %", share * 100.0))
            .draw()?;
        chart
            .draw_series(DashedLineSeries::new(
                [(x_low, 1.0), (x_high, 1.0)],
                8,
                6,
                BLACK.stroke_width(1),
            ))?
            .label("ideal (C / delay)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLACK.stroke_width(1)));
        draw_lines(&mut chart, &lines)?;
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerLeft)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
        Ok(())
    })
}

/// Paired speedup over the reference against the worker count, one line per style (and
/// the capacity probe), with the ideal `speedup = workers` dashed up to `cores` and flat
/// beyond, and each oversubscribed count marked by a dotted vertical line.
pub(crate) fn scaling_chart(
    path: &Path,
    group: &str,
    rows: &[crate::scaling::ScalingRow],
    cores: usize,
) -> Result<(), ReportError> {
    let several_parameters = rows.iter().any(|row| {
        rows.first()
            .is_some_and(|first| first.parameter != row.parameter)
    });
    let mut lines: Lines = Vec::new();
    for row in rows {
        let name = if several_parameters {
            format!("{} ({})", row.style, row.parameter)
        } else {
            row.style.clone()
        };
        add_point(&mut lines, &name, (row.workers as f64, row.speedup));
    }
    let cores = cores.max(1) as f64;
    let mut oversubscribed: Vec<f64> = rows
        .iter()
        .filter(|row| row.oversubscribed)
        .map(|row| row.workers as f64)
        .collect();
    oversubscribed.sort_by(f64::total_cmp);
    oversubscribed.dedup();
    let reference = rows
        .first()
        .map_or_else(|| "the reference".to_owned(), |row| row.reference.clone());
    let root = SVGBackend::new(path, (WIDTH, 520)).into_drawing_area();
    draw(path, || {
        root.fill(&WHITE)?;
        let x_max = rows
            .iter()
            .map(|row| row.workers as f64)
            .fold(cores, f64::max);
        let y_max = rows.iter().map(|row| row.speedup).fold(cores, f64::max) * 1.25;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("{group}: paired speedup over {reference} against workers"),
                ("sans-serif", 20),
            )
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.5..x_max + 0.5, 0.0..y_max)?;
        chart
            .configure_mesh()
            .x_desc("workers per style (dotted: oversubscribed, more workers than cores)")
            .y_desc(format!("speedup over {reference}"))
            .x_labels((x_max as usize).clamp(2, 16) + 1)
            .x_label_formatter(&|workers| {
                if (workers - workers.round()).abs() < 1e-6 && *workers >= 1.0 {
                    format!("{workers:.0}")
                } else {
                    String::new()
                }
            })
            .y_label_formatter(&|speedup| format!("{speedup:.1}×"))
            .draw()?;
        chart
            .draw_series(DashedLineSeries::new(
                [(1.0, 1.0), (cores, cores), (x_max, cores)],
                8,
                6,
                BLACK.stroke_width(1),
            ))?
            .label("ideal: speedup = workers, up to the cores")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLACK.stroke_width(1)));
        for &workers in &oversubscribed {
            chart.draw_series(DashedLineSeries::new(
                [(workers, 0.0), (workers, y_max)],
                2,
                4,
                RGBColor(127, 127, 127).stroke_width(1),
            ))?;
            chart.draw_series(std::iter::once(Text::new(
                format!("{workers:.0}: oversubscribed"),
                (workers - 0.45, y_max * 0.97),
                ("sans-serif", 13),
            )))?;
        }
        for (series, (name, points)) in lines.iter().enumerate() {
            let color = PALETTE[series % PALETTE.len()];
            let mut points = points.clone();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    color.stroke_width(2),
                ))?
                .label(name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                });
            chart.draw_series(
                points
                    .iter()
                    .map(|&point| Circle::new(point, 3, color.filled())),
            )?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
        Ok(())
    })
}

/// Runs a drawing closure, turning plotters' errors into a [`ReportError`] naming the
/// chart.
fn draw(
    path: &Path,
    body: impl FnOnce() -> Result<(), DrawingAreaErrorKind<std::io::Error>>,
) -> Result<(), ReportError> {
    body().map_err(|error| ReportError::Chart {
        path: path.to_path_buf(),
        message: error.to_string(),
    })
}

/// `100`, `10k`, `1M`, `0.1`: axis labels for counts on a log scale.
fn format_count(value: f64) -> String {
    match value {
        v if v >= 1e6 => format!("{}M", v / 1e6),
        v if v >= 1e3 => format!("{}k", v / 1e3),
        v if v >= 1.0 => format!("{v:.0}"),
        v => format!("{v}"),
    }
}

/// `512 B`, `4 KiB`, `2 MiB`: axis labels for sizes.
fn format_bytes(bytes: f64) -> String {
    match bytes {
        b if b >= f64::from(1 << 20) => format!("{} MiB", b / f64::from(1 << 20)),
        b if b >= 1024.0 => format!("{} KiB", b / 1024.0),
        b => format!("{b:.0} B"),
    }
}
