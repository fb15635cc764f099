#!/usr/bin/env bash
# Usage: check_process.sh PATTERN [MIN_COUNT]
# Exit 0 when at least MIN_COUNT (default 1) processes match PATTERN (pgrep -f), 2 otherwise.
set -u
pattern=${1:?usage: check_process.sh PATTERN [MIN_COUNT]}
min=${2:-1}
count=$(pgrep -fc -- "$pattern" 2>/dev/null || true)
count=${count:-0}
if [ "$count" -ge "$min" ]; then
  echo "$count process(es) match '$pattern'"
  exit 0
fi
echo "only $count process(es) match '$pattern', need $min"
exit 2
