//! Worker-local timers for the per-request deadlines (hyper's header-read timeout, the upstream
//! response-header timeout): registering one is a slot in a thread-local slab, dropping it frees
//! the slot; no lock, no timer wheel, no allocation. Each worker runs one ticker task ([`run`])
//! with a single tokio sleep armed at the earliest deadline; it is re-armed only when a new
//! deadline is earlier than the armed one (rare: deadlines of one kind grow with time), or when
//! it fires.
//!
//! On a thread without a ticker (say, a test's runtime), a deadline falls back to a tokio sleep.

use std::cell::{Cell, RefCell};
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

struct Entry {
    deadline: Instant,
    waker: Option<Waker>,
    generation: u32,
    live: bool,
    fired: bool,
}

#[derive(Default)]
struct Timers {
    entries: Vec<Entry>,
    free: Vec<usize>,
    /// The ticker's next look; `None` when it waits to be woken.
    armed: Option<Instant>,
    ticker: Option<Waker>,
    /// The armed time must move earlier: the ticker should re-arm.
    rearm: bool,
}

static NEXT_THREAD: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static TIMERS: RefCell<Timers> = RefCell::new(Timers::default());
    /// Nonzero once this thread runs a ticker: its identity, so a deadline dropped elsewhere
    /// never frees another thread's slot.
    static TICKER: Cell<u64> = const { Cell::new(0) };
}

impl Timers {
    /// Registers a deadline; returns its slot and generation, and the ticker's waker if it
    /// must re-arm earlier.
    fn insert(&mut self, deadline: Instant, waker: Waker) -> (usize, u32, Option<Waker>) {
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.entries.push(Entry {
                    deadline,
                    waker: None,
                    generation: 0,
                    live: false,
                    fired: false,
                });
                self.entries.len() - 1
            }
        };
        let generation = match self.entries.get_mut(slot) {
            Some(entry) => {
                entry.deadline = deadline;
                entry.waker = Some(waker);
                entry.generation = entry.generation.wrapping_add(1);
                entry.live = true;
                entry.fired = false;
                entry.generation
            }
            None => 0,
        };
        let wake = if self.armed.is_none_or(|armed| deadline < armed) {
            self.armed = Some(deadline);
            self.rearm = true;
            self.ticker.clone()
        } else {
            None
        };
        (slot, generation, wake)
    }

    fn entry(&mut self, slot: usize, generation: u32) -> Option<&mut Entry> {
        self.entries
            .get_mut(slot)
            .filter(|entry| entry.live && entry.generation == generation)
    }

    fn remove(&mut self, slot: usize, generation: u32) {
        if let Some(entry) = self.entry(slot, generation) {
            entry.live = false;
            entry.waker = None;
            self.free.push(slot);
        }
    }

    /// Marks the deadlines passed by `now` as fired (collecting their wakers) and arms the
    /// earliest one left.
    fn expire(&mut self, now: Instant, wake: &mut Vec<Waker>) {
        let mut earliest: Option<Instant> = None;
        for entry in self.entries.iter_mut().filter(|entry| entry.live && !entry.fired) {
            if entry.deadline <= now {
                entry.fired = true;
                wake.extend(entry.waker.take());
            } else if earliest.is_none_or(|e| entry.deadline < e) {
                earliest = Some(entry.deadline);
            }
        }
        self.armed = earliest;
        self.rearm = false;
    }
}

/// This worker's ticker: wakes the deadlines that passed. Spawn once per worker thread, on
/// its current-thread runtime.
pub(crate) async fn run() {
    if TICKER.get() == 0 {
        TICKER.set(NEXT_THREAD.fetch_add(1, Ordering::Relaxed));
    }
    let idle = Duration::from_secs(3600);
    let sleep = tokio::time::sleep(idle);
    let mut sleep = std::pin::pin!(sleep);
    let mut wake = Vec::new();
    loop {
        let now = Instant::now();
        let armed = TIMERS.with(|timers| {
            let mut timers = timers.borrow_mut();
            timers.expire(now, &mut wake);
            timers.armed
        });
        for waker in wake.drain(..) {
            waker.wake();
        }
        sleep.as_mut().reset(armed.unwrap_or(now + idle).into());
        poll_fn(|cx| {
            let rearm = TIMERS.with(|timers| {
                let mut timers = timers.borrow_mut();
                if !timers.ticker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    timers.ticker = Some(cx.waker().clone());
                }
                std::mem::take(&mut timers.rearm)
            });
            if rearm || sleep.as_mut().poll(cx).is_ready() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
    }
}

/// A deadline: a future that completes once `deadline` has passed.
pub(crate) struct Sleep {
    deadline: Instant,
    state: State,
}

enum State {
    New,
    Registered { slot: usize, generation: u32, owner: u64 },
    Fallback(Pin<Box<tokio::time::Sleep>>),
    Done,
}

impl Sleep {
    pub fn until(deadline: Instant) -> Sleep {
        Sleep {
            deadline,
            state: State::New,
        }
    }

    pub fn after(duration: Duration) -> Sleep {
        Sleep::until(Instant::now() + duration)
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        match &mut this.state {
            State::Done => Poll::Ready(()),
            State::Fallback(sleep) => sleep.as_mut().poll(cx),
            State::New => {
                let owner = TICKER.get();
                if owner == 0 {
                    let mut sleep = Box::pin(tokio::time::sleep_until(this.deadline.into()));
                    let polled = sleep.as_mut().poll(cx);
                    this.state = State::Fallback(sleep);
                    return polled;
                }
                let registered = TIMERS.try_with(|timers| {
                    let mut timers = timers.try_borrow_mut().ok()?;
                    Some(timers.insert(this.deadline, cx.waker().clone()))
                });
                match registered {
                    Ok(Some((slot, generation, wake))) => {
                        this.state = State::Registered {
                            slot,
                            generation,
                            owner,
                        };
                        if let Some(ticker) = wake {
                            ticker.wake();
                        }
                        Poll::Pending
                    }
                    _ => {
                        // No access to this thread's timers (being torn down): never fire
                        // early; fall back to tokio.
                        let mut sleep = Box::pin(tokio::time::sleep_until(this.deadline.into()));
                        let polled = sleep.as_mut().poll(cx);
                        this.state = State::Fallback(sleep);
                        polled
                    }
                }
            }
            State::Registered {
                slot,
                generation,
                owner,
            } => {
                let (slot, generation, owner) = (*slot, *generation, *owner);
                if owner != TICKER.get() {
                    // Moved to another thread: should not happen with current-thread runtimes.
                    let mut sleep = Box::pin(tokio::time::sleep_until(this.deadline.into()));
                    let polled = sleep.as_mut().poll(cx);
                    this.state = State::Fallback(sleep);
                    return polled;
                }
                let fired = TIMERS
                    .try_with(|timers| {
                        let mut timers = timers.try_borrow_mut().ok()?;
                        let entry = timers.entry(slot, generation)?;
                        if entry.fired {
                            return Some(true);
                        }
                        if !entry.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                            entry.waker = Some(cx.waker().clone());
                        }
                        Some(false)
                    })
                    .ok()
                    .flatten();
                match fired {
                    Some(false) => Poll::Pending,
                    // Fired, or the slot is gone (cannot happen while registered): done.
                    _ => {
                        TIMERS.with(|timers| {
                            if let Ok(mut timers) = timers.try_borrow_mut() {
                                timers.remove(slot, generation);
                            }
                        });
                        this.state = State::Done;
                        Poll::Ready(())
                    }
                }
            }
        }
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let State::Registered {
            slot,
            generation,
            owner,
        } = self.state
            && owner == TICKER.try_with(Cell::get).unwrap_or(0)
        {
            let _ = TIMERS.try_with(|timers| {
                if let Ok(mut timers) = timers.try_borrow_mut() {
                    timers.remove(slot, generation);
                }
            });
        }
    }
}

impl hyper::rt::Sleep for Sleep {}

/// "Nothing moved for `limit`": one deadline armed when the wait starts; when it passes and the
/// caller's progress count changed meanwhile, it is armed again one period on. No timer work
/// per byte moved, so an idle cut comes between one and two periods after the last progress.
pub(crate) struct IdleDeadline {
    /// Zero: never idle.
    limit: Duration,
    sleep: Option<Sleep>,
    /// The progress count when `sleep` was armed.
    seen: u64,
}

impl IdleDeadline {
    pub fn new(limit: Duration) -> IdleDeadline {
        IdleDeadline {
            limit,
            sleep: None,
            seen: 0,
        }
    }

    /// True once `progress` has not changed for a whole period (registers `cx` otherwise).
    pub fn poll_idle(&mut self, cx: &mut Context<'_>, progress: u64) -> bool {
        if self.limit.is_zero() {
            return false;
        }
        loop {
            let sleep = match &mut self.sleep {
                Some(sleep) => sleep,
                None => {
                    self.seen = progress;
                    self.sleep.insert(Sleep::after(self.limit))
                }
            };
            if Pin::new(sleep).poll(cx).is_pending() {
                return false;
            }
            if progress == self.seen {
                return true;
            }
            self.sleep = None;
        }
    }
}

/// hyper's timer, backed by the worker-local deadlines.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct WorkerTimer;

impl hyper::rt::Timer for WorkerTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(Sleep::after(duration))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(Sleep::until(deadline))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn deadlines_fire_in_order_and_dropped_ones_never() {
        runtime().block_on(async {
            tokio::spawn(run());
            tokio::task::yield_now().await;
            let started = Instant::now();
            let late = Sleep::after(Duration::from_millis(120));
            let early = Sleep::after(Duration::from_millis(40));
            let dropped = Sleep::after(Duration::from_millis(10));
            let mut dropped = Box::pin(dropped);
            assert!(futures_util::poll!(dropped.as_mut()).is_pending());
            drop(dropped);
            // The earlier deadline fires first, and not before its time; no upper bound on a
            // loaded machine beyond that ordering.
            let mut late = Box::pin(late);
            tokio::select! {
                biased;
                () = early => {}
                () = late.as_mut() => panic!("the later deadline fired first"),
            }
            assert!(started.elapsed() >= Duration::from_millis(40));
            late.await;
            assert!(started.elapsed() >= Duration::from_millis(120));
            let (free, live) = TIMERS.with(|t| {
                let t = t.borrow();
                (t.free.len(), t.entries.iter().filter(|e| e.live).count())
            });
            assert_eq!(live, 0);
            assert_eq!(free, TIMERS.with(|t| t.borrow().entries.len()));
        });
    }

    #[test]
    fn without_a_ticker_it_falls_back_to_tokio() {
        std::thread::spawn(|| {
            runtime().block_on(async {
                let started = Instant::now();
                Sleep::after(Duration::from_millis(30)).await;
                assert!(started.elapsed() >= Duration::from_millis(30));
            });
        })
        .join()
        .unwrap();
    }

    #[test]
    fn many_deadlines_reuse_slots() {
        runtime().block_on(async {
            tokio::spawn(run());
            tokio::task::yield_now().await;
            for _ in 0..100 {
                let mut sleep = Box::pin(Sleep::after(Duration::from_secs(60)));
                assert!(futures_util::poll!(sleep.as_mut()).is_pending());
            }
            let slots = TIMERS.with(|t| t.borrow().entries.len());
            assert_eq!(slots, 1);
            Sleep::after(Duration::from_millis(5)).await;
        });
    }
}
