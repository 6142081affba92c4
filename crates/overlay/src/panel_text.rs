//! The interpretation's text laid out for the panel: the clauses that matter
//! most (by default the assessment and the measurements) first and never
//! cut; the descriptors after them, cut with "…" when the rows run out.
//!
//! A report is written as `key : value .` clauses ("finding : mass . shape :
//! oval . assessment : probably benign . long axis : 8.2 ± 0.1 mm ."); text
//! that is not in clauses (a cause, a report still being written) is laid
//! out as it comes. Which keys lead is configuration (`overlay.panel_first`),
//! not code. Rows are reused strings: nothing is allocated per frame once
//! they have grown to the panel's width.

/// Rows the descriptors get after the leading clauses, at least.
const REST_ROWS: usize = 1;
/// Rows the panel shows for an interpretation, at least (a steady height).
pub const MIN_ROWS: usize = 3;
/// Rows the panel never goes past, even for long leading clauses.
pub const MAX_ROWS: usize = 6;

/// Reusable buffers for [`PanelText::layout`].
pub struct PanelText {
    ordered: String,
    rows: Vec<String>,
    used: usize,
}

impl Default for PanelText {
    fn default() -> Self {
        Self {
            ordered: String::with_capacity(1024),
            rows: (0..MAX_ROWS).map(|_| String::with_capacity(256)).collect(),
            used: 0,
        }
    }
}

fn clauses(text: &str) -> impl Iterator<Item = &str> {
    text.split(" .")
        .map(str::trim)
        .filter(|c| !c.is_empty() && *c != ".")
}

fn key_of(clause: &str) -> Option<&str> {
    clause.split_once(" : ").map(|(k, _)| k.trim())
}

impl PanelText {
    /// The rows laid out by the last [`Self::layout`].
    pub fn rows(&self) -> impl Iterator<Item = &str> {
        self.rows[..self.used].iter().map(String::as_str)
    }

    /// Lays `text` out in rows of at most `chars` characters, the clauses
    /// whose key is in `first` leading (in their own order).
    pub fn layout(&mut self, text: &str, first: &[String], chars: usize) {
        let chars = chars.max(8);
        let leads = |c: &str| key_of(c).is_some_and(|k| first.iter().any(|f| f == k));
        self.ordered.clear();
        for clause in clauses(text).filter(|c| leads(c)) {
            self.ordered.push_str(clause);
            self.ordered.push_str(" . ");
        }
        let lead_len = self.ordered.len();
        let structured = clauses(text).any(|c| key_of(c).is_some());
        if structured {
            for clause in clauses(text).filter(|c| !leads(c)) {
                self.ordered.push_str(clause);
                self.ordered.push_str(" . ");
            }
        } else {
            self.ordered.push_str(text);
        }
        let ordered = self.ordered.trim_end().trim_end_matches(" .");
        // Words, with where each ends in `ordered`.
        let words = ordered.split_whitespace().map(|w| {
            let end = w.as_ptr() as usize - ordered.as_ptr() as usize + w.len();
            (w, end)
        });
        let mut lead_rows = 0;
        let mut row = 0;
        for r in &mut self.rows {
            r.clear();
        }
        let mut cut = false;
        for (w, end) in words {
            let len = self.rows[row].chars().count();
            let need = if len == 0 {
                w.chars().count()
            } else {
                len + 1 + w.chars().count()
            };
            if need > chars && len > 0 {
                let limit = if end <= lead_len {
                    MAX_ROWS
                } else {
                    (lead_rows + REST_ROWS).clamp(MIN_ROWS, MAX_ROWS)
                };
                if row + 1 >= limit {
                    cut = true;
                    break;
                }
                row += 1;
            }
            let line = &mut self.rows[row];
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(w);
            if end <= lead_len {
                lead_rows = row + 1;
            }
        }
        self.used = (row + 1).clamp(MIN_ROWS, MAX_ROWS);
        let last = &mut self.rows[row];
        if cut {
            truncate_chars(last, chars.saturating_sub(1));
            last.push('…');
        }
        for r in &mut self.rows[..self.used] {
            truncate_chars(r, chars);
        }
    }
}

fn truncate_chars(line: &mut String, chars: usize) {
    if let Some((i, _)) = line.char_indices().nth(chars) {
        line.truncate(i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "finding : mass . shape : irregular . orientation : not parallel . margin : spiculated . echo pattern : hypoechoic . posterior features : shadowing . calcifications : none . assessment : suspicious . long axis : 15.9 ± 0.3 mm . short axis : 9.0 ± 0.2 mm .";

    fn first() -> Vec<String> {
        ["assessment", "long axis", "short axis"]
            .map(String::from)
            .to_vec()
    }

    fn laid_out(text: &str, chars: usize) -> Vec<String> {
        let mut p = PanelText::default();
        p.layout(text, &first(), chars);
        p.rows().map(str::to_owned).collect()
    }

    #[test]
    fn the_assessment_and_measurements_lead_and_are_never_cut() {
        for chars in [20, 32, 48] {
            let rows = laid_out(REPORT, chars);
            let all = rows.join(" ");
            assert!(
                all.starts_with("assessment : suspicious . long axis : 15.9 ± 0.3 mm"),
                "{rows:?}"
            );
            assert!(
                all.contains("short axis : 9.0 ± 0.2 mm"),
                "{chars}: {rows:?}"
            );
            assert!(rows.iter().all(|r| r.chars().count() <= chars), "{rows:?}");
        }
    }

    #[test]
    fn descriptors_are_cut_with_an_ellipsis_when_rows_run_out() {
        let rows = laid_out(REPORT, 32);
        assert!(rows.len() <= MAX_ROWS);
        assert!(rows.last().is_some_and(|r| r.ends_with('…')), "{rows:?}");
        assert!(rows.join(" ").contains("finding : mass"), "{rows:?}");
    }

    #[test]
    fn plain_text_is_laid_out_as_it_comes() {
        let rows = laid_out("unavailable: the tokenizer could not be read", 20);
        assert_eq!(rows[0], "unavailable: the");
        assert_eq!(rows.len(), MIN_ROWS);
    }

    #[test]
    fn a_short_report_keeps_the_steady_height() {
        let rows = laid_out("no focal lesion .", 40);
        assert_eq!(rows.len(), MIN_ROWS);
        assert_eq!(rows[0], "no focal lesion");
    }
}
