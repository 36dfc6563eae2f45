//! What the engine asks of its Kafka consumer group, behind a trait — the seam that lets unit
//! tests build an engine without a broker — and the group description an operator needs when a
//! pipeline waits for partitions.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};

use super::membership::GroupView;

/// The group calls the engine makes.
pub trait Group {
    /// Sets the group's committed offsets of `topic` to `offsets` (partition, next offset) —
    /// for lag tools only: pixlake never reads them back. Asynchronous, best effort.
    fn commit_offsets(&self, topic: &str, offsets: &[(i32, i64)]) -> Result<(), KafkaError>;
}

impl<C: ConsumerContext> Group for BaseConsumer<C> {
    fn commit_offsets(&self, topic: &str, offsets: &[(i32, i64)]) -> Result<(), KafkaError> {
        let mut tpl = TopicPartitionList::new();
        for &(p, o) in offsets {
            tpl.add_partition_offset(topic, p, Offset::Offset(o))?;
        }
        if tpl.count() == 0 {
            return Ok(());
        }
        self.commit(&tpl, CommitMode::Async)
    }
}

/// The broker's description of `group`, its assignments decoded for `topic`. Blocks for up to
/// `timeout`.
pub fn describe<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    group: &str,
    topic: &str,
    timeout: Duration,
) -> Result<GroupView, KafkaError> {
    let list = consumer.fetch_group_list(Some(group), timeout)?;
    let Some(g) = list.groups().iter().find(|g| g.name() == group) else {
        return Ok(GroupView::new(group, "Dead", topic, []));
    };
    let members = g.members().iter().map(|m| (m.id(), m.client_id(), m.client_host(), m.assignment()));
    Ok(GroupView::new(group, g.state(), topic, members))
}
