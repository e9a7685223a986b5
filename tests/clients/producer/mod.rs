mod basics;
mod idempotent_kill9;
mod ids_lost_counter;
mod semantics;
