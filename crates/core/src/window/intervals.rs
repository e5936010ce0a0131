//! Sorted sets of half-open `[start, end)` intervals: merging the ones that
//! overlap, cutting exclusions out, and finding the ones that meet a range.
//! Intervals that merely touch stay separate: each is one window occurrence.

use super::spec::Interval;
use chrono::{DateTime, Utc};

/// Sorts `intervals`, drops empty ones and merges the ones that overlap.
/// The result has strictly increasing starts and `a.end <= b.start` for
/// neighbours.
pub(crate) fn coalesce(intervals: Vec<Interval>) -> Vec<Interval> {
    merge(intervals, false)
}

/// Like [`coalesce`], but intervals that touch merge too: the stretches
/// during which at least one of them is open.
pub(crate) fn union(intervals: Vec<Interval>) -> Vec<Interval> {
    merge(intervals, true)
}

fn merge(mut intervals: Vec<Interval>, touching: bool) -> Vec<Interval> {
    intervals.retain(|i| i.start < i.end);
    intervals.sort_unstable();
    let mut out: Vec<Interval> = Vec::with_capacity(intervals.len());
    for next in intervals {
        match out.last_mut() {
            Some(last) if next.start < last.end || (touching && next.start == last.end) => {
                last.end = last.end.max(next.end);
            }
            _ => out.push(next),
        }
    }
    out
}

/// `windows` with every part covered by `cuts` removed; a window with a cut
/// in its middle becomes two. Both inputs must be coalesced.
pub(crate) fn subtract(windows: Vec<Interval>, cuts: &[Interval]) -> Vec<Interval> {
    if cuts.is_empty() {
        return windows;
    }
    let mut out = Vec::with_capacity(windows.len());
    for window in windows {
        let mut cursor = window.start;
        let first = cuts.partition_point(|c| c.end <= window.start);
        for cut in cuts[first..].iter().take_while(|c| c.start < window.end) {
            if cut.start > cursor {
                out.push(Interval {
                    start: cursor,
                    end: cut.start,
                });
            }
            cursor = cursor.max(cut.end);
        }
        if cursor < window.end {
            out.push(Interval {
                start: cursor,
                end: window.end,
            });
        }
    }
    out
}

/// The intervals of a coalesced set that meet `[from, to)`.
pub(crate) fn meeting(set: &[Interval], from: DateTime<Utc>, to: DateTime<Utc>) -> &[Interval] {
    let first = set.partition_point(|i| i.end <= from);
    let last = set.partition_point(|i| i.start < to).max(first);
    &set[first..last]
}

/// The interval of a coalesced set that contains `t`.
pub(crate) fn containing(set: &[Interval], t: DateTime<Utc>) -> Option<Interval> {
    set.get(set.partition_point(|i| i.end <= t))
        .filter(|i| i.start <= t)
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, hour, 0, 0)
            .single()
            .expect("a valid test instant")
    }

    fn iv(start: u32, end: u32) -> Interval {
        Interval {
            start: at(start),
            end: at(end),
        }
    }

    #[test]
    fn overlapping_intervals_merge_but_touching_ones_stay_apart() {
        let set = coalesce(vec![iv(5, 7), iv(1, 3), iv(2, 4), iv(4, 5), iv(9, 9)]);
        assert_eq!(set, vec![iv(1, 4), iv(4, 5), iv(5, 7)]);
    }

    #[test]
    fn a_cut_in_the_middle_splits_a_window() {
        let out = subtract(vec![iv(1, 10)], &[iv(3, 4), iv(6, 7)]);
        assert_eq!(out, vec![iv(1, 3), iv(4, 6), iv(7, 10)]);
    }

    #[test]
    fn a_cut_covering_a_window_removes_it() {
        assert!(subtract(vec![iv(2, 3)], &[iv(1, 4)]).is_empty());
        assert_eq!(subtract(vec![iv(2, 6)], &[iv(1, 4)]), vec![iv(4, 6)]);
    }

    #[test]
    fn meeting_and_containing_respect_half_open_ends() {
        let set = vec![iv(1, 3), iv(3, 5), iv(7, 9)];
        assert_eq!(meeting(&set, at(3), at(7)), &[iv(3, 5)]);
        assert_eq!(meeting(&set, at(5), at(7)), &[] as &[Interval]);
        assert_eq!(containing(&set, at(3)), Some(iv(3, 5)));
        assert_eq!(containing(&set, at(5)), None);
        assert_eq!(containing(&set, at(8)), Some(iv(7, 9)));
    }
}
