//! The KPIs of a tenant and a period (DESIGN §9, seed 004), computed
//! from the period's evidence (`crate::evidence`), so the figures an
//! auditor reads and the records behind them are the same. Pure.
//!
//! Percentiles are nearest-rank: the p-th percentile of n sorted values
//! is the value at rank ⌈p·n⌉ (the median of 1, 2, 3, 4 is 2).

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;

use crate::evidence::{ChangeEvidence, Evidence};

/// A duration figure: how many values, their median and 90th percentile.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Spread {
    pub count: usize,
    pub median: Option<f64>,
    pub p90: Option<f64>,
}

/// A share: `part` of `whole`, and the ratio (none of none is no ratio).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Share {
    pub part: usize,
    pub whole: usize,
    pub ratio: Option<f64>,
}

/// How quickly one approver decides.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Responsiveness {
    pub approver: String,
    /// Hours from submission to their decision.
    pub hours: Spread,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Kpis {
    pub tenant: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// Changes raised in the period.
    pub changes: usize,
    /// Hours from submission to the approval decision, of changes that
    /// needed one.
    pub approval_cycle_hours: Spread,
    /// Hours from submission to each approver's decision, all approvers.
    pub approver_response_hours: Spread,
    /// The same per approver, slowest median first.
    pub approvers: Vec<Responsiveness>,
    /// Succeeded of the changes implemented (succeeded, failed, rolled back).
    pub success_rate: Share,
    /// Emergency changes of all changes raised.
    pub emergency_share: Share,
    /// Reviewed of the implemented normal and emergency changes.
    pub pir_completion: Share,
    /// Started inside their planned slot, of the started changes that had one.
    pub schedule_adherence: Share,
    /// Rolled back of the changes implemented.
    pub rollback_rate: Share,
    /// Validation checks that failed in the releases finished in the period.
    pub release_validation_failures: usize,
    /// Minutes from a failure's record (else the start) to the end of its
    /// rollback, of rolled-back changes.
    pub time_to_restore_minutes: Spread,
}

fn rank(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len() as f64;
    let r = ((p * n).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[r - 1])
}

/// Median and 90th percentile (nearest rank).
pub fn spread(mut values: Vec<f64>) -> Spread {
    values.sort_by(f64::total_cmp);
    Spread {
        count: values.len(),
        median: rank(&values, 0.5),
        p90: rank(&values, 0.9),
    }
}

fn share(part: usize, whole: usize) -> Share {
    Share {
        part,
        whole,
        ratio: (whole > 0).then(|| part as f64 / whole as f64),
    }
}

fn hours(d: TimeDelta) -> f64 {
    d.num_seconds() as f64 / 3600.0
}

fn implemented(c: &ChangeEvidence) -> bool {
    c.outcome.is_some()
}

/// Every KPI of the evidence's tenant and period; the validation
/// failures of the releases finished in it are counted as the chain is
/// read ([`crate::evidence::Gathered`]).
pub fn compute(e: &Evidence, release_validation_failures: usize) -> Kpis {
    let changes = &e.changes;
    let needs_approval = |c: &&ChangeEvidence| c.kind != "standard";
    let cycle: Vec<f64> = changes
        .iter()
        .filter(needs_approval)
        .filter_map(|c| Some(hours(c.decided_at? - c.submitted_at?)))
        .collect();
    let mut per_approver: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for c in changes {
        let Some(submitted) = c.submitted_at else {
            continue;
        };
        for a in &c.approvals {
            per_approver
                .entry(a.approver.as_str())
                .or_default()
                .push(hours(a.at - submitted));
        }
    }
    let mut approvers: Vec<Responsiveness> = per_approver
        .iter()
        .map(|(who, v)| Responsiveness {
            approver: (*who).to_string(),
            hours: spread(v.clone()),
        })
        .collect();
    approvers.sort_by(|a, b| {
        b.hours
            .median
            .unwrap_or_default()
            .total_cmp(&a.hours.median.unwrap_or_default())
    });
    let all_responses = per_approver.values().flatten().copied().collect();

    let done: Vec<&ChangeEvidence> = changes.iter().filter(|c| implemented(c)).collect();
    let outcome = |o: &str| {
        done.iter()
            .filter(|c| c.outcome.as_deref() == Some(o))
            .count()
    };
    let reviewable: Vec<&&ChangeEvidence> = done.iter().filter(|c| c.kind != "standard").collect();
    let planned: Vec<(&ChangeEvidence, DateTime<Utc>, DateTime<Utc>)> = changes
        .iter()
        .filter_map(|c| {
            let start = c.planned_start?;
            c.started_at?;
            Some((
                c,
                start,
                c.planned_end.unwrap_or(start + TimeDelta::hours(1)),
            ))
        })
        .collect();
    let on_time = planned
        .iter()
        .filter(|(c, start, end)| c.started_at.is_some_and(|s| s >= *start && s < *end))
        .count();
    let restore: Vec<f64> = done
        .iter()
        .filter(|c| c.outcome.as_deref() == Some("rolled-back"))
        .filter_map(|c| {
            let from = c.failed_at.or(c.started_at)?;
            Some((c.finished_at? - from).num_seconds() as f64 / 60.0)
        })
        .collect();
    Kpis {
        tenant: e.tenant.clone(),
        from: e.from,
        to: e.to,
        changes: changes.len(),
        approval_cycle_hours: spread(cycle),
        approver_response_hours: spread(all_responses),
        approvers,
        success_rate: share(outcome("succeeded"), done.len()),
        emergency_share: share(
            changes.iter().filter(|c| c.kind == "emergency").count(),
            changes.len(),
        ),
        pir_completion: share(
            reviewable.iter().filter(|c| c.review.is_some()).count(),
            reviewable.len(),
        ),
        schedule_adherence: share(on_time, planned.len()),
        rollback_rate: share(outcome("rolled-back"), done.len()),
        release_validation_failures,
        time_to_restore_minutes: spread(restore),
    }
}

/// Which way a share is good.
#[derive(Clone, Copy)]
enum Better {
    Higher,
    Lower,
}

/// The bar's colour: the accent, or amber where the figure is bad (a
/// share that should be high under 80 %, one that should be low above 0).
fn share_colour(better: Better, ratio: Option<f64>) -> &'static str {
    match (better, ratio) {
        (Better::Higher, Some(r)) if r < 0.8 => WARNING,
        (Better::Lower, Some(r)) if r > 0.0 => WARNING,
        _ => ACCENT,
    }
}

const ACCENT: &str = "#1f5fbf";
const WARNING: &str = "#b26b00";
/// The charts' drawing width; they scale to the page, at most 32rem wide,
/// so the 16-unit text reads at 12 px on a 390 px phone and 17 px at most.
const CHART_W: f64 = 480.0;

/// A bar chart of the shares as inline SVG (no script, no library): one
/// row per KPI, its name over a 0–100 % bar and the figure beside it; a
/// zero is an empty bar saying 0 %, a period without data says so.
pub fn shares_chart(k: &Kpis) -> String {
    let rows = [
        ("Change success rate", &k.success_rate, Better::Higher),
        ("Emergency share", &k.emergency_share, Better::Lower),
        ("PIR completion", &k.pir_completion, Better::Higher),
        ("Schedule adherence", &k.schedule_adherence, Better::Higher),
        ("Rollback rate", &k.rollback_rate, Better::Lower),
    ];
    let (bar_w, row_h) = (300.0, 48.0);
    let height = row_h * rows.len() as f64;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" aria-label=\"KPI shares\" viewBox=\"0 0 {CHART_W} {height}\" class=\"chart\">"
    );
    for (i, (label, s, better)) in rows.iter().enumerate() {
        let y = row_h * i as f64;
        let ratio = s.ratio.unwrap_or(0.0).clamp(0.0, 1.0);
        let text = match s.ratio {
            Some(r) => format!("{:.0} % ({}/{})", r * 100.0, s.part, s.whole),
            None => "no data".to_string(),
        };
        svg.push_str(&format!(
            "<text x=\"0\" y=\"{ty}\" font-size=\"16\">{label}</text>\
             <rect x=\"0\" y=\"{by}\" width=\"{bar_w}\" height=\"18\" fill=\"#e8ebf1\"/>\
             <rect x=\"0\" y=\"{by}\" width=\"{w:.1}\" height=\"18\" fill=\"{fill}\"/>\
             <text x=\"{tx}\" y=\"{vy}\" font-size=\"16\" fill=\"{ink}\">{text}</text>",
            ty = y + 16.0,
            by = y + 22.0,
            vy = y + 37.0,
            w = bar_w * ratio,
            fill = share_colour(*better, s.ratio),
            ink = if share_colour(*better, s.ratio) == WARNING {
                "#7a4b00"
            } else {
                "#1d2330"
            },
            tx = bar_w + 8.0,
        ));
    }
    svg.push_str("</svg>");
    svg
}

/// Median and p90 bars of the duration KPIs, scaled to the largest of
/// each row: its name and figures over the two bars.
pub fn durations_chart(k: &Kpis) -> String {
    let rows = [
        ("Approval cycle (h)", &k.approval_cycle_hours),
        ("Approver response (h)", &k.approver_response_hours),
        ("Time to restore (min)", &k.time_to_restore_minutes),
    ];
    let (bar_w, row_h) = (CHART_W, 56.0);
    let height = row_h * rows.len() as f64;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" aria-label=\"KPI durations\" viewBox=\"0 0 {CHART_W} {height}\" class=\"chart\">"
    );
    for (i, (label, s)) in rows.iter().enumerate() {
        let y = row_h * i as f64;
        let max = s
            .p90
            .unwrap_or(0.0)
            .max(s.median.unwrap_or(0.0))
            .max(f64::EPSILON);
        let median = s.median.unwrap_or(0.0) / max;
        let text = match (s.median, s.p90) {
            (Some(m), Some(p)) => format!("median {m:.1}, p90 {p:.1} (n={})", s.count),
            _ => "no data".to_string(),
        };
        svg.push_str(&format!(
            "<text x=\"0\" y=\"{ty}\" font-size=\"16\">{label}: {text}</text>\
             <rect x=\"0\" y=\"{y1}\" width=\"{p90w:.1}\" height=\"12\" fill=\"#bcd0ea\"/>\
             <rect x=\"0\" y=\"{y2}\" width=\"{mw:.1}\" height=\"12\" fill=\"{ACCENT}\"/>",
            ty = y + 16.0,
            y1 = y + 22.0,
            y2 = y + 36.0,
            p90w = bar_w * s.p90.unwrap_or(0.0) / max,
            mw = bar_w * median,
        ));
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::tests::sample;
    use crate::evidence::{ApprovalEvidence, ChainEvidence};
    use chrono::TimeZone;

    fn at(d: u32, h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, d, h, m, 0)
            .single()
            .expect("a valid time")
    }

    fn approval(who: &str, at: DateTime<Utc>) -> ApprovalEvidence {
        ApprovalEvidence {
            approver: who.into(),
            on_behalf_of: None,
            decision: "approve".into(),
            channel: "portal".into(),
            at,
            revision: 1,
            comment: String::new(),
        }
    }

    fn evidence(changes: Vec<ChangeEvidence>) -> Evidence {
        Evidence {
            tenant: "client-a".into(),
            tenant_name: "Client A".into(),
            from: NaiveDate::from_ymd_opt(2026, 11, 1).expect("a valid date"),
            to: NaiveDate::from_ymd_opt(2026, 11, 30).expect("a valid date"),
            generated_at: at(30, 9, 0),
            chain: ChainEvidence {
                intact: true,
                events: 0,
                head_hash: String::new(),
                first_break: None,
            },
            changes,
            unauthorized: Vec::new(),
            controls: Vec::new(),
        }
    }

    #[test]
    fn nearest_rank_percentiles() {
        let s = spread(vec![4.0, 1.0, 3.0, 2.0]);
        assert_eq!((s.median, s.p90), (Some(2.0), Some(4.0)));
        let s = spread((1..=10).map(f64::from).collect());
        assert_eq!((s.median, s.p90), (Some(5.0), Some(9.0)));
        assert_eq!(spread(Vec::new()).median, None);
    }

    /// Four changes, every figure worked out by hand below.
    #[test]
    fn every_kpi_on_a_small_period_computed_by_hand() {
        // CHG-1 normal: submitted 2nd 10:00, decided 12:00 (2 h); tom 11:00
        // (1 h), carol 12:00 (2 h); planned 3rd 02:00-03:00, started 02:00
        // (on time); succeeded; reviewed.
        let mut c1 = sample("CHG-1", "normal");
        c1.decided_at = Some(at(2, 12, 0));
        c1.approvals = vec![
            approval("tom", at(2, 11, 0)),
            approval("carol", at(2, 12, 0)),
        ];
        c1.planned_start = Some(at(3, 2, 0));
        c1.planned_end = Some(at(3, 3, 0));
        c1.started_at = Some(at(3, 2, 0));
        // CHG-2 normal: submitted 2nd 10:00, decided 3rd 10:00 (24 h); tom
        // 3rd 10:00 (24 h); planned 3rd 02:00-03:00 but started 5th (late);
        // failed at 5th 02:10, rolled back at 02:40 (30 min); not reviewed.
        let mut c2 = sample("CHG-2", "normal");
        c2.decided_at = Some(at(3, 10, 0));
        c2.approvals = vec![approval("tom", at(3, 10, 0))];
        c2.planned_start = Some(at(3, 2, 0));
        c2.planned_end = Some(at(3, 3, 0));
        c2.started_at = Some(at(5, 2, 0));
        c2.failed_at = Some(at(5, 2, 10));
        c2.finished_at = Some(at(5, 2, 40));
        c2.outcome = Some("rolled-back".into());
        c2.review = None;
        // CHG-3 emergency: submitted 2nd 10:00, decided 2nd 10:30 (0.5 h),
        // tom at 10:30 (0.5 h); no planned slot; failed (outcome failed).
        let mut c3 = sample("CHG-3", "emergency");
        c3.decided_at = Some(at(2, 10, 30));
        c3.approvals = vec![approval("tom", at(2, 10, 30))];
        c3.outcome = Some("failed".into());
        // CHG-4 standard: no approval, not implemented.
        let mut c4 = sample("CHG-4", "standard");
        c4.started_at = None;
        c4.finished_at = None;
        c4.outcome = None;
        c4.review = None;
        let release = changegate_core::audit::seal(
            changegate_core::audit::GENESIS,
            changegate_core::audit::EventBody {
                tenant: changegate_core::TenantId(1),
                seq: 1,
                at: at(5, 3, 0),
                actor: "rita".into(),
                action: "release.finished".into(),
                subject: "REL-1".into(),
                detail: r#"{"outcome":"rolled-back","validation_failures":2}"#.into(),
            },
        );
        // Counted as the chain is read, like the export does.
        let period = crate::evidence::Period::new(
            chrono::NaiveDate::from_ymd_opt(2026, 11, 1).expect("a valid date"),
            chrono::NaiveDate::from_ymd_opt(2026, 11, 30).expect("a valid date"),
        )
        .expect("a period");
        let mut fold = crate::evidence::Fold::new(period);
        fold.event(&release);
        let (_, _, failures) = fold.finish();
        let k = compute(&evidence(vec![c1, c2, c3, c4]), failures);
        assert_eq!(k.changes, 4);
        // Cycle times 2, 24, 0.5 → sorted 0.5, 2, 24: median rank 2 = 2, p90 rank 3 = 24.
        assert_eq!(
            k.approval_cycle_hours,
            Spread {
                count: 3,
                median: Some(2.0),
                p90: Some(24.0)
            }
        );
        // Responses 1, 2, 24, 0.5 → sorted 0.5, 1, 2, 24: median rank 2 = 1, p90 rank 4 = 24.
        assert_eq!(
            k.approver_response_hours,
            Spread {
                count: 4,
                median: Some(1.0),
                p90: Some(24.0)
            }
        );
        // tom: 1, 24, 0.5 → median 1; carol: 2 → slowest median first.
        assert_eq!(k.approvers[0].approver, "carol");
        assert_eq!(k.approvers[1].hours.median, Some(1.0));
        // Implemented: CHG-1 succeeded, CHG-2 rolled back, CHG-3 failed.
        assert_eq!(
            k.success_rate,
            Share {
                part: 1,
                whole: 3,
                ratio: Some(1.0 / 3.0)
            }
        );
        assert_eq!(k.rollback_rate.part, 1);
        assert_eq!(
            k.emergency_share,
            Share {
                part: 1,
                whole: 4,
                ratio: Some(0.25)
            }
        );
        // Reviewable: CHG-1 (reviewed), CHG-2 (not), CHG-3 (sample has a review).
        assert_eq!((k.pir_completion.part, k.pir_completion.whole), (2, 3));
        // Planned and started: CHG-1 on time, CHG-2 late.
        assert_eq!(
            (k.schedule_adherence.part, k.schedule_adherence.whole),
            (1, 2)
        );
        assert_eq!(
            k.time_to_restore_minutes,
            Spread {
                count: 1,
                median: Some(30.0),
                p90: Some(30.0)
            }
        );
        assert_eq!(k.release_validation_failures, 2);
        let svg = shares_chart(&k);
        assert!(svg.contains("33 % (1/3)") && svg.starts_with("<svg"));
        assert!(durations_chart(&k).contains("median 2.0, p90 24.0 (n=3)"));
    }

    #[test]
    fn an_empty_period_has_no_ratios() {
        let k = compute(&evidence(Vec::new()), 0);
        assert_eq!(k.success_rate.ratio, None);
        assert!(shares_chart(&k).contains("no data"));
    }

    #[test]
    fn bad_rates_are_drawn_in_the_warning_colour_and_a_zero_is_a_zero() {
        assert_eq!(share_colour(Better::Lower, Some(0.0)), ACCENT);
        assert_eq!(share_colour(Better::Lower, Some(0.1)), WARNING);
        assert_eq!(share_colour(Better::Higher, Some(0.5)), WARNING);
        assert_eq!(share_colour(Better::Higher, Some(0.95)), ACCENT);
        assert_eq!(share_colour(Better::Higher, None), ACCENT);
        let k = compute(&evidence(Vec::new()), 0);
        // No data draws no bar at all.
        assert!(shares_chart(&k).contains("width=\"0.0\""));
    }
}
