#!/usr/bin/env bash
# Install the Claude Code CLI that the claude-code runtime's tests run against
# a scripted model (tests/common/fake_model.rs), pinned so that every machine
# tests the same CLI: its argv, permission rules and result events are facts
# recorded in tests/fixtures/claude/FACTS.md for this version.
#
#   .ci/install-claude.sh [DIR]
#
# DIR defaults to ${XDG_CACHE_HOME:-$HOME/.cache}/gtmd-ci/claude-code, outside
# the checkout so that no node_modules/ lands among the tracked files. The
# last line printed on stdout is the binary's absolute path (npm's own output
# goes to stderr), so a caller can take it with `| tail -n 1`:
#
#   GTMD_TEST_CLAUDE_BIN="$(.ci/install-claude.sh | tail -n 1)"
#
# Idempotent: when DIR already holds the pinned version and its binary runs,
# nothing is fetched (about 0.1 s). CLAUDE_CODE_VERSION overrides the pin.
set -euo pipefail

version="${CLAUDE_CODE_VERSION:-2.1.197}"
dir="${1:-${XDG_CACHE_HOME:-$HOME/.cache}/gtmd-ci/claude-code}"

mkdir -p "$dir"
dir="$(cd "$dir" && pwd -P)"
pkg="$dir/node_modules/@anthropic-ai/claude-code"

# The wrapper package's postinstall hard-links the platform package's native
# binary over bin/claude.exe. Should npm skip install scripts (ignore-scripts,
# or a future npm that asks for scripts to be allowed), bin/claude.exe stays a
# placeholder; the platform package's own binary is the same program.
find_bin() {
  local candidate
  for candidate in "$pkg/bin/claude.exe" "$dir"/node_modules/@anthropic-ai/claude-code-*/claude; do
    if [ -x "$candidate" ] && "$candidate" --version 2>/dev/null | grep -q "^$version "; then
      printf '%s\n' "$candidate"
      return 0
    fi
  done
  return 1
}

if bin="$(find_bin)"; then
  echo "Claude Code $version already installed in $dir" >&2
  printf '%s\n' "$bin"
  exit 0
fi

command -v npm >/dev/null 2>&1 || {
  echo "npm not found: Claude Code is installed with npm (Node.js 18 or later)" >&2
  exit 1
}

# Two callers at once (CI steps, parallel test setups) must not interleave two
# npm installs in one directory.
exec 9>"$dir/.install.lock"
if command -v flock >/dev/null 2>&1; then
  flock 9
fi
if bin="$(find_bin)"; then
  printf '%s\n' "$bin"
  exit 0
fi

echo "installing @anthropic-ai/claude-code@$version into $dir" >&2
# A package.json of its own so npm installs here and not into a package.json
# it finds further up the tree.
if [ ! -f "$dir/package.json" ]; then
  printf '{ "name": "gtmd-ci-claude-code", "private": true }\n' >"$dir/package.json"
fi
npm install --prefix "$dir" --no-audit --no-fund --save-exact \
  "@anthropic-ai/claude-code@$version" >&2

if bin="$(find_bin)"; then
  "$bin" --version >&2
  printf '%s\n' "$bin"
  exit 0
fi
echo "npm installed @anthropic-ai/claude-code@$version in $dir, but no binary of it runs:" >&2
ls -la "$pkg/bin" "$dir"/node_modules/@anthropic-ai/ >&2 || true
exit 1
