#!/usr/bin/env bash
# measure.sh: wall time, rows/s and peak RSS of keyward commands on a large
# SQLite table (issue 12, item 6 and "Speed").
#
#   tools/scale/measure.sh KEYWARD_BINARY DATABASE [COMMAND...]
#
# COMMAND is one of list, check, migrate, rotate (keyward's commands, run as
# `keyward COMMAND` with DATABASE_URL=sqlite:COPY) or py-migrate, py-rotate
# (tools/scale/baseline.py, the Python equivalent). The default is
# "list check migrate rotate".
#
# Every run works on a fresh copy of DATABASE (cp, outside the timing), so
# migrate and rotate always see the same rows and the source file is never
# touched; the copies go in $WORK (default: DATABASE's directory/measure-work)
# and are removed after each run. Each run's stderr is kept in
# $WORK/COMMAND.N.log, its stdout in $WORK/COMMAND.N.out (list's goes to
# /dev/null: a line per row) and its /usr/bin/time -v report in
# $WORK/COMMAND.N.time; a second measure.sh with the same $WORK overwrites
# them, so give each database its own WORK to keep them.
#
# Keys: ENCRYPTION_KEY from $KEYS/primary.key and ENCRYPTION_KEY_PREVIOUS from
# $KEYS/previous.key ($KEYS defaults to DATABASE's directory; gen.py makes
# both). They reach the commands through the environment only and are never
# printed.
#
# Environment:
#   RUNS=N           runs per command (default 1); with N > 1 a "median" line
#                    follows each command's runs
#   KEYS=DIR         key directory (above)
#   WORK=DIR         scratch directory (above)
#   KEYWARD_FLAGS=…  extra global flags for keyward (e.g. "--table bots");
#                    KEYWARD_CONFIG and the like pass through unchanged
#
# On gen.py's python schema keyward needs the Python service's db line, or
# its reference rows (key_env_var, secret_name) are findings "holds no key":
#   KEYWARD_CONFIG='db = fernet://?ref_columns=key_env_var:env,secret_name:awssm'
#
# Output, one line per run, tab-separated:
#   command  run  rows  seconds  rows/s  peak_rss_mb  exit
# rows is the table's row count; seconds is wall time of the whole process
# (start-up included); peak_rss_mb is /usr/bin/time -v's "Maximum resident
# set size"; exit is the exit status, or sigN when signal N ended the run
# (time -v then says "Exit status: 0"). An exit of 1 from check, migrate or rotate means findings or
# work left (see `keyward` doc), not a failure of the tool.
set -euo pipefail

if [ $# -lt 2 ]; then
	sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
	exit 2
fi
bin=$(realpath "$1")
src=$(realpath "$2")
shift 2
cmds=("$@")
[ ${#cmds[@]} -gt 0 ] || cmds=(list check migrate rotate)
here=$(cd "$(dirname "$0")" && pwd)
keys=${KEYS:-$(dirname "$src")}
work=${WORK:-$(dirname "$src")/measure-work}
runs=${RUNS:-1}

[ -x "$bin" ] || { echo "measure.sh: $bin is not an executable" >&2; exit 2; }
[ -f "$src" ] || { echo "measure.sh: $src is not a file" >&2; exit 2; }
for k in primary previous; do
	[ -r "$keys/$k.key" ] || { echo "measure.sh: no $keys/$k.key (make it with gen.py, or set KEYS)" >&2; exit 2; }
done
for c in "${cmds[@]}"; do
	case $c in list | check | migrate | rotate | py-migrate | py-rotate) ;;
	*) echo "measure.sh: unknown command $c (list, check, migrate, rotate, py-migrate, py-rotate)" >&2; exit 2 ;;
	esac
done
mkdir -p "$work"

rows=$(python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM api_keys").fetchone()[0])' "$src")
primary=$(<"$keys/primary.key")
previous=$(<"$keys/previous.key")

# wall seconds from time -v's "h:mm:ss" or "m:ss.ss"
wall() {
	awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s }' "$1"
}

printf 'command\trun\trows\tseconds\trows/s\tpeak_rss_mb\texit\n'
for c in "${cmds[@]}"; do
	results=()
	for ((r = 1; r <= runs; r++)); do
		db=$work/run.db
		rm -f "$db" "$db-wal" "$db-shm" "$db-journal"
		cp "$src" "$db"
		log=$work/$c.$r.log
		out=$work/$c.$r.out
		tv=$work/$c.$r.time
		[ "$c" != list ] || out=/dev/null
		rm -f "$tv"
		set +e
		case $c in
		py-*)
			/usr/bin/time -v -o "$tv" python3 "$here/baseline.py" "${c#py-}" --keys "$keys" "$db" >"$out" 2>"$log"
			;;
		*)
			# shellcheck disable=SC2086 # KEYWARD_FLAGS is a list of flags
			DATABASE_URL=sqlite:$db ENCRYPTION_KEY=$primary ENCRYPTION_KEY_PREVIOUS=$previous \
				/usr/bin/time -v -o "$tv" "$bin" ${KEYWARD_FLAGS:-} "$c" >"$out" 2>"$log"
			;;
		esac
		set -e
		[ -s "$tv" ] || { echo "measure.sh: no time -v report for $c run $r (see $log)" >&2; exit 2; }
		code=$(awk -F': ' '/Exit status/ { print $2 }' "$tv")
		sig=$(awk '/Command terminated by signal/ { print $NF }' "$tv")
		[ -z "$sig" ] || code=sig$sig
		[ -n "$code" ] || code=unknown
		secs=$(wall "$tv")
		rss=$(awk -F': ' '/Maximum resident set size/ { printf "%.1f", $2 / 1024 }' "$tv")
		rate=$(awk -v n="$rows" -v s="$secs" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }')
		printf '%s\t%d\t%s\t%.2f\t%s\t%s\t%s\n' "$c" "$r" "$rows" "$secs" "$rate" "$rss" "$code"
		results+=("$secs $rss $code")
		rm -f "$db" "$db-wal" "$db-shm" "$db-journal"
	done
	if [ "$runs" -gt 1 ]; then
		# medians of seconds and of RSS, taken separately; exit codes listed
		printf '%s\n' "${results[@]}" | awk -v c="$c" -v n="$rows" '
			{ s[NR] = $1; m[NR] = $2; codes = codes (NR > 1 ? "," : "") $3 }
			function med(a, k,   i, j, t) {
				for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
				return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
			}
			END { ms = med(s, NR); mm = med(m, NR); printf "%s\tmedian\t%s\t%.2f\t%.0f\t%.1f\t%s\n", c, n, ms, (ms > 0 ? n / ms : 0), mm, codes }'
	fi
done
