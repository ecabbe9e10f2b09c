//! A run may name only its own community's households, owners, bills and tickets.
//!
//! Reads cannot cross communities: a run's [`crate::plugin::CommunityData`] is bound to its
//! community and takes no community id. But what a plugin asks for names things by id (a
//! message to household `2-1-301`, a reminder about bills `[5512, 5513]`, a notice about ticket
//! `SJ-T004`, a ticket for a household), and ids of another community, or of nothing at all, would
//! otherwise go on as far as they can: an unknown household listed for the desk as unreachable,
//! another community's bill ids kept as the reason of a reminder and read again before sending.
//! A plugin that writes such an id is wrong (a stale id, a bug, a hostile plugin probing), and
//! guessing what it meant is worse than telling its operator, so the run is refused whole.
//!
//! Checked in the transaction that applies the run, before anything is written, one query per
//! kind of id for the whole run: a run to thousands of households pays a few milliseconds.

use std::collections::BTreeMap;

use rusqlite::{OptionalExtension, params};
use serde_json::Value;

use crate::plugin::intent::{Intent, Recipient};
use crate::store::Tx;

/// What an id names, and where that kind lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Household,
    Owner,
    Bill,
    Ticket,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Household => "household",
            Kind::Owner => "owner",
            Kind::Bill => "bill",
            Kind::Ticket => "ticket",
        }
    }

    /// The first of the ids in the JSON array `?2` that community `?1` does not have.
    fn missing(self) -> &'static str {
        match self {
            Kind::Household => {
                "SELECT j.value FROM json_each(?2) j WHERE NOT EXISTS
                 (SELECT 1 FROM households t WHERE t.community = ?1 AND t.id = j.value) LIMIT 1"
            }
            Kind::Owner => {
                "SELECT j.value FROM json_each(?2) j WHERE NOT EXISTS
                 (SELECT 1 FROM owners t WHERE t.community = ?1 AND t.id = j.value) LIMIT 1"
            }
            Kind::Bill => {
                "SELECT j.value FROM json_each(?2) j WHERE NOT EXISTS
                 (SELECT 1 FROM bills t WHERE t.community = ?1 AND t.id = j.value) LIMIT 1"
            }
            Kind::Ticket => {
                "SELECT j.value FROM json_each(?2) j WHERE NOT EXISTS
                 (SELECT 1 FROM tickets t WHERE t.community = ?1 AND t.no = j.value) LIMIT 1"
            }
        }
    }

    /// Owners and bills have integer ids; an id that is not one names nothing.
    fn numeric(self) -> bool {
        matches!(self, Kind::Owner | Kind::Bill)
    }
}

/// Refuses the run if any of its intents names a household, owner, bill or ticket that
/// `community` does not have, naming the first such intent and id.
pub(super) fn refuse_foreign_ids(
    tx: &Tx<'_>,
    community: &str,
    intents: &[Intent],
) -> anyhow::Result<()> {
    // Each id once, with the first intent naming it.
    let mut named: BTreeMap<(Kind, String), usize> = BTreeMap::new();
    let mut name = |kind: Kind, id: &str, at: usize| {
        named.entry((kind, id.to_string())).or_insert(at);
    };
    for (at, intent) in intents.iter().enumerate() {
        let vars = match intent {
            Intent::Send(m) => {
                match &m.to {
                    Recipient::Household(h) => name(Kind::Household, h, at),
                    Recipient::Owner(o) => name(Kind::Owner, o, at),
                }
                &m.vars
            }
            Intent::NotifyStaff(n) => &n.vars,
            Intent::CreateTicket(t) => {
                if let Some(h) = &t.household {
                    name(Kind::Household, h, at);
                }
                continue;
            }
            Intent::SetTimer { .. } => continue,
        };
        for (key, value) in vars {
            match key.as_str() {
                "bill_ids" => {
                    for id in bill_ids(value) {
                        name(Kind::Bill, &id, at);
                    }
                }
                "ticket.id" => name(Kind::Ticket, value, at),
                _ => {}
            }
        }
    }
    let refuse = |kind: Kind, id: &str, at: usize| {
        anyhow::anyhow!(
            "{} {at} of the run names {} {id:?}, which community {community} does not have: a \
             plugin may only name its own community's households, owners, bills and tickets; \
             the run is refused whole",
            intents[at].what(),
            kind.name(),
        )
    };
    for kind in [Kind::Household, Kind::Owner, Kind::Bill, Kind::Ticket] {
        let ids: Vec<(&String, usize)> = named
            .range((kind, String::new())..)
            .take_while(|((k, _), _)| *k == kind)
            .map(|((_, id), at)| (id, *at))
            .collect();
        if ids.is_empty() {
            continue;
        }
        let list = if kind.numeric() {
            let mut numbers = Vec::with_capacity(ids.len());
            for (id, at) in &ids {
                match id.parse::<i64>() {
                    Ok(n) => numbers.push(Value::from(n)),
                    Err(_) => return Err(refuse(kind, id, *at)),
                }
            }
            Value::Array(numbers)
        } else {
            Value::Array(ids.iter().map(|(id, _)| Value::from(id.as_str())).collect())
        };
        let missing: Option<String> = tx
            .conn()
            .prepare_cached(kind.missing())?
            .query_row(params![community, list.to_string()], |r| {
                let v: rusqlite::types::Value = r.get(0)?;
                Ok(match v {
                    rusqlite::types::Value::Integer(n) => n.to_string(),
                    rusqlite::types::Value::Text(t) => t,
                    other => format!("{other:?}"),
                })
            })
            .optional()?;
        if let Some(id) = missing {
            let at = named[&(kind, id.clone())];
            return Err(refuse(kind, &id, at));
        }
    }
    Ok(())
}

/// The bill ids a `bill_ids` variable lists, as text: a JSON array (`[5512, "5513"]`) or a
/// comma-separated list (`5512,5513`), as the sink reads them for a message's reason.
fn bill_ids(text: &str) -> Vec<String> {
    if text.trim_start().starts_with('[')
        && let Ok(Value::Array(items)) = serde_json::from_str::<Value>(text)
    {
        return items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => s,
                other => other.to_string(),
            })
            .collect();
    }
    text.split(',')
        .map(|x| x.trim().to_string())
        .filter(|x| !x.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::intent::{Category, Channel, Message, NewTicket};

    fn store() -> (tempfile::TempDir, crate::store::Store, i64, i64) {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open_in(dir.path()).unwrap();
        let (owner, bill) = store
            .write(|tx| {
                for (community, room) in [("lakeside", "101"), ("hillside", "909")] {
                    let d = tx.domain(community);
                    d.upsert_household("1", "1", room)?;
                    d.upsert_owner(&crate::store::domain::OwnerInput {
                        household: format!("1-1-{room}"),
                        name: format!("业主{room}"),
                        phone: Some("13800000000".into()),
                        email: None,
                        language: crate::domain::Language::ZhCn,
                        preferred_contact: crate::domain::ContactChannel::Sms,
                    })?;
                }
                let conn = tx.conn();
                conn.execute(
                    "INSERT INTO bills (community, household, fee_type, period, amount_fen, due_date)
                     VALUES ('hillside', '1-1-909', 'property', '2026-11', 22000, '2026-11-15')",
                    [],
                )?;
                let bill = conn.last_insert_rowid();
                let owner: i64 = conn.query_row(
                    "SELECT id FROM owners WHERE community = 'hillside'",
                    [],
                    |r| r.get(0),
                )?;
                Ok((owner, bill))
            })
            .unwrap();
        (dir, store, owner, bill)
    }

    fn to(recipient: Recipient, vars: &[(&str, &str)]) -> Intent {
        Intent::Send(Message {
            to: recipient,
            template: "notice".into(),
            vars: vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            channel: Channel::Preferred,
            category: Category::Transactional,
            step: "s".into(),
        })
    }

    fn check(store: &crate::store::Store, community: &str, intents: &[Intent]) -> String {
        store
            .read(|tx| Ok(refuse_foreign_ids(tx, community, intents)))
            .unwrap()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    /// Every id of hillside is refused in a lakeside run, with the intent and id named; the same
    /// ids in hillside's own run pass.
    #[test]
    fn another_communitys_or_an_unknown_id_is_refused_naming_it() {
        let (_dir, store, owner, bill) = store();
        let own = to(Recipient::Household("1-1-101".into()), &[]);
        let cases = [
            (
                to(Recipient::Household("1-1-909".into()), &[]),
                "message 1 of the run names household \"1-1-909\", which community lakeside does not have",
            ),
            (
                to(Recipient::Owner(owner.to_string()), &[]),
                &*format!("names owner \"{owner}\", which community lakeside"),
            ),
            (
                to(
                    Recipient::Household("1-1-101".into()),
                    &[("bill_ids", &format!("[{bill}]"))],
                ),
                &*format!("names bill \"{bill}\", which community lakeside"),
            ),
            (
                to(
                    Recipient::Household("1-1-101".into()),
                    &[("ticket.id", "SJ-T004")],
                ),
                "names ticket \"SJ-T004\", which community lakeside",
            ),
            (
                Intent::CreateTicket(NewTicket {
                    household: Some("no-such".into()),
                    kind: "visit".into(),
                    summary: "x".into(),
                }),
                "ticket 1 of the run names household \"no-such\"",
            ),
            (
                to(Recipient::Owner("o-1".into()), &[]),
                "names owner \"o-1\"",
            ),
        ];
        for (intent, expected) in cases {
            let err = check(&store, "lakeside", &[own.clone(), intent.clone()]);
            assert!(err.contains(expected), "{expected}\n{err}");
            assert!(err.ends_with("the run is refused whole"), "{err}");
        }
        assert_eq!(check(&store, "lakeside", &[own]), "");
        let theirs = to(
            Recipient::Owner(owner.to_string()),
            &[("bill_ids", &bill.to_string())],
        );
        assert_eq!(
            check(
                &store,
                "hillside",
                &[theirs, to(Recipient::Household("1-1-909".into()), &[])]
            ),
            ""
        );
    }
}
