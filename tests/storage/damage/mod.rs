mod metadata;
mod sweep;
