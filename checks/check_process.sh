#!/usr/bin/env bash
# Usage: check_process.sh PATTERN [MIN_COUNT]
# Exit 0 when at least MIN_COUNT (default 1) processes match PATTERN (pgrep -f), 2 otherwise.
set -u
pattern=${1:?usage: check_process.sh PATTERN [MIN_COUNT]}
min=${2:-1}
count=0
for pid in $(pgrep -f -- "$pattern"); do
  # pgrep -f also matches this script and its subshells, whose command lines hold the pattern.
  cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || continue
  case "$cmdline" in *check_process.sh*) continue ;; esac
  count=$((count + 1))
done
if [ "$count" -ge "$min" ]; then
  echo "$count process(es) match '$pattern'"
  exit 0
fi
echo "only $count process(es) match '$pattern', need $min"
exit 2
