//! A `SendHandle` is a `Future`: awaited, it resolves with what `wait` returns, is woken by the
//! sender (no polling), and carries a failed batch's error to every awaiting handle.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake};

use super::*;

/// The smallest executor: poll, park until woken; counts the polls.
fn block_on<F: Future>(f: F, polls: &AtomicUsize) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Arc::new(Unpark(std::thread::current())).into();
    let mut f = pin!(f);
    loop {
        polls.fetch_add(1, Ordering::Relaxed);
        match f.as_mut().poll(&mut Context::from_waker(&waker)) {
            Poll::Ready(v) => return v,
            Poll::Pending => std::thread::park(),
        }
    }
}

#[test]
fn awaited_handles_resolve_like_wait() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let t = store
        .create_topic("t", TopicConfig::with_partitions(2))
        .unwrap();
    let producer = store.producer(config(Acks::Written)).unwrap();
    let polls = AtomicUsize::new(0);
    let mut next = [0u64; 2];
    for i in 0..60u32 {
        let p = i % 2;
        let h = producer
            .send_to("t", p, Record::new(format!("v{i}")))
            .unwrap();
        // Alternately awaited and waited for: the same metadata either way.
        let m = if i % 4 < 2 {
            block_on(h, &polls).unwrap()
        } else {
            h.wait().unwrap()
        };
        assert_eq!((m.partition, m.offset), (p, next[p as usize]));
        next[p as usize] += 1;
    }
    assert_eq!(t.end_offsets(), vec![30, 30]);
}

#[test]
fn an_awaiting_task_is_woken_by_the_sender_not_by_polling() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    store
        .create_topic("t", TopicConfig::with_partitions(1))
        .unwrap();
    let producer = store
        .producer(ProducerConfig {
            linger: HOUR,
            ..config(Acks::Durable)
        })
        .unwrap();
    let handles: Vec<SendHandle> = (0..3)
        .map(|i| producer.send("t", Record::new(format!("v{i}"))).unwrap())
        .collect();
    let polls = Arc::new(AtomicUsize::new(0));
    let waiter = {
        let polls = polls.clone();
        std::thread::spawn(move || {
            handles
                .into_iter()
                .map(|h| block_on(h, &polls).unwrap().offset)
                .collect::<Vec<_>>()
        })
    };
    // The batch lingers (an hour) until the flush; the task sleeps meanwhile.
    std::thread::sleep(Duration::from_millis(50));
    assert!(!waiter.is_finished());
    producer.flush().unwrap();
    assert_eq!(waiter.join().unwrap(), vec![0, 1, 2]);
    // One poll to register, one after the wake-up, then the other two handles are ready at once;
    // a few more if the thread woke spuriously, never a poll loop across the 50 ms.
    let n = polls.load(Ordering::Relaxed);
    assert!((4..=10).contains(&n), "{n} polls");
}

#[test]
fn a_failed_batch_fails_every_awaiting_handle() {
    let sim = SimFs::new(31);
    let opts = StoreOptions {
        log: LogConfig {
            preallocate: false,
            ..options(Durability::None).log
        },
        ..options(Durability::None)
    };
    let env = Env::with_fs(Arc::new(sim.clone()));
    let store = Store::open_with_env(Path::new("/s"), opts, env).unwrap();
    store
        .create_topic("t", TopicConfig::with_partitions(1))
        .unwrap();
    let producer = store
        .producer(ProducerConfig {
            linger: HOUR,
            ..config(Acks::Written)
        })
        .unwrap();
    sim.inject(Fault {
        path_contains: Some("/s/t/0/".into()),
        ..Fault::new(FaultOp::Write, 0)
    });
    let handles: Vec<SendHandle> = (0..4)
        .map(|i| producer.send("t", Record::new(format!("v{i}"))).unwrap())
        .collect();
    producer.flush().unwrap();
    let polls = AtomicUsize::new(0);
    for h in handles {
        match block_on(h, &polls) {
            Err(Error::Io { .. }) => {}
            other => panic!("expected the write's Io error, got {other:?}"),
        }
    }
}
