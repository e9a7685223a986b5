mod fault_recovery;
mod not_a_store;
mod recovery_reports;
mod topic_config;
mod topic_config_alter;
mod topic_damage;
mod topic_lifecycle;
mod topic_names;
