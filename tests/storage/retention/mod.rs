mod concurrent_readers;
mod crash;
mod future_timestamp;
mod kafka_ports;
mod unblocked;
