//! A window over a segment's `.log` (a map, or a buffer refilled by `pread`) for scans.

use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};

use crate::error::{Error, Result};
use crate::format::{
    crc_matches, peek_frame, peek_span, span_crc_matches, validate_batch, BatchHeader, BatchSpan,
    Frame, RecordBatch, BATCH_HEADER_LEN, CRC_OFFSET, MAX_BATCH_BYTES_LIMIT, SPAN_LEN,
};
use crate::fs::File;

use super::Segment;

impl Segment {
    /// Where reads come from: the map when there is one covering the data (a sealed segment is
    /// mapped on first use), else the file.
    ///
    /// A mapped source holds its own reference to the map, so the segment cache may release the
    /// segment's while a read goes on (issue 13).
    pub(super) fn source(&self) -> Source<'_> {
        if let Some(m) = self.map.get() {
            let size = self.size();
            if m.len() as u64 >= size {
                self.lazy.touch();
                return Source::Mapped(m);
            }
            // An active segment's data outgrew its map: map more (a failure reads the file).
            let limit = self.map_limit.load(std::sync::atomic::Ordering::Acquire);
            if !self.is_sealed() {
                if let Ok(Some(m)) = self.lazy.grown_map(size, limit) {
                    return Source::Mapped(m);
                }
            }
        }
        if self.is_sealed() {
            if let Ok(m) = self.lazy.map_sealed(self.size()) {
                return Source::Mapped(m);
            }
        }
        Source::File(&*self.file)
    }
}

/// Whether this build can decompress the batch `h` describes.
fn codec_available(h: &BatchHeader) -> bool {
    crate::format::Compression::from_attributes(h.attributes).is_ok_and(|c| c.is_available())
}

/// The error for a batch at `pos` with header `h` that failed to decode at `at` (relative to
/// the batch) for `reason`: a codec this build leaves out is the build's fault, not the data's.
fn batch_error(h: &BatchHeader, pos: u64, at: usize, reason: &'static str, path: &Path) -> Error {
    if !codec_available(h) {
        // The build, not the data: the batch is intact (its CRC matched at recovery).
        let codec = crate::format::Compression::from_attributes(h.attributes).unwrap_or_default();
        return Error::config(
            "compression",
            format!(
                "{} holds a batch at byte {pos} compressed with {codec}, and {}",
                path.display(),
                crate::format::missing_codec(codec)
            ),
        );
    }
    Error::corrupt(path, pos + at as u64, reason)
}

/// Where a read's bytes come from.
pub(super) enum Source<'a> {
    Mapped(Bytes),
    File(&'a dyn File),
}

/// Reads batch headers and batches through a window, refilling with one read per window, so a
/// scan over a file costs one `pread` per window rather than one per batch. Over a map it slices.
pub(super) struct WindowReader<'a> {
    source: Source<'a>,
    window_len: usize,
    limit: u64,
    buf: Bytes,
    buf_start: u64,
}

impl<'a> WindowReader<'a> {
    pub(super) fn new(source: Source<'a>, window_len: usize, limit: u64) -> Self {
        WindowReader {
            source,
            window_len,
            limit,
            buf: Bytes::new(),
            buf_start: 0,
        }
    }

    /// Make sure the window holds `[pos, end)` (file source only).
    fn fill(&mut self, pos: u64, end: u64, path: &Path) -> Result<()> {
        let Source::File(f) = &self.source else {
            return Ok(());
        };
        let buf_end = self.buf_start + self.buf.len() as u64;
        if pos >= self.buf_start && end <= buf_end {
            return Ok(());
        }
        let want = (self.window_len as u64)
            .max(end - pos)
            .min(self.limit - pos) as usize;
        let mut b = BytesMut::zeroed(want);
        let mut got = 0;
        while got < want {
            match f.read_at(&mut b[got..], pos + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io(path, e)),
            }
        }
        b.truncate(got);
        self.buf = b.freeze();
        self.buf_start = pos;
        Ok(())
    }

    /// `[pos, pos + len)` clipped to the limit and to what exists, as a range of `window()`.
    fn locate(&mut self, pos: u64, len: usize, path: &Path) -> Result<std::ops::Range<usize>> {
        let end = (pos + len as u64).min(self.limit);
        if pos >= end {
            return Ok(0..0);
        }
        self.fill(pos, end, path)?;
        let (base, avail) = match &self.source {
            Source::Mapped(m) => (0, m.len() as u64),
            Source::File(_) => (self.buf_start, self.buf_start + self.buf.len() as u64),
        };
        let e = end.min(avail);
        if pos >= e || pos < base {
            return Ok(0..0);
        }
        Ok((pos - base) as usize..(e - base) as usize)
    }

    fn window(&self) -> &Bytes {
        match &self.source {
            Source::Mapped(m) => m,
            Source::File(_) => &self.buf,
        }
    }

    /// Bytes `[pos, pos + len)`, clipped to the limit; `len` may be shorter than asked.
    pub(super) fn bytes(&mut self, pos: u64, len: usize, path: &Path) -> Result<Bytes> {
        let r = self.locate(pos, len, path)?;
        Ok(self.window().slice(r))
    }

    /// Exactly the `len` bytes of a batch at `pos`: damage if the file ends first.
    fn exact_bytes(&mut self, pos: u64, len: usize, path: &Path) -> Result<Bytes> {
        let b = self.bytes(pos, len, path)?;
        if b.len() != len {
            return Err(Error::corrupt(
                path,
                pos,
                "batch extends past the end of the file",
            ));
        }
        Ok(b)
    }

    /// The header of the batch at `pos`, structurally checked; the batch must end within the limit.
    pub(super) fn header_at(&mut self, pos: u64, path: &Path) -> Result<BatchHeader> {
        let r = self.locate(pos, BATCH_HEADER_LEN, path)?;
        match peek_frame(&self.window()[r]) {
            Frame::Batch(h) if pos + h.total_len() as u64 <= self.limit => Ok(h),
            Frame::Batch(_) => Err(Error::corrupt(
                path,
                pos,
                "batch extends past the end of the log",
            )),
            Frame::ShortHeader => Err(Error::corrupt(path, pos, "truncated batch header")),
            Frame::Invalid(reason) => Err(Error::corrupt(path, pos, reason)),
        }
    }

    /// The [`BatchSpan`] of the batch at `pos` (base offset, length, leader epoch, CRC, last
    /// offset delta), structurally checked; the batch must end within the limit. What a scan
    /// needs to step over a batch, without parsing the whole header.
    pub(super) fn span_at(&mut self, pos: u64, path: &Path) -> Result<BatchSpan> {
        let r = self.locate(pos, SPAN_LEN, path)?;
        match peek_span(&self.window()[r]) {
            Ok(s) if pos + s.total_len() as u64 <= self.limit => Ok(s),
            Ok(_) => Err(Error::corrupt(
                path,
                pos,
                "batch extends past the end of the log",
            )),
            Err(reason) => Err(Error::corrupt(path, pos, reason)),
        }
    }

    /// Check the CRC of the batch at `pos` whose span is `s`.
    pub(super) fn verify_span(&mut self, pos: u64, s: &BatchSpan, path: &Path) -> Result<()> {
        let b = self.bytes(pos, s.total_len(), path)?;
        if !span_crc_matches(&b, s.total_len(), s.crc) {
            return Err(Error::corrupt(path, pos, "batch CRC mismatch"));
        }
        Ok(())
    }

    /// The header at `pos` after checking its whole batch's CRC, so that every field (offsets,
    /// length, timestamps) is what the writer wrote. Record framing is not checked.
    pub(super) fn verified_header_at(&mut self, pos: u64, path: &Path) -> Result<BatchHeader> {
        let h = self.header_at(pos, path)?;
        self.verify(pos, &h, path)?;
        Ok(h)
    }

    /// Check the CRC of the batch at `pos` whose header is `h`.
    pub(super) fn verify(&mut self, pos: u64, h: &BatchHeader, path: &Path) -> Result<()> {
        let b = self.bytes(pos, h.total_len(), path)?;
        if !crc_matches(&b, h) {
            return Err(Error::corrupt(path, pos, "batch CRC mismatch"));
        }
        Ok(())
    }

    /// The header of the batch at `pos` after validating the batch without decompressing it
    /// (CRC, and the framing of an uncompressed batch's records): what recovery and index
    /// rebuilds check.
    pub(super) fn checked_header_at(&mut self, pos: u64, path: &Path) -> Result<BatchHeader> {
        let h = self.header_at(pos, path)?;
        let b = self.bytes(pos, h.total_len(), path)?;
        match validate_batch(&b) {
            Ok(h) => Ok(h),
            Err((at, reason)) => Err(Error::corrupt(path, pos + at as u64, reason)),
        }
    }

    /// The batch at `pos`, fully validated when `verify` (CRC and framing).
    pub(super) fn batch_at(
        &mut self,
        pos: u64,
        path: &Path,
        verify: bool,
    ) -> Result<(BatchHeader, Option<RecordBatch>)> {
        let h = self.header_at(pos, path)?;
        let len = h.total_len();
        if len > MAX_BATCH_BYTES_LIMIT + BATCH_HEADER_LEN {
            return Err(Error::corrupt(path, pos, "batch too large"));
        }
        if !verify {
            return Ok((h, None));
        }
        let b = self.exact_bytes(pos, len, path)?;
        match RecordBatch::decode(b) {
            Ok(batch) => Ok((h, Some(batch))),
            Err((at, reason)) => Err(batch_error(&h, pos, at, reason, path)),
        }
    }

    /// The batch at `pos` whose span `s` was read from it, to be served: its CRC checked unless
    /// `crc_vouched` (the caller's cache of batches verified in this process vouches for it),
    /// its header parsed, its records decompressed, and their framing checked when
    /// `check_framing` (else [`RecordBatch::iter`] checks each record as it parses it).
    pub(super) fn served_batch(
        &mut self,
        pos: u64,
        s: &BatchSpan,
        crc_vouched: bool,
        check_framing: bool,
        path: &Path,
    ) -> Result<RecordBatch> {
        let len = s.total_len();
        let b = self.exact_bytes(pos, len, path)?;
        // In `RecordBatch::decode`'s order, with its errors.
        let h = BatchHeader::parse(&b).map_err(|reason| Error::corrupt(path, pos, reason))?;
        if !crc_vouched && !span_crc_matches(&b, len, s.crc) {
            return Err(batch_error(&h, pos, CRC_OFFSET, "CRC mismatch", path));
        }
        RecordBatch::from_verified(b, h, check_framing)
            .map_err(|(at, reason)| batch_error(&h, pos, at, reason, path))
    }

    /// Whether `[pos, end)` is all zeros (a preallocated, never-written tail).
    pub(super) fn is_zero(&mut self, mut pos: u64, end: u64) -> Result<bool> {
        let Source::File(f) = &self.source else {
            return Ok(false);
        };
        let mut buf = Vec::new();
        while pos < end {
            // Holes (the unwritten part of a preallocated file) are zeros: skipped unread.
            let data = f
                .data_at_or_after(pos)
                .map_err(|e| Error::io(PathBuf::new(), e))?;
            let Some((start, data_end)) = data.filter(|&(s, _)| s < end) else {
                break;
            };
            pos = pos.max(start);
            let before = pos;
            let data_end = data_end.min(end);
            while pos < data_end {
                if buf.is_empty() {
                    buf = vec![0u8; 1 << 20];
                }
                let n = ((data_end - pos) as usize).min(buf.len());
                let got = f
                    .read_at(&mut buf[..n], pos)
                    .map_err(|e| Error::io(PathBuf::new(), e))?;
                if got == 0 {
                    return Ok(true);
                }
                // Compared against zeros a chunk at a time (`memcmp`, fast in any build).
                static ZEROS: [u8; 1 << 16] = [0; 1 << 16];
                if buf[..got]
                    .chunks(ZEROS.len())
                    .any(|c| c != &ZEROS[..c.len()])
                {
                    return Ok(false);
                }
                pos += got as u64;
            }
            if pos == before {
                // A data range the file system reported empty: cannot tell, so not zeros.
                return Ok(false);
            }
        }
        Ok(true)
    }
}
