mod crash;
mod kafka_ports;
mod model;
mod smoke;
