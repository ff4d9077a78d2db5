//! The DNS SRV step of autodiscover: `_autodiscover._tcp.{domain}` names the host that
//! serves POX autodiscover (Microsoft's "Autodiscover for Exchange" documentation).
//!
//! Lookups go through [`SrvResolver`] so tests use a fake and never touch DNS.

use std::future::Future;
use std::pin::Pin;

/// A boxed future, so that [`SrvResolver`] stays object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One SRV record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SrvRecord {
    /// Lower is tried first (RFC 2782).
    pub priority: u16,
    /// Among equal priorities, a higher weight is preferred.
    pub weight: u16,
    /// The TCP port.
    pub port: u16,
    /// The target host name, without the trailing dot.
    pub target: String,
}

/// A DNS resolver for SRV records.
pub trait SrvResolver: Send + Sync + std::fmt::Debug {
    /// Looks up the SRV records of `name`, such as `_autodiscover._tcp.example.com`.
    /// An empty list means the name has none.
    fn lookup_srv<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Vec<SrvRecord>, String>>;

    /// Returns whether lookups go to the system's DNS servers, and so leave this
    /// machine. A loopback map turns such lookups off.
    fn uses_system_dns(&self) -> bool {
        false
    }
}

/// Orders records by priority, then by descending weight, and drops the "service not
/// available" record whose target is `.` (RFC 2782).
pub fn sort_records(mut records: Vec<SrvRecord>) -> Vec<SrvRecord> {
    records.retain(|record| !record.target.is_empty() && record.target != ".");
    records.sort_by(|left, right| {
        left.priority
            .cmp(&right.priority)
            .then(right.weight.cmp(&left.weight))
    });
    records
}

/// The system resolver (`/etc/resolv.conf` on Unix), through hickory-resolver.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemResolver;

impl SrvResolver for SystemResolver {
    fn uses_system_dns(&self) -> bool {
        true
    }

    fn lookup_srv<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Vec<SrvRecord>, String>> {
        Box::pin(async move {
            use hickory_resolver::proto::rr::RData;

            let resolver = hickory_resolver::TokioResolver::builder_tokio()
                .map_err(|error| format!("cannot read the system DNS configuration: {error}"))?
                .build()
                .map_err(|error| format!("cannot start the DNS resolver: {error}"))?;
            let lookup = match resolver.srv_lookup(name).await {
                Ok(lookup) => lookup,
                Err(error) if error.is_no_records_found() => return Ok(Vec::new()),
                Err(error) => return Err(format!("SRV lookup of {name} failed: {error}")),
            };
            let records = lookup
                .answers()
                .iter()
                .filter_map(|record| match &record.data {
                    RData::SRV(srv) => Some(SrvRecord {
                        priority: srv.priority,
                        weight: srv.weight,
                        port: srv.port,
                        target: srv.target.to_utf8().trim_end_matches('.').to_owned(),
                    }),
                    _ => None,
                })
                .collect();
            Ok(records)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(priority: u16, weight: u16, target: &str) -> SrvRecord {
        SrvRecord {
            priority,
            weight,
            port: 443,
            target: target.to_owned(),
        }
    }

    #[test]
    fn sorts_by_priority_then_weight() {
        let sorted = sort_records(vec![
            record(10, 5, "c"),
            record(0, 1, "b"),
            record(0, 50, "a"),
            record(0, 0, "."),
        ]);
        let targets: Vec<&str> = sorted.iter().map(|record| record.target.as_str()).collect();
        assert_eq!(targets, ["a", "b", "c"]);
    }
}
