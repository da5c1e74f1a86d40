# Prints the state of the site's jobs (handover_jobs.sh) and changes nothing.
print_state
