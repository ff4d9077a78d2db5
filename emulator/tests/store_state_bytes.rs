#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Properties of the opaque sync state bytes: any state round-trips, and arbitrary or
//! damaged bytes are rejected without a panic.

use exmux_emulator::store::*;
use proptest::prelude::*;

fn glob_set() -> impl Strategy<Value = GlobSet> {
    prop::collection::vec((0u64..5_000, 0u64..50), 0..20).prop_map(|ranges| {
        let mut set = GlobSet::new();
        for (start, length) in ranges {
            set.insert_range(
                Globcnt::new(start + 1).unwrap(),
                Globcnt::new(start + 1 + length).unwrap(),
            );
        }
        set
    })
}

fn sync_state() -> impl Strategy<Value = SyncState> {
    (
        any::<bool>(),
        1u64..1_000,
        prop::option::of(any::<[u8; 16]>()),
        glob_set(),
        glob_set(),
        glob_set(),
        glob_set(),
    )
        .prop_map(
            |(hierarchy, folder, replica, given, seen, seen_fai, read)| SyncState {
                kind: if hierarchy {
                    SyncKind::Hierarchy
                } else {
                    SyncKind::Contents
                },
                folder: Fid(Globcnt::new(folder).unwrap()),
                replica: replica.map(Guid),
                given,
                seen,
                seen_fai,
                read,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn state_bytes_round_trip(state in sync_state()) {
        let bytes = state.to_bytes();
        prop_assert_eq!(SyncState::from_bytes(&bytes), Ok(state));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = SyncState::from_bytes(&bytes);
    }

    #[test]
    fn damaged_state_rejected_or_parsed(state in sync_state(), position in any::<prop::sample::Index>(), value in any::<u8>()) {
        let mut bytes = state.to_bytes();
        let at = position.index(bytes.len());
        bytes[at] = value;
        // A changed byte either still parses (a different but well-formed state) or is
        // rejected as unparsable; it never panics or allocates from a bogus count.
        match SyncState::from_bytes(&bytes) {
            Ok(_) | Err(SyncStateRejection::Unparsable) => {}
            Err(other) => prop_assert!(false, "unexpected rejection {other:?}"),
        }
    }
}

#[test]
fn huge_range_count_rejected() {
    let state = SyncState::empty(SyncKind::Contents, Fid(Globcnt::new(5).unwrap()));
    let mut bytes = state.to_bytes();
    // The first range count follows magic (4), version (1), kind (1), folder (6) and the
    // replica flag (1).
    bytes[13..17].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(
        SyncState::from_bytes(&bytes),
        Err(SyncStateRejection::Unparsable)
    );
}

#[test]
fn unknown_magic_rejected() {
    assert_eq!(
        SyncState::from_bytes(b"not a state"),
        Err(SyncStateRejection::Unparsable)
    );
    assert_eq!(
        SyncState::from_bytes(&[]),
        Err(SyncStateRejection::Unparsable)
    );
}
