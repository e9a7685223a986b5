//! Spans and events for `tracing` (Cargo feature `tracing`); without the feature the macros expand
//! to nothing, so their arguments are not even evaluated. Every event and span has target
//! `topiclog`; their names and fields are listed in the crate documentation ("Tracing") and are
//! stable.

/// An event at `$level` (`error`, `warn`, `info`, `debug`) with `tracing`'s field syntax.
macro_rules! event {
    ($level:ident, $($args:tt)+) => {{
        #[cfg(feature = "tracing")]
        {
            tracing::$level!(target: "topiclog", $($args)+);
        }
    }};
}

/// A span entered until the returned guard drops (`()` without the feature).
macro_rules! span {
    ($name:literal $(, $($fields:tt)+)?) => {{
        #[cfg(feature = "tracing")]
        let guard = tracing::info_span!(target: "topiclog", $name $(, $($fields)+)?).entered();
        #[cfg(not(feature = "tracing"))]
        let guard = $crate::trace::NoSpan;
        guard
    }};
}

pub(crate) use {event, span};

/// What [`span!`] gives without the `tracing` feature: nothing to enter.
#[cfg(not(feature = "tracing"))]
pub(crate) struct NoSpan;
