#!/usr/bin/env bash
# Regenerates a library's PublicAPI.Unshipped.txt from its code (the analyzer's own code fix), so a change to the
# public surface shows up as a reviewable diff of that file. Usage: bash eng/update-public-api.sh [project folder...]
# (every package under src/ that tracks its API when none is given).
set -euo pipefail
cd "$(dirname "$0")/.."
all=$(for f in src/*/PublicAPI.Shipped.txt; do dirname "$f"; done)
for project in "${@:-$all}"; do
  for p in $project; do
    printf '#nullable enable\n' > "$p/PublicAPI.Unshipped.txt"
    dotnet format analyzers "$p" --diagnostics RS0016 --severity warn >/dev/null 2>&1
    { head -n 1 "$p/PublicAPI.Unshipped.txt"; tail -n +2 "$p/PublicAPI.Unshipped.txt" | LC_ALL=C sort; } > "$p/PublicAPI.Unshipped.txt.tmp"
    mv "$p/PublicAPI.Unshipped.txt.tmp" "$p/PublicAPI.Unshipped.txt"
    echo "$p: $(tail -n +2 "$p/PublicAPI.Unshipped.txt" | grep -c .) public symbols"
  done
done
