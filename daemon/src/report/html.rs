//! A self-contained HTML page (inline CSS, inline SVG, no scripts, fonts or images fetched from
//! anywhere) that an office manager opens in a browser and pastes into the monthly report, or
//! mails as an attachment. Charts are drawn by hand as SVG rectangles so they print crisply and
//! need no charting library; every string from the database (comments, names) goes through
//! [`esc`], so an owner's comment like `<script>` shows as text.

use std::fmt::Write as _;

use super::text::{Align, Table};
use crate::domain::Language;

/// Escapes text for HTML element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

const CSS: &str = "body{font-family:-apple-system,'PingFang SC','Microsoft YaHei','Noto Sans CJK SC',\
'Source Han Sans SC',sans-serif;color:#222;max-width:980px;margin:24px auto;padding:0 16px;\
line-height:1.5}h1{font-size:22px;border-bottom:2px solid #2b6cb0;padding-bottom:6px}\
h2{font-size:17px;margin-top:28px;color:#2b6cb0}p.meta{color:#555;font-size:13px}\
p.note{color:#8a5a00;background:#fff8e6;padding:6px 10px;border-left:3px solid #e0a800}\
table{border-collapse:collapse;margin:8px 0 16px;font-size:14px}\
th,td{border:1px solid #ccd;padding:4px 10px}th{background:#eef3fa;text-align:left}\
td.n{text-align:right;font-variant-numeric:tabular-nums}tr.total td{font-weight:bold;background:#f7f7f7}\
svg{display:block;margin:8px 0 20px}\
table,svg{page-break-inside:avoid}@media print{body{margin:0;max-width:none}}";

/// A page under construction, in one language.
pub struct Page {
    body: String,
    title: String,
    lang: Language,
}

impl Page {
    pub fn new(title: &str, meta: &str, lang: Language) -> Self {
        let mut body = String::new();
        let _ = write!(
            body,
            "<h1>{}</h1>\n<p class=\"meta\">{}</p>\n",
            esc(title),
            esc(meta)
        );
        Page {
            body,
            title: title.to_string(),
            lang,
        }
    }

    pub fn h2(&mut self, s: &str) {
        let _ = writeln!(self.body, "<h2>{}</h2>", esc(s));
    }

    /// A highlighted sentence, e.g. "no survey campaign in this period".
    pub fn note(&mut self, s: &str) {
        let _ = writeln!(self.body, "<p class=\"note\">{}</p>", esc(s));
    }

    pub fn p(&mut self, s: &str) {
        let _ = writeln!(self.body, "<p>{}</p>", esc(s));
    }

    /// A table; rows whose first cell is the total's label ("合计", "Total") are emphasised.
    pub fn table(&mut self, t: &Table) {
        let total_label = total(self.lang);
        let b = &mut self.body;
        b.push_str("<table>\n<thead><tr>");
        for h in &t.header {
            let _ = write!(b, "<th>{}</th>", esc(h));
        }
        b.push_str("</tr></thead>\n<tbody>\n");
        for r in &t.rows {
            let total = r.first().is_some_and(|c| c == total_label);
            b.push_str(if total {
                "<tr class=\"total\">"
            } else {
                "<tr>"
            });
            for (i, c) in r.iter().enumerate() {
                let class = if t.align.get(i) == Some(&Align::Right) {
                    " class=\"n\""
                } else {
                    ""
                };
                let _ = write!(b, "<td{class}>{}</td>", esc(c));
            }
            b.push_str("</tr>\n");
        }
        b.push_str("</tbody>\n</table>\n");
    }

    pub fn chart(&mut self, svg: &str) {
        self.body.push_str(svg);
        self.body.push('\n');
    }

    pub fn finish(self) -> String {
        format!(
            "<!DOCTYPE html>\n<html lang=\"{}\">\n<head>\n<meta charset=\"utf-8\">\n\
             <title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n{}</body>\n</html>\n",
            self.lang.as_str(),
            esc(&self.title),
            self.body
        )
    }
}

/// The label of a table's total row, which [`Page::table`] emphasises.
pub fn total(lang: Language) -> &'static str {
    lang.pick("合计", "Total")
}

/// One series of a bar chart (e.g. "本期", "This period"), with its colour.
pub struct Series<'a> {
    pub name: &'a str,
    pub color: &'a str,
}

/// Rough rendered width of `s` at font size `px`: wide (CJK) characters are square, others
/// about 0.6 em. Good enough to keep labels and legends from overlapping.
fn text_w(s: &str, px: i64) -> i64 {
    use unicode_width::UnicodeWidthChar;
    s.chars()
        .map(|c| {
            if c.width() == Some(2) {
                px * 10
            } else {
                px * 6
            }
        })
        .sum::<i64>()
        / 10
}

/// A grouped horizontal bar chart: one block of bars per group (a service area, a fee type),
/// one bar per series inside it, the value printed at the end of each bar. Horizontal because
/// the labels can be long (an English area or fee name) and money values are long; both would
/// collide under vertical bars. `values[g][s]` is the value of series `s` in group `g`, `None`
/// when there is no data (no bar, "—" instead). `max` is the full scale; each drawn bar is a
/// `<rect class="bar">`.
pub fn bar_chart(
    title: &str,
    groups: &[String],
    series: &[Series<'_>],
    values: &[Vec<Option<i64>>],
    max: i64,
    label: &dyn Fn(i64) -> String,
    lang: Language,
) -> String {
    const WIDTH: i64 = 680;
    const BAR_H: i64 = 16;
    const BAR_GAP: i64 = 3;
    const GROUP_GAP: i64 = 12;
    let max = max.max(1);
    let value_of = |g: usize, k: usize| values.get(g).and_then(|r| r.get(k)).copied().flatten();
    let left = (groups.iter().map(|g| text_w(g, 12)).max().unwrap_or(0) + 24).clamp(80, 240);
    let value_room = (0..groups.len())
        .flat_map(|g| (0..series.len()).map(move |k| (g, k)))
        .filter_map(|(g, k)| value_of(g, k))
        .map(|v| text_w(&label(v), 11))
        .max()
        .unwrap_or(0)
        + 12;
    let plot_w = WIDTH - left - value_room - 8;

    let mut s = String::new();
    // Legend rows, wrapped to the chart's width.
    let mut legend = String::new();
    let (mut lx, mut ly) = (left, 44);
    for se in series {
        let w = 14 + text_w(se.name, 11) + 18;
        if lx + w > WIDTH && lx > left {
            lx = left;
            ly += 16;
        }
        let _ = writeln!(
            legend,
            "<rect x=\"{lx}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{}\"/>\
             <text x=\"{}\" y=\"{ly}\" font-size=\"11\" fill=\"#333\">{}</text>",
            ly - 9,
            esc(se.color),
            lx + 14,
            esc(se.name)
        );
        lx += w;
    }
    let top = ly + 14;
    let block = series.len() as i64 * (BAR_H + BAR_GAP) - BAR_GAP;
    let bottom = top + groups.len() as i64 * (block + GROUP_GAP) - GROUP_GAP;
    let height = bottom + 12;
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
         viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" aria-label=\"{t}\" \
         font-family=\"'PingFang SC','Microsoft YaHei','Noto Sans CJK SC',sans-serif\">\n\
         <title>{t}</title>\n\
         <text x=\"8\" y=\"20\" font-size=\"14\" font-weight=\"bold\" fill=\"#222\">{t}</text>\n{legend}",
        t = esc(title)
    );
    // Guides at 0, 50% and 100% of the scale.
    for f in [0, 1, 2] {
        let x = left + plot_w * f / 2;
        let _ = writeln!(
            s,
            "<line x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{}\" stroke=\"{}\"/>",
            top - 4,
            bottom + 4,
            if f == 0 { "#888" } else { "#e2e8f0" }
        );
    }
    for (g, name) in groups.iter().enumerate() {
        let gy = top + g as i64 * (block + GROUP_GAP);
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" font-size=\"12\" text-anchor=\"end\" fill=\"#222\">{}</text>",
            left - 8,
            gy + block / 2 + 4,
            esc(name)
        );
        for (k, se) in series.iter().enumerate() {
            let y = gy + k as i64 * (BAR_H + BAR_GAP);
            match value_of(g, k) {
                Some(v) => {
                    let w = (v.clamp(0, max) * plot_w + max / 2) / max;
                    let _ = writeln!(
                        s,
                        "<rect class=\"bar\" x=\"{left}\" y=\"{y}\" width=\"{w}\" \
                         height=\"{BAR_H}\" fill=\"{}\"><title>{} {}: {}</title></rect>\
                         <text x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"#333\">{}</text>",
                        esc(se.color),
                        esc(name),
                        esc(se.name),
                        esc(&label(v)),
                        left + w + 4,
                        y + BAR_H - 4,
                        esc(&label(v))
                    );
                }
                None => {
                    let _ = writeln!(
                        s,
                        "<text x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"#999\">— {}</text>",
                        left + 4,
                        y + BAR_H - 4,
                        esc(lang.pick("无数据", "no data"))
                    );
                }
            }
        }
    }
    s.push_str("</svg>");
    s
}

/// Percent label for a value in tenths of a percent (753 → "75.3%").
pub fn permille_label(v: i64) -> String {
    format!("{}.{}%", v / 10, v % 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_text_cannot_open_a_tag() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
    }

    #[test]
    fn a_bar_per_value_and_none_for_missing_data() {
        let svg = bar_chart(
            "满意率 <比较>",
            &["接待".into(), "保洁".into()],
            &[
                Series {
                    name: "本期",
                    color: "#2b6cb0",
                },
                Series {
                    name: "上期",
                    color: "#a0aec0",
                },
            ],
            &[vec![Some(1000), Some(500)], vec![Some(0), None]],
            1000,
            &permille_label,
            Language::ZhCn,
        );
        assert_eq!(svg.matches("<rect class=\"bar\"").count(), 3);
        // Full scale is the plot height; half is half; zero is a zero-height bar.
        // Full scale is the plot's width, half is half, zero is an empty bar.
        let widths: Vec<&str> = svg
            .split("<rect class=\"bar\"")
            .skip(1)
            .map(|r| {
                r.split("width=\"")
                    .nth(1)
                    .unwrap()
                    .split('"')
                    .next()
                    .unwrap()
            })
            .collect();
        let full: i64 = widths[0].parse().unwrap();
        assert!(full > 300, "{full}");
        // Rounded to the nearest pixel.
        assert_eq!(
            widths,
            [
                full.to_string(),
                ((full + 1) / 2).to_string(),
                "0".to_string()
            ]
        );
        assert!(svg.contains("满意率 &lt;比较&gt;"));
        assert!(!svg.contains("<比较>"));
    }
}
