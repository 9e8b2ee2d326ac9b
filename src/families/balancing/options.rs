//! Validation helpers the balancing libraries' options share (counts within a range, errors of
//! a nested table), beside [`crate::families::check_duration_from`] for durations.

use crate::family::OptionError;

/// Pushes an error at `key` unless `value` is within `range`.
pub fn check_count(
    errors: &mut Vec<OptionError>,
    key: &str,
    value: u32,
    range: std::ops::RangeInclusive<u32>,
) {
    if !range.contains(&value) {
        errors.push(OptionError::at(
            key,
            format!(
                "expected from {} to {}, found {value}",
                range.start(),
                range.end()
            ),
        ));
    }
}

/// The errors of a nested table's options, each moved under `table` (`budget.window`).
pub fn nested(table: &str, errors: Vec<OptionError>) -> impl Iterator<Item = OptionError> {
    errors.into_iter().map(move |mut e| {
        e.path.insert(0, table.to_string());
        e
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_outside_their_range_are_reported_under_their_table() {
        let mut errors = Vec::new();
        check_count(&mut errors, "a", 0, 1..=5);
        check_count(&mut errors, "b", 5, 1..=5);
        let errors: Vec<OptionError> = nested("t", errors).collect();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].path, ["t", "a"]);
        assert_eq!(errors[0].message, "expected from 1 to 5, found 0");
    }
}
