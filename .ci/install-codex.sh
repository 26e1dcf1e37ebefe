#!/usr/bin/env bash
# Install the Codex CLI that the codex runtime's tests run against a scripted
# Responses API (tests/common/fake_responses.rs), pinned so that every machine
# tests the same CLI: its argv, sandbox and JSON events are facts recorded in
# tests/fixtures/codex/FACTS.md for this version.
#
#   .ci/install-codex.sh [DIR]
#
# DIR defaults to ${XDG_CACHE_HOME:-$HOME/.cache}/gtmd-ci/codex, outside the
# checkout so that no node_modules/ lands among the tracked files. The last
# line printed on stdout is the program's absolute path (npm's own output goes
# to stderr), so a caller can take it with `| tail -n 1`:
#
#   GTMD_TEST_CODEX_BIN="$(.ci/install-codex.sh | tail -n 1)"
#
# Idempotent: when DIR already holds the pinned version and it runs, nothing
# is fetched. CODEX_VERSION overrides the pin.
set -euo pipefail

version="${CODEX_VERSION:-0.171.0}"
dir="${1:-${XDG_CACHE_HOME:-$HOME/.cache}/gtmd-ci/codex}"

mkdir -p "$dir"
dir="$(cd "$dir" && pwd -P)"

# `codex` is a Node.js launcher (bin/codex.js) that execs the native binary
# of the platform package (@openai/codex-linux-x64 and the like), which npm
# installs as an optional dependency; it also bundles bubblewrap for the
# sandbox. The launcher is what `npm install -g` puts on the PATH.
find_bin() {
  local candidate="$dir/node_modules/.bin/codex"
  if [ -x "$candidate" ] && "$candidate" --version 2>/dev/null | grep -q "^codex-cli $version\$"; then
    printf '%s\n' "$candidate"
    return 0
  fi
  return 1
}

if bin="$(find_bin)"; then
  echo "Codex CLI $version already installed in $dir" >&2
  printf '%s\n' "$bin"
  exit 0
fi

command -v npm >/dev/null 2>&1 || {
  echo "npm not found: the Codex CLI is installed with npm (Node.js 18 or later)" >&2
  exit 1
}

# Two callers at once must not interleave two npm installs in one directory.
exec 9>"$dir/.install.lock"
if command -v flock >/dev/null 2>&1; then
  flock 9
fi
if bin="$(find_bin)"; then
  printf '%s\n' "$bin"
  exit 0
fi

echo "installing @openai/codex@$version into $dir" >&2
# A package.json of its own so npm installs here and not into a package.json
# it finds further up the tree.
if [ ! -f "$dir/package.json" ]; then
  printf '{ "name": "gtmd-ci-codex", "private": true }\n' >"$dir/package.json"
fi
npm install --prefix "$dir" --no-audit --no-fund --save-exact \
  "@openai/codex@$version" >&2

if bin="$(find_bin)"; then
  "$bin" --version >&2
  printf '%s\n' "$bin"
  exit 0
fi
echo "npm installed @openai/codex@$version in $dir, but its codex does not run:" >&2
ls -la "$dir/node_modules/.bin" "$dir"/node_modules/@openai/ >&2 || true
exit 1
