mod header_damage;
mod read;
