# Resumes the site's jobs: paused files move back to their live places, supervisor adds and
# starts the programs, then the script waits until every live program's processes are RUNNING
# (or the wait is up). Prints the state (handover_jobs.sh).
# $1 seconds to wait for the programs
wait_seconds=$1
if [ -f "$paused/$cron_name" ]; then move "$paused/$cron_name" "$cron_file"; fi
paused_programs | while IFS= read -r file; do
  move "$file" "$program_dir/${file##*/}"
done
programs=$(live_programs | while IFS= read -r file; do program_of "$file"; done)
# shellcheck disable=SC2086 # program names are words without blanks
supervisor_apply $programs
for program in $programs; do
  supervisorctl start "$program:*" >/dev/null 2>&1 || true
done
# all_running: whether every process of every live program is RUNNING.
all_running() {
  states=$(printf '%s\n' "$programs" | program_states)
  for program in $programs; do
    printf '%s\n' "$states" | awk -v p="$program" '$1 == p { found = 1 } END { exit !found }' || return 1
  done
  printf '%s\n' "$states" | awk 'NF && $2 != "RUNNING" { bad = 1 } END { exit bad }'
}
deadline=$(($(date +%s) + wait_seconds))
until all_running || [ "$(date +%s)" -ge "$deadline" ]; do sleep 0.5; done
print_state
