//! What an operator reads on a normal day: a first run on fresh topics and tables (`run.sh`'s
//! steps and every operator command after them) and a steady daemon run print no WARN or ERROR
//! line, with the default log filter. An operator who learns to ignore WARN and ERROR misses the
//! day they matter.

mod common;

use std::time::Duration;

use common::lake::{Proc, Setup, check_complete};

/// Every log line of `stderr` at WARN or ERROR (JSON log lines, so the level is a field and not
/// a guess at the wording).
fn alarming(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| match serde_json::from_str::<serde_json::Value>(l) {
            Ok(v) => matches!(v["level"].as_str(), Some("WARN" | "ERROR")),
            // Not a log line: a report, a table, the final `pixlake: …` of a failed command.
            Err(_) => l.starts_with("pixlake: ") || l.contains(" WARN ") || l.contains(" ERROR "),
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_first_run_and_a_steady_run_print_no_warning() {
    let dir = tempfile::tempdir().unwrap();
    let s = Setup::new("quiet", 3, dir.path());
    // The default filter (the tests' Setup sets its own), JSON lines to read the level from.
    let quiet = |args: &[&str]| {
        let mut c = s.command(args, &[("PIXLAKE__TELEMETRY__LOG_FORMAT", "json")]);
        c.env_remove("PIXLAKE_LOG").env_remove("RUST_LOG");
        c
    };
    let said = std::cell::RefCell::new(Vec::new());
    let run = |args: &[&str]| {
        let out = quiet(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{args:?} failed:\n{stderr}");
        said.borrow_mut().extend(alarming(&stderr).into_iter().map(|l| format!("{args:?}: {l}")));
    };
    // run.sh: publish (5 % invalid) into fresh topics, ingest into a fresh warehouse (the tables
    // are created), then the operator commands on what it wrote.
    run(&["produce", "--count", "3000", "--invalid-ratio", "0.05", "--seed", "7"]);
    run(&["ingest", "--until-caught-up"]);
    run(&["status"]);
    run(&["audit"]);
    run(&["dlq", "replay"]);
    run(&["maintain"]);
    run(&["offsets", "reset", "--to-latest"]);
    run(&["config", "show"]);
    // Nothing new: a batch run that has nothing to do.
    run(&["ingest", "--until-caught-up"]);
    // A steady daemon run: records arrive while it runs, it commits them, it is stopped.
    run(&["produce", "--count", "2000", "--invalid-ratio", "0.05", "--seed", "8"]);
    let mut daemon = Proc::spawn(quiet(&["ingest", "--pipeline", "payments", "--pipeline", "refunds"]));
    std::thread::sleep(Duration::from_secs(3));
    run(&["produce", "--count", "2000", "--invalid-ratio", "0.05", "--seed", "9"]);
    let theirs = [s.topics[0].clone(), s.topics[2].clone()];
    common::lake::wait_topics_committed(&s, &theirs, Duration::from_secs(120), &mut [&mut daemon]);
    daemon.sigterm();
    let (status, _, log) = daemon.finish(Duration::from_secs(60));
    assert!(status.success(), "{log}");
    said.borrow_mut().extend(alarming(&log).into_iter().map(|l| format!("daemon: {l}")));
    run(&["ingest", "--until-caught-up"]);
    check_complete(&s);
    let said = said.into_inner();
    assert!(said.is_empty(), "WARN/ERROR lines in a normal run:\n{}", said.join("\n"));
}
