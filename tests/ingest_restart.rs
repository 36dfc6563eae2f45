//! Restarts and batch runs that tell the truth, on the real broker: a restart after `kill -9`
//! gets its partitions back at once with default session settings (static membership, a);
//! two processes with one instance id do not both ingest (b); `--until-caught-up` waits for
//! partitions another member holds, names them, and `--timeout` gives up with exit 2 (c).

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::lake::{Proc, Setup, check_complete, check_invariant, wait_committed};

/// The `pixlake ingest` command of `s` with pixlake's default session settings (the test setup
/// shortens them otherwise).
fn default_session(s: &Setup, args: &[&str], extra: &[(&str, &str)]) -> std::process::Command {
    let mut c = s.traced(args, extra);
    c.env_remove("PIXLAKE__KAFKA__CONSUMER__SESSION_TIMEOUT_MS")
        .env_remove("PIXLAKE__KAFKA__CONSUMER__HEARTBEAT_INTERVAL_MS");
    c
}

/// Waits until `p` was assigned partitions `n` times (its probe markers).
fn wait_assigned(p: &mut Proc, n: usize, timeout: Duration) -> bool {
    p.wait_probe("assigned", n, timeout)
}

/// (a) `kill -9`, then a restart with the same instance id and the default 45 s session: the
/// new process is handed its partitions long before the dead one's session could expire.
#[test]
fn a_restart_after_kill_9_gets_its_partitions_back_before_the_session_expires() {
    let dir = tempfile::tempdir().unwrap();
    let s = Setup::new("restart-a", 3, dir.path());
    let n = 30_000;
    s.produce(n, 0.02, 81);
    let extra = [
        ("PIXLAKE__INGEST__INSTANCE_ID", "restart-a"),
        ("PIXLAKE__BATCH__MAX_ROWS", "2000"),
        ("PIXLAKE__BATCH__MAX_LATENCY_MS", "500"),
    ];
    let mut first = Proc::spawn(default_session(&s, &["ingest"], &extra));
    assert!(first.wait_probe("committed", 1, Duration::from_secs(120)), "{}", first.log());
    first.kill9();
    let killed = Instant::now();
    let mut second = Proc::spawn(default_session(&s, &["ingest"], &extra));
    assert!(
        wait_assigned(&mut second, 3, Duration::from_secs(40)),
        "not every pipeline was assigned within 40 s of the restart:\n{}",
        second.log()
    );
    let waited = killed.elapsed();
    eprintln!("partitions back {waited:?} after kill -9 (session.timeout.ms 45 s)");
    assert!(waited < Duration::from_secs(30), "static membership: back in {waited:?}, well under 45 s");
    wait_committed(&s, Duration::from_secs(180), &mut [&mut second]);
    second.sigterm();
    let (status, _, log) = second.finish(Duration::from_secs(60));
    assert!(status.success(), "{log}");
    assert_eq!(check_complete(&s).total() as u64, n);
}

/// (b) A second process started with the instance id of a running one: the broker fences one
/// of them (with the classic protocol, the older), which exits 2 naming `ingest.instance_id`;
/// the other ingests on, and nothing is lost or doubled.
#[test]
fn two_processes_with_one_instance_id_do_not_both_ingest() {
    let dir = tempfile::tempdir().unwrap();
    let s = Setup::new("restart-b", 2, dir.path());
    s.produce(6_000, 0.02, 82);
    let extra = [("PIXLAKE__INGEST__INSTANCE_ID", "twin"), ("PIXLAKE__BATCH__MAX_LATENCY_MS", "500")];
    let mut older = Proc::spawn(s.traced(&["ingest"], &extra));
    assert!(wait_assigned(&mut older, 3, Duration::from_secs(60)), "{}", older.log());
    let mut newer = Proc::spawn(s.traced(&["ingest"], &extra));
    // Records arriving while both likely run (the older one is fenced within a heartbeat or so):
    // it may well have ingested the first ones already, and "not both ingest" needs something
    // both could take.
    s.produce(6_000, 0.02, 83);
    let deadline = Instant::now() + Duration::from_secs(60);
    let (fenced, survivor) = loop {
        if older.child.try_wait().unwrap().is_some() {
            break (older, newer);
        }
        if newer.child.try_wait().unwrap().is_some() {
            break (newer, older);
        }
        assert!(Instant::now() < deadline, "both still run:\n{}\n=====\n{}", older.log(), newer.log());
        std::thread::sleep(Duration::from_millis(50));
    };
    let (status, _, log) = fenced.finish(Duration::from_secs(60));
    assert_eq!(status.code(), Some(2), "{log}");
    assert!(log.contains("group.instance.id twin-"), "{log}");
    assert!(log.contains("PIXLAKE__INGEST__INSTANCE_ID"), "the message names the setting:\n{log}");
    let mut survivor = survivor;
    assert!(survivor.child.try_wait().unwrap().is_none(), "the other one ingests on:\n{}", survivor.log());
    wait_committed(&s, Duration::from_secs(120), &mut [&mut survivor]);
    survivor.sigterm();
    let (status, _, log) = survivor.finish(Duration::from_secs(60));
    assert!(status.success(), "{log}");
    assert_eq!(check_complete(&s).total() as u64, 12_000);
}

/// Starts a member `m` of the receipts group that never commits to this run's tables, then an
/// `--until-caught-up` run `u` beside it; returns both once `u` holds some of the partitions
/// and `m` the rest, with `m` frozen (SIGSTOP: no poll, no heartbeat, no commit).
///
/// `m` writes to a warehouse of its own: handing partitions over on a rebalance commits what a
/// member buffered, so a member of this warehouse would have committed its other partitions
/// too when `u` joined. For `u`'s tables, `m` never commits anything.
fn freeze_a_member_holding_half(s: &Setup, m_session: Option<&str>, u_args: &[&str]) -> (Proc, Proc) {
    let elsewhere = s.warehouse.with_file_name("m-warehouse").display().to_string();
    let never = [
        ("PIXLAKE__INGEST__INSTANCE_ID", "m"),
        ("PIXLAKE__WAREHOUSE__ROOT", elsewhere.as_str()),
        ("PIXLAKE__BATCH__MAX_LATENCY_MS", "600000"),
    ];
    let mut m_cmd = default_session(s, &["ingest", "--pipeline", "receipts"], &never);
    if let Some(ms) = m_session {
        m_cmd.env("PIXLAKE__KAFKA__CONSUMER__SESSION_TIMEOUT_MS", ms);
    }
    let mut m = Proc::spawn(m_cmd);
    assert!(wait_assigned(&mut m, 1, Duration::from_secs(60)), "{}", m.log());
    let mut args = vec!["ingest", "--pipeline", "receipts", "--until-caught-up", "--json"];
    args.extend_from_slice(u_args);
    let mut u = Proc::spawn(s.traced(&args, &[("PIXLAKE__INGEST__INSTANCE_ID", "u")]));
    assert!(wait_assigned(&mut u, 1, Duration::from_secs(60)), "u never got partitions:\n{}\n{}", u.log(), m.log());
    assert!(m.wait_probe("revoked", 1, Duration::from_secs(30)), "m gave nothing away:\n{}", m.log());
    m.signal(libc::SIGSTOP);
    (m, u)
}

/// (c) A member that holds half the partitions and never commits: `--until-caught-up` does not
/// exit 0 while they trail and names them; once the member's session expires the run takes
/// them over, catches up and exits 0. With `--timeout 20s` and a member that stays, it exits 2
/// naming them.
#[test]
fn until_caught_up_waits_for_partitions_another_member_holds() {
    let dir = tempfile::tempdir().unwrap();
    let s = Setup::new("restart-c", 4, dir.path());
    s.produce(8_000, 0.02, 83);
    let highs = s.high_watermarks();
    let receipts = |t: &(String, i32)| t.0 == s.topics[1];

    // The member stays (45 s session) and the run gives up after 20 s.
    let (mut m, u) = freeze_a_member_holding_half(&s, None, &["--timeout", "20s"]);
    let (status, stdout, log) = u.finish(Duration::from_secs(90));
    assert_eq!(status.code(), Some(2), "{log}");
    assert!(log.contains("--until-caught-up gave up after --timeout 20 s"), "{log}");
    assert!(log.contains("waits for partitions"), "the log names them while waiting:\n{log}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let p = &report["pipelines"][0];
    assert_eq!(p["stopped"], "timed_out", "{report}");
    let trailing: BTreeSet<i64> =
        p["trailing"].as_array().unwrap().iter().map(|t| t["partition"].as_i64().unwrap()).collect();
    let done: BTreeSet<i64> =
        p["caught_up"]["this_process"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
    assert!(!trailing.is_empty() && !done.is_empty(), "{report}");
    assert_eq!(trailing.union(&done).count(), 4, "every partition is either done by u or named: {report}");
    for t in &trailing {
        assert!(log.contains(&format!("partitions {t} (")) || log.contains(&format!(", {t} (")), "{t} named:\n{log}");
    }
    // The member goes away cleanly; a new run finishes the job.
    m.signal(libc::SIGCONT);
    m.sigterm();
    assert!(m.wait(Duration::from_secs(60)).success(), "{}", m.log());
    let out = s.command(&["ingest", "--until-caught-up"], &[]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    check_complete(&s);

    // More records; now the frozen member's session (10 s) expires while the run waits.
    s.produce(8_000, 0.02, 84);
    let (mut m, mut u) = freeze_a_member_holding_half(&s, Some("10000"), &[]);
    let frozen = Instant::now();
    assert!(u.wait_for("waits for partitions", Duration::from_secs(30)), "{}", u.log());
    assert!(u.child.try_wait().unwrap().is_none(), "exited while partitions trailed:\n{}", u.log());
    let (status, stdout, log) = u.finish(Duration::from_secs(120));
    assert!(status.success(), "{log}");
    assert!(frozen.elapsed() > Duration::from_secs(5), "it waited for the member's session: {:?}", frozen.elapsed());
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["pipelines"][0]["stopped"], "caught_up", "{report}");
    m.kill9();
    let checked = check_invariant(&s);
    let now = s.high_watermarks();
    for (key, high) in now.iter().filter(|(k, _)| receipts(k)) {
        assert_eq!(checked.committed[key], *high, "{key:?} committed up to the end");
    }
    assert!(highs.iter().filter(|(k, _)| receipts(k)).all(|(k, h)| now[k] > *h), "new records everywhere");
}
