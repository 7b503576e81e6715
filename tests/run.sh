#!/usr/bin/env bash
# Runs every test program given as arguments (and shell tests tests/*.sh), adds their
# "N passed, N failed" lines and ends with the total. Exit status 1 if anything failed.
set -u
total_p=0; total_f=0; status=0
for t in "$@"; do
    echo "== $t"
    out=$(mktemp)
    if [[ "$t" == *.sh ]]; then bash "$t" > "$out" 2>&1; rc=$?; else "$t" > "$out" 2>&1; rc=$?; fi
    grep -v -E "^(ok |[0-9]+ passed, [0-9]+ failed$)" "$out" | head -60
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -1)
    if [ -z "$line" ]; then
        echo "FAIL $t: ended without a summary line (exit $rc)"; tail -20 "$out"; total_f=$((total_f+1)); status=1
    else
        p=${line%% passed*}; f=${line#*, }; f=${f%% failed*}
        total_p=$((total_p+p)); total_f=$((total_f+f))
        echo "   $line"
        if [ "$f" != 0 ] || [ "$rc" != 0 ]; then status=1; [ "$f" = 0 ] && { echo "FAIL $t: exit $rc"; total_f=$((total_f+1)); }; fi
    fi
    rm -f "$out"
done
echo "$total_p passed, $total_f failed"
exit $status
