//! [`Consumer::stream`]: polled batches as a [`Stream`] (feature `stream`).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;

use super::{Consumer, ConsumerRecords};
use crate::error::{Error, Result};

type Next<'a> =
    Pin<Box<dyn Future<Output = (&'a mut Consumer, Result<ConsumerRecords>)> + Send + 'a>>;

/// The records of a [`Consumer`] as a [`Stream`] of polled batches ([`Consumer::stream`]).
pub struct RecordStream<'a> {
    state: State<'a>,
}

enum State<'a> {
    /// Between items: the consumer, ready for the next `recv`.
    Idle(&'a mut Consumer),
    /// A `recv` under way (it holds the consumer and hands it back with its result).
    Receiving(Next<'a>),
    /// The consumer or its store closed.
    Done,
}

impl<'a> RecordStream<'a> {
    pub(super) fn new(consumer: &'a mut Consumer) -> Self {
        RecordStream {
            state: State::Idle(consumer),
        }
    }
}

impl fmt::Debug for RecordStream<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Idle(_) => "idle",
            State::Receiving(_) => "receiving",
            State::Done => "done",
        };
        f.debug_struct("RecordStream")
            .field("state", &state)
            .finish()
    }
}

impl Stream for RecordStream<'_> {
    type Item = Result<ConsumerRecords>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            match std::mem::replace(&mut this.state, State::Done) {
                State::Done => return Poll::Ready(None),
                State::Idle(consumer) => {
                    this.state = State::Receiving(Box::pin(async move {
                        let r = consumer.recv().await;
                        (consumer, r)
                    }));
                }
                State::Receiving(mut next) => match next.as_mut().poll(cx) {
                    Poll::Pending => {
                        this.state = State::Receiving(next);
                        return Poll::Pending;
                    }
                    Poll::Ready((_, Err(Error::Closed { .. }))) => return Poll::Ready(None),
                    Poll::Ready((consumer, r)) => {
                        this.state = State::Idle(consumer);
                        return Poll::Ready(Some(r));
                    }
                },
            }
        }
    }
}
