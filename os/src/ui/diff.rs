//! A line diff, for the configuration editor's "what will change" before an apply: the
//! longest common subsequence of the two texts' lines (configurations are a few hundred lines,
//! so the quadratic table is small; past [`MAX_CELLS`] a whole-text replacement is shown).

/// One line of the diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line<'a> {
    Same(&'a str),
    Removed(&'a str),
    Added(&'a str),
}

/// Past this many cells in the table (lines × lines: 4 MB of it) the texts are shown as all
/// removed, all added.
pub const MAX_CELLS: usize = 1_000_000;

pub fn lines<'a>(old: &'a str, new: &'a str) -> Vec<Line<'a>> {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    if (a.len() + 1).saturating_mul(b.len() + 1) > MAX_CELLS {
        return a
            .iter()
            .map(|l| Line::Removed(l))
            .chain(b.iter().map(|l| Line::Added(l)))
            .collect();
    }
    // lcs[i][j]: the longest common subsequence of a[i..] and b[j..].
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        if a[i] == b[j] {
            out.push(Line::Same(a[i]));
            i += 1;
            j += 1;
        } else if lcs[i + 1][j] >= lcs[i][j + 1] {
            out.push(Line::Removed(a[i]));
            i += 1;
        } else {
            out.push(Line::Added(b[j]));
            j += 1;
        }
    }
    out.extend(a[i..].iter().map(|l| Line::Removed(l)));
    out.extend(b[j..].iter().map(|l| Line::Added(l)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_line_is_a_removal_and_an_addition() {
        let d = lines("a\nhostname: x\nb\n", "a\nhostname: y\nb\nc\n");
        assert_eq!(
            d,
            [
                Line::Same("a"),
                Line::Removed("hostname: x"),
                Line::Added("hostname: y"),
                Line::Same("b"),
                Line::Added("c"),
            ]
        );
        assert!(lines("same\n", "same\n")
            .iter()
            .all(|l| matches!(l, Line::Same(_))));
    }
}
