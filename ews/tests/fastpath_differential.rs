//! The typed readers of SyncFolderItems, FindItem and GetItem responses against the
//! element-tree readers they replaced: on generated responses, hand-written edge cases,
//! cut-short documents and every shared capture of these operations, both give equal
//! values or the same error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use exmux_ews::EwsError;
use exmux_ews::operation::{EwsOperation, Response, encode_response};
use exmux_ews::ops::items::GetItem;
use exmux_ews::ops::sync::{FindItemPage, FindItemReader, ItemSync, SyncChange, SyncItemsReader};
use exmux_ews::sample;
use exmux_ews::types::{Item, ItemId, ItemKind};
use proptest::prelude::*;

/// A collected page and the reader's header values.
type SyncPage = (Option<exmux_ews::types::ServerVersionInfo>, ItemSync);
type FindPage = (Option<exmux_ews::types::ServerVersionInfo>, FindItemPage);

fn sync_typed(input: &[u8]) -> Result<SyncPage, EwsError> {
    let reader = SyncItemsReader::new(input)?;
    let version = reader.server_version.clone();
    Ok((version, reader.collect_page()?))
}

fn sync_tree(input: &[u8]) -> Result<SyncPage, EwsError> {
    let reader = SyncItemsReader::new_reference(input)?;
    let version = reader.server_version.clone();
    Ok((version, reader.collect_page()?))
}

fn find_typed(input: &[u8]) -> Result<FindPage, EwsError> {
    let reader = FindItemReader::new(input)?;
    let version = reader.server_version.clone();
    Ok((version, reader.collect_page()?))
}

fn find_tree(input: &[u8]) -> Result<FindPage, EwsError> {
    let reader = FindItemReader::new_reference(input)?;
    let version = reader.server_version.clone();
    Ok((version, reader.collect_page()?))
}

fn get_typed(input: &[u8]) -> Result<Response<Vec<Item>>, EwsError> {
    GetItem::parse_response(input)
}

fn get_tree(input: &[u8]) -> Result<Response<Vec<Item>>, EwsError> {
    GetItem::parse_response_reference(input)
}

/// Asserts equal values, or errors of the same kind. Malformed-XML errors must agree on
/// the offset. Their reason may name a different element, because the typed reader
/// reports the innermost open element and the tree reader the outermost.
fn assert_same<T: PartialEq + std::fmt::Debug>(
    what: &str,
    typed: Result<T, EwsError>,
    tree: Result<T, EwsError>,
) {
    match (typed, tree) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "{what}: values differ"),
        (
            Err(EwsError::MalformedXml { offset: a, .. }),
            Err(EwsError::MalformedXml { offset: b, .. }),
        ) => assert_eq!(a, b, "{what}: error offsets differ"),
        (Err(a), Err(b)) => assert_eq!(format!("{a:?}"), format!("{b:?}"), "{what}: errors differ"),
        (a, b) => panic!("{what}: typed reader gave {a:?}, tree reader gave {b:?}"),
    }
}

fn check_all(what: &str, input: &[u8]) {
    assert_same(
        &format!("{what} as SyncFolderItems"),
        sync_typed(input),
        sync_tree(input),
    );
    assert_same(
        &format!("{what} as FindItem"),
        find_typed(input),
        find_tree(input),
    );
    assert_same(
        &format!("{what} as GetItem"),
        get_typed(input),
        get_tree(input),
    );
}

#[test]
fn generated_responses_agree() {
    for n in [0, 1, 7, 64] {
        let sync = sample::sync_folder_items_response(n).unwrap();
        let (_, page) = sync_typed(&sync).unwrap();
        assert_eq!(page.changes.len(), n);
        check_all(&format!("sync {n}"), &sync);

        let find = sample::find_item_response(n).unwrap();
        let (_, page) = find_typed(&find).unwrap();
        assert_eq!(page.items.len(), n);
        assert_eq!(
            page.items.first(),
            (n > 0).then(|| sample::mail_item(0)).as_ref()
        );
        check_all(&format!("find {n}"), &find);
    }
}

#[test]
fn generated_get_item_agrees() {
    let items: Vec<Item> = (0..5).map(sample::mail_item).collect();
    let response: Response<Vec<Item>> = Response::new(vec![
        Ok(items[..2].to_vec()),
        Err(exmux_ews::MessageError {
            class: exmux_ews::ResponseClass::Error,
            code: exmux_ews::ResponseCode::parse("ErrorItemNotFound"),
            text: Some("The specified object was not found in the store.".into()),
            message_xml: Default::default(),
            index: 1,
            conflict_count: None,
            subscription_ids: Vec::new(),
        }),
        Ok(items[2..].to_vec()),
    ]);
    let body = encode_response::<GetItem>(&response, None).unwrap();
    let parsed = get_typed(&body).unwrap();
    assert_eq!(parsed.messages.len(), 3);
    assert_eq!(parsed.messages[0].as_ref().unwrap(), &items[..2].to_vec());
    assert!(parsed.messages[1].is_err());
    assert_eq!(parsed.messages[2].as_ref().unwrap(), &items[2..].to_vec());
    check_all("generated GetItem", &body);
}

/// Wraps `changes` in a SyncFolderItems envelope, with prefixes other than the usual ones
/// and a default namespace, so nothing can match by prefix.
fn sync_doc(changes: &str) -> Vec<u8> {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">
  <s:Header>
    <h:ServerVersionInfo xmlns:h="http://schemas.microsoft.com/exchange/services/2006/types" MajorVersion="15" MinorVersion="1" MajorBuildNumber="2" MinorBuildNumber="3"/>
  </s:Header>
  <s:Body>
    <SyncFolderItemsResponse xmlns="http://schemas.microsoft.com/exchange/services/2006/messages" xmlns:ty="http://schemas.microsoft.com/exchange/services/2006/types">
      <ResponseMessages>
        <SyncFolderItemsResponseMessage ResponseClass="Success">
          <ResponseCode>NoError</ResponseCode>
          <SyncState>state-1</SyncState>
          <IncludesLastItemInRange>true</IncludesLastItemInRange>
          <Changes>{changes}</Changes>
        </SyncFolderItemsResponseMessage>
      </ResponseMessages>
    </SyncFolderItemsResponse>
  </s:Body>
</s:Envelope>"#
    )
    .into_bytes()
}

const EDGE_CHANGES: &str = r#"
  <ty:Create>
    <ty:CalendarItem>
      <ty:ItemId Id="A&amp;B" ChangeKey="ck1"/>
      <ty:Subject>  padded &#x1; subject &lt;x&gt; <![CDATA[<raw>]]>  </ty:Subject>
      <ty:Body BodyType="HTML"><![CDATA[<p>hi</p>]]></ty:Body>
      <ty:Categories><ty:String>One</ty:String><ty:String> Two </ty:String><x:Other xmlns:x="urn:other">Three</x:Other></ty:Categories>
      <ty:Size> 42 </ty:Size>
      <ty:Flag><ty:FlagStatus> Flagged </ty:FlagStatus><ty:FlagStatus>Complete</ty:FlagStatus></ty:Flag>
      <x:Subject xmlns:x="urn:other">not the subject</x:Subject>
      <ty:DateTimeReceived>2024-01-02T03:04:05</ty:DateTimeReceived>
      <ty:DateTimeSent>2024-01-02T03:04:05+02:00</ty:DateTimeSent>
      <ty:LastModifiedTime>not a date</ty:LastModifiedTime>
      <ty:HasAttachments>1</ty:HasAttachments>
      <ty:Sender><ty:Mailbox><ty:Name> Alice </ty:Name><ty:Name>Second</ty:Name><ty:EmailAddress>a@example.test</ty:EmailAddress></ty:Mailbox></ty:Sender>
      <ty:ToRecipients>
        <ty:Mailbox><ty:Name>Bob</ty:Name></ty:Mailbox>
        <ty:Mailbox><ty:EmailAddress>carol@example.test</ty:EmailAddress><ty:Mailbox><ty:Name>inner</ty:Name></ty:Mailbox></ty:Mailbox>
      </ty:ToRecipients>
      <ty:From><ty:Name>Direct</ty:Name><ty:EmailAddress>d@example.test</ty:EmailAddress></ty:From>
      <ty:IsRead>false</ty:IsRead>
      <ty:Unknown a="1"><ty:Deep><ty:Deeper/></ty:Deep>text</ty:Unknown>
      <ty:ItemClass>IPM.Appointment<ty:Nested/>  </ty:ItemClass>
    </ty:CalendarItem>
    <ty:Message><ty:Subject>second item is ignored</ty:Subject></ty:Message>
  </ty:Create>
  <ty:Update><ty:SomethingNew><ty:ItemId Id="new-kind"/><ty:Subject/></ty:SomethingNew></ty:Update>
  <ty:Update/>
  <ty:Create></ty:Create>
  <ty:Delete><ty:ItemId Id="gone" ChangeKey="ck"/></ty:Delete>
  <ty:Delete><ty:ItemId ChangeKey="no id"/></ty:Delete>
  <ty:ReadFlagChange><ty:ItemId Id="r1"/><ty:IsRead>true</ty:IsRead></ty:ReadFlagChange>
  <ty:ReadFlagChange><ty:ItemId Id="r2"/><ty:IsRead>maybe</ty:IsRead></ty:ReadFlagChange>
  <ty:FutureChange><ty:ItemId Id="f"/></ty:FutureChange>
  <ty:Delete><zz:ItemId Id="undeclared prefix"/></ty:Delete>
  <ty:Create><ty:Message><ty:ParentFolderId Id="p" ChangeKey="pk"/><ty:MimeContent CharacterSet="UTF-8">
    TUlNRQ==
  </ty:MimeContent><ty:InternetMessageId> &lt;id@x&gt; </ty:InternetMessageId><ty:Importance>High</ty:Importance></ty:Message></ty:Create>
"#;

#[test]
fn edge_cases_agree() {
    let doc = sync_doc(EDGE_CHANGES);
    check_all("edge cases", &doc);

    let (version, page) = sync_typed(&doc).unwrap();
    assert_eq!(version.unwrap().major, 15);
    assert_eq!(page.sync_state, "state-1");
    // Create, Update (new kind), Delete, ReadFlagChange, Create: the empty Create and
    // Update, the Delete without Id, the unreadable IsRead and the unknown change are
    // skipped.
    assert_eq!(page.changes.len(), 5, "{:#?}", page.changes);

    let SyncChange::Create(first) = &page.changes[0] else {
        panic!("first change: {:?}", page.changes[0]);
    };
    assert_eq!(first.kind, ItemKind::CalendarItem);
    assert_eq!(first.item_id.as_ref().unwrap().id, "A&B");
    assert_eq!(
        first.subject.as_deref(),
        Some("  padded \u{FFFD} subject <x> <raw>  ")
    );
    assert_eq!(first.body, Some(("<p>hi</p>".to_owned(), true)));
    assert_eq!(first.categories, ["One", " Two ", "Three"]);
    assert_eq!(first.size, Some(42));
    assert_eq!(first.flag_status.as_deref(), Some("Flagged"));
    assert!(first.date_time_received.is_some());
    assert!(first.date_time_sent.is_some());
    assert_eq!(first.last_modified_time, None);
    assert_eq!(first.has_attachments, Some(true));
    let sender = first.sender.as_ref().unwrap();
    assert_eq!(sender.name.as_deref(), Some("Alice"));
    assert_eq!(first.to_recipients.len(), 2);
    // A nested Mailbox wins over the recipient's own EmailAddress.
    assert_eq!(first.to_recipients[1].name.as_deref(), Some("inner"));
    assert_eq!(first.to_recipients[1].email, None);
    assert_eq!(first.from.as_ref().unwrap().name.as_deref(), Some("Direct"));
    assert_eq!(first.item_class.as_deref(), Some("IPM.Appointment"));

    let SyncChange::Update(second) = &page.changes[1] else {
        panic!("second change: {:?}", page.changes[1]);
    };
    assert_eq!(second.kind, ItemKind::Other("SomethingNew".into()));
    assert_eq!(second.subject.as_deref(), Some(""));

    assert_eq!(
        page.changes[2],
        SyncChange::Delete(ItemId {
            id: "gone".into(),
            change_key: Some("ck".into())
        })
    );
    assert!(matches!(
        page.changes[3],
        SyncChange::ReadFlagChange { is_read: true, .. }
    ));
    let SyncChange::Create(last) = &page.changes[4] else {
        panic!("last change: {:?}", page.changes[4]);
    };
    assert_eq!(last.mime_content.as_deref(), Some("TUlNRQ=="));
    assert_eq!(last.internet_message_id.as_deref(), Some("<id@x>"));
    assert_eq!(last.parent_folder_id.as_ref().unwrap().id, "p");
}

#[test]
fn namespace_scopes_agree() {
    // `ty` is rebound to another namespace on one Subject only, an empty element's
    // declaration must not leak to its siblings, and `xmlns=""` leaves elements
    // unqualified (which EWS readers accept).
    let changes = r#"
  <ty:Create><ty:Message>
    <ty:Subject xmlns:ty="urn:other">not EWS</ty:Subject>
    <ty:ItemClass>IPM.Note</ty:ItemClass>
    <ty:Size xmlns:ty="urn:other"/>
    <ty:Importance>High</ty:Importance>
    <IsRead xmlns="">true</IsRead>
  </ty:Message></ty:Create>"#;
    let doc = sync_doc(changes);
    check_all("namespace scopes", &doc);
    let (_, page) = sync_typed(&doc).unwrap();
    let SyncChange::Create(item) = &page.changes[0] else {
        panic!("{:?}", page.changes);
    };
    assert_eq!(item.subject, None);
    assert_eq!(item.item_class.as_deref(), Some("IPM.Note"));
    assert_eq!(item.size, None);
    assert_eq!(item.importance.as_deref(), Some("High"));
    assert_eq!(item.is_read, Some(true));
}

#[test]
fn malformed_changes_agree() {
    let cases = [
        r#"<ty:Create><ty:Message><ty:Subject>a &bogus; b</ty:Subject></ty:Message></ty:Create>"#,
        r#"<ty:Create><ty:Message><ty:ItemId Id="1" Id="2"/></ty:Message></ty:Create>"#,
        r#"<ty:Create><ty:Message><ty:Unknown x="&nope;"/></ty:Message></ty:Create>"#,
        r#"<ty:Create><ty:Message><ty:Subject>x</ty:Sbject></ty:Message></ty:Create>"#,
        r#"<ty:Create><ty:Message><ty:Body BodyType="HTML" BodyType="Text">x</ty:Body></ty:Message></ty:Create>"#,
        r#"<ty:Create><ty:Message><ty:Subject>&#xFFFFFFF;</ty:Subject></ty:Message></ty:Create>"#,
    ];
    for (i, changes) in cases.iter().enumerate() {
        let doc = sync_doc(changes);
        assert!(sync_typed(&doc).is_err(), "case {i} should fail");
        check_all(&format!("malformed case {i}"), &doc);
    }
}

#[test]
fn cut_short_documents_agree() {
    let docs = [
        sync_doc(EDGE_CHANGES),
        sample::sync_folder_items_response(3).unwrap(),
        sample::find_item_response(3).unwrap(),
    ];
    for (d, doc) in docs.iter().enumerate() {
        for end in (0..doc.len()).step_by(37) {
            check_all(&format!("document {d} cut at {end}"), &doc[..end]);
        }
    }
}

#[test]
fn shared_captures_agree() {
    let Some(shared) = exmux_testkit::shared_dir() else {
        return;
    };
    let mut compared = 0;
    for folder in ["captures/ews", "captures/ews-gromox"] {
        for entry in std::fs::read_dir(shared.join(folder)).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_lowercase();
            if !name.ends_with(".xml") {
                continue;
            }
            let body = std::fs::read(&path).unwrap();
            let what = path.display().to_string();
            if name.contains("syncfolderitems") {
                assert_same(&what, sync_typed(&body), sync_tree(&body));
            } else if name.contains("finditem") {
                assert_same(&what, find_typed(&body), find_tree(&body));
            } else if name.contains("getitem") {
                assert_same(&what, get_typed(&body), get_tree(&body));
            } else {
                continue;
            }
            compared += 1;
        }
    }
    assert!(compared >= 10, "only {compared} captures compared");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn generated_items_agree(
        subject in "\\PC{0,40}",
        body in "[\\x00-\\x7f\u{80}-\u{10FFFF}]{0,60}",
        categories in proptest::collection::vec("[ A-Za-z&<>]{0,12}", 0..4),
        html in any::<bool>(),
        n in 0usize..1000,
    ) {
        let mut item = sample::mail_item(n);
        item.subject = Some(subject);
        item.body = Some((body, html));
        item.categories = categories;
        let page = FindItemPage {
            paging: Default::default(),
            items: vec![item.clone(), sample::mail_item(n + 1)],
        };
        let response: Response<FindItemPage> = Response::new(vec![Ok(page)]);
        let doc = encode_response::<exmux_ews::ops::sync::FindItem>(&response, None).unwrap();
        let typed = find_typed(&doc);
        let tree = find_tree(&doc);
        prop_assert_eq!(format!("{typed:?}"), format!("{tree:?}"));
        let (_, page) = typed.unwrap();
        prop_assert_eq!(page.items.len(), 2);
    }
}
