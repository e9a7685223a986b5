#![no_main]

use libfuzzer_sys::fuzz_target;

include!("../src/alloc_limit.rs");

fuzz_target!(|data: &[u8]| topiclog_fuzz::decompress(data));
