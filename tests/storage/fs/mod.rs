mod sim_mapped_reads;
mod stat_errors;
