#!/usr/bin/env bash
# build.sh builds (or reuses) the vault binary used by keyward's integration
# tests and prints its absolute path on stdout. Progress goes to stderr.
#
#   export KEYWARD_VAULT_BIN="$(tools/vaultdev/build.sh)"
#
# The binary is cached outside the repository under
# $CACHE/vault-<hash>/vault, where CACHE defaults to
# ${XDG_CACHE_HOME:-$HOME/.cache}/keyward and <hash> covers this module's
# go.mod, go.sum and *.go files, so editing them forces a rebuild and an
# unchanged module reuses the binary. A cold build takes ~11 minutes on 2
# idle cores (68 minutes on a loaded, shared 2-core machine); the stripped
# binary is ~345 MiB. Never commit it.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/keyward}"

cd "$here"
files=(go.mod go.sum)
while IFS= read -r f; do files+=("$f"); done < <(find . -maxdepth 1 -name '*.go' -printf '%P\n' | LC_ALL=C sort)

# Hash name+content of each file so renames count too.
HASH="$(for f in "${files[@]}"; do printf '%s\n' "$f"; sha256sum <"$f"; done | sha256sum | cut -c1-16)"
out="$CACHE/vault-$HASH/vault"

if [[ -x "$out" ]]; then
	echo "vaultdev: reusing $out" >&2
	printf '%s\n' "$out"
	exit 0
fi

mkdir -p "$CACHE/vault-$HASH"
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
echo "vaultdev: building vault into $out (cold build: ~11 min on 2 cores)" >&2
start=$SECONDS
if ! GOWORK=off GOFLAGS='-mod=readonly -buildvcs=false' go build -trimpath -ldflags='-s -w' -o "$tmp" . >&2; then
	echo "vaultdev: build failed" >&2
	exit 1
fi
mv -f "$tmp" "$out"
trap - EXIT
echo "vaultdev: built in $((SECONDS - start))s" >&2
printf '%s\n' "$out"
