mod offset;
mod time;
