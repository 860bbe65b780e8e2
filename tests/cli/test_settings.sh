#!/bin/bash
# The table of directives and options of docs/CONFIG.md is the one
# `ispd --help-config-markdown` makes from src/ispd/settings.c, row for
# row: whoever changes a setting (its name, value, default, help, or
# whether a reload applies it) is told here to put the new table in
# the document. Prints TAP.
#
# Usage: tests/cli/test_settings.sh BUILD_DIR
set -u
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DOC=$ROOT/docs/CONFIG.md
n=0 failed=0
ok()     { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; shift; for l in "$@"; do echo "# $l"; done; }

# The table of a Markdown file: from its "| directive |" header to the
# first line that is no row.
doc_table() {
	awk '/^\| directive \|/ { on = 1 } on && !/^\|/ { exit } on' "$1"
}

[ -x "$BUILD/ispd" ] || { echo "Bail out! $BUILD/ispd is not built"; exit 1; }
made=$("$BUILD/ispd" --help-config-markdown)
rc=$?
rows=$(grep -c '^| `' <<<"$made")
if [ "$rc" -eq 0 ] && [ "$rows" -ge 20 ]; then
	ok "ispd --help-config-markdown prints a table ($rows directives)"
else
	not_ok "ispd --help-config-markdown prints a table" "exit $rc, $rows directive rows"
fi

doc=$(doc_table "$DOC")
if [ -n "$doc" ] && [ "$doc" = "$made" ]; then
	ok "docs/CONFIG.md's table is ispd --help-config-markdown"
else
	not_ok "docs/CONFIG.md's table is ispd --help-config-markdown" \
	    "$(diff <(printf '%s\n' "$doc") <(printf '%s\n' "$made") | sed 's/^/  /')" \
	    "put $BUILD/ispd --help-config-markdown in docs/CONFIG.md"
fi

# That comparison sees a change: a default edited in a copy of the
# document.
tmp=$(mktemp /tmp/isp-settings.XXXXXX)
trap 'rm -f "$tmp"' EXIT
sed 's/| `9` |/| `10` |/' "$DOC" >"$tmp"
if [ "$(doc_table "$tmp")" != "$made" ]; then
	ok "a table with another default for hold differs"
else
	not_ok "a table with another default for hold differs" "the edit went unseen"
fi

echo "1..$n"
[ "$failed" -eq 0 ]
