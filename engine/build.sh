#!/bin/bash
# Builds the Pulumi engine the lifecycle tests run, from Go modules pinned in engine/go.mod, into
# .engine/bin (or $B321_ENGINE_DIR/bin): the CLI at the version of the @pulumi/pulumi npm package,
# and the resource plugins the test stacks use at the versions of their npm SDKs. Idempotent: a
# stamp of the inputs skips the link when nothing changed. Prints the bin directory as its last line.
# This engine is for tests only; users install the official Pulumi CLI.
set -Eeuo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
out=${B321_ENGINE_DIR:-$root/.engine}/bin

npm_version() {
  node -p "require('$root/node_modules/$1/package.json').version" 2>/dev/null || {
    echo "engine: $1 is not installed: run npm ci first" >&2
    exit 1
  }
}
cli=$(npm_version @pulumi/pulumi)
command_v=$(npm_version @pulumi/command)
random_v=$(npm_version @pulumi/random)

# The CLI module must be the npm SDK's release: a mismatch would test another engine than users run.
pinned=$(grep -oE 'github.com/pulumi/pulumi/pkg/v3 v[^ ]+' "$here/go.mod" | head -n 1 | cut -d' ' -f2)
if [ "$pinned" != "v$cli" ]; then
  echo "engine: engine/go.mod pins pulumi/pkg $pinned but @pulumi/pulumi is $cli: run" >&2
  echo "  (cd engine && go get github.com/pulumi/pulumi/pkg/v3@v$cli github.com/pulumi/pulumi/sdk/v3@v$cli && go mod tidy)" >&2
  exit 1
fi

# The Go toolchain of this kind of machine lives in /usr/local/go, not always on a login PATH.
command -v go >/dev/null || PATH=$PATH:/usr/local/go/bin
command -v go >/dev/null || {
  echo "engine: go is not installed (the engine is built from Go modules)" >&2
  exit 1
}

stamp=$(
  {
    go version
    echo "$cli $command_v $random_v"
    cat "$here/go.mod" "$here/go.sum" "$0"
    find "$here/providers" -name '*.go' ! -name '*_test.go' -print0 | sort -z | xargs -0 cat
  } | sha256sum | cut -d' ' -f1
)
if [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$stamp" ] &&
  [ -x "$out/pulumi" ] && [ -x "$out/pulumi-resource-command" ] && [ -x "$out/pulumi-resource-random" ]; then
  echo "$out"
  exit 0
fi

mkdir -p "$out"
rm -f "$out/.stamp"
cd "$here"
echo "engine: building pulumi $cli, command $command_v, random $random_v into $out" >&2
start=$SECONDS
go build -buildvcs=false -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$cli" \
  -o "$out/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
go build -buildvcs=false -ldflags "-s -w -X main.version=$command_v" -o "$out/pulumi-resource-command" ./providers/command
go build -buildvcs=false -ldflags "-s -w -X main.version=$random_v" -o "$out/pulumi-resource-random" ./providers/random
echo "$stamp" >"$out/.stamp"
echo "engine: built in $((SECONDS - start)) s" >&2
echo "$out"
