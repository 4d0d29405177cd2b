//! How messages travel between subtasks: the exchange's transport.
//!
//! The exchange (`exchange.rs`) decides *where* a message goes; a transport
//! carries it there. Two traits are the whole contract:
//!
//! * [`ChannelSender`]: the sending end of one channel, from one subtask
//!   to one receiving subtask. Sending waits while the channel is full:
//!   that wait is backpressure.
//! * [`ChannelReceiver`]: everything that flows into one subtask, as
//!   numbered channels. The receiver says which channels it will read
//!   (a channel that delivered a checkpoint barrier is not read until the
//!   barrier has arrived on all the others), so barrier alignment needs
//!   nothing of the transport beyond per-channel order and per-channel
//!   flow control.
//!
//! [`local_channels`] makes the in-process transport: one bounded queue
//! per channel, as Flink keeps per-channel credit, and one doorbell per
//! receiving subtask that every sender rings after it sends. A receiver
//! polls the queues it reads without registering with any of them and
//! sleeps on its doorbell only when all are empty, so receiving costs one
//! queue read per message, however many channels there are. (A single
//! queue per subtask would need the receiver to hold back, in memory and
//! without bound, what a blocked channel keeps sending during alignment.)
//!
//! A network transport (for example Arrow Flight streams between
//! processes) implements the same two traits: a sender that serialises
//! batches and waits for credit, a receiver that reads frames per channel.

use std::time::Duration;

use crossbeam::channel::{self, Receiver, SendTimeoutError, Sender, TryRecvError, TrySendError};
use crossbeam::sync::{Parker, Unparker};

use super::metrics::{TaskMetrics, Wait};
use crate::error::{EngineError, Result};
use crate::types::Message;

/// How long a blocked sender waits before it looks at the cancel flag.
const SEND_POLL: Duration = Duration::from_millis(50);

/// The sending end of one channel into one receiving subtask.
pub trait ChannelSender: Send {
    /// Sends `msg`, waiting while the channel is full; fails with
    /// [`EngineError::Cancelled`] once `cancelled()` is true or the
    /// receiver is gone. A wait for room is marked on `clock` (the
    /// sender's backpressure) from its start to its end.
    fn send(&self, msg: Message, cancelled: &dyn Fn() -> bool, clock: &TaskMetrics) -> Result<()>;
}

/// The receiving side of one subtask: its channels, numbered from 0.
pub trait ChannelReceiver: Send {
    /// How many channels flow in.
    fn channels(&self) -> usize;

    /// A waiting message from one of the channels `readable` allows, with
    /// its channel number; `None` when none has one. Fails with
    /// [`EngineError::Cancelled`] when a readable channel's sender is gone
    /// without having sent [`Message::End`] (it failed or was cancelled).
    fn try_recv(&mut self, readable: &[bool]) -> Result<Option<(usize, Message)>>;

    /// As [`ChannelReceiver::try_recv`], waiting up to `timeout` for a
    /// message.
    fn recv_timeout(
        &mut self,
        readable: &[bool],
        timeout: Duration,
    ) -> Result<Option<(usize, Message)>>;
}

/// The in-process sending end: a bounded queue and the receiver's doorbell.
struct LocalSender {
    queue: Sender<Message>,
    doorbell: Unparker,
}

impl ChannelSender for LocalSender {
    fn send(&self, msg: Message, cancelled: &dyn Fn() -> bool, clock: &TaskMetrics) -> Result<()> {
        let msg = match self.queue.try_send(msg) {
            Ok(()) => {
                self.doorbell.unpark();
                return Ok(());
            }
            Err(TrySendError::Disconnected(_)) => return Err(EngineError::Cancelled),
            Err(TrySendError::Full(m)) => m,
        };
        clock.wait(Wait::Backpressured);
        let sent = self.send_waiting(msg, cancelled);
        clock.done_waiting();
        sent
    }
}

impl LocalSender {
    /// Sends into a full channel: waits for room, looking at `cancelled`
    /// every [`SEND_POLL`].
    fn send_waiting(&self, msg: Message, cancelled: &dyn Fn() -> bool) -> Result<()> {
        let mut msg = msg;
        loop {
            match self.queue.send_timeout(msg, SEND_POLL) {
                Ok(()) => {
                    self.doorbell.unpark();
                    return Ok(());
                }
                Err(SendTimeoutError::Timeout(m)) => {
                    if cancelled() {
                        return Err(EngineError::Cancelled);
                    }
                    msg = m;
                }
                // The receiver is gone: it failed or was cancelled.
                Err(SendTimeoutError::Disconnected(_)) => return Err(EngineError::Cancelled),
            }
        }
    }
}

/// The in-process receiving side of one subtask.
struct LocalReceiver {
    queues: Vec<Receiver<Message>>,
    doorbell: Parker,
    /// Where the next look starts, so that no channel is starved.
    next: usize,
}

impl ChannelReceiver for LocalReceiver {
    fn channels(&self) -> usize {
        self.queues.len()
    }

    fn try_recv(&mut self, readable: &[bool]) -> Result<Option<(usize, Message)>> {
        let n = self.queues.len();
        for i in 0..n {
            let k = (self.next + i) % n;
            if !readable.get(k).copied().unwrap_or(false) {
                continue;
            }
            match self.queues[k].try_recv() {
                Ok(msg) => {
                    self.next = (k + 1) % n;
                    return Ok(Some((k, msg)));
                }
                Err(TryRecvError::Empty) => {}
                Err(TryRecvError::Disconnected) => return Err(EngineError::Cancelled),
            }
        }
        Ok(None)
    }

    fn recv_timeout(
        &mut self,
        readable: &[bool],
        timeout: Duration,
    ) -> Result<Option<(usize, Message)>> {
        if let Some(found) = self.try_recv(readable)? {
            return Ok(Some(found));
        }
        // A send after the look above has rung the bell, so this returns
        // at once rather than missing it.
        self.doorbell.park_timeout(timeout);
        self.try_recv(readable)
    }
}

/// Makes the local channels into one receiving subtask: `senders` channels
/// of `capacity` messages each. Returns a sender per channel, in channel
/// order, and the receiving side.
pub(super) fn local_channels(
    senders: usize,
    capacity: usize,
) -> (Vec<Box<dyn ChannelSender>>, Box<dyn ChannelReceiver>) {
    let doorbell = Parker::new();
    let mut ends: Vec<Box<dyn ChannelSender>> = Vec::with_capacity(senders);
    let mut queues = Vec::with_capacity(senders);
    for _ in 0..senders {
        let (tx, rx) = channel::bounded(capacity.max(1));
        ends.push(Box::new(LocalSender {
            queue: tx,
            doorbell: doorbell.unparker().clone(),
        }));
        queues.push(rx);
    }
    (
        ends,
        Box::new(LocalReceiver {
            queues,
            doorbell,
            next: 0,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Watermark;

    fn wm(t: i64) -> Message {
        Message::Watermark(Watermark::EventTime(t))
    }

    fn time_of(m: &Message) -> i64 {
        match m {
            Message::Watermark(Watermark::EventTime(t)) => *t,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn channels_keep_order_and_a_closed_channel_is_not_read() -> Result<()> {
        let (senders, mut rx) = local_channels(2, 8);
        let never = || false;
        for t in 0..3 {
            senders[0].send(wm(t), &never, &TaskMetrics::default())?;
            senders[1].send(wm(100 + t), &never, &TaskMetrics::default())?;
        }
        // Channel 1 not readable: only channel 0's messages, in order.
        let mut got = Vec::new();
        while let Some((k, m)) = rx.try_recv(&[true, false])? {
            assert_eq!(k, 0);
            got.push(time_of(&m));
        }
        assert_eq!(got, [0, 1, 2]);
        // Both readable: channel 1's, in order.
        let mut got = Vec::new();
        while let Some((k, m)) = rx.try_recv(&[true, true])? {
            assert_eq!(k, 1);
            got.push(time_of(&m));
        }
        assert_eq!(got, [100, 101, 102]);
        Ok(())
    }

    #[test]
    fn a_full_channel_backpressures_and_a_waiting_receiver_wakes() -> Result<()> {
        let (senders, mut rx) = local_channels(1, 2);
        let sender = senders.into_iter().next().expect("one sender");
        let writer = std::thread::spawn(move || -> Result<()> {
            for t in 0..100 {
                sender.send(wm(t), &|| false, &TaskMetrics::default())?;
            }
            Ok(())
        });
        let mut got = Vec::new();
        while got.len() < 100 {
            if let Some((_, m)) = rx.recv_timeout(&[true], Duration::from_secs(5))? {
                got.push(time_of(&m));
            }
        }
        writer.join().expect("writer thread")?;
        assert_eq!(got, (0..100).collect::<Vec<_>>());
        Ok(())
    }

    #[test]
    fn a_sender_gone_without_end_is_a_cancellation() {
        let (senders, mut rx) = local_channels(1, 2);
        drop(senders);
        assert!(matches!(rx.try_recv(&[true]), Err(EngineError::Cancelled)));
        // A cancelled job stops a sender blocked on a full channel.
        let (senders, _rx) = local_channels(1, 1);
        senders[0]
            .send(wm(1), &|| false, &TaskMetrics::default())
            .expect("room for one");
        assert!(matches!(
            senders[0].send(wm(2), &|| true, &TaskMetrics::default()),
            Err(EngineError::Cancelled)
        ));
    }
}
