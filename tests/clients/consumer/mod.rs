mod basics;
mod commit_long_names;
mod panic_no_commit;
