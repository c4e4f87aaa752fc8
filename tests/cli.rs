//! The command line: `concbench list`, usage errors, and the README's matrix.

mod common;

use std::process::Command;

fn concbench(args: &[&str]) -> std::process::Output {
    Command::new(common::concbench_binary())
        .args(args)
        .output()
        .expect("run concbench")
}

#[test]
fn list_prints_every_style_and_workload() {
    let output = concbench(&["list"]);
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8(output.stdout).expect("utf-8");
    for name in catalog::names() {
        assert!(
            text.lines().any(|line| line.starts_with(name)),
            "{name} missing:\n{text}"
        );
    }
    for workload in workloads::Workload::ALL {
        assert!(
            text.lines()
                .next()
                .is_some_and(|header| header.contains(workload.name()))
        );
    }
}

#[test]
fn readme_matrix_is_the_output_of_list_markdown() {
    let output = concbench(&["list", "--markdown"]);
    assert!(output.status.success(), "{output:?}");
    let matrix = String::from_utf8(output.stdout).expect("utf-8");
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let start = "<!-- matrix:start -->\n";
    let (_, after_start) = readme
        .split_once(start)
        .expect("README has a matrix:start marker");
    let (in_readme, _) = after_start
        .split_once("<!-- matrix:end -->")
        .expect("README has a matrix:end marker");
    assert_eq!(
        in_readme, matrix,
        "README.md's matrix is stale: replace it with `cargo run -- list --markdown`"
    );
}

#[test]
fn usage_errors_exit_with_2() {
    let output = concbench(&["no-such-subcommand"]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(!output.stderr.is_empty());
}
