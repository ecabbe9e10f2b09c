//! 满意度报告: the quarterly owner survey's figures. Response rate is answered households over
//! invited households; the satisfaction rate (满意率) of a service area is the share of its
//! scores that are 4 or 5 among the households that scored it ("no opinion" is not a vote);
//! each area is compared with the previous period in percentage points. Scores of 2 or less are
//! listed with their comments by household unit only: the report is passed around the office,
//! so it carries no owner names or phone numbers.

use crate::domain::{Language, ServiceArea};
use crate::store::report::{CampaignTally, ResponseRow};

use super::html::{self, Page, Series};
use super::text::{Align, Table, heading};
use super::{Period, Ratio, fmt_delta, fmt_mean};

/// Figures of one area in one period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AreaFigures {
    /// Scores given (households with an opinion).
    pub answers: i64,
    /// Scores ≥ 4.
    pub satisfied: i64,
    pub sum: i64,
}

impl AreaFigures {
    pub fn rate(&self) -> Ratio {
        Ratio::new(self.satisfied, self.answers)
    }
}

/// One answer with low scores: the household, each area it scored ≤ 2, and its comment
/// (printed once, however many areas it concerns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LowScore {
    pub campaign: String,
    pub household: String,
    pub scores: Vec<(ServiceArea, u8)>,
    pub comment: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Satisfaction {
    pub community_name: String,
    pub period: Period,
    pub campaigns: Vec<CampaignTally>,
    pub previous_campaigns: usize,
    pub areas: [AreaFigures; 5],
    pub previous: [AreaFigures; 5],
    pub low: Vec<LowScore>,
    /// The language of every label (the community's locale; `compute` gives zh-CN).
    pub lang: Language,
}

fn tally(responses: &[ResponseRow]) -> [AreaFigures; 5] {
    let mut out = [AreaFigures::default(); 5];
    for r in responses {
        for (f, s) in out.iter_mut().zip(r.scores) {
            if let Some(s) = s {
                f.answers += 1;
                f.sum += i64::from(s);
                if s >= 4 {
                    f.satisfied += 1;
                }
            }
        }
    }
    out
}

/// Turns the period's (and the previous period's) campaigns and responses into figures.
pub fn compute(
    community_name: &str,
    period: Period,
    campaigns: Vec<CampaignTally>,
    responses: &[ResponseRow],
    previous_campaigns: usize,
    previous_responses: &[ResponseRow],
) -> Satisfaction {
    let mut low = Vec::new();
    for r in responses {
        let scores: Vec<(ServiceArea, u8)> = ServiceArea::ALL
            .into_iter()
            .zip(r.scores)
            .filter_map(|(a, s)| s.filter(|s| *s <= 2).map(|s| (a, s)))
            .collect();
        if !scores.is_empty() {
            low.push(LowScore {
                campaign: r.campaign.clone(),
                household: r.household.clone(),
                scores,
                comment: r.comment.clone(),
            });
        }
    }
    Satisfaction {
        community_name: community_name.to_string(),
        period,
        campaigns,
        previous_campaigns,
        areas: tally(responses),
        previous: tally(previous_responses),
        low,
        lang: Language::ZhCn,
    }
}

impl Satisfaction {
    pub fn invited(&self) -> i64 {
        self.campaigns.iter().map(|c| c.invited).sum()
    }
    pub fn answered(&self) -> i64 {
        self.campaigns.iter().map(|c| c.answered).sum()
    }
    pub fn response_rate(&self) -> Ratio {
        Ratio::new(self.answered(), self.invited())
    }

    fn title(&self) -> String {
        match self.lang {
            Language::ZhCn => format!("{} 业主满意度报告", self.community_name),
            Language::En => format!("{}: owner satisfaction report", self.community_name),
        }
    }

    fn meta(&self) -> String {
        format!(
            "{}{}",
            self.lang.pick("期间：", "Period: "),
            self.period.describe()
        )
    }

    fn no_campaign(&self) -> String {
        match self.lang {
            Language::ZhCn => format!("本期（{}）没有满意度调查", self.period.describe()),
            Language::En => format!("No survey campaign opened in {}", self.period.describe()),
        }
    }

    fn campaign_table(&self) -> Table {
        let l = self.lang;
        let mut t = Table::new(&[
            (l.pick("调查", "Campaign"), Align::Left),
            (l.pick("邀请户数", "Invited"), Align::Right),
            (l.pick("答卷户数", "Answered"), Align::Right),
            (l.pick("回复率", "Response rate"), Align::Right),
        ]);
        for c in &self.campaigns {
            t.row(vec![
                c.key.clone(),
                c.invited.to_string(),
                c.answered.to_string(),
                Ratio::new(c.answered, c.invited).percent(),
            ]);
        }
        if self.campaigns.len() > 1 {
            t.row(vec![
                html::total(l).into(),
                self.invited().to_string(),
                self.answered().to_string(),
                self.response_rate().percent(),
            ]);
        }
        t
    }

    fn area_table(&self) -> Table {
        let l = self.lang;
        let prev = match l {
            Language::ZhCn => format!("上期（{}）", self.period.previous()),
            Language::En => format!("Previous ({})", self.period.previous()),
        };
        let mut t = Table::new(&[
            (l.pick("服务", "Area"), Align::Left),
            (l.pick("评分户数", "Scored"), Align::Right),
            (l.pick("满意（≥4）", "Satisfied (≥4)"), Align::Right),
            (l.pick("满意率", "Satisfaction"), Align::Right),
            (l.pick("平均分", "Mean"), Align::Right),
            (&prev, Align::Right),
            (l.pick("变化", "Change"), Align::Right),
        ]);
        for (i, a) in ServiceArea::ALL.into_iter().enumerate() {
            let f = self.areas[i];
            let p = self.previous[i];
            t.row(vec![
                a.label(l).into(),
                f.answers.to_string(),
                f.satisfied.to_string(),
                f.rate().percent(),
                fmt_mean(f.sum, f.answers),
                p.rate().percent(),
                fmt_delta(f.rate().delta_pp(&p.rate()), l),
            ]);
        }
        t
    }

    fn low_table(&self) -> Table {
        let l = self.lang;
        let several = self.campaigns.len() > 1;
        let mut cols = vec![(l.pick("户", "Household"), Align::Left)];
        if several {
            cols.push((l.pick("调查", "Campaign"), Align::Left));
        }
        cols.extend([
            (l.pick("低分项", "Low scores"), Align::Left),
            (l.pick("意见", "Comment"), Align::Left),
        ]);
        let mut t = Table::new(&cols);
        for low in &self.low {
            let mut row = vec![low.household.clone()];
            if several {
                row.push(low.campaign.clone());
            }
            row.push(
                low.scores
                    .iter()
                    .map(|(a, s)| format!("{} {s}", a.label(l)))
                    .collect::<Vec<_>>()
                    .join(l.pick("，", ", ")),
            );
            row.push(if low.comment.is_empty() {
                "—".into()
            } else {
                one_line(&low.comment)
            });
            t.row(row);
        }
        t
    }

    fn low_heading(&self) -> String {
        let scores: usize = self.low.iter().map(|l| l.scores.len()).sum();
        let answers = self.low.len();
        match self.lang {
            Language::ZhCn => format!("低分（≤2 分）：{scores} 项，{answers} 户次"),
            Language::En => {
                format!("Low scores (≤ 2): {scores} scores in {answers} answers")
            }
        }
    }

    fn previous_note(&self) -> Option<String> {
        let prev = self.period.previous();
        (self.previous_campaigns == 0).then(|| match self.lang {
            Language::ZhCn => format!("上期（{prev}）没有满意度调查，无法比较"),
            Language::En => {
                format!("No survey campaign in {prev}: nothing to compare with")
            }
        })
    }

    fn campaigns_heading(&self) -> &'static str {
        self.lang
            .pick("调查与回复率", "Campaigns and response rate")
    }

    pub fn to_text(&self) -> String {
        let l = self.lang;
        let mut s = heading(&self.title());
        s.push_str(&self.meta());
        s.push_str("\n\n");
        if self.campaigns.is_empty() {
            s.push_str(&self.no_campaign());
            s.push('\n');
            return s;
        }
        s.push_str(self.campaigns_heading());
        s.push('\n');
        s.push_str(&self.campaign_table().render());
        s.push('\n');
        s.push_str(l.pick(
            "各项服务满意率（4 分及以上为满意）",
            "Satisfaction per service area (share of scores ≥ 4)",
        ));
        s.push('\n');
        s.push_str(&self.area_table().render());
        if let Some(n) = self.previous_note() {
            s.push_str(&n);
            s.push('\n');
        }
        s.push_str(&format!("\n{}\n", self.low_heading()));
        if !self.low.is_empty() {
            s.push_str(&self.low_table().render());
        }
        s
    }

    pub fn to_html(&self) -> String {
        let l = self.lang;
        let mut p = Page::new(&self.title(), &self.meta(), l);
        if self.campaigns.is_empty() {
            p.note(&self.no_campaign());
            return p.finish();
        }
        p.h2(self.campaigns_heading());
        p.table(&self.campaign_table());
        p.h2(l.pick("各项服务满意率", "Satisfaction per service area"));
        let groups: Vec<String> = ServiceArea::ALL
            .into_iter()
            .map(|a| a.label(l).to_string())
            .collect();
        let values: Vec<Vec<Option<i64>>> = (0..5)
            .map(|i| {
                vec![
                    self.areas[i].rate().permille(),
                    self.previous[i].rate().permille(),
                ]
            })
            .collect();
        let (this, prev) = match l {
            Language::ZhCn => (
                format!("本期（{}）", self.period),
                format!("上期（{}）", self.period.previous()),
            ),
            Language::En => (
                format!("This period ({})", self.period),
                format!("Previous ({})", self.period.previous()),
            ),
        };
        p.chart(&html::bar_chart(
            l.pick("满意率（4 分及以上）", "Satisfaction rate (scores ≥ 4)"),
            &groups,
            &[
                Series {
                    name: &this,
                    color: "#2b6cb0",
                },
                Series {
                    name: &prev,
                    color: "#a0aec0",
                },
            ],
            &values,
            1000,
            &html::permille_label,
            l,
        ));
        p.table(&self.area_table());
        if let Some(n) = self.previous_note() {
            p.note(&n);
        }
        p.h2(&self.low_heading());
        if !self.low.is_empty() {
            p.table(&self.low_table());
        }
        p.finish()
    }
}

/// Comments may hold line breaks; a table cell keeps one line. Owners sometimes write their
/// phone number or email into the comment ("请回电 13812345678"); the report circulates in the
/// office, so those are masked like everywhere else wuye prints a contact.
pub(crate) fn one_line(s: &str) -> String {
    let joined = s.split_whitespace().collect::<Vec<_>>().join(" ");
    mask_contacts(&joined)
}

/// Masks runs of 7 or more digits (phone numbers) and words with an `@` (emails).
fn mask_contacts(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut digits = String::new();
    let flush = |out: &mut String, digits: &mut String| {
        if digits.len() >= 7 {
            out.push_str(&crate::privacy::mask_phone(digits));
        } else {
            out.push_str(digits);
        }
        digits.clear();
    };
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else {
            flush(&mut out, &mut digits);
            out.push(c);
        }
    }
    flush(&mut out, &mut digits);
    // Emails: an ASCII word around an '@' with a dot after it.
    let is_mail_char = |c: char| c.is_ascii_alphanumeric() || "._%+-*".contains(c);
    let mut result = String::with_capacity(out.len());
    let chars: Vec<char> = out.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if is_mail_char(chars[i]) || chars[i] == '@' {
            let start = i;
            while i < chars.len() && (is_mail_char(chars[i]) || chars[i] == '@') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            match word.split_once('@') {
                Some((user, host)) if !user.is_empty() && host.contains('.') => {
                    result.push_str(&crate::privacy::mask_email(&word));
                }
                _ => result.push_str(&word),
            }
        } else {
            result.push(chars[i]);
            i += 1;
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn resp(h: &str, scores: [Option<u8>; 5], comment: &str) -> ResponseRow {
        ResponseRow {
            campaign: "2026Q3".into(),
            household: h.into(),
            scores,
            comment: comment.into(),
        }
    }

    fn campaign(key: &str, invited: i64, answered: i64) -> CampaignTally {
        CampaignTally {
            key: key.into(),
            opens_at: Utc.with_ymd_and_hms(2026, 7, 1, 1, 0, 0).unwrap(),
            invited,
            answered,
        }
    }

    #[test]
    fn rates_per_area_count_only_households_with_an_opinion() {
        let now = [
            resp("1-1-101", [Some(5), Some(4), Some(3), Some(5), None], ""),
            resp(
                "1-1-102",
                [Some(4), Some(2), Some(5), Some(5), None],
                "水管修了三次",
            ),
            resp(
                "1-1-201",
                [Some(3), Some(1), Some(4), None, None],
                "<b>没人来</b>",
            ),
        ];
        let before = [
            resp("1-1-101", [Some(5), Some(5), Some(2), Some(5), Some(4)], ""),
            resp("1-1-102", [Some(2), Some(5), Some(5), Some(5), Some(4)], ""),
        ];
        let r = compute(
            "水畔花园",
            "2026Q3".parse().unwrap(),
            vec![campaign("2026Q3", 4, 3)],
            &now,
            1,
            &before,
        );
        assert_eq!(r.response_rate().percent(), "75.0%");
        // Reception: 5,4,3 → 2/3 satisfied, mean 4.00; before 1/2 → +16.7 pp.
        let rec = r.areas[0];
        assert_eq!((rec.answers, rec.satisfied), (3, 2));
        assert_eq!(rec.rate().percent(), "66.7%");
        assert_eq!(fmt_mean(rec.sum, rec.answers), "4.00");
        assert_eq!(
            fmt_delta(rec.rate().delta_pp(&r.previous[0].rate()), Language::En),
            "+16.7 pp"
        );
        // Repairs: 4,2,1 → 1/3; before 2/2 → -66.7 pp.
        assert_eq!(r.areas[1].rate().percent(), "33.3%");
        assert_eq!(
            fmt_delta(
                r.areas[1].rate().delta_pp(&r.previous[1].rate()),
                Language::En
            ),
            "-66.7 pp"
        );
        // Security: two opinions, both 5.
        assert_eq!(r.areas[3].rate().percent(), "100.0%");
        // Greenery: nobody scored it this period: no rate, no change, no NaN.
        assert_eq!(r.areas[4].rate().percent(), "—");
        assert_eq!(
            fmt_delta(
                r.areas[4].rate().delta_pp(&r.previous[4].rate()),
                Language::En
            ),
            "—"
        );
        assert_eq!(
            r.low
                .iter()
                .map(|l| (l.household.as_str(), l.scores.clone()))
                .collect::<Vec<_>>(),
            [
                ("1-1-102", vec![(ServiceArea::Repairs, 2)]),
                ("1-1-201", vec![(ServiceArea::Repairs, 1)])
            ]
        );
        let text = r.to_text();
        for line in [
            "2026Q3         4         3   75.0%",
            "接待服务         3           2   66.7%    4.00           50.0%  +16.7 个百分点",
            "报修维修         3           1   33.3%    2.33          100.0%  -66.7 个百分点",
            "绿化             0           0       —       —          100.0%               —",
            "1-1-201  报修维修 1  <b>没人来</b>",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "no line {line:?} in\n{text}"
            );
        }
        let page = r.to_html();
        assert!(page.contains("&lt;b&gt;没人来&lt;/b&gt;"));
        assert!(!page.contains("<b>没人来"));
        // Four areas have both periods, greenery only the previous one.
        assert_eq!(page.matches("<rect class=\"bar\"").count(), 9);
    }

    #[test]
    fn each_language_prints_labels_in_that_language_only() {
        use crate::report::wording::{cjk, latin_words, visible};
        let now = [
            resp(
                "1-1-102",
                [Some(4), Some(2), Some(5), None, None],
                "水管修了三次",
            ),
            resp("1-1-201", [Some(1), Some(5), None, None, None], ""),
        ];
        let before = [resp(
            "1-1-101",
            [Some(5), Some(5), Some(2), Some(5), Some(4)],
            "",
        )];
        // Owner- and config-supplied text: the community's name, a comment, campaign keys.
        let data = [
            "水畔花园",
            "水管修了三次",
            "2026Q3-extra",
            "2026Q3",
            "2026Q2",
        ];
        // One campaign compared with last quarter; two campaigns and nothing to compare with;
        // no campaign at all: every sentence the report can print.
        let cases = [
            (vec![campaign("2026Q3", 4, 2)], 1),
            (
                vec![campaign("2026Q3", 4, 2), campaign("2026Q3-extra", 2, 0)],
                0,
            ),
            (vec![], 0),
        ];
        for (campaigns, previous) in cases {
            let mut r = compute(
                "水畔花园",
                "2026Q3".parse().unwrap(),
                campaigns,
                &now,
                previous,
                &before,
            );
            for page in [r.to_text(), visible(&r.to_html())] {
                assert_eq!(latin_words(&page, &data), Vec::<String>::new(), "{page}");
            }
            r.lang = Language::En;
            for page in [r.to_text(), visible(&r.to_html())] {
                assert_eq!(cjk(&page, &data), "", "{page}");
            }
        }
    }

    #[test]
    fn contacts_written_into_comments_are_masked() {
        assert_eq!(
            one_line("请回电 13812345678，或邮件\nzhang.wei@example.com 谢谢 3号楼 2-1-302"),
            "请回电 138****5678，或邮件 z***@example.com 谢谢 3号楼 2-1-302"
        );
    }

    #[test]
    fn a_period_without_campaign_says_so() {
        let r = compute("水畔花园", "2026Q2".parse().unwrap(), vec![], &[], 0, &[]);
        assert_eq!(r.response_rate().percent(), "—");
        assert!(
            r.to_text()
                .ends_with("本期（2026Q2 (2026-04-01 – 2026-06-30)）没有满意度调查\n")
        );
        assert!(!r.to_text().contains("NaN"));
        assert!(
            r.to_html()
                .contains("本期（2026Q2 (2026-04-01 – 2026-06-30)）没有满意度调查")
        );
    }

    #[test]
    fn invited_but_nobody_answered_is_zero_not_missing() {
        let r = compute(
            "水畔花园",
            "2026Q3".parse().unwrap(),
            vec![campaign("2026Q3", 40, 0)],
            &[],
            0,
            &[],
        );
        assert_eq!(r.response_rate().percent(), "0.0%");
        let t = r.to_text();
        assert!(t.contains("上期（2026Q2）没有满意度调查，无法比较"), "{t}");
        assert!(t.contains("低分（≤2 分）：0 项，0 户次\n"), "{t}");
    }
}
