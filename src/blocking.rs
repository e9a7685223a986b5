//! A few threads for the file I/O an async caller must not do on its executor: a durable commit's
//! `fdatasync` ([`Consumer::commit_async`](crate::Consumer::commit_async)).
//!
//! Runtime-agnostic: a job runs on one of at most [`MAX_THREADS`] threads of the process
//! (started on demand, each leaving after [`IDLE`] without work), and its [`BlockingTask`] is a
//! future woken through an [`Event`] when the job is done. Concurrent jobs run side by side, so
//! the commits of several consumers still share group commits of the offsets partition.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::wait::{Event, EventListener};

/// Most threads the pool runs.
const MAX_THREADS: usize = 8;
/// How long a thread waits for work before it leaves.
const IDLE: Duration = Duration::from_secs(10);

type Job = Box<dyn FnOnce() + Send>;

struct Pool {
    state: Mutex<PoolState>,
    work: Condvar,
}

#[derive(Default)]
struct PoolState {
    jobs: VecDeque<Job>,
    threads: usize,
    idle: usize,
}

static POOL: OnceLock<Pool> = OnceLock::new();

/// What a job hands back to its task.
struct Slot<T> {
    result: Mutex<Option<T>>,
    done: Event,
}

/// The future of [`spawn`]: resolves to what the job returned. Dropping it does not stop the
/// job, which runs to its end either way.
pub(crate) struct BlockingTask<T> {
    slot: Arc<Slot<T>>,
    listener: Option<EventListener>,
}

/// Run `job` on the pool. If no thread can be started and none runs, `job` runs here, now.
pub(crate) fn spawn<T: Send + 'static>(
    job: impl FnOnce() -> T + Send + 'static,
) -> BlockingTask<T> {
    let slot = Arc::new(Slot {
        result: Mutex::new(None),
        done: Event::new(),
    });
    let task = BlockingTask {
        slot: slot.clone(),
        listener: None,
    };
    let job: Job = Box::new(move || {
        let r = job();
        *slot.result.lock() = Some(r);
        slot.done.notify(usize::MAX);
    });
    let pool = POOL.get_or_init(|| Pool {
        state: Mutex::new(PoolState::default()),
        work: Condvar::new(),
    });
    let mut st = pool.state.lock();
    st.jobs.push_back(job);
    pool.work.notify_one();
    // Every queued job has an idle thread to take it, or a new one starts.
    if st.jobs.len() > st.idle && st.threads < MAX_THREADS {
        let started = std::thread::Builder::new()
            .name("topiclog-blocking".into())
            .spawn(move || pool.run());
        if started.is_ok() {
            st.threads += 1;
            return task;
        }
    }
    if st.threads == 0 {
        // No thread at all: run what is queued here rather than never.
        let jobs: Vec<Job> = st.jobs.drain(..).collect();
        drop(st);
        jobs.into_iter().for_each(|j| j());
    }
    task
}

impl Pool {
    fn run(&self) {
        let mut st = self.state.lock();
        loop {
            if let Some(job) = st.jobs.pop_front() {
                drop(st);
                job();
                st = self.state.lock();
                continue;
            }
            st.idle += 1;
            let timed_out = self.work.wait_for(&mut st, IDLE).timed_out();
            st.idle -= 1;
            if timed_out && st.jobs.is_empty() {
                st.threads -= 1;
                return;
            }
        }
    }
}

impl<T> Future for BlockingTask<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let this = self.get_mut();
        loop {
            if let Some(r) = this.slot.result.lock().take() {
                return Poll::Ready(r);
            }
            match this.listener.as_mut() {
                // Listening before the second look: a result set in between notifies it.
                None => this.listener = Some(this.slot.done.listen()),
                Some(l) => {
                    if Pin::new(l).poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    this.listener = None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: Future>(f: F) -> F::Output {
        struct Unpark(std::thread::Thread);
        impl std::task::Wake for Unpark {
            fn wake(self: Arc<Self>) {
                self.0.unpark();
            }
        }
        let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
        let mut cx = Context::from_waker(&waker);
        let mut f = Box::pin(f);
        loop {
            if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
            std::thread::park();
        }
    }

    #[test]
    fn jobs_run_off_the_calling_thread_side_by_side() {
        let me = std::thread::current().id();
        let barrier = Arc::new(std::sync::Barrier::new(3));
        let tasks: Vec<_> = (0..3)
            .map(|i| {
                let barrier = barrier.clone();
                spawn(move || {
                    // Three jobs meet here: they run at the same time.
                    barrier.wait();
                    (i, std::thread::current().id())
                })
            })
            .collect();
        for (i, t) in tasks.into_iter().enumerate() {
            let (j, id) = block_on(t);
            assert_eq!(i, j);
            assert_ne!(id, me);
        }
    }
}
