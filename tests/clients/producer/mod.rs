mod basics;
mod ids_lost_counter;
