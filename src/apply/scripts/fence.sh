# Guards one step of a fenced run: the site's lock must still be this run's, and stays so
# while the step runs (the guard is held shared; a takeover waits for it, or stops the step
# when the run's lease was lost: its process group is listed under running/). Logs the step's
# start and end with the holder, the fence and the time.
# Sourced by the step's command line: $1 site, $2 token, $3 fence, $4 the step's name.
sw_fence_dir=/var/lib/siteward/sites/$1
exec 9>>"$sw_fence_dir/guard" || exit 75
flock -s -w 120 9 || { echo "the lock of site $1 is busy" >&2; exit 75; }
if [ "$(sed -n 's/^token=//p' "$sw_fence_dir/lock" 2>/dev/null)" != "$2" ]; then
  echo "fenced: the lock of site $1 is no longer this run's (its lease went to another daemon)" >&2
  exit 75
fi
# This command's process group and its start time (so that a reused id is never stopped).
read -r _ _ _ _ sw_fence_group _ </proc/$$/stat
sw_fence_started=$(cut -d' ' -f22 "/proc/$sw_fence_group/stat" 2>/dev/null || echo 0)
mkdir -p "$sw_fence_dir/running"
printf '%s %s\n' "$2" "$sw_fence_started" >"$sw_fence_dir/running/$sw_fence_group.$$"
sw_fence_log() { printf '%s %s %s fence=%s %s\n' "$(date +%s.%N)" "$1" "$2" "$3" "$4" >>"$sw_fence_dir/steps.log"; }
sw_fence_log begin "$2" "$3" "$4"
