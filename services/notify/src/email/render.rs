//! An event as an email a person reads: subject, plain text and HTML, from
//! the same `data` the webhook carries. Pure, so every case is tested here.
//!
//! Everything taken from `data` is tenant-controlled (a tenant id is only as
//! tame as the key that produced it). Control characters are replaced
//! before anything is interpolated, so nothing can end a header line and
//! start another (`Bcc:` injection) or bend the text body; the HTML part
//! additionally escapes `& < > " '`, so nothing becomes markup.

use chrono::{DateTime, Datelike as _, Utc};
use meterline_core::{Currency, Money};
use rust_decimal::Decimal;
use serde_json::Value;

/// One message's content, ready for a multipart/alternative body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Longest tenant-controlled value put in a subject: a subject is read in a
/// list, and a hostile value must not crowd out the amounts.
const SUBJECT_VALUE_CHARS: usize = 64;

pub fn render(event_type: &str, data: &Value) -> Rendered {
    let tenant = field(data, "tenant_id");
    match event_type {
        "budget.threshold_crossed" | "budget.forecast_exceeded" => budget(event_type, &tenant, data),
        "budget.blocked" | "budget.recovered" => throttle(event_type, &tenant, data),
        "notify.test" => {
            let lines = vec![
                Line::Para(format!("This is a test message from Meterline for tenant {tenant}.")),
                Line::Para("If you can read it, budget alerts for this tenant reach this address.".into()),
            ];
            finish(format!("[Meterline] {}: test message", short(&tenant)), lines)
        }
        other => {
            // A type this notifier does not know how to phrase (a newer
            // budget service): still delivered, with its data as it is.
            let other = clean(other);
            let pretty = serde_json::to_string_pretty(data).unwrap_or_default();
            let lines = vec![Line::Para(format!("Event {other} for tenant {tenant}:")), Line::Pre(clean_multiline(&pretty))];
            finish(format!("[Meterline] {}: {}", short(&tenant), short(&other)), lines)
        }
    }
}

/// A threshold crossed, or a forecast over the limit.
fn budget(event_type: &str, tenant: &str, data: &Value) -> Rendered {
    let currency = Currency::parse(&field(data, "currency")).ok();
    let amount = |key: &str| Amount::read(data, key, currency);
    let (spend, limit, projected) = (amount("spend"), amount("limit"), amount("projected"));
    let start = time(data, "period_start");
    let end = time(data, "period_end");
    let budget_name = match (start, end) {
        // Periods are calendar months in the budget's zone, so the UTC
        // start may fall on the previous month's last day; the middle of
        // the period is always inside its month.
        (Some(s), Some(e)) => format!("{} budget", month_name(s + (e - s) / 2)),
        _ => "budget".to_owned(),
    };
    let mut lines = Vec::new();
    let subject = if event_type == "budget.forecast_exceeded" {
        lines.push(Line::Para(format!(
            "At its current rate of spend, tenant {tenant} is projected to spend {} this period, over its {budget_name} of {}.",
            projected.text(),
            limit.text()
        )));
        format!("[Meterline] {}: {budget_name} forecast at {} (limit {})", short(tenant), projected.text(), limit.text())
    } else {
        let percent = field(data, "threshold_percent");
        lines.push(Line::Para(format!("Tenant {tenant} has crossed {percent}% of its {budget_name}.")));
        format!("[Meterline] {}: {}% of {budget_name} ({}/{})", short(tenant), short(&percent), spend.bare(), limit.text())
    };
    let mut rows = vec![("Spent", spend.text()), ("Remaining", remaining(&spend, &limit)), ("Limit", limit.text())];
    if event_type == "budget.forecast_exceeded" {
        rows.push(("Projected", projected.text()));
    }
    if let (Some(s), Some(e)) = (start, end) {
        rows.push(("Period", format!("{} to {} (UTC)", stamp(s), stamp(e))));
    }
    lines.push(Line::Table(rows));
    if let Some(e) = end {
        lines.push(Line::Para(format!("The budget resets when the period ends, at {} UTC.", stamp(e))));
    }
    lines.push(Line::Para(format!("Alert id: {}", field(data, "alert_id"))));
    finish(subject, lines)
}

/// A tenant blocked or degraded at its limit, or allowed again.
fn throttle(event_type: &str, tenant: &str, data: &Value) -> Rendered {
    let currency = Currency::parse(&field(data, "currency")).ok();
    let (spend, limit) = (Amount::read(data, "spend", currency), Amount::read(data, "limit", currency));
    let action = field(data, "action");
    let model = field(data, "target_model");
    let (subject, first) = match (event_type, action.as_str()) {
        ("budget.recovered", _) => (
            format!("[Meterline] {}: requests served again", short(tenant)),
            format!("Tenant {tenant}'s requests are served again: its budget was raised, or a new period began."),
        ),
        (_, "degrade") => (
            format!("[Meterline] {}: budget spent, requests degraded to {}", short(tenant), short(&model)),
            format!("Tenant {tenant} has spent its budget: its requests are now served by {model}, a cheaper model."),
        ),
        _ => (
            format!("[Meterline] {}: budget spent, requests blocked", short(tenant)),
            format!("Tenant {tenant} has spent its budget: its requests are now refused (HTTP 429) until the period ends or the budget is raised."),
        ),
    };
    let mut rows = vec![("Spent", spend.text()), ("Limit", limit.text())];
    if let (Some(s), Some(e)) = (time(data, "period_start"), time(data, "period_end")) {
        rows.push(("Period", format!("{} to {} (UTC)", stamp(s), stamp(e))));
    }
    let lines = vec![Line::Para(first), Line::Table(rows), Line::Para(format!("Reason: {}", field(data, "reason")))];
    finish(subject, lines)
}

/// The body's pieces, each rendered once as text and once as HTML.
enum Line {
    Para(String),
    Table(Vec<(&'static str, String)>),
    Pre(String),
}

fn finish(subject: String, lines: Vec<Line>) -> Rendered {
    let mut text = String::new();
    let mut html = String::from("<!DOCTYPE html>\n<html><body style=\"font-family: sans-serif\">\n");
    for line in &lines {
        match line {
            Line::Para(p) => {
                text.push_str(p);
                text.push_str("\n\n");
                html.push_str(&format!("<p>{}</p>\n", escape_html(p)));
            }
            Line::Table(rows) => {
                let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
                html.push_str("<table>\n");
                for (k, v) in rows {
                    text.push_str(&format!("  {:<width$} {v}\n", format!("{k}:")));
                    html.push_str(&format!("<tr><th align=\"left\">{k}</th><td>{}</td></tr>\n", escape_html(v)));
                }
                text.push('\n');
                html.push_str("</table>\n");
            }
            Line::Pre(p) => {
                text.push_str(p);
                text.push_str("\n\n");
                html.push_str(&format!("<pre>{}</pre>\n", escape_html(p)));
            }
        }
    }
    html.push_str("</body></html>\n");
    Rendered { subject: clean(&subject), text: text.trim_end().to_owned() + "\n", html }
}

/// An amount from `data` (an exact decimal string), shown in its currency's
/// minor unit; unparseable values are shown as they came, cleaned.
enum Amount {
    Money(Money),
    Raw(String),
}

impl Amount {
    fn read(data: &Value, key: &str, currency: Option<Currency>) -> Self {
        let raw = field(data, key);
        match (raw.parse::<Decimal>(), currency) {
            (Ok(d), Some(c)) => Amount::Money(Money::new(d, c)),
            _ => Amount::Raw(raw),
        }
    }

    /// `80.50`.
    fn bare(&self) -> String {
        match self {
            Amount::Money(m) => m.format_amount(),
            Amount::Raw(r) => short(r),
        }
    }

    /// `80.50 USD`.
    fn text(&self) -> String {
        match self {
            Amount::Money(m) => format!("{} {}", m.format_amount(), m.currency),
            Amount::Raw(r) => short(r),
        }
    }
}

/// What is left of the limit, or how far spend is over it.
fn remaining(spend: &Amount, limit: &Amount) -> String {
    match (spend, limit) {
        (Amount::Money(s), Amount::Money(l)) if s.currency == l.currency => {
            let left = l.amount - s.amount;
            if left >= Decimal::ZERO {
                format!("{} {}", Money::new(left, l.currency).format_amount(), l.currency)
            } else {
                format!("none (over by {} {})", Money::new(-left, l.currency).format_amount(), l.currency)
            }
        }
        _ => "unknown".to_owned(),
    }
}

/// A string, number or absent `data` field as text, control characters
/// replaced.
fn field(data: &Value, key: &str) -> String {
    match data.get(key) {
        Some(Value::String(s)) => clean(s),
        None | Some(Value::Null) => String::new(),
        Some(other) => clean(&other.to_string()),
    }
}

fn time(data: &Value, key: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(data.get(key)?.as_str()?).ok().map(|t| t.with_timezone(&Utc))
}

fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M").to_string()
}

fn month_name(t: DateTime<Utc>) -> String {
    const MONTHS: [&str; 12] =
        ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];
    format!("{} {}", MONTHS[t.month0() as usize], t.year())
}

/// Every control character (CR and LF among them) as a space: what is left
/// cannot end a header line or a text line.
pub fn clean(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// As `clean`, but keeping line feeds (pretty-printed JSON).
fn clean_multiline(s: &str) -> String {
    s.chars().map(|c| if c.is_control() && c != '\n' { ' ' } else { c }).collect()
}

/// A value shortened for the subject.
fn short(s: &str) -> String {
    if s.chars().count() <= SUBJECT_VALUE_CHARS {
        return s.to_owned();
    }
    s.chars().take(SUBJECT_VALUE_CHARS - 3).chain("...".chars()).collect()
}

pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn data(tenant: &str) -> Value {
        json!({
            "alert_id": "00000000-0000-0000-0000-000000000007",
            "tenant_id": tenant,
            "threshold_percent": 80,
            "spend": "80.505",
            "limit": "100",
            "projected": null,
            "currency": "USD",
            "period_start": "2026-12-01T00:00:00+00:00",
            "period_end": "2027-01-01T00:00:00+00:00",
            "budget_version": 1,
        })
    }

    #[test]
    fn a_threshold_alert_says_what_was_crossed_with_amounts_in_minor_units() {
        let r = render("budget.threshold_crossed", &data("acme"));
        assert_eq!(r.subject, "[Meterline] acme: 80% of December 2026 budget (80.50/100.00 USD)");
        for part in [&r.text, &r.html] {
            for expected in [
                "80%",
                "80.50 USD",
                "19.50 USD",
                "100.00 USD",
                "2026-12-01 00:00",
                "2027-01-01 00:00",
                "resets",
                "00000000-0000-0000-0000-000000000007",
            ] {
                assert!(part.contains(expected), "{expected:?} missing from {part}");
            }
        }
        assert!(r.text.contains("Remaining: 19.50 USD"), "{}", r.text);
    }

    #[test]
    fn a_forecast_shows_the_projection_and_an_overspend_shows_how_far_over() {
        let mut d = data("acme");
        d["projected"] = json!("150.005");
        d["spend"] = json!("120");
        let r = render("budget.forecast_exceeded", &d);
        assert_eq!(r.subject, "[Meterline] acme: December 2026 budget forecast at 150.00 USD (limit 100.00 USD)");
        assert!(r.text.contains("Projected: 150.00 USD"), "{}", r.text);
        assert!(r.text.contains("over by 20.00 USD"), "{}", r.text);
    }

    #[test]
    fn a_month_in_a_zone_ahead_of_utc_is_named_for_its_middle() {
        let mut d = data("acme");
        d["period_start"] = json!("2026-11-30T23:00:00+00:00");
        d["period_end"] = json!("2026-12-31T23:00:00+00:00");
        assert!(render("budget.threshold_crossed", &d).subject.contains("December 2026 budget"));
    }

    #[test]
    fn blocks_degrades_and_recoveries_say_what_gateways_now_do() {
        let mut d = data("acme");
        d["action"] = "block".into();
        d["reason"] = "budget exhausted".into();
        let blocked = render("budget.blocked", &d);
        assert_eq!(blocked.subject, "[Meterline] acme: budget spent, requests blocked");
        assert!(blocked.text.contains("HTTP 429"), "{}", blocked.text);
        d["action"] = "degrade".into();
        d["target_model"] = "gpt-4o-mini".into();
        assert!(render("budget.blocked", &d).subject.ends_with("degraded to gpt-4o-mini"));
        assert_eq!(render("budget.recovered", &d).subject, "[Meterline] acme: requests served again");
    }

    #[test]
    fn a_hostile_tenant_id_injects_neither_headers_nor_markup() {
        let hostile = "evil\r\nBcc: x@y.z <script>alert(1)</script>";
        let r = render("budget.threshold_crossed", &data(hostile));
        assert!(!r.subject.contains('\r') && !r.subject.contains('\n'), "{:?}", r.subject);
        assert!(r.subject.chars().all(|c| !c.is_control()));
        assert!(!r.html.contains("<script>"), "{}", r.html);
        assert!(r.html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{}", r.html);
        assert!(r.text.contains("evil  Bcc: x@y.z <script>alert(1)</script>"), "shown as text, harmlessly: {}", r.text);
        assert!(!r.text.contains('\r'));
        for other in ["notify.test", "budget.forecast_exceeded", "some.future_type"] {
            let r = render(other, &data(hostile));
            assert!(r.subject.chars().all(|c| !c.is_control()), "{other}: {:?}", r.subject);
            assert!(!r.html.contains("<script>"), "{other}: {}", r.html);
        }
        assert_eq!(escape_html(r#"&<>"'"#), "&amp;&lt;&gt;&quot;&#39;");
    }

    #[test]
    fn long_values_are_shortened_in_the_subject_and_odd_data_still_renders() {
        let r = render("budget.threshold_crossed", &data(&"t".repeat(500)));
        assert!(r.subject.len() < 200, "{}", r.subject);
        let r = render("budget.threshold_crossed", &json!({ "tenant_id": "acme", "spend": "lots" }));
        assert!(r.text.contains("lots"));
        let r = render("notify.test", &json!({ "tenant_id": "acme" }));
        assert_eq!(r.subject, "[Meterline] acme: test message");
    }
}
