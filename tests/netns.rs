//! Two hosts on one machine: the servers in one network namespace, the scenario (the
//! client) in another, joined by a veth pair with link-local addresses, through
//! `scenario beazley --server-launcher 'ip netns exec NS' --server-host ADDR`.
//!
//! Root only (creating namespaces needs it): elsewhere the test says why and returns.
//! It touches nothing outside the two namespaces it creates, and deletes them (and so
//! the veth pair) on drop, also when it fails.

mod common;

use std::process::Command;

/// Runs `ip ARGS`, returning whether it succeeded and what it printed.
fn ip(args: &[&str]) -> (bool, String) {
    match Command::new("ip").args(args).output() {
        Ok(output) => (
            output.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        ),
        Err(error) => (false, error.to_string()),
    }
}

/// Why this test cannot run here, if it cannot.
fn cannot_run() -> Option<String> {
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned());
    match uid {
        Ok(uid) if uid == "0" => {}
        Ok(uid) => return Some(format!("not root (uid {uid}): cannot create namespaces")),
        Err(error) => return Some(format!("cannot run id -u: {error}")),
    }
    if !ip(&["netns", "list"]).0 {
        return Some("`ip netns` is not available (iproute2)".into());
    }
    None
}

/// The two namespaces and the veth pair between them; deleted on drop.
struct Namespaces {
    client: String,
    server: String,
    server_addr: String,
}

impl Namespaces {
    fn create() -> Self {
        let pid = std::process::id();
        // Link-local 169.254.x.0/30, x from the pid (1..=254), so parallel runs differ.
        let x = pid % 254 + 1;
        let namespaces = Self {
            client: format!("cb-cli-{pid}"),
            server: format!("cb-srv-{pid}"),
            server_addr: format!("169.254.{x}.2"),
        };
        let (client_veth, server_veth) = (format!("cbc{pid}"), format!("cbs{pid}"));
        let client_addr = format!("169.254.{x}.1/30");
        let server_addr = format!("{}/30", namespaces.server_addr);
        let steps: Vec<Vec<&str>> = vec![
            vec!["netns", "add", &namespaces.client],
            vec!["netns", "add", &namespaces.server],
            // Created inside the client namespace, its peer moved to the server's: the
            // pair never appears in the namespace the test runs in.
            vec![
                "-n",
                &namespaces.client,
                "link",
                "add",
                &client_veth,
                "type",
                "veth",
                "peer",
                "name",
                &server_veth,
                "netns",
                &namespaces.server,
            ],
            vec![
                "-n",
                &namespaces.client,
                "addr",
                "add",
                &client_addr,
                "dev",
                &client_veth,
            ],
            vec![
                "-n",
                &namespaces.server,
                "addr",
                "add",
                &server_addr,
                "dev",
                &server_veth,
            ],
            vec!["-n", &namespaces.client, "link", "set", "lo", "up"],
            vec!["-n", &namespaces.server, "link", "set", "lo", "up"],
            vec!["-n", &namespaces.client, "link", "set", &client_veth, "up"],
            vec!["-n", &namespaces.server, "link", "set", &server_veth, "up"],
        ];
        for step in steps {
            let (ok, output) = ip(&step);
            assert!(ok, "ip {}: {output}", step.join(" "));
        }
        namespaces
    }

    fn names(&self) -> [&str; 2] {
        [&self.client, &self.server]
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in self.names() {
            // Deleting a namespace deletes the veth end inside it, and so the pair.
            let _ = ip(&["netns", "delete", name]);
        }
    }
}

/// Whether `ip netns list` still shows a namespace called `name`.
fn namespace_listed(name: &str) -> bool {
    let (_, listed) = ip(&["netns", "list"]);
    listed
        .lines()
        .any(|line| line.split_whitespace().next() == Some(name))
}

#[test]
fn beazley_measures_servers_in_another_network_namespace() {
    if let Some(reason) = cannot_run() {
        println!("skipped: {reason}");
        return;
    }
    let names: [String; 2];
    {
        let namespaces = Namespaces::create();
        names = [namespaces.client.clone(), namespaces.server.clone()];
        let dir = std::env::temp_dir().join(format!("concbench-netns-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let json = dir.join("rows.json");
        let launcher = format!("ip netns exec {}", namespaces.server);
        let output = Command::new("ip")
            .args([
                "netns",
                "exec",
                &namespaces.client,
                common::concbench_binary(),
            ])
            .args(["scenario", "beazley", "--styles", "tokio,threads"])
            .args(["--connections", "1,4", "--duration", "1s", "--rounds", "2"])
            .args([
                "--hogs",
                "1",
                "--hog-n",
                "22",
                "--no-redis",
                "--peers",
                "none",
            ])
            .args(["--server-launcher", &launcher])
            .args(["--server-host", &namespaces.server_addr])
            .args(["--arrangements", "shared", "--workers", "2", "--json"])
            .arg(&json)
            .env("CARGO_TARGET_DIR", &dir)
            .output()
            .expect("run the scenario");
        let table = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(output.status.success(), "{output:?}");
        let rows: Vec<serde_json::Value> = scenarios::read_rows_file(&json).expect("JSON rows");
        let _ = std::fs::remove_dir_all(&dir);
        // Two servers × (throughput at 1 and 4 connections, one hog phase).
        assert_eq!(rows.len(), 6, "{rows:#?}");
        for row in &rows {
            assert!(row["rps"].as_f64().expect("rps") > 0.0, "{row}");
            assert_eq!(row["errors"], 0, "{row}");
            assert_eq!(row["server_launcher"], launcher.as_str(), "{row}");
            assert_eq!(row["arrangement"], "shared", "{row}");
        }
        assert!(table.contains(&launcher), "{table}");
        assert!(!table.contains("FAILED"), "{table}");
    }
    for name in &names {
        assert!(!namespace_listed(name), "namespace {name} left behind");
    }
}
