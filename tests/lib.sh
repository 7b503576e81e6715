# lib.sh: what every tests/t_*.sh shares. Source it after setting GROUP (the name printed with
# each check): it moves to the repository root, makes a temporary directory $tmp (removed on
# exit) and defines ok / bad / check, which count into $pass and $fail for the final
# "N passed, N failed" line.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
H="$PWD/hlab"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
ok()   { echo "ok   $GROUP: $1"; pass=$((pass+1)); }
bad()  { echo "FAIL $GROUP: $1"; fail=$((fail+1)); }
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }
