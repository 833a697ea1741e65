//! One event's way back from the broker: the delivery callback fills a
//! slot, the caller's [`Delivery`] waits on it.
//!
//! One shared allocation per event (an `Arc<Slot>`), where a oneshot
//! channel plus a boxed callback payload took two. At hundreds of thousands
//! of events per second the emitting thread spent over a third of its time
//! in `malloc` (`perf`), much of it sorting chunks that librdkafka's polling
//! thread had freed: the boxed payloads among them.

use std::ffi::c_void;
use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use rdkafka::error::KafkaError;
use rdkafka::util::IntoOpaque;
use tokio::sync::OwnedSemaphorePermit;

use crate::EmitError;

/// Where the broker stored an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    pub partition: i32,
    pub offset: i64,
}

/// A std `Mutex`: it is held for a few instructions, never across an
/// `.await`, and is almost never contended (the callback and the caller
/// meet at most once).
struct Slot(Mutex<State>);

enum State {
    /// The event is with librdkafka. The permit is released when the broker
    /// answers, not when the caller drops its `Delivery`, so the in-flight
    /// bound counts events, not handles.
    InFlight {
        waker: Option<Waker>,
        _permit: OwnedSemaphorePermit,
    },
    Done(Result<Receipt, EmitError>),
    /// The outcome went to the caller.
    Taken,
}

/// Creates the two ends for one event that holds `permit` until answered.
pub(crate) fn pair(permit: OwnedSemaphorePermit) -> (Notifier, Delivery) {
    let slot = Arc::new(Slot(Mutex::new(State::InFlight { waker: None, _permit: permit })));
    (Notifier(slot.clone()), Delivery(slot))
}

/// The callback's end. It travels through librdkafka as the message's
/// opaque pointer. If it is dropped unanswered (the producer went away with
/// the event), the caller learns that instead of waiting forever.
pub(crate) struct Notifier(Arc<Slot>);

impl Notifier {
    pub(crate) fn complete(&self, outcome: Result<Receipt, KafkaError>) {
        self.finish(outcome.map_err(EmitError::Kafka));
    }

    fn finish(&self, outcome: Result<Receipt, EmitError>) {
        let previous = {
            let mut state = self.0 .0.lock().unwrap_or_else(|p| p.into_inner());
            match *state {
                State::InFlight { .. } => mem::replace(&mut *state, State::Done(outcome)),
                State::Done(_) | State::Taken => return,
            }
        };
        // Outside the lock: the permit wakes the next emitter, the waker
        // this event's caller.
        if let State::InFlight { waker: Some(waker), .. } = previous {
            waker.wake();
        }
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        self.finish(Err(EmitError::Closed));
    }
}

// SAFETY: the pointer is an `Arc<Slot>` turned into a raw pointer once and
// turned back once: librdkafka hands each message's opaque to exactly one
// delivery callback, and rust-rdkafka turns it back on a failed send.
impl IntoOpaque for Notifier {
    fn into_ptr(self) -> *mut c_void {
        let this = mem::ManuallyDrop::new(self);
        // SAFETY: `this` is never dropped, so the reference it held moves
        // into the pointer.
        let slot = unsafe { std::ptr::read(&this.0) };
        Arc::into_raw(slot) as *mut c_void
    }

    unsafe fn from_ptr(ptr: *mut c_void) -> Self {
        // SAFETY: `ptr` came from `into_ptr` and is used once (above).
        Notifier(unsafe { Arc::from_raw(ptr as *const Slot) })
    }
}

/// The broker's answer for one event. Dropping it does not cancel the send.
pub struct Delivery(Arc<Slot>);

impl Future for Delivery {
    type Output = Result<Receipt, EmitError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.0 .0.lock().unwrap_or_else(|p| p.into_inner());
        match &mut *state {
            State::InFlight { waker, .. } => {
                match waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => *waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            State::Done(_) => match mem::replace(&mut *state, State::Taken) {
                State::Done(outcome) => Poll::Ready(outcome),
                _ => unreachable!("matched Done above"),
            },
            State::Taken => Poll::Ready(Err(EmitError::Closed)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rdkafka::error::{KafkaError, RDKafkaErrorCode};
    use rdkafka::util::IntoOpaque;
    use tokio::sync::Semaphore;

    use super::*;

    fn permit(s: &Arc<Semaphore>) -> OwnedSemaphorePermit {
        s.clone().try_acquire_owned().expect("a free permit")
    }

    #[tokio::test]
    async fn the_answer_reaches_the_caller_and_frees_the_permit() {
        let permits = Arc::new(Semaphore::new(1));
        let (notifier, delivery) = pair(permit(&permits));
        assert_eq!(permits.available_permits(), 0);
        let waiting = tokio::spawn(delivery);
        tokio::task::yield_now().await;
        notifier.complete(Ok(Receipt { partition: 3, offset: 42 }));
        assert_eq!(permits.available_permits(), 1, "the permit goes back with the answer");
        drop(notifier);
        assert_eq!(waiting.await.unwrap().unwrap(), Receipt { partition: 3, offset: 42 });
    }

    #[tokio::test]
    async fn a_dropped_delivery_still_frees_the_permit_when_answered() {
        let permits = Arc::new(Semaphore::new(1));
        let (notifier, delivery) = pair(permit(&permits));
        drop(delivery);
        assert_eq!(permits.available_permits(), 0, "the event is still in flight");
        notifier.complete(Err(KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut)));
        assert_eq!(permits.available_permits(), 1);
    }

    #[tokio::test]
    async fn an_unanswered_event_tells_the_caller_the_emitter_closed() {
        let permits = Arc::new(Semaphore::new(1));
        let (notifier, delivery) = pair(permit(&permits));
        drop(notifier);
        assert!(matches!(delivery.await, Err(EmitError::Closed)));
        assert_eq!(permits.available_permits(), 1);
    }

    #[tokio::test]
    async fn errors_keep_their_cause_and_only_the_first_answer_counts() {
        let permits = Arc::new(Semaphore::new(1));
        let (notifier, delivery) = pair(permit(&permits));
        notifier.complete(Err(KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut)));
        notifier.complete(Ok(Receipt { partition: 0, offset: 0 }));
        drop(notifier);
        match delivery.await {
            Err(e @ EmitError::Kafka(_)) => assert!(e.is_retriable(), "{e}"),
            other => panic!("expected the Kafka error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn the_opaque_pointer_round_trip_keeps_one_reference() {
        let permits = Arc::new(Semaphore::new(1));
        let (notifier, delivery) = pair(permit(&permits));
        let ptr = notifier.into_ptr();
        assert_eq!(Arc::strong_count(&delivery.0), 2, "the pointer holds the callback's reference");
        // SAFETY: `ptr` came from `into_ptr` just above and is used once.
        let notifier = unsafe { Notifier::from_ptr(ptr) };
        notifier.complete(Ok(Receipt { partition: 1, offset: 7 }));
        drop(notifier);
        assert_eq!(Arc::strong_count(&delivery.0), 1);
        assert_eq!(delivery.await.unwrap(), Receipt { partition: 1, offset: 7 });
    }
}
