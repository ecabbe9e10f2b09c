//! The domain store as the plugin host's [`DataSource`]: each run gets a view bound to its own
//! community, so a plugin cannot name another community's data.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use chrono::{DateTime, NaiveDate, Utc};

use crate::config::Settings;
use crate::plugin::data::{
    Balance, Bill, Callback, CommunityData, DataSource, Event, Household, Owner, Survey,
    SurveyAnswer, Ticket,
};
use crate::store::domain::{DomainRead, DomainReader};

/// Hands out per-community views over one read connection.
pub struct StoreData {
    reader: Arc<DomainReader>,
    settings: Mutex<Arc<Settings>>,
}

impl StoreData {
    pub fn new(reader: Arc<DomainReader>, settings: Arc<Settings>) -> StoreData {
        StoreData {
            reader,
            settings: Mutex::new(settings),
        }
    }

    /// Takes a reloaded configuration (names, zones, calendars) for runs that start from now on.
    pub fn reload(&self, settings: Arc<Settings>) {
        *self.settings.lock().expect("settings poisoned") = settings;
    }
}

impl DataSource for StoreData {
    fn community(&self, id: &str) -> anyhow::Result<Arc<dyn CommunityData>> {
        let settings = self.settings.lock().expect("settings poisoned").clone();
        let community = settings
            .communities
            .iter()
            .find(|c| c.id == id)
            .cloned()
            .with_context(|| format!("community {id} is not configured"))?;
        Ok(Arc::new(CommunityView {
            reader: self.reader.clone(),
            community,
        }))
    }
}

struct CommunityView {
    reader: Arc<DomainReader>,
    community: Arc<crate::config::Community>,
}

impl CommunityView {
    fn read<T>(&self, f: impl FnOnce(&DomainRead<'_>) -> rusqlite::Result<T>) -> anyhow::Result<T> {
        self.reader.read(&self.community.id, f)
    }
}

fn bill(b: crate::domain::BillStatus) -> Bill {
    Bill {
        id: b.bill.id.to_string(),
        household: b.bill.household,
        fee_type: b.bill.fee_type.as_str().to_string(),
        period: b.bill.period.to_string(),
        amount_fen: b.bill.amount_fen,
        paid_fen: b.paid_fen,
        due_date: b.bill.due_date,
    }
}

fn ticket(t: crate::domain::Ticket, c: Option<crate::domain::Callback>) -> Ticket {
    Ticket {
        // Plugins see the desk's ticket number: it is what staff and owners quote.
        id: t.no,
        household: t.household.unwrap_or_default(),
        kind: t.kind.as_str().to_string(),
        opened_at: t.opened_at,
        closed_at: t.closed_at,
        assignee: t.assignee.or(Some(t.first_receiver)),
        callback: c.map(|c| Callback {
            done_at: c.done_at,
            by: c.done_by,
            satisfied: c.satisfied,
            score: c.score,
        }),
    }
}

impl CommunityData for CommunityView {
    fn id(&self) -> &str {
        &self.community.id
    }

    fn name(&self) -> String {
        self.community.name.clone()
    }

    fn timezone(&self) -> String {
        self.community.tz.name().to_string()
    }

    fn households(&self) -> anyhow::Result<Vec<Household>> {
        let (households, owners) = self.read(|d| Ok((d.households()?, d.owners()?)))?;
        Ok(with_owners(households, owners, None))
    }

    fn household(&self, id: &str) -> anyhow::Result<Option<Household>> {
        self.read(|d| {
            let Some(h) = d.household(id)? else {
                return Ok(None);
            };
            let owners = d.household_recipients(id)?;
            Ok(Some(Household {
                owners: owners.iter().map(|o| o.id.to_string()).collect(),
                unit: unit_label(&h),
                id: h.id,
                building: h.building,
            }))
        })
    }

    fn owners(&self, household: &str) -> anyhow::Result<Vec<Owner>> {
        Ok(self
            .read(|d| d.household_recipients(household))?
            .into_iter()
            .map(owner)
            .collect())
    }

    fn owner(&self, id: &str) -> anyhow::Result<Option<Owner>> {
        let Ok(id) = id.parse::<i64>() else {
            return Ok(None);
        };
        Ok(self.read(|d| d.owner(id))?.map(owner))
    }

    fn unpaid_bills(&self) -> anyhow::Result<Vec<Bill>> {
        Ok(self
            .read(|d| d.unpaid_bills())?
            .into_iter()
            .map(bill)
            .collect())
    }

    fn bills(&self, household: &str) -> anyhow::Result<Vec<Bill>> {
        Ok(self
            .read(|d| d.bills_of(household))?
            .into_iter()
            .map(bill)
            .collect())
    }

    fn balances(&self) -> anyhow::Result<Vec<Balance>> {
        Ok(self
            .read(|d| d.balances())?
            .into_iter()
            .map(|b| Balance {
                household: b.household,
                utility: b.utility.as_str().to_string(),
                balance_fen: b.balance_fen,
                threshold_fen: b.threshold_fen,
            })
            .collect())
    }

    fn tickets(&self, since: DateTime<Utc>) -> anyhow::Result<Vec<Ticket>> {
        Ok(self
            .read(|d| d.tickets_since(since))?
            .into_iter()
            .map(|(t, c)| ticket(t, c))
            .collect())
    }

    fn ticket(&self, id: &str) -> anyhow::Result<Option<Ticket>> {
        self.read(|d| {
            let Some(t) = d.ticket_by_no(id)? else {
                return Ok(None);
            };
            let c = d.latest_callback(t.id)?;
            Ok(Some(ticket(t, c)))
        })
    }

    fn surveys(&self) -> anyhow::Result<Vec<Survey>> {
        self.read(|d| {
            d.campaigns()?
                .into_iter()
                .map(|c| {
                    let invited = d
                        .invitations(c.id)?
                        .into_iter()
                        .map(|i| i.household)
                        .collect();
                    Ok(Survey {
                        id: c.key,
                        opens_at: c.opens_at,
                        closes_at: c.closes_at,
                        invited,
                    })
                })
                .collect()
        })
    }

    fn survey_answers(&self, survey: &str) -> anyhow::Result<Vec<SurveyAnswer>> {
        self.read(|d| {
            let Some(c) = d.campaign(survey)? else {
                return Ok(Vec::new());
            };
            let mut answers = Vec::new();
            for r in d.responses(c.id)? {
                for area in crate::domain::ServiceArea::ALL {
                    if let Some(score) = r.scores.get(area) {
                        answers.push(SurveyAnswer {
                            survey: survey.to_string(),
                            household: r.household.clone(),
                            area: area.as_str().to_string(),
                            score,
                            comment: r.comment.clone(),
                        });
                    }
                }
            }
            Ok(answers)
        })
    }

    fn events(&self) -> anyhow::Result<Vec<Event>> {
        let tz = self.community.tz;
        self.read(|d| {
            d.events()?
                .into_iter()
                .map(|e| {
                    // 0 attendees is a withdrawn RSVP: no reminder the day before.
                    let rsvps = d
                        .rsvps(e.id)?
                        .into_iter()
                        .filter(|r| r.attendees > 0)
                        .map(|r| r.household)
                        .collect();
                    // An event recorded with a day only starts, for plugins, at local midnight.
                    let starts_at = e.starts_at.unwrap_or_else(|| {
                        e.planned_for
                            .and_hms_opt(0, 0, 0)
                            .and_then(|t| t.and_local_timezone(tz).earliest())
                            .map(|t| t.with_timezone(&Utc))
                            .unwrap_or_default()
                    });
                    Ok(Event {
                        id: e.key,
                        title: e.title,
                        starts_at,
                        rsvps,
                        summary_done: e.summary.is_some(),
                    })
                })
                .collect()
        })
    }

    fn is_workday(&self, date: NaiveDate) -> Option<bool> {
        self.community.calendar.as_ref().map(|c| c.is_workday(date))
    }

    fn unpaid_bills_due_by(&self, date: NaiveDate) -> anyhow::Result<Vec<Bill>> {
        Ok(self
            .read(|d| d.unpaid_bills_due_by(date))?
            .into_iter()
            .map(bill)
            .collect())
    }

    fn tickets_awaiting_callback(&self, since: DateTime<Utc>) -> anyhow::Result<Vec<Ticket>> {
        Ok(self
            .read(|d| d.tickets_awaiting_callback(since))?
            .into_iter()
            .map(|(t, c)| ticket(t, c))
            .collect())
    }

    fn households_by_id(&self, ids: &[String]) -> anyhow::Result<Vec<Household>> {
        let (households, owners) = self.read(|d| d.households_by_id(ids))?;
        Ok(with_owners(households, owners, Some(ids)))
    }
}

/// Households as plugins see them, each with its owners' ids (owners come by household, then
/// id), in the order of `order` when given (unknown ids left out), else as they came.
fn with_owners(
    households: Vec<crate::domain::Household>,
    owners: Vec<crate::domain::Owner>,
    order: Option<&[String]>,
) -> Vec<Household> {
    // Grouped once: matching each household against every owner was quadratic, 10^10
    // comparisons at 100,000 households.
    let mut by_household: HashMap<String, Vec<String>> = HashMap::new();
    for o in owners {
        by_household
            .entry(o.household)
            .or_default()
            .push(o.id.to_string());
    }
    let mut out: Vec<Household> = households
        .into_iter()
        .map(|h| Household {
            owners: by_household.remove(&h.id).unwrap_or_default(),
            unit: unit_label(&h),
            id: h.id,
            building: h.building,
        })
        .collect();
    if let Some(order) = order {
        let mut by_id: HashMap<String, Household> =
            out.drain(..).map(|h| (h.id.clone(), h)).collect();
        out = order.iter().filter_map(|id| by_id.remove(id)).collect();
    }
    out
}

/// The unit as owners write their address after the building: 单元 and room (`2单元301`), which
/// plugins show as `3栋2单元301`.
fn unit_label(h: &crate::domain::Household) -> String {
    format!("{}单元{}", h.unit, h.room)
}

fn owner(o: crate::domain::Owner) -> Owner {
    Owner {
        id: o.id.to_string(),
        household: o.household,
        name: o.name,
        language: o.language.as_str().to_string(),
        // Opt-outs live with delivery, which applies them per channel when it queues; a plugin
        // needs no copy to decide.
        opted_out: false,
    }
}
