//! 收费报告: what was billed in the period (bills due in it) against what had been collected on
//! those bills by the period's end (or today, if the period is still running), per fee type;
//! the money received in the period whatever it paid for; households in arrears aged by their
//! oldest unpaid bill (0–30, 31–60, 61–90, >90 days past due); and prepaid utility balances
//! below their warning threshold. All sums are integer fen, printed as yuan.

use std::collections::BTreeMap;

use chrono::NaiveDate;

use crate::domain::{Language, Utility, UtilityBalance};
use crate::store::report::{FeeTally, OverdueBill};

use super::html::{self, Page, Series};
use super::text::{Align, Table, heading};
use super::{Period, Ratio, yuan};

/// A fee type as printed: the known ones by name, any other as the billing system wrote it.
pub fn fee_label(t: &str, lang: Language) -> String {
    match t {
        "property" => lang.pick("物业费", "Property fee").to_string(),
        "parking" => lang.pick("停车费", "Parking fee").to_string(),
        other => other.to_string(),
    }
}

/// Aging buckets by days past due.
pub fn buckets(lang: Language) -> [&'static str; 4] {
    match lang {
        Language::ZhCn => ["0–30 天", "31–60 天", "61–90 天", "90 天以上"],
        Language::En => ["0–30 days", "31–60 days", "61–90 days", "over 90 days"],
    }
}

/// Index into [`buckets`] for a bill `days` past due.
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
    /// The language of every label (the community's locale; `compute` gives zh-CN).
    pub lang: Language,
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
        lang: Language::ZhCn,
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
        match self.lang {
            Language::ZhCn => format!("{} 收费报告", self.community_name),
            Language::En => format!("{}: fee collection report", self.community_name),
        }
    }

    fn meta(&self) -> String {
        match self.lang {
            Language::ZhCn => format!("期间：{}；截至 {} 日终", self.period.describe(), self.as_of),
            Language::En => format!(
                "Period: {}; as of the end of {}",
                self.period.describe(),
                self.as_of
            ),
        }
    }

    fn no_bills(&self) -> String {
        match self.lang {
            Language::ZhCn => format!("本期（{}）没有到期账单", self.period),
            Language::En => format!("No bill due in {}", self.period),
        }
    }

    fn billed_heading(&self) -> &'static str {
        self.lang.pick(
            "应收与实收（本期到期的账单）",
            "Billed and collected (bills due in the period)",
        )
    }

    fn rate_line(&self) -> String {
        format!(
            "{}{}",
            self.lang.pick("收缴率：", "Collection rate: "),
            self.collection_rate().percent()
        )
    }

    fn billed_table(&self) -> Table {
        let l = self.lang;
        let mut t = Table::new(&[
            (l.pick("费用", "Fee type"), Align::Left),
            (l.pick("账单", "Bills"), Align::Right),
            (l.pick("应收", "Billed"), Align::Right),
            (l.pick("已收", "Collected"), Align::Right),
            (l.pick("未收", "Outstanding"), Align::Right),
            (l.pick("收缴率", "Rate"), Align::Right),
            (l.pick("本期实收", "Received in period"), Align::Right),
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
                fee_label(ty, l),
                bills.to_string(),
                yuan(billed),
                yuan(collected),
                yuan(billed - collected),
                Ratio::new(collected, billed).percent(),
                yuan(rec),
            ]);
        }
        t.row(vec![
            html::total(l).into(),
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
        let l = self.lang;
        let mut t = Table::new(&[
            (l.pick("逾期", "Past due"), Align::Left),
            (l.pick("户数", "Households"), Align::Right),
            (l.pick("账单", "Bills"), Align::Right),
            (l.pick("欠费", "Owed"), Align::Right),
        ]);
        for (name, b) in buckets(l).iter().zip(&self.buckets) {
            t.row(vec![
                name.to_string(),
                b.households.to_string(),
                b.bills.to_string(),
                yuan(b.outstanding_fen),
            ]);
        }
        t.row(vec![
            html::total(l).into(),
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
        let l = self.lang;
        let mut t = Table::new(&[
            (l.pick("户", "Household"), Align::Left),
            (l.pick("账单", "Bills"), Align::Right),
            (l.pick("欠费", "Owed"), Align::Right),
            (l.pick("最早到期", "Oldest due"), Align::Left),
            (l.pick("逾期天数", "Days"), Align::Right),
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
        let l = self.lang;
        let mut t = Table::new(&[
            (l.pick("户", "Household"), Align::Left),
            (l.pick("类别", "Utility"), Align::Left),
            (l.pick("余额", "Balance"), Align::Right),
            (l.pick("提醒线", "Threshold"), Align::Right),
        ]);
        for b in &self.low_balances {
            t.row(vec![
                b.household.clone(),
                match b.utility {
                    Utility::Water => l.pick("水", "Water").into(),
                    Utility::Electricity => l.pick("电", "Electricity").into(),
                },
                yuan(b.balance_fen),
                yuan(b.threshold_fen),
            ]);
        }
        t
    }

    fn balance_heading(&self) -> String {
        let n = self.low_balances.len();
        match self.lang {
            Language::ZhCn => format!("预付费余额低于提醒线（最新读数）：{n} 项"),
            Language::En => {
                format!("Prepaid balances below their threshold (latest readings): {n}")
            }
        }
    }

    fn arrears_heading(&self) -> String {
        let n = self.arrears.len();
        match self.lang {
            Language::ZhCn => format!("欠费户（截至 {}）：{n} 户", self.as_of),
            Language::En => format!("Households in arrears at {}: {n}", self.as_of),
        }
    }

    pub fn to_text(&self) -> String {
        let mut s = heading(&self.title());
        s.push_str(&self.meta());
        s.push_str("\n\n");
        s.push_str(self.billed_heading());
        s.push('\n');
        if self.billed.is_empty() {
            s.push_str(&self.no_bills());
            s.push('\n');
        }
        s.push_str(&self.billed_table().render());
        s.push_str(&self.rate_line());
        s.push('\n');
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
        let l = self.lang;
        let mut p = Page::new(&self.title(), &self.meta(), l);
        p.h2(self.billed_heading());
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
                        fee_label(&t.fee_type, l),
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
                l.pick("各类费用应收与已收", "Billed and collected per fee type"),
                &groups,
                &[
                    Series {
                        name: l.pick("应收", "Billed"),
                        color: "#a0aec0",
                    },
                    Series {
                        name: l.pick("已收", "Collected"),
                        color: "#2b6cb0",
                    },
                ],
                &values,
                max,
                &yuan,
                l,
            ));
        }
        p.table(&self.billed_table());
        p.p(&self.rate_line());
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
        assert!(text.contains("收缴率：42.9%\n"), "{text}");
        assert!(text.contains("¥1,234.50"), "{text}");
        assert_eq!(f.to_html().matches("<rect class=\"bar\"").count(), 4);
    }

    #[test]
    fn each_language_prints_labels_in_that_language_only() {
        use crate::report::wording::{cjk, latin_words, visible};
        let billed = vec![
            FeeTally {
                fee_type: "property".into(),
                bills: 2,
                billed_fen: 44000,
                collected_fen: 22000,
                paid_bills: 1,
            },
            // A fee type the billing system named itself: printed as it wrote it.
            FeeTally {
                fee_type: "装修押金".into(),
                bills: 1,
                billed_fen: 100000,
                collected_fen: 0,
                paid_bills: 0,
            },
        ];
        let low = vec![UtilityBalance {
            community: "shuipan".into(),
            household: "1-1-101".into(),
            utility: Utility::Water,
            balance_fen: 1500,
            threshold_fen: 2000,
            as_of: chrono::Utc::now(),
        }];
        let data = ["水畔花园", "装修押金", "2026Q3"];
        let cases = [
            (
                billed,
                vec![unpaid("1-1-201", "2026-06-15", 22050, 50)],
                low,
            ),
            (vec![], vec![], vec![]),
        ];
        for (billed, unpaid, low) in cases {
            let mut f = compute(
                "水畔花园",
                "2026Q3".parse().unwrap(),
                d("2026-09-30"),
                billed,
                vec![("parking".into(), 45000)],
                &unpaid,
                low,
            );
            for page in [f.to_text(), visible(&f.to_html())] {
                assert_eq!(latin_words(&page, &data), Vec::<String>::new(), "{page}");
            }
            f.lang = Language::En;
            for page in [f.to_text(), visible(&f.to_html())] {
                assert_eq!(cjk(&page, &data), "", "{page}");
            }
        }
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
        assert!(t.contains("本期（2025Q1）没有到期账单\n"), "{t}");
        assert!(t.contains("收缴率：—\n"), "{t}");
    }
}
