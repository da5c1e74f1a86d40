# Pauses the site's jobs: the cron file and the program files move to the paused directory,
# supervisor stops the programs gracefully, then the script waits until none of the site's cron
# jobs still runs (or the wait is up). Prints the state (handover_jobs.sh).
# $1 seconds to wait for running cron jobs
wait_seconds=$1
mkdir -p -- "$paused"
chown root:root "$paused"
chmod 0700 "$paused"
if [ -f "$cron_file" ]; then move "$cron_file" "$paused/$cron_name"; fi
live_programs | while IFS= read -r file; do
  move "$file" "$paused/${file##*/}"
done
# Every paused program supervisor still knows, not only those moved now: a run cut off between
# the move and the update is finished by the next one.
known=$(paused_programs | while IFS= read -r file; do program_of "$file"; done | program_states |
  awk '{ print $1 }' | sort -u)
# shellcheck disable=SC2086 # program names are words without blanks
supervisor_apply $known
# A minute's cron run starts at second 0: a job cron was starting as its file moved may not
# run as its user yet, so the first look waits past second 2.
second=$(date +%S)
if [ "${second#0}" -lt 2 ]; then sleep 2; fi
deadline=$(($(date +%s) + wait_seconds))
while [ -n "$(cron_processes)" ] && [ "$(date +%s)" -lt "$deadline" ]; do sleep 1; done
print_state
