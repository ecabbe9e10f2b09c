//! Shared pieces of the delivery tests: a real SMTP sink (aiosmtpd) and HTTP gateway stand-in
//! run as Python child processes, an in-memory owner directory, and a config folder builder.

#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use wuye::config::Settings;
use wuye::deliver::{
    Contact, DeliverySettings, Directory, EnqueueContext, Enqueued, MessageRequest, Relevance,
    Templates,
};

use crate::util::{copy_dir, repo_root};

pub fn support(script: &str) -> PathBuf {
    repo_root().join("tests/support").join(script)
}

/// A Python helper that prints `READY <port>` when listening; killed on drop.
pub struct PyServer {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
}

impl PyServer {
    pub fn start(script: &str, dir: &Path, args: &[&str]) -> PyServer {
        std::fs::create_dir_all(dir).unwrap();
        let mut child = Command::new("python3")
            .arg(support(script))
            .arg("--out")
            .arg(dir)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 is needed for the delivery tests");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("READY ")
            .unwrap_or_else(|| {
                panic!(
                    "{script} did not start (is aiosmtpd installed? `python3 -m pip install aiosmtpd`): {line:?}"
                )
            })
            .parse()
            .unwrap();
        PyServer {
            child,
            port,
            dir: dir.to_path_buf(),
        }
    }

    /// Files the server stored, in arrival order.
    pub fn files(&self, ext: &str) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == ext))
            .collect();
        v.sort();
        v
    }
}

impl Drop for PyServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Parses mail files with Python's `email` package (tests/support/parse_mail.py).
pub fn parse_mail(files: &[PathBuf]) -> Vec<serde_json::Value> {
    if files.is_empty() {
        return Vec::new();
    }
    let out = Command::new("python3")
        .arg(support("parse_mail.py"))
        .args(files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Owners, households and bills in memory, standing in for the domain store.
#[derive(Default)]
pub struct MemDirectory {
    pub owners: Mutex<HashMap<String, Contact>>,
    /// household id → its preferred contact.
    pub households: Mutex<HashMap<String, Contact>>,
    pub paid: Mutex<HashSet<i64>>,
}

impl MemDirectory {
    pub fn with_owner(self, c: Contact) -> Self {
        self.owners.lock().unwrap().insert(c.id.clone(), c);
        self
    }
    pub fn with_household(self, id: &str, c: Contact) -> Self {
        self.households.lock().unwrap().insert(id.to_string(), c);
        self
    }
}

impl Directory for MemDirectory {
    fn household_contact(&self, _: &str, household: &str) -> anyhow::Result<Option<Contact>> {
        Ok(self.households.lock().unwrap().get(household).cloned())
    }
    fn owner(&self, _: &str, owner: &str) -> anyhow::Result<Option<Contact>> {
        Ok(self.owners.lock().unwrap().get(owner).cloned())
    }
    fn still_relevant(&self, _: &str, reason: &serde_json::Value) -> anyhow::Result<Relevance> {
        let bills: Vec<i64> = reason["bills"]
            .as_array()
            .map(|a| a.iter().filter_map(|b| b.as_i64()).collect())
            .unwrap_or_default();
        let paid = self.paid.lock().unwrap();
        if !bills.is_empty() && bills.iter().all(|b| paid.contains(b)) {
            Ok(Relevance::Gone(format!("bills {bills:?} paid")))
        } else {
            Ok(Relevance::Relevant)
        }
    }
}

pub fn contact(
    id: &str,
    name: &str,
    email: Option<&str>,
    phone: Option<&str>,
    locale: &str,
) -> Contact {
    Contact {
        id: id.into(),
        name: name.into(),
        email: email.map(Into::into),
        phone: phone.map(Into::into),
        locale: Some(locale.into()),
        preferred: None,
    }
}

/// Writes `wuyed.toml` (with `daemon_extra` appended) and `communities/shuipan.toml` (水畔花园,
/// Asia/Shanghai, with `community_extra` appended), and copies the shipped templates.
pub fn write_config(dir: &Path, daemon_extra: &str, community_extra: &str) -> PathBuf {
    let cfg = dir.join("config");
    std::fs::create_dir_all(cfg.join("communities")).unwrap();
    std::fs::write(
        cfg.join("wuyed.toml"),
        format!("[daemon]\ndata_dir = \"../data\"\n\n{daemon_extra}\n"),
    )
    .unwrap();
    std::fs::write(
        cfg.join("communities/shuipan.toml"),
        format!(
            "id = \"shuipan\"\nname = \"水畔花园\"\ntimezone = \"Asia/Shanghai\"\nlocale = \"zh-CN\"\n\n\
             [[staff]]\nid = \"li-na\"\nname = \"李娜\"\nrole = \"supervisor\"\nemail = \"li.na@shuipan.example\"\nphone = \"13700001111\"\n\n\
             {community_extra}\n"
        ),
    )
    .unwrap();
    copy_dir(
        &repo_root().join("config/templates"),
        &cfg.join("templates"),
    );
    cfg
}

/// No quiet hours, so tests do not depend on the hour they run at.
pub const NO_QUIET: &str = "[quiet_hours]\nstart = \"00:00\"\nend = \"00:00\"\n";

pub struct Env {
    pub settings: Arc<Settings>,
    pub templates: Templates,
    pub db: PathBuf,
}

impl Env {
    pub fn load(cfg: &Path) -> Env {
        let settings = wuye::config::load(cfg).unwrap_or_else(|e| panic!("{e}"));
        let templates = Templates::load(&cfg.join("templates"), &["shuipan"]).unwrap();
        let db = settings.data_dir.join(wuye::store::DB_FILE);
        Env {
            settings: Arc::new(settings),
            templates,
            db,
        }
    }

    pub fn delivery(&self) -> &DeliverySettings {
        &self.settings.daemon.delivery
    }

    /// Queues `reqs` in one transaction, as a run's completion would.
    pub fn enqueue(
        &self,
        directory: &dyn Directory,
        now: DateTime<Utc>,
        reqs: &[MessageRequest],
    ) -> Vec<Enqueued> {
        let mut conn = wuye::store::outbox::open(&self.db).unwrap();
        let community = self.settings.communities[0].clone();
        wuye::store::outbox::transaction(&mut conn, |tx| {
            let ctx =
                EnqueueContext::new(&community, directory, &self.templates, self.delivery(), now);
            let mut out = Vec::new();
            for r in reqs {
                out.extend(wuye::deliver::enqueue(tx, &ctx, r)?);
            }
            Ok(out)
        })
        .unwrap()
    }

    pub fn with_tx<T>(&self, f: impl FnOnce(&wuye::store::Tx<'_>) -> anyhow::Result<T>) -> T {
        let mut conn = wuye::store::outbox::open(&self.db).unwrap();
        wuye::store::outbox::transaction(&mut conn, f).unwrap()
    }
}

/// A household bill reminder as the fee workflow would ask for it.
pub fn bill_request(
    household: &str,
    slot: DateTime<Utc>,
    bills: &[(i64, &str, &str, &str)],
) -> MessageRequest {
    let total: f64 = bills
        .iter()
        .map(|b| b.3.replace(',', "").parse::<f64>().unwrap())
        .sum();
    MessageRequest {
        community: "shuipan".into(),
        workflow: "fee_reminder".into(),
        occurrence: wuye::deliver::Occurrence::Due(slot),
        audience: wuye::deliver::Audience::Household(household.into()),
        step: "due".into(),
        template: "bill_notice".into(),
        variables: serde_json::json!({
            "household": { "label": format!("{household} 室") },
            "bills": bills.iter().map(|b| serde_json::json!({
                "fee_type": b.1, "period": b.2, "amount": b.3, "due_date": "2026-03-31"
            })).collect::<Vec<_>>(),
            "total": format!("{total:.2}"),
        }),
        category: wuye::deliver::Category::Transactional,
        channel: None,
        reason: serde_json::json!({ "bills": bills.iter().map(|b| b.0).collect::<Vec<_>>() }),
    }
}
