//! Restrictions and sort orders on the rows of a table (RopRestrict and RopSortTable,
//! MS-OXCROPS 2.2.5.3 and 2.2.5.2). Restrictions mean what MS-OXCDATA 2.12 says.
//!
//! Strings compare case-insensitively in both (by lowercase characters), and a row
//! without the column sorts after every row that has it.
// NOTE: the case-insensitive string order and the place of missing values were chosen
// for the emulator, not checked against Exchange.

use std::cmp::Ordering;

use exmux_mapihttp::prop::{PropTag, PropValue, Restriction, TaggedValue};
use exmux_mapihttp::rop::SortOrder;

use super::props;

/// FuzzyLevelLow: the whole value must match.
const FULL_STRING: u16 = 0x0000;
/// FuzzyLevelLow: the value must contain the pattern.
const SUBSTRING: u16 = 0x0001;
/// FuzzyLevelLow: the value must start with the pattern.
const PREFIX: u16 = 0x0002;
/// FuzzyLevelHigh: compare without regard to case.
const IGNORE_CASE: u16 = 0x0001;
/// SortOrder Order: descending.
const DESCENDING: u8 = 0x01;

/// Returns whether a row with `values` satisfies `restriction`.
// NOTE: sub-object restrictions match no row, and a Count restriction does not limit
// the number of matches; the regular-expression and distribution-list operators match
// nothing.
pub(crate) fn matches(restriction: &Restriction, values: &[TaggedValue]) -> bool {
    match restriction {
        Restriction::And(all) => all.iter().all(|r| matches(r, values)),
        Restriction::Or(any) => any.iter().any(|r| matches(r, values)),
        Restriction::Not(inner) => !matches(inner, values),
        Restriction::Content {
            fuzzy_low,
            fuzzy_high,
            tag,
            value,
        } => props::lookup(values, *tag)
            .is_some_and(|column| content_matches(&column, &value.value, *fuzzy_low, *fuzzy_high)),
        Restriction::Property { op, tag, value } => props::lookup(values, *tag)
            .and_then(|column| compare(&column, &value.value))
            .is_some_and(|ordering| relation_holds(op.0, ordering)),
        Restriction::CompareProps { op, tag1, tag2 } => {
            match (props::lookup(values, *tag1), props::lookup(values, *tag2)) {
                (Some(first), Some(second)) => {
                    compare(&first, &second).is_some_and(|ordering| relation_holds(op.0, ordering))
                }
                _ => false,
            }
        }
        Restriction::Bitmask { op, tag, mask } => {
            let bits = match props::lookup(values, *tag) {
                Some(PropValue::I32(bits)) => bits as u32,
                Some(PropValue::I16(bits)) => u32::from(bits as u16),
                _ => return false,
            };
            // BitmapRelOp 0 is "all masked bits zero", 1 is "some masked bit set".
            (bits & mask != 0) == (*op != 0)
        }
        Restriction::Size { op, tag, size } => props::lookup(values, *tag)
            .map(|column| value_size(&column))
            .is_some_and(|actual| relation_holds(op.0, actual.cmp(&(*size as usize)))),
        Restriction::Exist(tag) => props::lookup(values, *tag).is_some(),
        Restriction::Comment { restriction, .. } => restriction
            .as_ref()
            .is_none_or(|inner| matches(inner, values)),
        Restriction::Count { restriction, .. } => matches(restriction, values),
        _ => false,
    }
}

fn relation_holds(op: u8, ordering: Ordering) -> bool {
    match op {
        0 => ordering == Ordering::Less,
        1 => ordering != Ordering::Greater,
        2 => ordering == Ordering::Greater,
        3 => ordering != Ordering::Less,
        4 => ordering == Ordering::Equal,
        5 => ordering != Ordering::Equal,
        _ => false,
    }
}

fn text_of(value: &PropValue) -> Option<String> {
    match value {
        PropValue::Unicode(text) => Some(text.clone()),
        PropValue::String8(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        _ => None,
    }
}

fn number_of(value: &PropValue) -> Option<f64> {
    match value {
        PropValue::I16(n) => Some(f64::from(*n)),
        PropValue::I32(n) => Some(f64::from(*n)),
        PropValue::I64(n) | PropValue::Currency(n) => Some(*n as f64),
        PropValue::F32(n) => Some(f64::from(*n)),
        PropValue::F64(n) | PropValue::FloatingTime(n) => Some(*n),
        PropValue::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    }
}

/// Compares two values of compatible types, or returns `None` when they cannot be
/// compared.
fn compare(left: &PropValue, right: &PropValue) -> Option<Ordering> {
    if let (Some(a), Some(b)) = (text_of(left), text_of(right)) {
        return Some(a.to_lowercase().cmp(&b.to_lowercase()));
    }
    match (left, right) {
        (PropValue::Time(a), PropValue::Time(b)) => Some(a.cmp(b)),
        (PropValue::Binary(a), PropValue::Binary(b)) => Some(a.cmp(b)),
        (PropValue::Guid(a), PropValue::Guid(b)) => Some(a.0.cmp(&b.0)),
        _ => number_of(left)?.partial_cmp(&number_of(right)?),
    }
}

fn content_matches(column: &PropValue, pattern: &PropValue, low: u16, high: u16) -> bool {
    let (haystack, needle): (Vec<u8>, Vec<u8>) = match (column, pattern) {
        (PropValue::Binary(a), PropValue::Binary(b)) => (a.clone(), b.clone()),
        _ => match (text_of(column), text_of(pattern)) {
            (Some(a), Some(b)) if high & IGNORE_CASE != 0 => {
                (a.to_lowercase().into_bytes(), b.to_lowercase().into_bytes())
            }
            (Some(a), Some(b)) => (a.into_bytes(), b.into_bytes()),
            _ => return false,
        },
    };
    match low & 0x000F {
        FULL_STRING => haystack == needle,
        SUBSTRING => needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle),
        PREFIX => haystack.starts_with(&needle),
        _ => false,
    }
}

fn value_size(value: &PropValue) -> usize {
    match value {
        PropValue::Unicode(text) => text.encode_utf16().count() * 2,
        PropValue::String8(bytes) | PropValue::Binary(bytes) => bytes.len(),
        PropValue::I16(_) => 2,
        PropValue::I32(_) | PropValue::F32(_) | PropValue::Error(_) => 4,
        PropValue::Bool(_) => 1,
        PropValue::Guid(_) => 16,
        _ => 8,
    }
}

/// Sorts rows by the sort orders, the first order first; equal rows keep their order.
pub(crate) fn sort_rows(rows: &mut [Vec<TaggedValue>], orders: &[SortOrder]) {
    rows.sort_by(|a, b| {
        for order in orders {
            let ordering = compare_column(a, b, order.tag);
            let ordering = if order.order & DESCENDING != 0 {
                ordering.reverse()
            } else {
                ordering
            };
            if ordering != Ordering::Equal {
                return ordering;
            }
        }
        Ordering::Equal
    });
}

fn compare_column(a: &[TaggedValue], b: &[TaggedValue], tag: PropTag) -> Ordering {
    match (props::lookup(a, tag), props::lookup(b, tag)) {
        (Some(x), Some(y)) => compare(&x, &y).unwrap_or(Ordering::Equal),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::indexing_slicing)]

    use exmux_mapihttp::prop::RelOp;

    use super::*;

    const SUBJECT: PropTag = PropTag(0x0037_001F);
    const IMPORTANCE: PropTag = PropTag(0x0017_0003);

    fn row(subject: &str, importance: i32) -> Vec<TaggedValue> {
        vec![
            TaggedValue {
                tag: SUBJECT,
                value: PropValue::Unicode(subject.to_owned()),
            },
            TaggedValue {
                tag: IMPORTANCE,
                value: PropValue::I32(importance),
            },
        ]
    }

    fn property(op: u8, tag: PropTag, value: PropValue) -> Restriction {
        Restriction::Property {
            op: RelOp(op),
            tag,
            value: TaggedValue { tag, value },
        }
    }

    #[test]
    fn property_operators() {
        let high = row("b", 2);
        assert!(matches(&property(4, IMPORTANCE, PropValue::I32(2)), &high));
        assert!(!matches(&property(5, IMPORTANCE, PropValue::I32(2)), &high));
        assert!(matches(&property(2, IMPORTANCE, PropValue::I32(1)), &high));
        assert!(matches(&property(1, IMPORTANCE, PropValue::I32(2)), &high));
        assert!(!matches(&property(0, IMPORTANCE, PropValue::I32(2)), &high));
        assert!(matches(
            &property(4, SUBJECT, PropValue::Unicode("B".to_owned())),
            &high
        ));
    }

    #[test]
    fn logic_and_missing_columns() {
        let r = row("report", 1);
        let missing = PropTag(0x1000_001F);
        assert!(!matches(
            &property(4, missing, PropValue::Unicode(String::new())),
            &r
        ));
        assert!(matches(
            &Restriction::Not(Box::new(Restriction::Exist(missing))),
            &r
        ));
        assert!(matches(
            &Restriction::Or(vec![
                Restriction::Exist(missing),
                property(4, IMPORTANCE, PropValue::I32(1)),
            ]),
            &r
        ));
        assert!(!matches(
            &Restriction::And(vec![
                Restriction::Exist(missing),
                property(4, IMPORTANCE, PropValue::I32(1)),
            ]),
            &r
        ));
    }

    #[test]
    fn content_substring_ignore_case() {
        let r = row("Quarterly Report", 1);
        let content = |low, high, text: &str| Restriction::Content {
            fuzzy_low: low,
            fuzzy_high: high,
            tag: SUBJECT,
            value: TaggedValue {
                tag: SUBJECT,
                value: PropValue::Unicode(text.to_owned()),
            },
        };
        assert!(matches(&content(SUBSTRING, IGNORE_CASE, "report"), &r));
        assert!(!matches(&content(SUBSTRING, 0, "report"), &r));
        assert!(matches(&content(PREFIX, 0, "Quarterly"), &r));
        assert!(!matches(&content(FULL_STRING, 0, "Quarterly"), &r));
    }

    #[test]
    fn sort_by_one_column_both_ways() {
        let mut rows = vec![row("b", 1), row("C", 2), row("a", 3)];
        let by_subject = |order| {
            [SortOrder {
                tag: SUBJECT,
                order,
            }]
        };
        sort_rows(&mut rows, &by_subject(0));
        let subjects: Vec<_> = rows.iter().map(|r| r[0].value.clone()).collect();
        assert_eq!(
            subjects,
            ["a", "b", "C"].map(|s| PropValue::Unicode(s.to_owned()))
        );
        sort_rows(&mut rows, &by_subject(DESCENDING));
        assert_eq!(rows[0][1].value, PropValue::I32(2));
    }
}
