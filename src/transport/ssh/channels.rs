//! How many channels one connection has open at once: fewer than the server allows (sshd's `MaxSessions`), the limit learned from its refusals, and every command queued behind them.
//!
//! OpenSSH allows `MaxSessions` (10 by default) session channels per connection and refuses the
//! next one with "open failed". A session's slot is freed only once the server has processed the
//! client's `CHANNEL_CLOSE` and collected the channel, which can be after the client saw the
//! command end: a refusal may come from a channel still closing. So a refusal is retried after a
//! ping (whose reply says the server has read everything sent before it), and only a refusal
//! after that lowers the limit to the channels then open.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use russh::Channel;
use russh::client::Msg;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// OpenSSH allows 10 sessions per connection by default; stay under it.
pub(super) const DEFAULT_LIMIT: usize = 8;

/// The channels of one connection: a semaphore of `limit` permits, lowered when the server
/// refuses channels below it.
#[derive(Debug)]
pub(super) struct Channels {
    permits: Arc<Semaphore>,
    limit: AtomicUsize,
    /// Permits to forget as they come back, after the limit was lowered below those handed out.
    owed: AtomicUsize,
    /// Channels the server confirmed and that have not ended yet.
    open: AtomicUsize,
    /// The most channels that were open at once.
    most_open: AtomicUsize,
}

impl Channels {
    pub(super) fn new(limit: usize) -> Arc<Self> {
        let limit = limit.max(1);
        Arc::new(Self {
            permits: Arc::new(Semaphore::new(limit)),
            limit: AtomicUsize::new(limit),
            owed: AtomicUsize::new(0),
            open: AtomicUsize::new(0),
            most_open: AtomicUsize::new(0),
        })
    }

    /// Waits for a free channel of this connection.
    pub(super) async fn acquire(self: &Arc<Self>) -> ChannelSlot {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .expect("the channel semaphore is never closed");
        ChannelSlot {
            permit: Some(permit),
            channels: Arc::clone(self),
            opened: None,
        }
    }

    /// The channels this connection opens at once now.
    pub(super) fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    /// Channels open right now.
    pub(super) fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// The most channels that were open at once on this connection.
    pub(super) fn most_open(&self) -> usize {
        self.most_open.load(Ordering::Relaxed)
    }

    /// Counts a channel the server confirmed until the returned guard is dropped.
    pub(super) fn opened(self: &Arc<Self>) -> OpenChannel {
        let now = self.open.fetch_add(1, Ordering::Relaxed) + 1;
        self.most_open.fetch_max(now, Ordering::Relaxed);
        OpenChannel {
            channels: Arc::clone(self),
        }
    }

    /// Lowers the limit to `limit` (at least 1): permits handed out beyond it are forgotten as
    /// they come back. Returns whether the limit changed.
    pub(super) fn lower_to(&self, limit: usize) -> bool {
        let limit = limit.max(1);
        let mut current = self.limit.load(Ordering::Relaxed);
        loop {
            if limit >= current {
                return false;
            }
            match self
                .limit
                .compare_exchange(current, limit, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(actual) => current = actual,
            }
        }
        let excess = current - limit;
        let forgotten = self.permits.forget_permits(excess);
        self.owed.fetch_add(excess - forgotten, Ordering::AcqRel);
        true
    }

    /// Returns `permit`, or forgets it while permits are owed.
    fn give_back(&self, permit: Option<OwnedSemaphorePermit>) {
        if let Some(permit) = permit
            && self.take_owed()
        {
            permit.forget();
        }
    }

    /// Takes one owed permit, if any is owed.
    fn take_owed(&self) -> bool {
        self.owed
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |owed| {
                owed.checked_sub(1)
            })
            .is_ok()
    }
}

/// How long opening a channel waits for the server to have a session free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Patience {
    /// Until the command's bound.
    Wait,
    /// One retry after a ping (the refusal may be a channel still closing), then
    /// [`super::SshError::SessionsBusy`].
    Once,
}

/// The right to open one channel, and the channel once opened ahead of its command; given back
/// (or forgotten, after the limit was lowered) when dropped.
pub struct ChannelSlot {
    permit: Option<OwnedSemaphorePermit>,
    channels: Arc<Channels>,
    opened: Option<(Channel<Msg>, OpenChannel)>,
}

impl std::fmt::Debug for ChannelSlot {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ChannelSlot")
            .field("opened", &self.opened.is_some())
            .finish_non_exhaustive()
    }
}

impl ChannelSlot {
    /// Whether the channel is open already.
    pub(super) fn is_opened(&self) -> bool {
        self.opened.is_some()
    }

    /// Keeps a channel opened ahead of its command.
    pub(super) fn hold_opened(&mut self, channel: Channel<Msg>, open: OpenChannel) {
        self.opened = Some((channel, open));
    }

    /// The channel opened ahead of its command, if any.
    pub(super) fn take_opened(&mut self) -> Option<(Channel<Msg>, OpenChannel)> {
        self.opened.take()
    }
}

impl Drop for ChannelSlot {
    /// Gives the permit back; a channel opened for a command that never ran is closed first
    /// (russh does not close dropped channels, and the server would count it until the
    /// connection ends).
    fn drop(&mut self) {
        let permit = self.permit.take();
        let channels = Arc::clone(&self.channels);
        match (self.opened.take(), tokio::runtime::Handle::try_current()) {
            (Some((channel, open)), Ok(runtime)) => {
                runtime.spawn(async move {
                    let _ = channel.close().await;
                    drop(open);
                    channels.give_back(permit);
                });
            }
            _ => channels.give_back(permit),
        }
    }
}

/// A channel the server confirmed, counted until dropped.
#[derive(Debug)]
pub(super) struct OpenChannel {
    channels: Arc<Channels>,
}

impl Drop for OpenChannel {
    fn drop(&mut self) {
        self.channels.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Retries of one refused channel: the first right after a ping, then with pauses doubling from
/// 10 ms to half a second; given up when the server went on refusing for
/// [`GIVE_UP_WITH_NONE_OPEN`] while none of this connection's channels was open (waiting frees
/// nothing then).
#[derive(Debug, Default)]
pub(super) struct Retry {
    refusals: u32,
    /// Since when every refusal came with none of this connection's channels open.
    none_open_since: Option<Instant>,
}

/// How long a server that refuses every channel while none is open is retried.
const GIVE_UP_WITH_NONE_OPEN: Duration = Duration::from_secs(5);

impl Retry {
    /// Counts a refusal that came at `now` with `open` channels open; whether a ping had
    /// flushed the closing channels before it (the refusal then says the server's limit is
    /// reached).
    pub(super) fn refused(&mut self, open: usize, now: Instant) -> bool {
        self.refusals += 1;
        self.none_open_since = match open {
            0 => Some(self.none_open_since.unwrap_or(now)),
            _ => None,
        };
        self.refusals > 1
    }

    /// How long to wait before the next try, or `None` to give up, at `now`.
    pub(super) fn next_pause(&self, now: Instant) -> Option<Duration> {
        if let Some(since) = self.none_open_since
            && now.duration_since(since) >= GIVE_UP_WITH_NONE_OPEN
        {
            return None;
        }
        let doublings = self.refusals.saturating_sub(1).min(6);
        Some((Duration::from_millis(10) * 2u32.pow(doublings)).min(Duration::from_millis(500)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn slots_beyond_the_limit_wait_for_one_to_come_back() {
        let channels = Channels::new(2);
        let first = channels.acquire().await;
        let _second = channels.acquire().await;
        let third = tokio::time::timeout(std::time::Duration::from_millis(20), channels.acquire());
        assert!(third.await.is_err(), "a third slot was handed out");
        drop(first);
        let third = tokio::time::timeout(std::time::Duration::from_millis(20), channels.acquire());
        assert!(third.await.is_ok());
    }

    #[tokio::test]
    async fn a_lowered_limit_forgets_the_permits_handed_out_beyond_it() {
        let channels = Channels::new(4);
        let slots: Vec<ChannelSlot> =
            futures::future::join_all((0..3).map(|_| channels.acquire())).await;
        assert!(channels.lower_to(2));
        assert_eq!(channels.limit(), 2);
        // One permit was free and is gone at once; one more is owed by the slots out.
        assert_eq!(channels.permits.available_permits(), 0);
        drop(slots);
        assert_eq!(channels.permits.available_permits(), 2);
        assert!(!channels.lower_to(3), "a limit is never raised");
        assert!(channels.lower_to(0));
        assert_eq!(channels.limit(), 1, "at least one channel");
        assert_eq!(channels.permits.available_permits(), 1);
    }

    #[test]
    fn refusals_are_retried_with_growing_pauses_and_given_up_when_nothing_can_free_a_channel() {
        let start = Instant::now();
        let at = |seconds: u64| start + Duration::from_secs(seconds);
        let mut retry = Retry::default();
        assert!(
            !retry.refused(3, at(0)),
            "the first refusal may be a channel still closing"
        );
        assert_eq!(retry.next_pause(at(0)), Some(Duration::from_millis(10)));
        assert!(retry.refused(3, at(0)));
        assert_eq!(retry.next_pause(at(0)), Some(Duration::from_millis(20)));
        for _ in 0..10 {
            retry.refused(3, at(1));
        }
        assert_eq!(retry.next_pause(at(60)), Some(Duration::from_millis(500)));
        retry.refused(0, at(60));
        assert_eq!(retry.next_pause(at(64)), Some(Duration::from_millis(500)));
        retry.refused(1, at(64));
        retry.refused(0, at(65));
        assert!(
            retry.next_pause(at(69)).is_some(),
            "one channel was open at 64 s"
        );
        retry.refused(0, at(70));
        assert_eq!(retry.next_pause(at(70)), None);
    }

    #[test]
    fn open_channels_are_counted_while_their_guards_live() {
        let channels = Channels::new(8);
        let first = channels.opened();
        let second = channels.opened();
        assert_eq!(channels.open(), 2);
        drop(first);
        assert_eq!(channels.open(), 1);
        drop(second);
        assert_eq!((channels.open(), channels.most_open()), (0, 2));
    }
}
