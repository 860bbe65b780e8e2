#!/bin/bash
# The man pages of man/ say what the programs do: mandoc -Tlint finds
# nothing to say about any page (warnings and worse; style notes are
# listed, not failed), and each page's options are the program's:
#   - every option the program's --help names is on its page (in the
#     head of an item of a list: `.It Fl -listen Ar host`), and every
#     option on its page is one the program accepts (named by --help, or
#     not refused by its option parser);
#   - ispctl(1): every command of `ispctl --help` is an item of COMMANDS
#     (`.It Cm watch`), and no other;
#   - ispd.conf(5): its directives (`.It Ic listen`) are those of the
#     settings (src/ispd/settings.c, ispd --help-config-markdown), and
#     its limits (`.It Cm max-sessions`) those ispd's --help lists as
#     --max-* options;
#   - libisp(3): every public function of include/isp.h and isp_place.h
#     is named with .Fn, and every isp_* function named is one of them.
# So whoever adds an option, a command or a function is told here to
# document it. Prints TAP.
#
# Usage: tests/cli/test_man.sh BUILD_DIR
set -u
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
MAN=$ROOT/man
n=0 failed=0
ok()     { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; shift; for l in "$@"; do echo "# $l"; done; }

command -v mandoc >/dev/null || { echo "Bail out! mandoc is needed (scripts/deps.sh installs it)"; exit 1; }

# Lint. -W warning: warnings, errors and unsupported input fail; the
# style notes (-W style) are shown, but for those naming a page of man/
# in .Xr as not installed here. (The one left is sd_notify(3) in
# ispd(8), a page of libsystemd-dev.)
pages=$(ls "$MAN"/*.[1-8] 2>/dev/null)
[ -n "$pages" ] || { echo "Bail out! no pages in $MAN"; exit 1; }
own=$(for p in $pages; do basename "${p%.*}"; done | sed 's/\./\\./g' | paste -sd '|')
for p in $pages; do
	out=$(mandoc -Tlint -W warning "$p" 2>&1)
	if [ -z "$out" ]; then
		ok "mandoc -Tlint -W warning $(basename "$p")"
	else
		not_ok "mandoc -Tlint -W warning $(basename "$p")" "$out"
	fi
	mandoc -Tlint -W style "$p" 2>&1 | grep -v 'mandoc.db' |
	    grep -vE "referenced manual not found: Xr ($own) [1-8]" | sed 's/^/# style: /'
done

# The options a --help text names: --long (lower case; a placeholder such
# as --max-LIMIT is left out) and -X, each after a blank, a bracket, a
# bar, a comma, a slash or a quote, or at the start of a line.
help_options() {
	grep -oE "(^|[][ |,/'(])--?[A-Za-z][A-Za-z0-9-]*" |
	    sed -E "s/^[][ |,/'(]//" |
	    grep -E '^(--[a-z][a-z0-9-]*[a-z0-9]|-[A-Za-z])$' | sort -u
}
# The options in the heads of a page's list items: each argument of Fl
# on an .It line, with its dash (".It Fl h , Fl -help" gives -h, --help).
page_options() {
	awk '/^\.It / {
		for (i = 2; i < NF; i++)
			if ($i == "Fl" && $(i + 1) !~ /^[A-Z][a-z]$/ &&
			    $(i + 1) !~ /^[|,.;:()]$/)
				print "-" $(i + 1)
	}' "$1" | sort -u
}
# Whether the program's option parser refuses OPT. It is tried before
# an option no program has, so that a known option (taking that as its
# argument, or not) ends the run with a usage error instead of starting
# anything; bounded by timeout all the same.
refused() {
	local prog=$1 opt=$2 out
	out=$(timeout -k 1 5 "$prog" "$opt" --no-such-option-at-all </dev/null 2>&1)
	grep -qE "(unknown|unrecognized|invalid) option.*['\"]?${opt#-}['\"]?" <<<"$(grep -v 'no-such-option-at-all' <<<"$out")"
}
# Items of a section of a page: the word after MACRO on its .It lines.
section_items() {	# page section macro
	awk -v sec="$2" -v mac="$3" '
		/^\.Sh / { in_sec = ($0 == ".Sh " sec) }
		in_sec && $1 == ".It" && $2 == mac { print $3 }' "$1" | sort -u
}
# Reports what one list has and the other lacks.
compare() {	# what left_name left right_name right fix
	local what=$1 ln=$2 l=$3 rn=$4 r=$5 fix=$6 missing extra
	missing=$(comm -23 <(printf '%s\n' "$l") <(printf '%s\n' "$r") | tr '\n' ' ')
	extra=$(comm -13 <(printf '%s\n' "$l") <(printf '%s\n' "$r") | tr '\n' ' ')
	if [ -n "$l" ] && [ -z "$missing$extra" ]; then
		ok "$what: $(wc -w <<<"$l") the same in $ln and $rn"
	else
		not_ok "$what" "in $ln, not in $rn: ${missing:-none}" \
		    "in $rn, not in $ln: ${extra:-none}" "$fix"
	fi
}

for pp in ispd:8 ispctl:1 isp-registrar:8 isp-locator:8; do
	prog=${pp%%:*} page=$MAN/$prog.${pp#*:}
	bin=$BUILD/$prog
	if [ ! -x "$bin" ]; then
		not_ok "$prog(${pp#*:}) against $bin" "$bin is not built"
		continue
	fi
	help=$("$bin" --help 2>&1)
	hopts=$(help_options <<<"$help")
	popts=$(page_options "$page")
	missing=$(comm -23 <(printf '%s\n' "$hopts") <(printf '%s\n' "$popts") | tr '\n' ' ')
	if [ -n "$hopts" ] && [ -z "$missing" ]; then
		ok "$prog(${pp#*:}) lists every one of the $(wc -w <<<"$hopts") options of $prog --help"
	else
		not_ok "$prog(${pp#*:}) lists every option of $prog --help" \
		    "not on $(basename "$page"): ${missing:-(none found in --help)}" \
		    "document each in an .It Fl item of man/$(basename "$page")"
	fi
	bad=""
	for o in $(comm -13 <(printf '%s\n' "$hopts") <(printf '%s\n' "$popts")); do
		refused "$bin" "$o" && bad="$bad $o"
	done
	if [ -n "$popts" ] && [ -z "$bad" ]; then
		ok "$prog accepts every one of the $(wc -w <<<"$popts") options of $(basename "$page")"
	else
		not_ok "$prog accepts every option of $(basename "$page")" \
		    "refused:${bad:- (no options found on the page)}"
	fi
	# Commands, for a program whose --help has a "commands:" list.
	if grep -q '^commands:' <<<"$help"; then
		hcmds=$(awk '/^commands:/ { on = 1; next }
		    on && !/^ / { on = 0 }
		    on && /^  [a-z]/ { print $1 }' <<<"$help" | sort -u)
		compare "$prog commands" "$prog --help" "$hcmds" \
		    "COMMANDS of $(basename "$page")" "$(section_items "$page" COMMANDS Cm)" \
		    "each command is an .It Cm item of COMMANDS in man/$(basename "$page")"
	fi
done

# ispd.conf(5) and the configuration parser: the directives of the
# table ispd makes from its settings (src/ispd/settings.c).
if [ -x "$BUILD/ispd" ]; then
	cdirs=$("$BUILD/ispd" --help-config-markdown | sed -n 's/^| `\([a-z-]*\) .*/\1/p' | sort -u)
	pdirs=$(section_items "$MAN/ispd.conf.5" DIRECTIVES Ic)
	compare "ispd.conf(5) directives" "ispd --help-config-markdown" "$cdirs" "ispd.conf.5" "$pdirs" \
	    "each directive is an .It Ic item of DIRECTIVES in man/ispd.conf.5"
fi
if [ -x "$BUILD/ispd" ]; then
	hlimits=$("$BUILD/ispd" --help 2>&1 | help_options | sed -n 's/^--\(max-.*\)$/\1/p')
	plimits=$(section_items "$MAN/ispd.conf.5" DIRECTIVES Cm | grep '^max-')
	compare "ispd.conf(5) limits" "ispd --help" "$hlimits" "ispd.conf.5" "$plimits" \
	    "each limit is an .It Cm item under limit in man/ispd.conf.5"
fi

# libisp(3) and the public headers.
hfuncs=$(cat "$ROOT/include/isp.h" "$ROOT/include/isp_place.h" |
    grep -vE '^(typedef|[[:space:]]|#|/|\*)' |
    grep -oE '[[:space:]*](isp_[a-z0-9_]+)\(' | tr -d ' \t*(' | sort -u)
pfuncs=$(awk '$1 == ".Fn" && $2 ~ /^isp_/ { print $2 }' "$MAN/libisp.3" | sort -u)
compare "libisp(3) functions" "include/isp.h and isp_place.h" "$hfuncs" "libisp.3" "$pfuncs" \
    "name each public function with .Fn in man/libisp.3 (in SYNOPSIS and where it fits)"

echo "1..$n"
[ "$failed" -eq 0 ]
