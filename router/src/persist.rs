//! Saving the router state to a file and loading it back.
//!
//! The state is JSON. Saving writes a temporary file beside the target and renames it
//! over the target, so a crash leaves either the old or the new state, never a torn
//! one.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::core::RouterState;

/// An error saving or loading the router state.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PersistError {
    /// Reading or writing the file failed.
    #[error("cannot {action} the router state file {path}: {source}")]
    Io {
        /// `read` or `write`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a router state of this version.
    #[error(
        "the router state file {path} is invalid ({source}): move it away to start over with a full sync"
    )]
    Format {
        /// The file.
        path: PathBuf,
        /// The JSON error.
        source: serde_json::Error,
    },
}

/// Writes `state` to `path` atomically.
///
/// # Errors
/// [`PersistError::Io`] when the file or its temporary sibling cannot be written.
pub fn save_state(state: &RouterState, path: &Path) -> Result<(), PersistError> {
    let io_error = |source| PersistError::Io {
        action: "write",
        path: path.to_owned(),
        source,
    };
    let json = serde_json::to_vec(state).map_err(|source| PersistError::Format {
        path: path.to_owned(),
        source,
    })?;

    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    let mut file = std::fs::File::create(&temporary).map_err(io_error)?;
    file.write_all(&json).map_err(io_error)?;
    file.sync_all().map_err(io_error)?;
    drop(file);
    std::fs::rename(&temporary, path).map_err(io_error)
}

/// Reads a state written by [`save_state`]. Returns `Ok(None)` when the file does not
/// exist, which is the first run.
///
/// # Errors
/// [`PersistError::Io`] when the file exists but cannot be read;
/// [`PersistError::Format`] when it is not a router state.
pub fn load_state(path: &Path) -> Result<Option<RouterState>, PersistError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(PersistError::Io {
                action: "read",
                path: path.to_owned(),
                source,
            });
        }
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| PersistError::Format {
            path: path.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::config::Preset;
    use crate::core::{CoreOptions, Input, RouterCore};
    use crate::ids::BackendFolderId;

    #[test]
    fn state_file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        assert!(load_state(&path).unwrap().is_none());

        let mut core = RouterCore::new(
            uuid::Uuid::from_u128(5),
            Preset::Mapi.routing(),
            CoreOptions::default(),
        );
        let folder = core.register_folder(vec![BackendFolderId::Mapi(0x1_0001)]);
        core.handle(0, Input::Notice { folder }).unwrap();
        save_state(core.state(), &path).unwrap();

        let loaded = load_state(&path).unwrap().unwrap();
        assert_eq!(&loaded, core.state());
        assert!(!dir.path().join("state.json.tmp").exists());
    }

    #[test]
    fn invalid_state_file_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, b"{ not json").unwrap();
        let error = load_state(&path).unwrap_err();
        assert!(matches!(error, PersistError::Format { .. }));
        assert!(error.to_string().contains("state.json"));
    }
}
