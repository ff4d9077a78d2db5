//! Folder operations: read, create, rename, move, copy and delete.

use super::model::{Folder, ImportStamp, WellKnownFolder, WriteResult};
use super::notify::{EventKind, ObjectId};
use super::{Cn, Fid, Mid, SessionId, Store, StoreError, Tombstone};

impl Store {
    /// Returns a folder.
    pub fn folder(&self, fid: Fid) -> Option<&Folder> {
        self.folders.get(&fid)
    }

    /// Returns the deletion record of a deleted folder.
    pub fn folder_tombstone(&self, fid: Fid) -> Option<&Tombstone> {
        self.folder_tombstones.get(&fid)
    }

    /// Returns the direct subfolders of `fid`, in folder id order.
    pub fn child_folders(&self, fid: Fid) -> Vec<&Folder> {
        self.folders
            .values()
            .filter(|folder| folder.parent == Some(fid))
            .collect()
    }

    /// Returns every folder below `fid` (not `fid` itself), parents before children, with
    /// its depth below `fid` (1 for a direct subfolder).
    pub fn descendant_folders(&self, fid: Fid) -> Vec<(usize, &Folder)> {
        let mut out = Vec::new();
        let mut level = vec![fid];
        let mut depth = 0;
        while !level.is_empty() {
            depth += 1;
            let mut next = Vec::new();
            for parent in &level {
                for child in self.child_folders(*parent) {
                    out.push((depth, child));
                    next.push(child.fid);
                }
            }
            level = next;
        }
        out
    }

    /// Creates a folder under `parent`.
    ///
    /// # Errors
    ///
    /// A bad session, [`StoreError::FolderNotFound`] for the parent, or
    /// [`StoreError::FolderNameTaken`] when a sibling has the name.
    pub fn create_folder(
        &mut self,
        session: SessionId,
        parent: Fid,
        display_name: &str,
        container_class: Option<&str>,
        import: &ImportStamp,
    ) -> Result<WriteResult<Fid>, StoreError> {
        const OPERATION: &str = "create folder";
        self.check_session(OPERATION, session)?;
        self.check_folder(OPERATION, parent)?;
        self.check_name_free(OPERATION, parent, display_name, None)?;

        let fid = Fid(self.next_globcnt(OPERATION)?);
        let stamp = self.new_stamp(OPERATION, session, None, import)?;
        let result = WriteResult {
            id: fid,
            cn: stamp.cn,
            change_key: stamp.change_key.clone(),
        };
        self.folders.insert(
            fid,
            Folder {
                fid,
                parent: Some(parent),
                display_name: display_name.to_owned(),
                container_class: container_class.map(str::to_owned),
                well_known: None,
                stamp,
                created_by: session,
            },
        );
        self.folder_items.insert(fid, Default::default());

        self.emit(
            EventKind::Created,
            ObjectId::Folder(fid),
            parent,
            None,
            session,
            Some(result.cn),
        );
        Ok(result)
    }

    /// Renames a folder: a new change number, change key and PCL, the same folder id.
    ///
    /// # Errors
    ///
    /// A bad session, [`StoreError::FolderNotFound`],
    /// [`StoreError::WellKnownFolder`], or [`StoreError::FolderNameTaken`].
    pub fn rename_folder(
        &mut self,
        session: SessionId,
        fid: Fid,
        display_name: &str,
        import: &ImportStamp,
    ) -> Result<WriteResult<Fid>, StoreError> {
        const OPERATION: &str = "rename folder";
        self.check_session(OPERATION, session)?;
        let (parent, old_stamp) = self.changeable_folder(OPERATION, fid)?;
        self.check_name_free(OPERATION, parent, display_name, Some(fid))?;

        let stamp = self.new_stamp(OPERATION, session, Some(&old_stamp), import)?;
        let result = WriteResult {
            id: fid,
            cn: stamp.cn,
            change_key: stamp.change_key.clone(),
        };
        if let Some(folder) = self.folders.get_mut(&fid) {
            folder.display_name = display_name.to_owned();
            folder.stamp = stamp;
        }

        self.emit(
            EventKind::Modified,
            ObjectId::Folder(fid),
            parent,
            None,
            session,
            Some(result.cn),
        );
        Ok(result)
    }

    /// Moves a folder under `target`. The folder keeps its id (folder ids are stable
    /// across moves) and gets a new change number, change key and PCL, because its
    /// parent changed.
    ///
    /// # Errors
    ///
    /// A bad session, [`StoreError::FolderNotFound`], [`StoreError::WellKnownFolder`],
    /// [`StoreError::FolderCycle`] when `target` is the folder or below it, or
    /// [`StoreError::FolderNameTaken`].
    pub fn move_folder(
        &mut self,
        session: SessionId,
        fid: Fid,
        target: Fid,
    ) -> Result<WriteResult<Fid>, StoreError> {
        const OPERATION: &str = "move folder";
        self.check_session(OPERATION, session)?;
        let (old_parent, old_stamp) = self.changeable_folder(OPERATION, fid)?;
        self.check_folder(OPERATION, target)?;
        if target == fid
            || self
                .descendant_folders(fid)
                .iter()
                .any(|(_, f)| f.fid == target)
        {
            return Err(StoreError::FolderCycle { fid, target });
        }
        let name = self
            .folders
            .get(&fid)
            .map(|folder| folder.display_name.clone())
            .unwrap_or_default();
        self.check_name_free(OPERATION, target, &name, Some(fid))?;

        let stamp = self.new_stamp(
            OPERATION,
            session,
            Some(&old_stamp),
            &ImportStamp::default(),
        )?;
        let result = WriteResult {
            id: fid,
            cn: stamp.cn,
            change_key: stamp.change_key.clone(),
        };
        if let Some(folder) = self.folders.get_mut(&fid) {
            folder.parent = Some(target);
            folder.stamp = stamp;
        }

        self.emit(
            EventKind::Moved,
            ObjectId::Folder(fid),
            target,
            Some((ObjectId::Folder(fid), old_parent)),
            session,
            Some(result.cn),
        );
        Ok(result)
    }

    /// Deletes a folder with its subfolders and their items, leaving tombstones for all
    /// of them. Returns the change number of the deletion.
    ///
    /// # Errors
    ///
    /// A bad session, [`StoreError::FolderNotFound`] or [`StoreError::WellKnownFolder`].
    pub fn delete_folder(&mut self, session: SessionId, fid: Fid) -> Result<Cn, StoreError> {
        const OPERATION: &str = "delete folder";
        self.check_session(OPERATION, session)?;
        let (parent, _) = self.changeable_folder(OPERATION, fid)?;

        let cn = Cn(self.next_globcnt(OPERATION)?);
        let mut doomed: Vec<(Fid, Fid)> = vec![(fid, parent)];
        doomed.extend(
            self.descendant_folders(fid)
                .into_iter()
                .filter_map(|(_, folder)| Some((folder.fid, folder.parent?))),
        );

        let time = self.clock.now();
        for (doomed_fid, doomed_parent) in &doomed {
            let mids: Vec<_> = self
                .folder_items
                .remove(doomed_fid)
                .unwrap_or_default()
                .into_iter()
                .collect();
            for mid in mids {
                // The items are gone from the map of folder contents already, so
                // remove_item only drops them and records tombstones.
                self.remove_item(mid, cn, session, None);
            }
            self.folders.remove(doomed_fid);
            self.folder_tombstones.insert(
                *doomed_fid,
                Tombstone {
                    parent: *doomed_parent,
                    cn,
                    session,
                    time,
                    moved_to: None,
                },
            );
        }

        for (doomed_fid, doomed_parent) in doomed {
            self.emit(
                EventKind::Deleted,
                ObjectId::Folder(doomed_fid),
                doomed_parent,
                None,
                session,
                Some(cn),
            );
        }
        Ok(cn)
    }

    /// Copies a folder into `target` as a new folder named `name` (the source's name when
    /// `name` is empty), with copies of its items and, when `recursive`, of its
    /// subfolders and their items. Every copy gets a new id, change number and change
    /// key, as with RopCopyFolder. Returns the new folder.
    ///
    /// # Errors
    ///
    /// A bad session, [`StoreError::FolderNotFound`] for the source or target,
    /// [`StoreError::FolderCycle`] when `target` is the folder or below it, and
    /// [`StoreError::FolderNameTaken`] when `target` has a subfolder of that name. All are
    /// checked before anything is copied.
    pub fn copy_folder(
        &mut self,
        session: SessionId,
        fid: Fid,
        target: Fid,
        name: &str,
        recursive: bool,
    ) -> Result<WriteResult<Fid>, StoreError> {
        const OPERATION: &str = "copy folder";
        self.check_session(OPERATION, session)?;
        let source = self
            .folders
            .get(&fid)
            .ok_or(StoreError::FolderNotFound {
                operation: OPERATION,
                fid,
            })?
            .clone();
        self.check_folder(OPERATION, target)?;
        if target == fid
            || self
                .descendant_folders(fid)
                .iter()
                .any(|(_, f)| f.fid == target)
        {
            return Err(StoreError::FolderCycle { fid, target });
        }
        let name = if name.is_empty() {
            source.display_name.clone()
        } else {
            name.to_owned()
        };
        self.check_name_free(OPERATION, target, &name, None)?;

        let created = self.create_folder(
            session,
            target,
            &name,
            source.container_class.as_deref(),
            &ImportStamp::default(),
        )?;
        self.copy_folder_contents(session, fid, created.id, recursive)?;
        Ok(created)
    }

    fn copy_folder_contents(
        &mut self,
        session: SessionId,
        from: Fid,
        to: Fid,
        recursive: bool,
    ) -> Result<(), StoreError> {
        let mids: Vec<Mid> = self
            .folder_items
            .get(&from)
            .map(|mids| mids.iter().copied().collect())
            .unwrap_or_default();
        for mid in mids {
            self.copy_item(session, mid, to)?;
        }
        if !recursive {
            return Ok(());
        }
        let children: Vec<(Fid, String, Option<String>)> = self
            .child_folders(from)
            .iter()
            .map(|f| (f.fid, f.display_name.clone(), f.container_class.clone()))
            .collect();
        for (child, name, class) in children {
            let created = self.create_folder(
                session,
                to,
                &name,
                class.as_deref(),
                &ImportStamp::default(),
            )?;
            self.copy_folder_contents(session, child, created.id, true)?;
        }
        Ok(())
    }

    /// Returns the parent and stamp of a folder that may be renamed, moved or deleted.
    fn changeable_folder(
        &self,
        operation: &'static str,
        fid: Fid,
    ) -> Result<(Fid, super::ChangeStamp), StoreError> {
        let folder = self
            .folders
            .get(&fid)
            .ok_or(StoreError::FolderNotFound { operation, fid })?;
        match (folder.well_known, folder.parent) {
            (None, Some(parent)) => Ok((parent, folder.stamp.clone())),
            _ => Err(StoreError::WellKnownFolder { operation, fid }),
        }
    }

    /// Fails when a subfolder of `parent` other than `except` has the name `name`
    /// (compared without case, as Exchange does).
    fn check_name_free(
        &self,
        operation: &'static str,
        parent: Fid,
        name: &str,
        except: Option<Fid>,
    ) -> Result<(), StoreError> {
        let taken = self.child_folders(parent).iter().any(|folder| {
            Some(folder.fid) != except && folder.display_name.eq_ignore_ascii_case(name)
        });
        if taken {
            return Err(StoreError::FolderNameTaken {
                operation,
                parent,
                name: name.to_owned(),
            });
        }
        Ok(())
    }

    /// Returns the id of a well-known folder. Every store has all of them.
    pub fn well_known_folder(&self, folder: WellKnownFolder) -> Option<Fid> {
        self.well_known.get(&folder).copied()
    }
}
