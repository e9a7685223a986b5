//! Appending: encoding a batch, the idempotent producer check, rolling to a new segment, and
//! deciding whether the append waits for a sync.

use std::borrow::Borrow;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::config::{Durability, LogConfig, TimestampType};
use crate::error::{Error, Result};
use crate::format::{
    codec_error, encode_batch, encoded_batch_len, patch_base_offset, BatchBuilder, BatchMeta,
    Compression, Record, MAX_DECOMPRESSED_BATCH_BYTES,
};
use crate::segment::Segment;

use super::producer_state::{Check, ProducerTable};
use super::{map_active, stats, AppendInfo, Inner, Partition, ProducerBatch, Writer};

impl Inner {
    /// Before the first idempotent batch: record durably where the producer state starts (the
    /// checkpoint's `producers_from`), so open rebuilds it from the log even if the snapshot goes
    /// missing, and start with an empty snapshot there. Runs under `producers_init`, not the
    /// append lock: the offset it records is the log end when it starts, at or below the first
    /// idempotent batch (batches between are not idempotent and add no producer state). If a
    /// truncation or an in-place recovery ran meanwhile (the end may have gone below that
    /// offset), the append redoes it under the append lock.
    fn start_tracking_producers(&self) -> Result<()> {
        let _init = self.producers_init.lock();
        if self.producers_tracked.load(Ordering::Acquire) {
            return Ok(());
        }
        self.check_writable()?;
        let truncations = self.truncations.load(Ordering::SeqCst);
        let recoveries = self.recoveries.load(Ordering::SeqCst);
        let from = self.end_offset.load(Ordering::Acquire);
        self.update_checkpoint(|cp| cp.producers_from = Some(from))
            .and_then(|()| ProducerTable::default().write(&*self.fs, &self.dir, from))
            .inspect_err(|e| self.poison(e))?;
        let mut w = self.writer.lock();
        let undisturbed = truncations.is_multiple_of(2)
            && self.truncations.load(Ordering::SeqCst) == truncations
            && self.recoveries.load(Ordering::SeqCst) == recoveries
            && self.end_offset.load(Ordering::Acquire) >= from;
        if undisturbed && !w.tracks_producers && w.producers.is_empty() {
            w.tracks_producers = true;
            self.producers_tracked.store(true, Ordering::Release);
        }
        Ok(())
    }
}

impl Partition {
    /// Append one record with the configured durability; returns its offset.
    ///
    /// # Errors
    /// As [`append_batch_with`](Self::append_batch_with).
    pub fn append(&self, record: Record) -> Result<u64> {
        Ok(self
            .append_batch(std::slice::from_ref(&record))?
            .base_offset)
    }

    /// Append records as one batch (atomically: all or none become visible), with the configured
    /// durability. Offsets are dense and increasing.
    ///
    /// # Errors
    /// As [`append_batch_with`](Self::append_batch_with).
    pub fn append_batch<R: Borrow<Record>>(&self, records: &[R]) -> Result<AppendInfo> {
        self.append_inner(records, None, None, Compression::None)
    }

    /// Append records as one batch with an explicit durability for this call.
    ///
    /// # Errors
    /// - [`Error::EmptyBatch`] for no records;
    /// - [`Error::RecordTooLarge`] if the encoded batch exceeds `max_batch_bytes`;
    /// - [`Error::Poisoned`] after an earlier I/O failure, [`Error::Closed`] after close;
    /// - [`Error::Io`] if the write or sync fails — the partition is then poisoned. A failed append
    ///   is never visible to readers, and is not reported durable.
    pub fn append_batch_with<R: Borrow<Record>>(
        &self,
        records: &[R],
        durability: Durability,
    ) -> Result<AppendInfo> {
        self.append_inner(records, Some(durability), None, Compression::None)
    }

    /// Append records as one batch from an idempotent producer: if the partition already holds
    /// this producer's batch with this sequence (one of its last [`PRODUCER_BATCHES_KEPT`](super::PRODUCER_BATCHES_KEPT)), nothing
    /// is written and the original offsets come back with `duplicate: true` (after waiting for
    /// `durability`, in case the original is not durable yet). The producer state survives
    /// reopening, crashes included.
    ///
    /// # Errors
    /// [`Error::OutOfOrderSequence`] if `producer.base_sequence` does not continue the producer's
    /// last batch here; [`Error::ProducerFenced`] for an epoch below the partition's; otherwise
    /// as [`append_batch_with`](Self::append_batch_with).
    ///
    /// # Examples
    /// ```
    /// use topiclog::{Durability, Partition, ProducerBatch, Record};
    /// let dir = tempfile::tempdir()?;
    /// let log = Partition::open(dir.path())?;
    /// let p = ProducerBatch { producer_id: 7, epoch: 0, base_sequence: 0 };
    /// let first = log.append_idempotent(&[Record::new("a"), Record::new("b")], p, Durability::Always)?;
    /// let again = log.append_idempotent(&[Record::new("a"), Record::new("b")], p, Durability::Always)?;
    /// assert!(again.duplicate);
    /// assert_eq!(again.base_offset, first.base_offset);
    /// assert_eq!(log.end_offset(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn append_idempotent<R: Borrow<Record>>(
        &self,
        records: &[R],
        producer: ProducerBatch,
        durability: Durability,
    ) -> Result<AppendInfo> {
        if producer.producer_id < 0 || producer.base_sequence < 0 {
            return Err(Error::config(
                "producer",
                "producer_id and base_sequence must be non-negative",
            ));
        }
        self.append_inner(records, Some(durability), Some(producer), Compression::None)
    }

    /// Append records as one batch whose records are compressed with `compression` (as a Kafka
    /// producer sends them), unless the topic's [`compression`](crate::LogConfig::compression)
    /// says otherwise. Reads decompress transparently.
    ///
    /// # Errors
    /// As [`append_batch_with`](Self::append_batch_with); [`Error::RecordTooLarge`] applies to
    /// the compressed batch; [`Error::InvalidConfig`] for a codec this build leaves out.
    ///
    /// # Examples
    /// ```
    /// use topiclog::{Compression, Durability, Partition, Record};
    /// let dir = tempfile::tempdir()?;
    /// let log = Partition::open(dir.path())?;
    /// let records: Vec<Record> = (0..100)
    ///     .map(|i| Record::new(format!("{{\"user\":{i},\"event\":\"page_view\"}}")))
    ///     .collect();
    /// log.append_batch_compressed(&records, Compression::Lz4, Durability::Always)?;
    /// let batch = log.read(0, 1 << 20)?;
    /// assert_eq!(batch.records().count(), 100);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn append_batch_compressed<R: Borrow<Record>>(
        &self,
        records: &[R],
        compression: Compression,
        durability: Durability,
    ) -> Result<AppendInfo> {
        self.append_inner(records, Some(durability), None, compression)
    }

    /// `durability` `None` means the configured one; `compression` is the codec asked for (the
    /// topic's `compression` decides).
    fn append_inner<R: Borrow<Record>>(
        &self,
        records: &[R],
        durability: Option<Durability>,
        producer: Option<ProducerBatch>,
        compression: Compression,
    ) -> Result<AppendInfo> {
        let inner = &*self.inner;
        if records.is_empty() {
            return Err(Error::EmptyBatch);
        }
        let config = inner.config();
        if config.cleanup_policy.compacts() && records.iter().any(|r| r.borrow().key().is_none()) {
            // Compaction keeps records by key: a keyless one would be dropped by the next pass.
            return Err(Error::MissingKey {
                topic: inner.dir.display().to_string(),
            });
        }
        if config.timestamp_type == TimestampType::CreateTime {
            if let Some(t) = records
                .iter()
                .filter_map(|r| r.borrow().timestamp())
                .find(|&t| t < 0)
            {
                return Err(Error::InvalidTimestamp { timestamp: t });
            }
        }
        let durability = durability.unwrap_or(config.durability);
        let now = inner.clock.now_ms();
        let mut meta = BatchMeta::new(now);
        meta.log_append_time = config.timestamp_type == TimestampType::LogAppendTime;
        if let Some(p) = producer {
            meta.producer_id = p.producer_id;
            meta.producer_epoch = p.epoch;
            meta.base_sequence = p.base_sequence;
        }
        meta.compression = config.compression.codec_for(compression);
        let len = encoded_batch_len(records, &meta);
        let max = config.max_batch_bytes as usize;
        // Uncompressed, the batch must fit; compressed, what is stored must (as in Kafka), and
        // the records must fit a batch once decompressed.
        let limit = if meta.compression == Compression::None {
            max
        } else {
            MAX_DECOMPRESSED_BATCH_BYTES
        };
        if len > limit || records.len() > i32::MAX as usize {
            return Err(Error::RecordTooLarge {
                size: len,
                max: limit,
            });
        }
        let mut buf = Vec::with_capacity(len.min(max));
        encode_batch(&mut buf, records, &meta).map_err(codec_error)?;
        if buf.len() > max {
            return Err(Error::RecordTooLarge {
                size: buf.len(),
                max,
            });
        }
        self.append_encoded(
            &mut buf,
            records.len() as u64,
            durability,
            producer,
            now,
            &config,
        )
    }

    /// A [`BatchBuilder`] whose records without a timestamp take this partition's clock.
    pub fn batch_builder(&self) -> BatchBuilder {
        BatchBuilder::with_clock(self.inner.clock.clone())
    }

    /// Append the records of `batch` as one batch (atomically), with the configured durability,
    /// then empty `batch` for the next one (its buffer is kept). The records were encoded when
    /// they were added, so this costs one header, one checksum and one write of the batch: the
    /// fastest way to append. On error `batch` keeps its records.
    ///
    /// # Errors
    /// As [`append_batch_with`](Self::append_batch_with); [`Error::MissingKey`] on a compacted
    /// topic if a record has no key; [`Error::InvalidTimestamp`] for a negative timestamp.
    ///
    /// # Examples
    /// ```
    /// use topiclog::Partition;
    /// let dir = tempfile::tempdir()?;
    /// let log = Partition::open(dir.path())?;
    /// let mut batch = log.batch_builder();
    /// for event in ["created", "paid", "shipped"] {
    ///     batch.push_keyed(Some(b"order-7"), Some(event.as_bytes()));
    /// }
    /// let info = log.append_builder(&mut batch)?;
    /// assert_eq!((info.base_offset, info.last_offset), (0, 2));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn append_builder(&self, batch: &mut BatchBuilder) -> Result<AppendInfo> {
        self.append_builder_produced(batch, None, None, Compression::None)
    }

    /// A producer's append of an encoded batch: idempotent when `producer` is given (its id and
    /// sequence are stamped on the header), with `durability` (`None`: the configured one),
    /// compressed with `compression` unless the topic's config says otherwise.
    pub(crate) fn append_builder_produced(
        &self,
        batch: &mut BatchBuilder,
        producer: Option<ProducerBatch>,
        durability: Option<Durability>,
        compression: Compression,
    ) -> Result<AppendInfo> {
        let inner = &*self.inner;
        if let Some(p) = producer {
            if p.producer_id < 0 || p.base_sequence < 0 {
                return Err(Error::config(
                    "producer",
                    "producer_id and base_sequence must be non-negative",
                ));
            }
            batch.set_producer(p.producer_id, p.epoch, p.base_sequence);
        }
        if batch.is_empty() {
            return Err(Error::EmptyBatch);
        }
        let config = inner.config();
        if config.cleanup_policy.compacts() && batch.any_keyless() {
            return Err(Error::MissingKey {
                topic: inner.dir.display().to_string(),
            });
        }
        let log_append_time = config.timestamp_type == TimestampType::LogAppendTime;
        if !log_append_time {
            if let Some(t) = batch.min_timestamp().filter(|&t| t < 0) {
                return Err(Error::InvalidTimestamp { timestamp: t });
            }
        }
        let now = inner.clock.now_ms();
        let stamp = log_append_time.then_some(now);
        let count = batch.len() as u64;
        let max = config.max_batch_bytes as usize;
        let codec = config.compression.codec_for(compression);
        let durability = durability.unwrap_or(config.durability);
        let info = if codec == Compression::None {
            if batch.encoded_len() > max {
                return Err(Error::RecordTooLarge {
                    size: batch.encoded_len(),
                    max,
                });
            }
            let bytes = batch.finish(stamp);
            self.append_encoded(bytes, count, durability, producer, now, &config)?
        } else {
            if batch.encoded_len() > MAX_DECOMPRESSED_BATCH_BYTES {
                return Err(Error::RecordTooLarge {
                    size: batch.encoded_len(),
                    max: MAX_DECOMPRESSED_BATCH_BYTES,
                });
            }
            let mut bytes = batch.finish_compressed(codec, stamp).map_err(codec_error)?;
            if bytes.len() > max {
                return Err(Error::RecordTooLarge {
                    size: bytes.len(),
                    max,
                });
            }
            self.append_encoded(&mut bytes, count, durability, producer, now, &config)?
        };
        batch.clear();
        Ok(info)
    }

    /// Append the encoded batch `buf` (header and CRC filled in, base offset to be assigned) of
    /// `count` records: the idempotent producer check, the roll, the write, and the wait for
    /// `durability`.
    fn append_encoded(
        &self,
        buf: &mut [u8],
        count: u64,
        durability: Durability,
        producer: Option<ProducerBatch>,
        now: i64,
        config: &LogConfig,
    ) -> Result<AppendInfo> {
        let inner = &*self.inner;
        let len = buf.len();
        // Counted while it runs, so the sync leader of a group commit waits for it.
        let _durable = (durability == Durability::Always).then(|| DurableAppend::new(inner));

        if producer.is_some() && !inner.producers_tracked.load(Ordering::Acquire) {
            // The first idempotent batch here: its atomic writes (two fsyncs each) happen before
            // the append lock, so other appenders never wait for them.
            inner.start_tracking_producers()?;
        }
        let (base, end, needs_sync) = {
            let mut w = inner.writer.lock();
            inner.check_writable()?;
            if let Some(p) = producer {
                let checked = w.producers.check(
                    p,
                    count as u32,
                    &inner.dir,
                    now,
                    config.producer_id_expiration,
                )?;
                match checked {
                    Check::Fresh => {}
                    Check::Duplicate(info) => {
                        drop(w);
                        if durability != Durability::None {
                            inner.sync_to(info.last_offset.saturating_add(1))?;
                        }
                        return Ok(info);
                    }
                }
                if !w.tracks_producers {
                    // Only if `start_tracking_producers` could not vouch for its work (a
                    // truncation or an in-place recovery ran meanwhile): the same, under the lock.
                    let from = inner.end_offset.load(Ordering::Acquire);
                    inner
                        .update_checkpoint(|cp| cp.producers_from = Some(from))
                        .and_then(|()| w.producers.write(&*inner.fs, &inner.dir, from))
                        .inspect_err(|e| inner.poison(e))?;
                    w.tracks_producers = true;
                    inner.producers_tracked.store(true, Ordering::Release);
                }
            }
            let base = inner.end_offset.load(Ordering::Acquire);
            if inner.should_roll(config, &w.active, len as u64, count, now)? {
                inner.roll(&mut w).inspect_err(|e| inner.poison(e))?;
            }
            patch_base_offset(buf, base);
            w.active.append(buf, now).inspect_err(|e| inner.poison(e))?;
            let end = base + count;
            let needs_sync = match durability {
                Durability::None => false,
                Durability::Always => true,
                Durability::EveryMessages(n) => {
                    end.saturating_sub(inner.synced_hint.load(Ordering::Acquire)) >= n
                }
                Durability::Interval(d) => {
                    now.saturating_sub(inner.last_sync_ms.load(Ordering::Acquire))
                        >= d.as_millis() as i64
                }
            };
            // Register before publishing the end, so a sync leader that sees this end also sees
            // that it must not be made visible until synced.
            let mut pending = inner.pending.lock();
            if needs_sync {
                pending.insert(base, end);
            }
            inner.end_offset.store(end, Ordering::SeqCst);
            let visible = pending.keys().next().copied().unwrap_or(end);
            drop(pending);
            inner.publish_written(visible, w.active.written_end());
            if let Some(p) = producer {
                let info = AppendInfo {
                    base_offset: base,
                    last_offset: end - 1,
                    append_time: now,
                    duplicate: false,
                };
                w.producers.record(p, count as u32, &info, now);
            }
            (base, end, needs_sync)
        };
        let c = &inner.counters;
        stats::add(&c.batches_appended, 1);
        stats::add(&c.records_appended, count);
        stats::add(&c.bytes_appended, len as u64);
        if needs_sync {
            inner.sync_to(end)?;
        }
        Ok(AppendInfo {
            base_offset: base,
            last_offset: end - 1,
            append_time: now,
            duplicate: false,
        })
    }
}

impl Inner {
    pub(super) fn should_roll(
        &self,
        config: &LogConfig,
        active: &Segment,
        batch_len: u64,
        count: u64,
        now: i64,
    ) -> Result<bool> {
        if active.is_empty() {
            return Ok(false);
        }
        let end = self.end_offset.load(Ordering::Acquire);
        let last_rel = end + count - 1 - active.base_offset();
        let size = active.appended_size();
        let by_size = size + batch_len > config.segment_bytes;
        let by_time = match (config.roll_after().duration(), active.first_append_ms()) {
            (Some(ms), Some(first)) => now.saturating_sub(first) >= ms.as_millis() as i64,
            _ => false,
        };
        let by_offset = last_rel > crate::format::MAX_SEGMENT_RELATIVE;
        let by_position = size + batch_len > crate::format::MAX_SEGMENT_RELATIVE;
        Ok(by_size || by_time || by_offset || by_position || active.indexes_full())
    }

    /// Seal the active segment and start a new one at the end offset.
    ///
    /// Nothing is synced here, so an append that rolls does not wait for the old segment (up to a
    /// whole segment of dirty pages) to reach the disk: the old segment joins `unsynced_sealed`,
    /// which the next group commit or background flush syncs before it claims any offset durable.
    pub(super) fn roll(&self, w: &mut Writer) -> Result<()> {
        let old = w.active.clone();
        old.seal_unsynced()?;
        let base = self.end_offset.load(Ordering::Acquire);
        crate::trace::event!(
            debug,
            dir = %self.dir.display(),
            base_offset = base,
            sealed_bytes = old.size(),
            "segment rolled"
        );
        let config = self.config();
        let seg = Arc::new(Segment::create_with_suffix(
            self.fs.clone(),
            &self.dir,
            base,
            self.segment_config(&config),
            "",
        )?);
        // The new file's directory entry (and the sealed indexes' renames) become durable with
        // the next sync, before any record in the new segment is claimed durable: no appender
        // waits for the disk here.
        self.dir_unsynced.store(true, Ordering::SeqCst);
        map_active(&config, &seg);
        self.unsynced_sealed.lock().push(old);
        if !w.producers.is_empty() {
            w.snapshot_wanted = true;
        }
        let mut segments = self.segments.write();
        let mut list = segments.as_ref().clone();
        list.push(seg.clone());
        *segments = Arc::new(list);
        drop(segments);
        w.active = seg;
        self.tail_layout_changed();
        Ok(())
    }
}

/// One durable append under way, counted in `Inner::durable_appends` while it lives.
struct DurableAppend<'a>(&'a Inner);

impl<'a> DurableAppend<'a> {
    fn new(inner: &'a Inner) -> Self {
        inner.durable_appends.fetch_add(1, Ordering::AcqRel);
        DurableAppend(inner)
    }
}

impl Drop for DurableAppend<'_> {
    fn drop(&mut self) {
        self.0.durable_appends.fetch_sub(1, Ordering::AcqRel);
    }
}
