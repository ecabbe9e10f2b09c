//! 收费报告: what was billed in the period (bills due in it) against what had been collected on
//! those bills by the period's end (or today, if the period is still running), per fee type;
//! the money received in the period whatever it paid for; households in arrears aged by their
//! oldest unpaid bill (0–30, 31–60, 61–90, >90 days past due); and prepaid utility balances
//! below their warning threshold. All sums are integer fen, printed as yuan.

use std::collections::BTreeMap;

use chrono::NaiveDate;

use crate::domain::{Utility, UtilityBalance};
use crate::store::report::{FeeTally, OverdueBill};

use super::html::{self, Page, Series};
use super::text::{Align, Table, heading};
use super::{Period, Ratio, yuan};

/// A fee type as printed: the known ones in Chinese with the stored name.
pub fn fee_label(t: &str) -> String {
    match t {
        "property" => "物业费 (property)".to_string(),
        "parking" => "停车费 (parking)".to_string(),
        other => other.to_string(),
    }
}

/// Aging buckets by days past due.
pub const BUCKETS: [&str; 4] = [
    "0–30 天 (days)",
    "31–60 天 (days)",
    "61–90 天 (days)",
    ">90 天 (days)",
];

/// Index into [`BUCKETS`] for a bill `days` past due.
pub fn bucket(days: i64) -> usize {
    match days {
        ..=30 => 0,
        31..=60 => 1,
        61..=90 => 2,
        _ => 3,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrears {
    pub household: String,
    pub bills: i64,
    pub outstanding_fen: i64,
    pub oldest_due: NaiveDate,
    pub days: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BucketTotal {
    /// Households whose oldest unpaid bill is in this bucket.
    pub households: i64,
    /// Bills in this bucket (of any household) and what they still owe.
    pub bills: i64,
    pub outstanding_fen: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fees {
    pub community_name: String,
    pub period: Period,
    /// The day arrears are aged at and collections counted to (inclusive).
    pub as_of: NaiveDate,
    pub billed: Vec<FeeTally>,
    pub received: Vec<(String, i64)>,
    pub buckets: [BucketTotal; 4],
    pub arrears: Vec<Arrears>,
    pub low_balances: Vec<UtilityBalance>,
}

/// Figures of the period. `unpaid` are the bills due before `as_of` still unpaid at its end.
pub fn compute(
    community_name: &str,
    period: Period,
    as_of: NaiveDate,
    billed: Vec<FeeTally>,
    received: Vec<(String, i64)>,
    unpaid: &[OverdueBill],
    low_balances: Vec<UtilityBalance>,
) -> Fees {
    let mut buckets = [BucketTotal::default(); 4];
    let mut by_household: BTreeMap<&str, Arrears> = BTreeMap::new();
    for u in unpaid {
        let days = (as_of - u.due_date).num_days();
        if days <= 0 || u.outstanding_fen <= 0 {
            continue; // not past due at the reference day
        }
        let b = &mut buckets[bucket(days)];
        b.bills += 1;
        b.outstanding_fen += u.outstanding_fen;
        let a = by_household
            .entry(u.household.as_str())
            .or_insert_with(|| Arrears {
                household: u.household.clone(),
                bills: 0,
                outstanding_fen: 0,
                oldest_due: u.due_date,
                days,
            });
        a.bills += 1;
        a.outstanding_fen += u.outstanding_fen;
        if u.due_date < a.oldest_due {
            a.oldest_due = u.due_date;
            a.days = days;
        }
    }
    let mut arrears: Vec<Arrears> = by_household.into_values().collect();
    for a in &arrears {
        buckets[bucket(a.days)].households += 1;
    }
    arrears.sort_by(|a, b| b.days.cmp(&a.days).then(a.household.cmp(&b.household)));
    Fees {
        community_name: community_name.to_string(),
        period,
        as_of,
        billed,
        received,
        buckets,
        arrears,
        low_balances,
    }
}

impl Fees {
    pub fn billed_fen(&self) -> i64 {
        self.billed.iter().map(|t| t.billed_fen).sum()
    }
    pub fn collected_fen(&self) -> i64 {
        self.billed.iter().map(|t| t.collected_fen).sum()
    }
    /// Collection rate: collected over billed, in money.
    pub fn collection_rate(&self) -> Ratio {
        Ratio::new(self.collected_fen(), self.billed_fen())
    }

    fn title(&self) -> String {
        format!("{} 收费报告 (fee collection report)", self.community_name)
    }

    fn meta(&self) -> String {
        format!(
            "期间 (period): {}; 截至 (as of): {} 日终 (end of day)",
            self.period.describe(),
            self.as_of
        )
    }

    fn no_bills(&self) -> String {
        format!("本期没有到期账单 (no bill due in {})", self.period)
    }

    fn billed_table(&self) -> Table {
        let mut t = Table::new(&[
            ("费用 (fee type)", Align::Left),
            ("账单 (bills)", Align::Right),
            ("应收 (billed)", Align::Right),
            ("已收 (collected)", Align::Right),
            ("未收 (outstanding)", Align::Right),
            ("收缴率 (rate)", Align::Right),
            ("本期实收 (received in period)", Align::Right),
        ]);
        let received: BTreeMap<&str, i64> = self
            .received
            .iter()
            .map(|(k, v)| (k.as_str(), *v))
            .collect();
        let mut types: Vec<&str> = self.billed.iter().map(|t| t.fee_type.as_str()).collect();
        for k in received.keys() {
            if !types.contains(k) {
                types.push(k);
            }
        }
        types.sort();
        let mut total_received = 0;
        for ty in &types {
            let f = self.billed.iter().find(|t| t.fee_type == *ty);
            let (bills, billed, collected) =
                f.map_or((0, 0, 0), |f| (f.bills, f.billed_fen, f.collected_fen));
            let rec = received.get(ty).copied().unwrap_or(0);
            total_received += rec;
            t.row(vec![
                fee_label(ty),
                bills.to_string(),
                yuan(billed),
                yuan(collected),
                yuan(billed - collected),
                Ratio::new(collected, billed).percent(),
                yuan(rec),
            ]);
        }
        t.row(vec![
            "合计 (total)".into(),
            self.billed.iter().map(|t| t.bills).sum::<i64>().to_string(),
            yuan(self.billed_fen()),
            yuan(self.collected_fen()),
            yuan(self.billed_fen() - self.collected_fen()),
            self.collection_rate().percent(),
            yuan(total_received),
        ]);
        t
    }

    fn bucket_table(&self) -> Table {
        let mut t = Table::new(&[
            ("逾期 (past due)", Align::Left),
            ("户数 (households)", Align::Right),
            ("账单 (bills)", Align::Right),
            ("欠费 (owed)", Align::Right),
        ]);
        for (name, b) in BUCKETS.iter().zip(&self.buckets) {
            t.row(vec![
                name.to_string(),
                b.households.to_string(),
                b.bills.to_string(),
                yuan(b.outstanding_fen),
            ]);
        }
        t.row(vec![
            "合计 (total)".into(),
            self.arrears.len().to_string(),
            self.buckets
                .iter()
                .map(|b| b.bills)
                .sum::<i64>()
                .to_string(),
            yuan(self.buckets.iter().map(|b| b.outstanding_fen).sum()),
        ]);
        t
    }

    fn arrears_table(&self) -> Table {
        let mut t = Table::new(&[
            ("户 (household)", Align::Left),
            ("账单 (bills)", Align::Right),
            ("欠费 (owed)", Align::Right),
            ("最早到期 (oldest due)", Align::Left),
            ("逾期天数 (days)", Align::Right),
        ]);
        for a in &self.arrears {
            t.row(vec![
                a.household.clone(),
                a.bills.to_string(),
                yuan(a.outstanding_fen),
                a.oldest_due.to_string(),
                a.days.to_string(),
            ]);
        }
        t
    }

    fn balance_table(&self) -> Table {
        let mut t = Table::new(&[
            ("户 (household)", Align::Left),
            ("类别 (utility)", Align::Left),
            ("余额 (balance)", Align::Right),
            ("提醒线 (threshold)", Align::Right),
        ]);
        for b in &self.low_balances {
            t.row(vec![
                b.household.clone(),
                match b.utility {
                    Utility::Water => "水 (water)".into(),
                    Utility::Electricity => "电 (electricity)".into(),
                },
                yuan(b.balance_fen),
                yuan(b.threshold_fen),
            ]);
        }
        t
    }

    fn balance_heading(&self) -> String {
        format!(
            "预付费余额低于提醒线 (prepaid balances below threshold, latest readings): {}",
            self.low_balances.len()
        )
    }

    fn arrears_heading(&self) -> String {
        format!(
            "欠费户 (households in arrears at {}): {}",
            self.as_of,
            self.arrears.len()
        )
    }

    pub fn to_text(&self) -> String {
        let mut s = heading(&self.title());
        s.push_str(&self.meta());
        s.push_str("\n\n");
        s.push_str("应收与实收 (billed and collected, bills due in the period)\n");
        if self.billed.is_empty() {
            s.push_str(&self.no_bills());
            s.push('\n');
        }
        s.push_str(&self.billed_table().render());
        s.push_str(&format!(
            "收缴率 (collection rate): {}\n",
            self.collection_rate().percent()
        ));
        s.push_str(&format!("\n{}\n", self.arrears_heading()));
        s.push_str(&self.bucket_table().render());
        if !self.arrears.is_empty() {
            s.push('\n');
            s.push_str(&self.arrears_table().render());
        }
        s.push_str(&format!("\n{}\n", self.balance_heading()));
        if !self.low_balances.is_empty() {
            s.push_str(&self.balance_table().render());
        }
        s
    }

    pub fn to_html(&self) -> String {
        let mut p = Page::new(&self.title(), &self.meta());
        p.h2("应收与实收 (billed and collected, bills due in the period)");
        if self.billed.is_empty() {
            p.note(&self.no_bills());
        } else {
            // The collection rate rides on the label, so the chart alone tells the story.
            let groups: Vec<String> = self
                .billed
                .iter()
                .map(|t| {
                    format!(
                        "{} {}",
                        fee_label(&t.fee_type),
                        Ratio::new(t.collected_fen, t.billed_fen).percent()
                    )
                })
                .collect();
            let values: Vec<Vec<Option<i64>>> = self
                .billed
                .iter()
                .map(|t| vec![Some(t.billed_fen), Some(t.collected_fen)])
                .collect();
            let max = self.billed.iter().map(|t| t.billed_fen).max().unwrap_or(1);
            p.chart(&html::bar_chart(
                "各类费用应收与已收 (billed vs collected per fee type)",
                &groups,
                &[
                    Series {
                        name: "应收 (billed)",
                        color: "#a0aec0",
                    },
                    Series {
                        name: "已收 (collected)",
                        color: "#2b6cb0",
                    },
                ],
                &values,
                max,
                &yuan,
            ));
        }
        p.table(&self.billed_table());
        p.p(&format!(
            "收缴率 (collection rate): {}",
            self.collection_rate().percent()
        ));
        p.h2(&self.arrears_heading());
        p.table(&self.bucket_table());
        if !self.arrears.is_empty() {
            p.table(&self.arrears_table());
        }
        p.h2(&self.balance_heading());
        if !self.low_balances.is_empty() {
            p.table(&self.balance_table());
        }
        p.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn unpaid(h: &str, due: &str, amount: i64, paid: i64) -> OverdueBill {
        OverdueBill {
            household: h.into(),
            due_date: d(due),
            outstanding_fen: amount - paid,
        }
    }

    #[test]
    fn arrears_are_aged_by_the_oldest_bill_and_money_sums_in_fen() {
        let as_of = d("2026-09-30");
        let bills = [
            unpaid("1-1-101", "2026-09-15", 22000, 0),  // 15 days
            unpaid("1-1-101", "2026-08-15", 22000, 0),  // 46 days
            unpaid("1-1-102", "2026-09-30", 22000, 0),  // due today: not past due
            unpaid("1-1-201", "2026-06-15", 22050, 50), // 107 days, ¥220.00 owed
            unpaid("1-1-202", "2026-07-01", 45000, 0),  // 91 days
            unpaid("1-1-301", "2026-07-02", 45000, 0),  // 90 days
        ];
        let billed = vec![
            FeeTally {
                fee_type: "parking".into(),
                bills: 2,
                billed_fen: 90000,
                collected_fen: 45000,
                paid_bills: 1,
            },
            FeeTally {
                fee_type: "property".into(),
                bills: 3,
                billed_fen: 66000,
                collected_fen: 22001,
                paid_bills: 1,
            },
        ];
        let f = compute(
            "水畔花园",
            "2026Q3".parse().unwrap(),
            as_of,
            billed,
            vec![("property".into(), 123450)],
            &bills,
            vec![],
        );
        assert_eq!(f.collection_rate().percent(), "42.9%"); // 67001 / 156000 = 42.949…
        assert_eq!(yuan(f.billed_fen() - f.collected_fen()), "¥889.99");
        let b: Vec<(i64, i64, i64)> = f
            .buckets
            .iter()
            .map(|b| (b.households, b.bills, b.outstanding_fen))
            .collect();
        assert_eq!(
            b,
            [(0, 1, 22000), (1, 1, 22000), (1, 1, 45000), (2, 2, 67000)]
        );
        assert_eq!(
            f.arrears
                .iter()
                .map(|a| (a.household.as_str(), a.days))
                .collect::<Vec<_>>(),
            [
                ("1-1-201", 107),
                ("1-1-202", 91),
                ("1-1-301", 90),
                ("1-1-101", 46)
            ]
        );
        let text = f.to_text();
        assert!(text.contains("收缴率 (collection rate): 42.9%\n"), "{text}");
        assert!(text.contains("¥1,234.50"), "{text}");
        assert_eq!(f.to_html().matches("<rect class=\"bar\"").count(), 4);
    }

    #[test]
    fn no_bills_in_the_period_is_said_not_divided() {
        let f = compute(
            "水畔花园",
            "2025Q1".parse().unwrap(),
            d("2025-03-31"),
            vec![],
            vec![],
            &[],
            vec![],
        );
        assert_eq!(f.collection_rate().percent(), "—");
        let t = f.to_text();
        assert!(
            t.contains("本期没有到期账单 (no bill due in 2025Q1)\n"),
            "{t}"
        );
        assert!(t.contains("收缴率 (collection rate): —\n"), "{t}");
    }
}
