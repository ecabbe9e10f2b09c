//! Crash trials: a 10,000-household fee run of the real daemon, to a real SMTP server, killed
//! again and again, each time restarted on the clock that kept running meanwhile.
//!
//! A trial is one death and the restart after it. Half the deaths are SIGKILL at a random
//! instant (in the plugin run, the commit that queues the run's messages, a send, a commit of
//! answers); the other half abort at the failpoint `WUYE_FAILPOINT=after-smtp-data:N`, right
//! after the server answered the Nth message's "." and before the outbox recorded it, the one
//! window where a crash leaves a message at the server the outbox does not know went. Trials
//! come in fee runs: once a run's 10,000 reminders are all recorded sent, the next trial starts
//! a fresh copy of the imported data and a fresh mailbox. After every trial the database must
//! pass `PRAGMA integrity_check`; after every fee run: no household without its reminder at the
//! server, no recipient with two Message-IDs, every resend under its first Message-ID, and
//! nothing recorded as sent when a process died was sent again by a later one.
//!
//! Knobs: `WUYE_PROOF_TRIALS` (default 20; `scripts/proof.sh --long` runs 200),
//! `WUYE_PROOF_HOUSEHOLDS` (default 10,000).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::deliver_support::PyServer;
use crate::proof::*;

/// How a trial's daemon dies.
#[derive(Clone, Copy, Debug)]
enum Death {
    /// SIGKILL this long after the start.
    At(Duration),
    /// Abort after the Nth accepted email.
    Failpoint(usize),
}

#[test]
#[ignore = "minutes long: scripts/proof.sh runs it"]
fn proof_sigkill_during_a_10000_household_fee_run_loses_no_reminder_and_never_sends_two_message_ids()
 {
    let trials = env_usize("WUYE_PROOF_TRIALS", 20);
    let n = env_usize("WUYE_PROOF_HOUSEHOLDS", 10_000);
    let began = Instant::now();
    let mut proof = Proof::new(&Spec {
        households: n,
        reach: Reach::Email,
        delivery: "",
        refused: &[],
        tmpfs_mib: None,
    });
    let seed = proof.data.clone();
    eprintln!(
        "{n} households imported in {:.1} s",
        began.elapsed().as_secs_f64()
    );

    let (mut done, mut runs, mut by_signal, mut by_failpoint, mut resent) = (0, 0, 0, 0, 0);
    while done < trials {
        // A fresh fee run: the imported data as it was, an empty mailbox, the clock at 09:59:58.
        runs += 1;
        proof.data = proof.dir.path().join(format!("data-{runs}"));
        crate::util::copy_dir(&seed, &proof.data);
        let sink = PyServer::start(
            "smtp_sink.py",
            &proof.dir.path().join(format!("sink-{runs}")),
            &[],
        );
        std::fs::write(
            proof.config.join("wuyed.toml"),
            daemon_toml(&proof, sink.port),
        )
        .unwrap();
        proof.reset_clock();

        // (messages at the server when the process died, Message-IDs recorded sent by then)
        let mut deaths: Vec<(usize, BTreeSet<String>)> = Vec::new();
        let mut k = 0;
        while done < trials {
            let sent = proof.count("sent");
            if sent == n {
                break;
            }
            let death = if k == 0 {
                // The first death of a run lands anywhere from start-up through the 10:00 run
                // and the commit queueing its messages to the first sends.
                Death::At(Duration::from_millis(rand::random_range(200..4000)))
            } else if k % 2 == 1 {
                let left = (n - sent).max(1);
                Death::Failpoint(rand::random_range(1..=left.min(600)))
            } else {
                Death::At(Duration::from_millis(rand::random_range(300..3000)))
            };
            k += 1;
            let mut daemon = match death {
                Death::At(_) => proof.start(&[]),
                Death::Failpoint(at) => {
                    proof.start(&[("WUYE_FAILPOINT", &format!("after-smtp-data:{at}"))])
                }
            };
            match death {
                Death::At(after) => {
                    std::thread::sleep(after);
                    assert!(daemon.alive(), "wuyed died on its own:\n{}", daemon.tail());
                    daemon.kill();
                    by_signal += 1;
                }
                Death::Failpoint(at) => {
                    // Hang guard: N accepted emails take seconds, not minutes.
                    let status = daemon
                        .wait_exit(Duration::from_secs(180))
                        .unwrap_or_else(|| {
                            panic!(
                                "the failpoint at email {at} never fired:\n{}",
                                daemon.tail()
                            )
                        });
                    assert!(
                        daemon.log_text().contains("WUYE_FAILPOINT: aborting"),
                        "wuyed exited ({status}) but not at the failpoint:\n{}",
                        daemon.tail()
                    );
                    by_failpoint += 1;
                }
            }
            done += 1;
            let integrity = proof.integrity();
            assert_eq!(integrity, "ok", "trial {done} ({death:?}): integrity_check");
            let at_sink = sink.files("eml").len();
            let recorded: BTreeSet<String> = proof
                .rows()
                .into_iter()
                .filter(|r| r.status == "sent")
                .map(|r| bare_id(&r.message_id))
                .collect();
            eprintln!(
                "run {runs} trial {done}/{trials} ({death:?}): {at_sink} at the server, {} recorded sent",
                recorded.len()
            );
            deaths.push((at_sink, recorded));
        }

        // However the last trial ended, the run is finished by a daemon left alone.
        let mut daemon = proof.start(&[]);
        daemon.wait_running();
        proof.wait_until(
            "every reminder of the run recorded sent",
            600,
            &mut daemon,
            || proof.count("sent") == n,
        );
        assert!(daemon.stop().success(), "{}", daemon.tail());
        assert_eq!(proof.integrity(), "ok");
        let mail = read_mail(&sink.files("eml"));
        let delivered = check_email(&proof, &mail, &BTreeSet::new(), false);
        for (i, (at_sink, recorded)) in deaths.iter().enumerate() {
            if let Some(m) = mail[*at_sink..]
                .iter()
                .find(|m| recorded.contains(&m.message_id))
            {
                panic!(
                    "run {runs}, death {i}: {} was recorded sent, yet sent again later",
                    m.message_id
                );
            }
        }
        resent += delivered.resent;
        eprintln!(
            "run {runs}: {} copies for {n} households, {} resent with their first Message-ID",
            mail.len(),
            delivered.resent
        );
        // Free the disk: a run's data and mailbox are a few hundred MB.
        drop(sink);
        let _ = std::fs::remove_dir_all(proof.dir.path().join(format!("sink-{runs}")));
        let _ = std::fs::remove_dir_all(&proof.data);
    }
    summary(&format!(
        "sigkill: {done} trials ({by_signal} SIGKILL at random instants, {by_failpoint} aborts \
         between the SMTP \".\" and the outbox commit) over {runs} fee runs of {n} households: \
         0 households lost, 0 recipients with two Message-IDs, {resent} resends all under their \
         first Message-ID, integrity_check ok after every trial; {:.0} s",
        began.elapsed().as_secs_f64()
    ));
}

fn daemon_toml(proof: &Proof, port: u16) -> String {
    let text = std::fs::read_to_string(proof.config.join("wuyed.toml")).unwrap();
    let base = text
        .split("[delivery")
        .next()
        .unwrap()
        .trim_end()
        .to_string();
    format!(
        "{base}\n\n[delivery.email]\nfrom = \"试验花园物业 <desk@proof.example>\"\n\
         smtp = {{ host = \"127.0.0.1\", port = {port}, tls = \"none\", pool_size = 4 }}\n"
    )
}
