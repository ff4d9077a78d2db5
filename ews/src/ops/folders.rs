//! Folder operations (MS-OXWSFOLD): GetFolder, FindFolder, CreateFolder, UpdateFolder,
//! MoveFolder, DeleteFolder, and SyncFolderHierarchy (MS-OXWSSYNC 3.1.4.1).
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::{IndexedPage, Paging, Shape, req_attr};
use crate::error::EwsError;
use crate::operation::{EwsOperation, EwsServerOperation, Response, missing, parse_messages};
use crate::soap::{XmlWriter, write_message};
use crate::types::{DeleteType, Folder, FolderId, FolderRef, Traversal, parse_bool};
use crate::xml::Element;

fn write_folder_refs(
    w: &mut XmlWriter,
    name: &'static str,
    refs: &[FolderRef],
    operation: &'static str,
) -> Result<(), EwsError> {
    if refs.is_empty() {
        return Err(EwsError::InvalidRequest {
            operation,
            reason: "no folder ids; pass at least one".into(),
        });
    }
    w.start(name, &[]);
    for r in refs {
        r.write(w);
    }
    w.end();
    Ok(())
}

fn folders_of(msg: &Element) -> Vec<Folder> {
    msg.child("Folders")
        .map(|f| f.children.iter().map(Folder::from_element).collect())
        .unwrap_or_default()
}

fn write_folders_response(
    w: &mut XmlWriter,
    root: &'static str,
    message: &'static str,
    response: &Response<Vec<Folder>>,
) -> Result<(), EwsError> {
    w.start_root(root, &[]);
    w.start("m:ResponseMessages", &[]);
    for m in &response.messages {
        write_message(w, message, m, |w, folders| {
            w.start("m:Folders", &[]);
            for f in folders {
                f.write(w);
            }
            w.end();
            Ok(())
        })?;
    }
    w.end();
    w.end();
    Ok(())
}

fn write_empty_response(
    w: &mut XmlWriter,
    root: &'static str,
    message: &'static str,
    response: &Response<()>,
) -> Result<(), EwsError> {
    w.start_root(root, &[]);
    w.start("m:ResponseMessages", &[]);
    for m in &response.messages {
        write_message(w, message, m, |_, _| Ok(()))?;
    }
    w.end();
    w.end();
    Ok(())
}

/// GetFolder (MS-OXWSFOLD 3.1.4.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetFolder {
    /// FolderShape.
    pub shape: Shape,
    /// Folders to read.
    pub folder_ids: Vec<FolderRef>,
}

impl EwsOperation for GetFolder {
    type Response = Response<Vec<Folder>>;
    const NAME: &'static str = "GetFolder";

    fn write_body(&self, w: &mut XmlWriter) -> Result<(), EwsError> {
        w.start_root("m:GetFolder", &[]);
        self.shape.write(w, "m:FolderShape", false);
        write_folder_refs(w, "m:FolderIds", &self.folder_ids, Self::NAME)?;
        w.end();
        Ok(())
    }

    fn parse_response(body: &[u8]) -> Result<Self::Response, EwsError> {
        parse_messages(body, Self::NAME, "GetFolderResponse", |m| Ok(folders_of(m)))
    }
}

impl EwsServerOperation for GetFolder {
    fn from_request(body: &Element) -> Result<Self, EwsError> {
        Ok(Self {
            shape: Shape::read(body.child("FolderShape"), Self::NAME)?,
            folder_ids: body
                .child("FolderIds")
                .map(FolderRef::all_in)
                .unwrap_or_default(),
        })
    }

    fn write_response(response: &Self::Response, w: &mut XmlWriter) -> Result<(), EwsError> {
        write_folders_response(
            w,
            "m:GetFolderResponse",
            "m:GetFolderResponseMessage",
            response,
        )
    }
}

/// FindFolder (MS-OXWSSRCH 3.1.4.1), paged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindFolder {
    /// Shallow or Deep.
    pub traversal: Traversal,
    /// FolderShape.
    pub shape: Shape,
    /// IndexedPageFolderView.
    pub page: Option<IndexedPage>,
    /// ParentFolderIds.
    pub parents: Vec<FolderRef>,
}

/// One FindFolder page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindFolderResult {
    /// Paging attributes.
    pub paging: Paging,
    /// Folders of this page.
    pub folders: Vec<Folder>,
}

impl EwsOperation for FindFolder {
    type Response = Response<FindFolderResult>;
    const NAME: &'static str = "FindFolder";

    fn write_body(&self, w: &mut XmlWriter) -> Result<(), EwsError> {
        w.start_root("m:FindFolder", &[("Traversal", self.traversal.as_str())]);
        self.shape.write(w, "m:FolderShape", false);
        if let Some(p) = &self.page {
            p.write(w, "m:IndexedPageFolderView");
        }
        write_folder_refs(w, "m:ParentFolderIds", &self.parents, Self::NAME)?;
        w.end();
        Ok(())
    }

    fn parse_response(body: &[u8]) -> Result<Self::Response, EwsError> {
        parse_messages(body, Self::NAME, "FindFolderResponse", |m| {
            let root = m
                .child("RootFolder")
                .ok_or_else(|| missing(Self::NAME, "a RootFolder"))?;
            Ok(FindFolderResult {
                paging: Paging::read(root),
                folders: folders_of(root),
            })
        })
    }
}

impl EwsServerOperation for FindFolder {
    fn from_request(body: &Element) -> Result<Self, EwsError> {
        Ok(Self {
            traversal: body
                .attr("Traversal")
                .and_then(Traversal::parse)
                .unwrap_or(Traversal::Shallow),
            shape: Shape::read(body.child("FolderShape"), Self::NAME)?,
            page: body
                .child("IndexedPageFolderView")
                .and_then(IndexedPage::read),
            parents: body
                .child("ParentFolderIds")
                .map(FolderRef::all_in)
                .unwrap_or_default(),
        })
    }

    fn write_response(response: &Self::Response, w: &mut XmlWriter) -> Result<(), EwsError> {
        w.start_root("m:FindFolderResponse", &[]);
        w.start("m:ResponseMessages", &[]);
        for m in &response.messages {
            write_message(w, "m:FindFolderResponseMessage", m, |w, r| {
                let attrs = r.paging.attrs();
                let attrs: Vec<(&str, &str)> =
                    attrs.iter().map(|(k, v)| (*k, v.as_str())).collect();
                w.start("m:RootFolder", &attrs);
                w.start("t:Folders", &[]);
                for f in &r.folders {
                    f.write(w);
                }
                w.end();
                w.end();
                Ok(())
            })?;
        }
        w.end();
        w.end();
        Ok(())
    }
}

/// CreateFolder (MS-OXWSFOLD 3.1.4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateFolder {
    /// ParentFolderId.
    pub parent: FolderRef,
    /// Folders to create (DisplayName, FolderClass).
    pub folders: Vec<Folder>,
}

impl EwsOperation for CreateFolder {
    type Response = Response<Vec<Folder>>;
    const NAME: &'static str = "CreateFolder";

    fn write_body(&self, w: &mut XmlWriter) -> Result<(), EwsError> {
        if self.folders.is_empty() {
            return Err(EwsError::InvalidRequest {
                operation: Self::NAME,
                reason: "no folders to create".into(),
            });
        }
        w.start_root("m:CreateFolder", &[]);
        w.start("m:ParentFolderId", &[]);
        self.parent.write(w);
        w.end();
        w.start("m:Folders", &[]);
        for f in &self.folders {
            f.write(w);
        }
        w.end();
        w.end();
        Ok(())
    }

    fn parse_response(body: &[u8]) -> Result<Self::Response, EwsError> {
        parse_messages(body, Self::NAME, "CreateFolderResponse", |m| {
            Ok(folders_of(m))
        })
    }
}

impl EwsServerOperation for CreateFolder {
    fn from_request(body: &Element) -> Result<Self, EwsError> {
        let parent = body
            .child("ParentFolderId")
            .and_then(|p| FolderRef::all_in(p).into_iter().next())
            .ok_or_else(|| missing(Self::NAME, "a ParentFolderId"))?;
        Ok(Self {
            parent,
            folders: folders_of(body),
        })
    }

    fn write_response(response: &Self::Response, w: &mut XmlWriter) -> Result<(), EwsError> {
        write_folders_response(
            w,
            "m:CreateFolderResponse",
            "m:CreateFolderResponseMessage",
            response,
        )
    }
}

/// UpdateFolder (MS-OXWSFOLD 3.1.4.8), used to rename.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateFolder {
    /// (folder, new DisplayName) pairs.
    pub renames: Vec<(FolderRef, String)>,
}

impl EwsOperation for UpdateFolder {
    type Response = Response<Vec<Folder>>;
    const NAME: &'static str = "UpdateFolder";

    fn write_body(&self, w: &mut XmlWriter) -> Result<(), EwsError> {
        if self.renames.is_empty() {
            return Err(EwsError::InvalidRequest {
                operation: Self::NAME,
                reason: "no folder changes".into(),
            });
        }
        w.start_root("m:UpdateFolder", &[]);
        w.start("m:FolderChanges", &[]);
        for (folder, name) in &self.renames {
            w.start("t:FolderChange", &[]);
            folder.write(w);
            w.start("t:Updates", &[]);
            w.start("t:SetFolderField", &[]);
            w.empty("t:FieldURI", &[("FieldURI", "folder:DisplayName")]);
            w.start("t:Folder", &[]);
            w.text("t:DisplayName", name);
            w.end();
            w.end();
            w.end();
            w.end();
        }
        w.end();
        w.end();
        Ok(())
    }

    fn parse_response(body: &[u8]) -> Result<Self::Response, EwsError> {
        parse_messages(body, Self::NAME, "UpdateFolderResponse", |m| {
            Ok(folders_of(m))
        })
    }
}

impl EwsServerOperation for UpdateFolder {
    fn from_request(body: &Element) -> Result<Self, EwsError> {
        let mut renames = Vec::new();
        for change in body
            .child("FolderChanges")
            .map(|c| c.children.as_slice())
            .unwrap_or_default()
        {
            let Some(folder) = change.children.iter().find_map(FolderRef::from_element) else {
                continue;
            };
            // Only DisplayName changes are modelled; other SetFolderField updates (such as
            // permission sets) are not, and a request holding only those yields no rename.
            let name = change
                .child("Updates")
                .and_then(|u| {
                    u.children_named("SetFolderField")
                        .find_map(|s| s.children.iter().find_map(|f| f.child("DisplayName")))
                })
                .map(|d| d.text.clone());
            if let Some(name) = name {
                renames.push((folder, name));
            }
        }
        Ok(Self { renames })
    }

    fn write_response(response: &Self::Response, w: &mut XmlWriter) -> Result<(), EwsError> {
        write_folders_response(
            w,
            "m:UpdateFolderResponse",
            "m:UpdateFolderResponseMessage",
            response,
        )
    }
}

/// MoveFolder (MS-OXWSFOLD 3.1.4.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoveFolder {
    /// ToFolderId.
    pub to: FolderRef,
    /// Folders to move.
    pub folder_ids: Vec<FolderRef>,
}

impl EwsOperation for MoveFolder {
    type Response = Response<Vec<Folder>>;
    const NAME: &'static str = "MoveFolder";

    fn write_body(&self, w: &mut XmlWriter) -> Result<(), EwsError> {
        w.start_root("m:MoveFolder", &[]);
        w.start("m:ToFolderId", &[]);
        self.to.write(w);
        w.end();
        write_folder_refs(w, "m:FolderIds", &self.folder_ids, Self::NAME)?;
        w.end();
        Ok(())
    }

    fn parse_response(body: &[u8]) -> Result<Self::Response, EwsError> {
        parse_messages(body, Self::NAME, "MoveFolderResponse", |m| {
            Ok(folders_of(m))
        })
    }
}

impl EwsServerOperation for MoveFolder {
    fn from_request(body: &Element) -> Result<Self, EwsError> {
        let to = body
            .child("ToFolderId")
            .and_then(|p| FolderRef::all_in(p).into_iter().next())
            .ok_or_else(|| missing(Self::NAME, "a ToFolderId"))?;
        Ok(Self {
            to,
            folder_ids: body
                .child("FolderIds")
                .map(FolderRef::all_in)
                .unwrap_or_default(),
        })
    }

    fn write_response(response: &Self::Response, w: &mut XmlWriter) -> Result<(), EwsError> {
        write_folders_response(
            w,
            "m:MoveFolderResponse",
            "m:MoveFolderResponseMessage",
            response,
        )
    }
}

/// DeleteFolder (MS-OXWSFOLD 3.1.4.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteFolder {
    /// DeleteType.
    pub delete_type: DeleteType,
    /// Folders to delete.
    pub folder_ids: Vec<FolderRef>,
}

impl EwsOperation for DeleteFolder {
    type Response = Response<()>;
    const NAME: &'static str = "DeleteFolder";

    fn write_body(&self, w: &mut XmlWriter) -> Result<(), EwsError> {
        w.start_root(
            "m:DeleteFolder",
            &[("DeleteType", self.delete_type.as_str())],
        );
        write_folder_refs(w, "m:FolderIds", &self.folder_ids, Self::NAME)?;
        w.end();
        Ok(())
    }

    fn parse_response(body: &[u8]) -> Result<Self::Response, EwsError> {
        parse_messages(body, Self::NAME, "DeleteFolderResponse", |_| Ok(()))
    }
}

impl EwsServerOperation for DeleteFolder {
    fn from_request(body: &Element) -> Result<Self, EwsError> {
        let dt = req_attr(body, "DeleteType", Self::NAME, "a DeleteType attribute")?;
        Ok(Self {
            delete_type: DeleteType::parse(dt)
                .ok_or_else(|| missing(Self::NAME, "a known DeleteType"))?,
            folder_ids: body
                .child("FolderIds")
                .map(FolderRef::all_in)
                .unwrap_or_default(),
        })
    }

    fn write_response(response: &Self::Response, w: &mut XmlWriter) -> Result<(), EwsError> {
        write_empty_response(
            w,
            "m:DeleteFolderResponse",
            "m:DeleteFolderResponseMessage",
            response,
        )
    }
}

/// SyncFolderHierarchy (MS-OXWSSYNC 3.1.4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncFolderHierarchy {
    /// FolderShape.
    pub shape: Shape,
    /// SyncFolderId (the whole mailbox when absent).
    pub folder: Option<FolderRef>,
    /// SyncState from the previous call; `None` for a first sync.
    pub sync_state: Option<String>,
}

/// One hierarchy change.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HierarchyChange {
    /// A folder appeared.
    Create(Folder),
    /// A folder changed.
    Update(Folder),
    /// A folder is gone.
    Delete(FolderId),
}

/// A SyncFolderHierarchy result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HierarchySync {
    /// The new SyncState.
    pub sync_state: String,
    /// IncludesLastFolderInRange.
    pub includes_last: bool,
    /// Changes in server order.
    pub changes: Vec<HierarchyChange>,
}

impl EwsOperation for SyncFolderHierarchy {
    type Response = Response<HierarchySync>;
    const NAME: &'static str = "SyncFolderHierarchy";

    fn write_body(&self, w: &mut XmlWriter) -> Result<(), EwsError> {
        w.start_root("m:SyncFolderHierarchy", &[]);
        self.shape.write(w, "m:FolderShape", false);
        if let Some(f) = &self.folder {
            w.start("m:SyncFolderId", &[]);
            f.write(w);
            w.end();
        }
        if let Some(s) = self.sync_state.as_deref().filter(|s| !s.is_empty()) {
            w.text("m:SyncState", s);
        }
        w.end();
        Ok(())
    }

    fn parse_response(body: &[u8]) -> Result<Self::Response, EwsError> {
        parse_messages(body, Self::NAME, "SyncFolderHierarchyResponse", |m| {
            let mut changes = Vec::new();
            for c in m
                .child("Changes")
                .map(|c| c.children.as_slice())
                .unwrap_or_default()
            {
                let folder = c.children.first();
                match &*c.name {
                    "Create" => changes
                        .extend(folder.map(|f| HierarchyChange::Create(Folder::from_element(f)))),
                    "Update" => changes
                        .extend(folder.map(|f| HierarchyChange::Update(Folder::from_element(f)))),
                    "Delete" => changes.extend(
                        c.child("FolderId")
                            .and_then(FolderId::from_element)
                            .map(HierarchyChange::Delete),
                    ),
                    _ => {}
                }
            }
            Ok(HierarchySync {
                sync_state: m.child_text("SyncState").unwrap_or_default().to_owned(),
                includes_last: m
                    .child_text("IncludesLastFolderInRange")
                    .and_then(parse_bool)
                    .unwrap_or(true),
                changes,
            })
        })
    }
}

impl EwsServerOperation for SyncFolderHierarchy {
    fn from_request(body: &Element) -> Result<Self, EwsError> {
        Ok(Self {
            shape: Shape::read(body.child("FolderShape"), Self::NAME)?,
            folder: body
                .child("SyncFolderId")
                .and_then(|f| FolderRef::all_in(f).into_iter().next()),
            sync_state: body
                .child_text("SyncState")
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        })
    }

    fn write_response(response: &Self::Response, w: &mut XmlWriter) -> Result<(), EwsError> {
        w.start_root("m:SyncFolderHierarchyResponse", &[]);
        w.start("m:ResponseMessages", &[]);
        for m in &response.messages {
            write_message(w, "m:SyncFolderHierarchyResponseMessage", m, |w, r| {
                w.text("m:SyncState", &r.sync_state);
                w.bool("m:IncludesLastFolderInRange", r.includes_last);
                w.start("m:Changes", &[]);
                for c in &r.changes {
                    match c {
                        HierarchyChange::Create(f) => {
                            w.start("t:Create", &[]);
                            f.write(w);
                            w.end();
                        }
                        HierarchyChange::Update(f) => {
                            w.start("t:Update", &[]);
                            f.write(w);
                            w.end();
                        }
                        HierarchyChange::Delete(id) => {
                            w.start("t:Delete", &[]);
                            match &id.change_key {
                                Some(ck) => {
                                    w.empty("t:FolderId", &[("Id", &id.id), ("ChangeKey", ck)])
                                }
                                None => w.empty("t:FolderId", &[("Id", &id.id)]),
                            }
                            w.end();
                        }
                    }
                }
                w.end();
                Ok(())
            })?;
        }
        w.end();
        w.end();
        Ok(())
    }
}
