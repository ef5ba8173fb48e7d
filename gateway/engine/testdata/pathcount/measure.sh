#!/bin/sh
# measure.sh REPO: the path counts of REPO's gateway/engine (pathcount),
# statically and along the handshake and one data round of the engine's
# test pair (path_test.go.txt, copied in for the run).
set -e
repo=$(cd "$1" && pwd); here=$(cd "$(dirname "$0")" && pwd); tmp=$(mktemp -d)
trap 'rm -rf "$tmp" "$repo/gateway/engine/zz_path_test.go"' EXIT
cp "$here/path_test.go.txt" "$repo/gateway/engine/zz_path_test.go"
for r in 0 1 2; do
	(cd "$repo" && ROUND=$r go test -count=1 -covermode=count -coverpkg=./gateway/engine \
		-coverprofile="$tmp/$r.cov" -run TestZZPacketPath ./gateway/engine/ >/dev/null)
done
rm "$repo/gateway/engine/zz_path_test.go"
go build -o "$tmp/pathcount" "$here/main.go"
cd "$repo"
for mode in "" NOTYPES; do
	echo "== ${mode:-all calls}"
	printf "static, all paths:   "; env ${mode:+$mode=1} "$tmp/pathcount" gateway/engine | head -1
	printf "handshake (5 pkts):  "; env ${mode:+$mode=1} "$tmp/pathcount" gateway/engine "$tmp/0.cov" "$tmp/1.cov" | head -1
	printf "data round (4 pkts): "; env ${mode:+$mode=1} "$tmp/pathcount" gateway/engine "$tmp/1.cov" "$tmp/2.cov" | head -1
done
