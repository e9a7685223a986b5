mod compacted_keys;
mod partitioning;
