//! Who holds a consumer group's partitions, pure: the group description as the broker gives it
//! (members with their assignments, in the consumer protocol's binary encoding) turned into
//! partitions per member, and the sentence an operator reads when a pipeline waits for
//! partitions ("joining", "held by member X").

use std::collections::BTreeMap;

/// One member of a group, as the broker describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The member id the broker gave it.
    pub id: String,
    /// The member id with the broker's random suffix removed: the static member's
    /// `group.instance.id`, or the dynamic member's `client.id`.
    pub name: String,
    /// `client.id` and host (`/10.0.0.7`) of its connection.
    pub client_id: String,
    pub host: String,
    /// Partitions of the topic of interest assigned to it.
    pub partitions: Vec<i32>,
}

/// A group as described by the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupView {
    pub group: String,
    /// `Stable`, `PreparingRebalance`, `CompletingRebalance`, `Empty`, `Dead`.
    pub state: String,
    pub members: Vec<Member>,
}

impl GroupView {
    /// Builds the view from the broker's description: `(member id, client id, host,
    /// assignment bytes)` per member; assignments are decoded for `topic` only.
    pub fn new<'a>(
        group: &str,
        state: &str,
        topic: &str,
        members: impl IntoIterator<Item = (&'a str, &'a str, &'a str, Option<&'a [u8]>)>,
    ) -> Self {
        let members = members
            .into_iter()
            .map(|(id, client_id, host, assignment)| Member {
                id: id.to_owned(),
                name: member_name(id).to_owned(),
                client_id: client_id.to_owned(),
                host: host.to_owned(),
                partitions: assignment
                    .and_then(decode_assignment)
                    .and_then(|mut a| a.remove(topic))
                    .unwrap_or_default(),
            })
            .collect();
        GroupView { group: group.to_owned(), state: state.to_owned(), members }
    }

    /// Who holds `partitions`: each holder and the ones it holds, in member order.
    pub fn holders(&self, partitions: &[i32]) -> Vec<(&Member, Vec<i32>)> {
        self.members
            .iter()
            .map(|m| (m, m.partitions.iter().copied().filter(|p| partitions.contains(p)).collect::<Vec<_>>()))
            .filter(|(_, held)| !held.is_empty())
            .collect()
    }

    /// Why a member of this group that has no partition of `topic` is waiting, for the log and
    /// `/readyz`.
    pub fn why_unassigned(&self, topic: &str) -> String {
        let held: Vec<String> =
            self.members.iter().filter(|m| !m.partitions.is_empty()).map(|m| describe(m, &m.partitions)).collect();
        match self.state.as_str() {
            "PreparingRebalance" | "CompletingRebalance" => format!(
                "joining: group {} is rebalancing ({}); the rebalance waits for every member to rejoin — up to \
                 max.poll.interval.ms for one that stopped polling",
                self.group, self.state
            ),
            _ if !held.is_empty() => format!(
                "every partition of {topic} is held by another member of group {}: {}; a member that crashed keeps \
                 its partitions until its session expires (session.timeout.ms) unless it restarts with the same \
                 ingest.instance_id; with more members than partitions some have none",
                self.group,
                held.join("; ")
            ),
            "Empty" | "Dead" => format!("joining: group {} has no member yet", self.group),
            _ => format!(
                "group {} is {} but no member holds a partition of {topic}: does the topic have partitions?",
                self.group, self.state
            ),
        }
    }
}

/// `member (client c, host h): partitions 0, 2, 4`.
pub fn describe(member: &Member, partitions: &[i32]) -> String {
    let list: Vec<String> = partitions.iter().map(i32::to_string).collect();
    format!(
        "{} (client {}, host {}): partitions {}",
        member.name,
        member.client_id,
        member.host.trim_start_matches('/'),
        list.join(", ")
    )
}

/// The member id without the `-{uuid}` the broker appends to the instance or client id.
fn member_name(id: &str) -> &str {
    match id.len().checked_sub(37).and_then(|cut| id.get(cut..).map(|tail| (cut, tail))) {
        Some((cut, tail)) if tail.starts_with('-') && is_uuid(&tail[1..]) => &id[..cut],
        _ => id,
    }
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes()
            .enumerate()
            .all(|(i, b)| if [8, 13, 18, 23].contains(&i) { b == b'-' } else { b.is_ascii_hexdigit() })
}

/// Decodes a consumer protocol assignment (`ConsumerProtocolAssignment`, versions 0–3: int16
/// version, then an array of (string topic, array of int32 partitions), then user data, which
/// is ignored). `None` when the bytes are not one.
pub fn decode_assignment(bytes: &[u8]) -> Option<BTreeMap<String, Vec<i32>>> {
    let mut r = Reader(bytes);
    let version = r.i16()?;
    if !(0..=3).contains(&version) {
        return None;
    }
    let topics = r.i32()?;
    let mut out = BTreeMap::new();
    for _ in 0..topics.max(0) {
        let len = usize::try_from(r.i16()?).ok()?;
        let topic = std::str::from_utf8(r.take(len)?).ok()?.to_owned();
        let n = r.i32()?;
        let mut partitions = Vec::with_capacity(n.clamp(0, 1 << 12) as usize);
        for _ in 0..n.max(0) {
            partitions.push(r.i32()?);
        }
        out.entry(topic).or_insert_with(Vec::new).extend(partitions);
    }
    Some(out)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn i16(&mut self) -> Option<i16> {
        self.take(2).map(|b| i16::from_be_bytes([b[0], b[1]]))
    }
    fn i32(&mut self) -> Option<i32> {
        self.take(4).map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What librdkafka sent for `probe.t` partitions 0–3 (captured from the real broker).
    const ASSIGNMENT: &[u8] = &[
        0, 0, 0, 0, 0, 1, 0, 7, 112, 114, 111, 98, 101, 46, 116, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0,
        0, 3, 0, 0, 0, 0,
    ];

    fn encode(version: i16, topics: &[(&str, Vec<i32>)]) -> Vec<u8> {
        let mut b = version.to_be_bytes().to_vec();
        b.extend((topics.len() as i32).to_be_bytes());
        for (t, ps) in topics {
            b.extend((t.len() as i16).to_be_bytes());
            b.extend(t.as_bytes());
            b.extend((ps.len() as i32).to_be_bytes());
            ps.iter().for_each(|p| b.extend(p.to_be_bytes()));
        }
        b.extend((-1i32).to_be_bytes());
        b
    }

    #[test]
    fn decodes_what_the_broker_returns() {
        let a = decode_assignment(ASSIGNMENT).unwrap();
        assert_eq!(a.get("probe.t"), Some(&vec![0, 1, 2, 3]));
        assert_eq!(decode_assignment(&ASSIGNMENT[..10]), None, "truncated");
        assert_eq!(decode_assignment(&[0, 9, 0, 0, 0, 0]), None, "unknown version");
    }

    #[test]
    fn member_names_drop_the_broker_suffix() {
        assert_eq!(member_name("host-a-receipts-5bd71473-f2e5-4dc5-8fc1-69e3bb623f9e"), "host-a-receipts");
        assert_eq!(member_name("pixlake-receipts"), "pixlake-receipts");
        assert_eq!(member_name(""), "");
    }

    #[test]
    fn explains_why_a_member_waits() {
        let a = encode(1, &[("t", vec![0, 2]), ("other", vec![9])]);
        let view = GroupView::new(
            "g",
            "Stable",
            "t",
            [
                ("dead-receipts-5bd71473-f2e5-4dc5-8fc1-69e3bb623f9e", "pixlake-receipts", "/10.0.0.7", Some(&a[..])),
                ("me-receipts-6bd71473-f2e5-4dc5-8fc1-69e3bb623f9e", "pixlake-receipts", "/10.0.0.8", None),
            ],
        );
        assert_eq!(view.holders(&[0, 1, 2]).len(), 1);
        let why = view.why_unassigned("t");
        assert!(why.contains("dead-receipts (client pixlake-receipts, host 10.0.0.7): partitions 0, 2"), "{why}");
        assert!(why.contains("session.timeout.ms"), "{why}");
        let rebalancing = GroupView { state: "PreparingRebalance".into(), ..view.clone() };
        assert!(rebalancing.why_unassigned("t").starts_with("joining"));
        let empty = GroupView::new("g", "Empty", "t", []);
        assert!(empty.why_unassigned("t").contains("no member yet"));
    }

    proptest! {
        #[test]
        fn encoded_assignments_decode_back(version in 0i16..4,
                                           topics in proptest::collection::btree_map("[a-z.]{1,12}", proptest::collection::vec(0i32..1000, 0..20), 0..4)) {
            let list: Vec<(&str, Vec<i32>)> = topics.iter().map(|(t, p)| (t.as_str(), p.clone())).collect();
            let decoded = decode_assignment(&encode(version, &list)).unwrap();
            let want: BTreeMap<String, Vec<i32>> = topics.clone();
            prop_assert_eq!(decoded, want);
        }

        #[test]
        fn any_bytes_are_safe(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_assignment(&bytes);
        }
    }
}
