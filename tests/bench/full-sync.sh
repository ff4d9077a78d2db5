#!/usr/bin/env bash
# Full sync of the Inbox over EWS and over MAPI/HTTP against the emulator running as
# its own process, for each folder size given (default: 10000 and 100000 messages).
# Builds in release, starts bench_emulator once per size, runs bench_full_sync once
# per protocol, and prints the JSON lines and a table.
#
#   tests/bench/full-sync.sh [N ...]
set -euo pipefail

cd "$(dirname "$0")/../.."
sizes=("$@")
if [ ${#sizes[@]} -eq 0 ]; then
  sizes=(10000 100000)
fi

cargo build --release -p exmux-tests --example bench_emulator --example bench_full_sync >&2
bin="$(cargo metadata --format-version 1 --no-deps \
  | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/release/examples"

results=()
emulator_pid=""
stop_emulator() {
  if [ -n "$emulator_pid" ]; then
    kill "$emulator_pid" 2>/dev/null || true
    wait "$emulator_pid" 2>/dev/null || true
    emulator_pid=""
  fi
}
trap stop_emulator EXIT

for n in "${sizes[@]}"; do
  fifo="$(mktemp -u)"
  mkfifo "$fifo"
  "$bin/bench_emulator" --items "$n" >"$fifo" &
  emulator_pid=$!
  exec 3<"$fifo"
  rm -f "$fifo"
  read -r server <&3
  echo "emulator: $server" >&2
  for protocol in ews mapi; do
    echo "load average before $protocol, N=$n: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
    if line="$("$bin/bench_full_sync" --protocol "$protocol" --server "$server")"; then
      echo "$line"
      results+=("$n $line")
    else
      echo "$protocol sync of $n items failed" >&2
      results+=("$n {\"protocol\":\"$protocol\",\"failed\":true}")
    fi
  done
  exec 3<&-
  stop_emulator
done

printf '\n%-8s %-5s %8s %9s %12s %14s %11s %10s %12s\n' \
  N proto items seconds items/s "bytes recv" "bytes sent" bytes/item "peak RSS MiB"
for entry in "${results[@]}"; do
  n="${entry%% *}"
  json="${entry#* }"
  python3 - "$n" "$json" <<'PY'
import json, sys
n, r = sys.argv[1], json.loads(sys.argv[2])
if r.get("failed"):
    print(f"{n:<8} {r['protocol']:<5} failed")
else:
    rss = (r.get("peak_rss_kib") or 0) / 1024
    print(f"{n:<8} {r['protocol']:<5} {r['items']:>8} {r['seconds']:>9.2f} "
          f"{r['items_per_second']:>12.0f} {r['bytes_received']:>14} {r['bytes_sent']:>11} "
          f"{r['bytes_per_item']:>10.0f} {rss:>12.1f}")
PY
done
