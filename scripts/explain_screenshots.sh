#!/usr/bin/env bash
# explain_screenshots.sh - the screenshots of the verifier lessons' pages under docs/img/
#
# usage: sudo scripts/explain_screenshots.sh [OUTDIR]    (default: docs/img)
#
# For each lesson of programs/tutorial/verifier_*.py, writes the page of
# `pybpf explain --html` (loading the programs needs root) to a temporary directory,
# opens it in headless chromium with the instruction the lesson is about selected (the
# page's #insn= link) and saves a PNG. Needs chromium (apt-get install chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs/img}
chromium=$(command -v chromium || command -v chromium-browser || true)
[[ -n $chromium ]] || { echo "explain_screenshots.sh: chromium not found (apt-get install chromium)" >&2; exit 1; }
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# name  source (relative, as the page shows it)  fragment
shots=(
  "null-check        programs/tutorial/verifier_null_check_refused.s  insn=11"
  "null-check-fixed  programs/tutorial/verifier_null_check_fixed.s    insn=13"
  "packet-bounds     programs/tutorial/verifier_packet_bounds.py      prog=0&insn=21"
  "loop-bound        programs/tutorial/verifier_loop_bound_refused.s  insn=6"
  "loop-bound-fixed  programs/tutorial/verifier_loop_bound.py         insn=14"
)
for shot in "${shots[@]}"; do
  read -r name src frag <<<"$shot"
  PYTHONPATH=. python3 -m pybpf explain "$src" --html "$tmp/$name.html" >/dev/null
  "$chromium" --headless --no-sandbox --disable-gpu --hide-scrollbars \
      --user-data-dir="$tmp/profile" --window-size=1400,900 \
      --screenshot="$out/explain-$name.png" "file://$tmp/$name.html#$frag" 2>/dev/null
  echo "$out/explain-$name.png"
done
