#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The `exmux` binary: help for every command, exit codes, and errors that name the
//! value and the fix.

use std::process::{Command, Output};

fn exmux(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_exmux"))
        .args(args)
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs `exmux` with `args` and the emulator's password in `EXMUX_TEST_PASSWORD`, off the
/// async runtime, because the emulator of the test runs on it.
async fn exmux_with_password(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_exmux"))
            .args(args)
            .env("EXMUX_TEST_PASSWORD", exmux::emulator::PASSWORD)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

/// Returns a configuration with both endpoints and the user DN of `handle`, routed by
/// `preset`.
fn emulator_config(handle: &exmux_emulator::server::EmulatorHandle, preset: &str) -> String {
    format!(
        "[server]\nmailbox = \"user1@example.test\"\news_url = \"{}\"\nmapi_url = \"{}\"\nuser_dn = \"{}\"\n\
         [auth]\nmethod = \"basic\"\nusername = \"user1@example.test\"\npassword_env = \"EXMUX_TEST_PASSWORD\"\n\
         [routing]\npreset = \"{preset}\"\n",
        handle.ews_url(),
        handle.mapi_emsmdb_url(),
        exmux_emulator::mapi::legacy_dn(exmux::emulator::MAILBOX),
    )
}

#[test]
fn every_command_has_help() {
    let top = exmux(&["--help"]);
    assert!(top.status.success());
    let text = stdout(&top);
    for command in [
        "demo",
        "sync",
        "watch",
        "capabilities",
        "decode",
        "discover",
        "emulator",
    ] {
        assert!(text.contains(command), "top-level help lacks {command}");
        let help = exmux(&[command, "--help"]);
        assert!(help.status.success(), "{command} --help failed");
        assert!(stdout(&help).contains("Usage: exmux"), "{command}");
    }
    assert!(text.contains("Exit codes"), "{text}");
    assert!(stdout(&exmux(&["sync", "--help"])).contains(".state.json"));
}

#[test]
fn usage_errors_exit_2() {
    let output = exmux(&["demo", "--routing", "imap"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("imap"));
}

#[test]
fn missing_config_names_the_file_and_exits_2() {
    let output = exmux(&["sync", "--config", "/nonexistent/exmux.toml"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("/nonexistent/exmux.toml"));
}

#[test]
fn capabilities_print_the_table_and_routes() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("exmux.toml");
    std::fs::write(
        &config,
        // No mailbox, so autodiscover does not run and nothing leaves this machine.
        "[auth]\nmethod = \"basic\"\nusername = \"user1@example.test\"\npassword_env = \"EXMUX_UNSET_FOR_TEST\"\n\
         [routing]\npreset = \"hybrid\"\n",
    )
    .unwrap();
    let output = exmux(&["capabilities", "--config", config.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("sync_items"));
    assert!(text.contains("fetch            ews"), "{text}");
    assert!(text.contains("no endpoint configured"), "{text}");
    assert!(text.contains("autodiscover: not run"), "{text}");
}

#[test]
fn decode_reads_a_committed_capture() {
    let capture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../captures/ews/012-UpdateItem-mark-read.request.body"
    );
    let output = exmux(&["decode", "ews", capture, "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["operation"], "UpdateItem");

    let garbage = exmux(&["decode", "mapi-request", "/dev/null"]);
    assert_eq!(garbage.status.code(), Some(1));
    assert!(
        stderr(&garbage).contains("--request-type"),
        "{}",
        stderr(&garbage)
    );
}

#[test]
fn demo_json_has_the_summary_keys() {
    let output = exmux(&["demo", "--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    for key in [
        "routing",
        "remote_delivered",
        "own_dropped",
        "superseded_dropped",
        "full_resyncs",
        "replica_matches_server",
    ] {
        assert!(json.get(key).is_some(), "missing {key}: {json}");
    }
    assert_eq!(json["replica_matches_server"], true);
    assert_eq!(json["full_resyncs"], 0);

    let hybrid = exmux(&["demo", "--routing", "ews", "--json"]);
    assert_eq!(hybrid.status.code(), Some(0), "{}", stderr(&hybrid));
    let json: serde_json::Value = serde_json::from_slice(&hybrid.stdout).unwrap();
    assert_eq!(json["routing"], "ews");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_twice_reports_only_what_changed() {
    let handle = exmux::emulator::start("127.0.0.1:0".parse().unwrap(), None)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("exmux.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nmailbox = \"user1@example.test\"\news_url = \"{}\"\n\
             [auth]\nmethod = \"basic\"\nusername = \"user1@example.test\"\npassword_env = \"EXMUX_TEST_PASSWORD\"\n\
             [routing]\npreset = \"ews\"\n",
            handle.ews_url()
        ),
    )
    .unwrap();
    let run = |config: std::path::PathBuf| {
        exmux_with_password(vec![
            "sync".to_owned(),
            "--config".to_owned(),
            config.to_string_lossy().into_owned(),
        ])
    };

    let first = run(config.clone()).await;
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(stdout(&first).contains("(first run)"), "{}", stdout(&first));
    assert!(dir.path().join("exmux.toml.state.json").exists());

    // A message arrives between the runs.
    let client = exmux_ews::client::EwsClient::builder(
        handle.ews_url(),
        exmux::emulator::MAILBOX,
        exmux_core::auth::Credentials::Basic {
            username: exmux::emulator::MAILBOX.to_owned(),
            password: exmux_core::Secret::new(exmux::emulator::PASSWORD),
        },
    )
    .build()
    .unwrap();
    let mut item = exmux_ews::types::Item::new(exmux_ews::types::ItemKind::Message);
    item.mime_content = Some(base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        "Subject: between runs\r\n\r\nHi.\r\n",
    ));
    client
        .call(&exmux_ews::ops::items::CreateItem {
            disposition: Some(exmux_ews::types::MessageDisposition::SaveOnly),
            saved_folder: Some(exmux_ews::types::FolderRef::distinguished(
                exmux_ews::types::DistinguishedFolder::Inbox,
            )),
            items: vec![item],
        })
        .await
        .unwrap();

    let second = run(config).await;
    assert!(second.status.success(), "{}", stderr(&second));
    let text = stdout(&second);
    assert!(!text.contains("(first run)"), "{text}");
    assert!(
        text.contains(": 1 new or changed, 0 read-state changes, 0 deleted"),
        "{text}"
    );
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_record_writes_both_protocols() {
    let handle = exmux::emulator::start("127.0.0.1:0".parse().unwrap(), None)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("exmux.toml");
    std::fs::write(&config, emulator_config(&handle, "hybrid")).unwrap();
    let recording = dir.path().join("recording");
    let args = vec![
        "sync".to_owned(),
        "--config".to_owned(),
        config.to_string_lossy().into_owned(),
        "--record".to_owned(),
        recording.to_string_lossy().into_owned(),
    ];
    let output = exmux_with_password(args).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("recorded to"),
        "{}",
        stdout(&output)
    );

    // Hybrid lists and syncs over MAPI/HTTP and resolves folders over EWS.
    for (protocol, first) in [("mapi", "001-Connect-"), ("ews", "001-GetFolder-")] {
        let mut names: Vec<String> = std::fs::read_dir(recording.join(protocol))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert!(
            names.first().is_some_and(|name| name.starts_with(first)),
            "{protocol}: {names:?}"
        );
        for name in names.iter().filter(|name| name.ends_with(".headers")) {
            let text = std::fs::read_to_string(recording.join(protocol).join(name)).unwrap();
            assert!(!text.contains(exmux::emulator::PASSWORD), "{name}");
        }
    }
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capabilities_use_autodiscover() {
    let handle = exmux::emulator::start("127.0.0.1:0".parse().unwrap(), None)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("exmux.toml");
    // No endpoint keys: both come from autodiscover.
    std::fs::write(
        &config,
        "[server]\nmailbox = \"user1@example.test\"\n\
         [auth]\nmethod = \"basic\"\nusername = \"user1@example.test\"\npassword_env = \"EXMUX_TEST_PASSWORD\"\n\
         [routing]\npreset = \"hybrid\"\n",
    )
    .unwrap();

    let loopback = format!("example.test={}", handle.base_url());
    let output = exmux_with_password(vec![
        "capabilities".to_owned(),
        "--config".to_owned(),
        config.to_string_lossy().into_owned(),
        "--loopback".to_owned(),
        loopback,
    ])
    .await;
    assert!(output.status.success(), "{}", stderr(&output));

    let text = stdout(&output);
    let discovered = text
        .lines()
        .find(|line| line.starts_with("autodiscover for user1@example.test:"))
        .unwrap_or_default();
    assert!(discovered.contains("EWS"), "{text}");
    assert!(discovered.contains("MAPI/HTTP"), "{text}");

    let ews_line = text
        .lines()
        .find(|line| line.trim_start().starts_with("ews "))
        .unwrap_or_default();
    assert!(ews_line.contains(&handle.ews_url()), "{text}");
    assert!(
        ews_line.contains("(from autodiscover): reachable"),
        "{text}"
    );
    let mapi_line = text
        .lines()
        .find(|line| line.trim_start().starts_with("mapi "))
        .unwrap_or_default();
    assert!(
        mapi_line.contains("(from autodiscover): reachable"),
        "{text}"
    );
    assert!(!text.contains(exmux::emulator::PASSWORD), "{text}");
}

#[test]
fn unwritable_paths_exit_2_before_work() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("exmux.toml");
    // Port 1 on loopback: nothing listens, and nothing is reached, because the state
    // path is checked first.
    std::fs::write(
        &config,
        "[server]\nmailbox = \"user1@example.test\"\news_url = \"http://127.0.0.1:1/EWS/Exchange.asmx\"\n\
         [auth]\nmethod = \"basic\"\nusername = \"user1@example.test\"\npassword_env = \"EXMUX_UNSET_FOR_TEST\"\n\
         [routing]\npreset = \"ews\"\n",
    )
    .unwrap();
    let state = dir.path().join("missing-folder").join("state.json");
    let sync = exmux(&[
        "sync",
        "--config",
        config.to_str().unwrap(),
        "--state",
        state.to_str().unwrap(),
    ]);
    assert_eq!(sync.status.code(), Some(2), "{}", stderr(&sync));
    assert!(stderr(&sync).contains("--state"), "{}", stderr(&sync));

    // A regular file where the recording folder should be.
    let blocker = dir.path().join("not-a-folder");
    std::fs::write(&blocker, "x").unwrap();
    let demo = exmux(&["demo", "--record", blocker.to_str().unwrap()]);
    assert_eq!(demo.status.code(), Some(2), "{}", stderr(&demo));
    assert!(stderr(&demo).contains("--record"), "{}", stderr(&demo));
}

#[test]
fn discover_invalid_address_exits_2() {
    let output = exmux(&["discover", "no-at-sign"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("no-at-sign"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn sim_seed_range_is_checked() {
    let zero = exmux(&["sim", "--seeds", "0"]);
    assert_eq!(zero.status.code(), Some(2), "{}", stderr(&zero));

    let past_end = exmux(&["sim", "--seeds", "2", "--from", &u64::MAX.to_string()]);
    assert_eq!(past_end.status.code(), Some(2), "{}", stderr(&past_end));
    assert!(
        stderr(&past_end).contains("--from"),
        "{}",
        stderr(&past_end)
    );

    let last = exmux(&[
        "sim",
        "--seeds",
        "1",
        "--from",
        &u64::MAX.to_string(),
        "--json",
    ]);
    assert_eq!(last.status.code(), Some(0), "{}", stderr(&last));
}

#[test]
fn decode_mapi_gives_fields_not_debug() {
    let captures = concat!(env!("CARGO_MANIFEST_DIR"), "/../captures/mapi/");
    // An Execute request: the ROPs come out as JSON fields, the ESSDN as text.
    let logon = format!("{captures}002-Execute-logon.request.body");
    let output = exmux(&["decode", "mapi-request", &logon, "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let essdn = json["rops"][0]["Logon"]["essdn"]
        .as_str()
        .unwrap_or_default();
    assert!(essdn.starts_with("/o="), "{json}");
    assert_eq!(json["body"]["flags"], 0, "{json}");
    let text = stdout(&exmux(&["decode", "mapi-request", &logon]));
    assert!(!text.contains("Some("), "{text}");
    assert!(!text.contains(" { "), "{text}");

    // A Connect body with no headers of its own: the request type comes from the
    // .headers file that --record wrote beside it.
    let connect = format!("{captures}001-Connect-session.response.body");
    let output = exmux(&["decode", "mapi-response", &connect, "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["request_type"], "Connect", "{json}");
}

#[test]
fn decode_rejects_endless_input() {
    let output = exmux(&["decode", "ews", "/dev/zero"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("MiB"), "{}", stderr(&output));
}

#[test]
fn closed_stdout_ends_quietly() {
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_exmux"))
        .args(["demo", "--routing", "ews"])
        .env_remove("RUST_BACKTRACE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The reader goes away before the demo prints its first line.
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(!stderr(&output).contains("panicked"), "{}", stderr(&output));
}

#[test]
fn bad_ca_bundle_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("exmux.toml");
    std::fs::write(
        &config,
        "[server]\nmailbox = \"user1@example.test\"\news_url = \"https://127.0.0.1:1/EWS/Exchange.asmx\"\n\
         [auth]\nmethod = \"basic\"\nusername = \"user1@example.test\"\npassword_env = \"EXMUX_UNSET_FOR_TEST\"\n\
         [http]\nca_bundle = \"/nonexistent/ca.pem\"\n\
         [routing]\npreset = \"ews\"\n",
    )
    .unwrap();
    let output = exmux(&["sync", "--config", config.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("/nonexistent/ca.pem"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_inbox_syncs_its_messages() {
    let handle = exmux::emulator::start("127.0.0.1:0".parse().unwrap(), None)
        .await
        .unwrap();
    exmux::emulator::seed_inbox(&handle, 7).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("exmux.toml");
    std::fs::write(&config, emulator_config(&handle, "mapi")).unwrap();

    let args = vec![
        "sync".to_owned(),
        "--config".to_owned(),
        config.to_string_lossy().into_owned(),
    ];
    let output = exmux_with_password(args).await;

    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("7 new or changed"), "{text}");
    handle.shutdown().await;
}

#[test]
fn emulator_rejects_too_many_messages() {
    let output = exmux(&[
        "emulator",
        "--listen",
        "127.0.0.1:0",
        "--messages",
        "100001",
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("--messages 100001"),
        "{}",
        stderr(&output)
    );
}
