//! One ROP batch sent as several Execute requests when it does not fit in one.
//!
//! A request buffer is split at ROP boundaries before sending, so each one stays within
//! the 32 KiB payload of one request extended buffer. After sending, a response that
//! ends with RopBufferTooSmall (MS-OXCROPS 2.2.15.1) carries the requests the server did
//! not process, and only those are sent again, with a MaxRopOut of at least SizeNeeded
//! (MS-OXCRPC 3.1.4.2, MS-OXCMAPIHTTP 2.2.4.2).
//!
//! The parts share one server object handle table. Each part goes out with the table
//! the previous response returned, whose output slots the server has filled, so later
//! ROPs can use objects that earlier parts opened.

use super::*;

/// The results of a batch sent in parts.
pub(super) struct PartsResult {
    /// One entry per request of the whole batch, in request order.
    pub(super) results: Vec<Option<RopResult>>,
    /// The handle table of the last response.
    pub(super) handles: Vec<u32>,
}

/// A fault that ended a batch sent in parts, with how far the batch got.
pub(super) struct PartsFault {
    pub(super) fault: Fault,
    /// The number of leading requests that earlier parts delivered and the server
    /// processed. A part refused with a non-zero X-ResponseCode returns no ROP
    /// responses, so it counts as not processed.
    pub(super) applied: usize,
}

/// Returns the length of a request buffer with these requests and `handle_count` slots:
/// RopSize, the ROPs and 4 bytes per handle.
fn request_buffer_len(rop_lengths: &[usize], handle_count: usize) -> usize {
    2 + rop_lengths.iter().sum::<usize>() + 4 * handle_count
}

/// Returns the end of the part that starts at `start`: the most requests that fit in one
/// request buffer of `limit` bytes with `handle_count` slots. The part has at least one
/// request, so a request too large on its own reaches the encoder, which rejects it.
pub(super) fn part_end(
    rop_lengths: &[usize],
    start: usize,
    handle_count: usize,
    limit: usize,
) -> usize {
    let mut size = request_buffer_len(&[], handle_count);
    let mut end = start;
    for length in rop_lengths.iter().skip(start) {
        if end > start && size + length > limit {
            break;
        }
        size += length;
        end += 1;
    }
    end
}

/// Returns how many requests at the end of `encoded` the server left unprocessed: the
/// number of trailing requests whose encodings, joined, equal `request_buffers`. `None`
/// when no run of trailing requests matches, which means the server listed requests
/// this batch did not send.
pub(super) fn unprocessed_count(encoded: &[Vec<u8>], request_buffers: &[u8]) -> Option<usize> {
    let mut suffix_len = 0usize;
    for count in 0..=encoded.len() {
        if suffix_len == request_buffers.len() {
            let first = encoded.len() - count;
            let joined: Vec<u8> = encoded.iter().skip(first).flatten().copied().collect();
            return (joined == request_buffers).then_some(count);
        }
        if suffix_len > request_buffers.len() {
            return None;
        }
        let next = encoded.len().checked_sub(count + 1)?;
        suffix_len += encoded.get(next).map_or(0, Vec::len);
    }
    None
}

impl MapiSession {
    /// Sends `rops` with the handle table `handles` in as many Execute requests as they
    /// need and returns the results aligned with `rops`. Requests the server processed
    /// are never sent again. A fault ends the call and reports how many requests earlier
    /// parts applied, so the caller decides whether the whole batch may be repeated.
    pub(super) async fn execute_parts(
        &self,
        ctx: &mut Context,
        operation: &'static str,
        rops: &[RopRequest],
        handles: Vec<u32>,
        columns: &HashMap<u8, Vec<crate::prop::PropTag>>,
    ) -> Result<PartsResult, PartsFault> {
        let mut applied = 0;
        self.send_parts(ctx, operation, rops, handles, columns, &mut applied)
            .await
            .map_err(|fault| PartsFault { fault, applied })
    }

    /// Does the work of [`MapiSession::execute_parts`], keeping `applied` at the number
    /// of leading requests the server has processed.
    async fn send_parts(
        &self,
        ctx: &mut Context,
        operation: &'static str,
        rops: &[RopRequest],
        handles: Vec<u32>,
        columns: &HashMap<u8, Vec<crate::prop::PropTag>>,
        applied: &mut usize,
    ) -> Result<PartsResult, Fault> {
        let encoded: Vec<Vec<u8>> = rops
            .iter()
            .map(|rop| {
                let mut bytes = Vec::new();
                rop.try_encode(&mut bytes).map(|()| bytes)
            })
            .collect::<Result<_, _>>()
            .map_err(|error| {
                Fault::Other(SessionError::Usage {
                    operation,
                    reason: format!("a ROP of the batch cannot be encoded: {error}"),
                })
            })?;
        let lengths: Vec<usize> = encoded.iter().map(Vec::len).collect();
        let mut results: Vec<Option<RopResult>> = vec![None; rops.len()];
        let mut handles = handles;
        let mut columns = columns.clone();
        let mut max_rop_out = self.inner.config.max_rop_out;
        let mut start = 0usize;
        let mut parts = 0usize;
        // An empty batch still goes out once: it collects pending notifications.
        while start < rops.len() || parts == 0 {
            let end = part_end(&lengths, start, handles.len(), ext::MAX_REQUEST_PAYLOAD);
            let part = rops.get(start..end).unwrap_or_default();
            let body = self
                .encode_execute(operation, part, &handles, max_rop_out)
                .map_err(Fault::Other)?;
            let answer = self
                .sequenced(ctx, operation, RequestType::Execute, body)
                .await?;
            let decoded = self
                .decode_rops(operation, part, &columns, &answer)
                .map_err(Fault::Other)?;
            parts += 1;
            if decoded.handles.len() != handles.len() {
                return Err(Fault::Other(SessionError::protocol(
                    operation,
                    format!(
                        "the response's server object handle table has {} slots, the request had {}",
                        decoded.handles.len(),
                        handles.len()
                    ),
                )));
            }

            let processed = match &decoded.too_small {
                None => part.len(),
                Some(too_small) => {
                    let part_encoded = encoded.get(start..end).unwrap_or_default();
                    let unprocessed = unprocessed_count(part_encoded, &too_small.request_buffers)
                        .ok_or_else(|| {
                            Fault::Other(SessionError::protocol(
                                operation,
                                "RopBufferTooSmall lists requests that are not the end of the batch sent",
                            ))
                        })?;
                    part.len() - unprocessed
                }
            };
            for (offset, result) in decoded.results.into_iter().take(processed).enumerate() {
                if let Some(slot) = results.get_mut(start + offset) {
                    *slot = result;
                }
            }
            // Later parts decode QueryRows against the columns this part set.
            for rop in part.iter().take(processed) {
                if let RopRequest::SetColumns {
                    input_handle, tags, ..
                } = rop
                {
                    columns.insert(*input_handle, tags.clone());
                }
            }
            handles = decoded.handles;

            if let Some(too_small) = decoded.too_small {
                let needed = u32::from(too_small.size_needed);
                if processed == 0 && needed <= max_rop_out {
                    return Err(Fault::Other(SessionError::BufferTooSmall {
                        operation,
                        size_needed: too_small.size_needed,
                        max_rop_out,
                    }));
                }
                tracing::debug!(
                    operation,
                    processed,
                    unprocessed = end - start - processed,
                    size_needed = too_small.size_needed,
                    "RopBufferTooSmall: sending the unprocessed requests again"
                );
                max_rop_out = max_rop_out.max(needed);
            }
            start += processed;
            *applied = start;
        }
        if parts > 1 {
            tracing::debug!(operation, parts, rops = rops.len(), "batch sent in parts");
        }
        Ok(PartsResult { results, handles })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_end_fills_up_to_limit() {
        let lengths = [10, 10, 10, 10];
        // 2 (RopSize) + 4 (one handle) + 10 + 10 = 26.
        assert_eq!(part_end(&lengths, 0, 1, 26), 2);
        assert_eq!(part_end(&lengths, 2, 1, 26), 4);
        assert_eq!(part_end(&lengths, 0, 1, 1000), 4);
    }

    #[test]
    fn part_end_takes_one_oversized_rop() {
        let lengths = [100, 10];
        assert_eq!(part_end(&lengths, 0, 0, 50), 1);
        assert_eq!(part_end(&lengths, 1, 0, 50), 2);
    }

    #[test]
    fn unprocessed_count_matches_suffixes() {
        let encoded = vec![vec![1, 2], vec![3], vec![4, 5, 6]];
        assert_eq!(unprocessed_count(&encoded, &[]), Some(0));
        assert_eq!(unprocessed_count(&encoded, &[4, 5, 6]), Some(1));
        assert_eq!(unprocessed_count(&encoded, &[3, 4, 5, 6]), Some(2));
        assert_eq!(unprocessed_count(&encoded, &[1, 2, 3, 4, 5, 6]), Some(3));
    }

    #[test]
    fn unprocessed_count_rejects_foreign_bytes() {
        let encoded = vec![vec![1, 2], vec![3], vec![4, 5, 6]];
        assert_eq!(unprocessed_count(&encoded, &[9, 9, 9]), None);
        assert_eq!(unprocessed_count(&encoded, &[5, 6]), None);
        assert_eq!(unprocessed_count(&encoded, &[0, 1, 2, 3, 4, 5, 6]), None);
    }
}
