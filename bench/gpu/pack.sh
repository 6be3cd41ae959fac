#!/usr/bin/env bash
# Build the payload that bench/gpu/remote.sh needs on the lent GPU machine
# (x86-64 Linux, NVIDIA driver + Vulkan ICD, but no Node, no libvulkan, no network).
#
#   .gpu/node.xz                 this machine's node binary (xz -T2 -6)
#   .gpu/webgpu/                 node_modules/webgpu, linux-x64 only (index.js, package.json, dist/linux-x64/dawn.node.xz)
#   .gpu/wgsl_reflect/           kiln's other runtime dependency (no source maps)
#   .gpu/lib/libstdc++.so.6      fallback, used by remote.sh only if the device's lacks GLIBCXX_3.4.30
#   .gpu/dist/, .gpu/kernels/    kiln's built bundle and kernels, when they exist here
#   .gl/*.deb                    Vulkan loader (+ GL/EGL loaders), per /work/.library/device/README.md
#
# Usage (from anywhere): bash bench/gpu/pack.sh      Re-run after rebuilding dist/.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

# Keep the payload folders out of git (they travel via `carry`, not as tree files).
EXCL="$(git rev-parse --git-path info/exclude 2>/dev/null || echo .git/info/exclude)"
mkdir -p "$(dirname "$EXCL")"; touch "$EXCL"
for p in /.gpu/ /.gl/; do
  grep -qxF "$p" "$EXCL" || git check-ignore -q "${p#/}" 2>/dev/null || echo "$p" >> "$EXCL"
done

NODE_BIN="$(readlink -f "$(command -v node)")"
WG=node_modules/webgpu
[ -f "$WG/dist/linux-x64/dawn.node" ] || { echo "pack: $WG/dist/linux-x64/dawn.node missing (npm install first)" >&2; exit 1; }

rm -rf .gpu; mkdir -p .gpu/webgpu/dist/linux-x64 .gpu/lib
echo "pack: node $("$NODE_BIN" --version) from $NODE_BIN -> .gpu/node.xz"
xz -T2 -6 -c "$NODE_BIN" > .gpu/node.xz

# webgpu/index.js only imports node builtins (path, url, module) and dist/<platform>-<arch>/dawn.node;
# its declared deps (debug, @webgpu/types) are not loaded at run time.
cp "$WG/index.js" "$WG/package.json" .gpu/webgpu/
[ -f "$WG/types.d.ts" ] && cp "$WG/types.d.ts" .gpu/webgpu/
# dawn.node is 21 MB raw, ~5 MB as xz: ship it compressed (remote.sh unpacks it in place) to
# stay far from the 64 MiB transfer limit. PACK_RAW_DAWN=1 ships it raw instead.
if [ "${PACK_RAW_DAWN:-0}" = 1 ]; then
  cp "$WG/dist/linux-x64/dawn.node" .gpu/webgpu/dist/linux-x64/
else
  xz -T2 -6 -c "$WG/dist/linux-x64/dawn.node" > .gpu/webgpu/dist/linux-x64/dawn.node.xz
fi
if grep -qE "from ['\"](debug|ms)['\"]|require\(['\"](debug|ms)['\"]\)" "$WG/index.js"; then
  echo "pack: index.js needs debug: copying it" >&2
  mkdir -p .gpu/webgpu/node_modules; cp -r node_modules/debug node_modules/ms .gpu/webgpu/node_modules/
fi

if [ -d node_modules/wgsl_reflect ]; then
  mkdir -p .gpu/wgsl_reflect
  (cd node_modules/wgsl_reflect && cp package.json *.js ../../.gpu/wgsl_reflect/)
fi

# No early exit in awk: under pipefail, ldconfig dying of SIGPIPE would fail the assignment and (set -e) the script.
LIBSTDCXX="$(ldconfig -p | awk '/libstdc\+\+\.so\.6 .*x86-64/ && !found {print $NF; found = 1}')"
[ -n "$LIBSTDCXX" ] && cp -L "$LIBSTDCXX" .gpu/lib/libstdc++.so.6

[ -d dist ] && cp -r dist .gpu/dist && echo "pack: copied dist/"
# The GPU machine has no git: record the commit for bench reports (bench/cli.mjs reads .gpu/kiln-commit.json).
C="$(git rev-parse HEAD 2>/dev/null || true)"; D="$( [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] && echo true || echo false)"
[ -n "$C" ] && echo "{\"commit\": \"$C\", \"dirty\": $D}" > .gpu/kiln-commit.json
[ -d kernels ] && cp -r kernels .gpu/kernels && echo "pack: copied kernels/"

# Optional bench peers (bench/cli.mjs --peers): a slim copy of bench/peers/node_modules (the CommonJS node builds of
# tfjs-core and tfjs-backend-webgpu and their runtime requires, ~4 MB instead of 71 MB). Only if installed here
# (cd bench/peers && npm install --ignore-scripts); remote.sh links it back to bench/peers/node_modules.
PN=bench/peers/node_modules
if [ -d "$PN/@tensorflow/tfjs-backend-webgpu" ] && [ "${PACK_PEERS:-1}" = 1 ]; then
  for m in tfjs-core:tf-core.node.js tfjs-backend-webgpu:tf-backend-webgpu.node.js; do
    d=".gpu/peers/node_modules/@tensorflow/${m%%:*}"; mkdir -p "$d/dist"
    cp "$PN/@tensorflow/${m%%:*}/package.json" "$d/"; cp "$PN/@tensorflow/${m%%:*}/dist/${m#*:}" "$d/dist/"
  done
  for m in seedrandom long node-fetch whatwg-url tr46 webidl-conversions; do
    [ -d "$PN/$m" ] && cp -r "$PN/$m" .gpu/peers/node_modules/
  done
  echo "pack: copied bench peers (tfjs) -> .gpu/peers ($(du -sh .gpu/peers | cut -f1))"
fi

# Vulkan loader debs (device README recipe). Downloaded once; kept between packs.
mkdir -p .gl
if ! ls .gl/libvulkan1_*.deb >/dev/null 2>&1; then
  mkdir -p /tmp/amd64/partial
  o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
  apt-get $o update -qq
  (cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
fi
ls -la .gl
for f in .gpu/*; do du -sh "$f"; done | sed 's/^/  /'

echo "pack: sizes"
du -sh .gpu .gl | sed 's/^/  /'
TREE=$( { git ls-files -z; git ls-files -z --others --exclude-standard; } | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)
PAY=$(du -cb .gpu .gl | tail -1 | cut -f1)
echo "pack: working tree (tracked + untracked-not-ignored) $((TREE/1024)) KiB, payload $((PAY/1024)) KiB, total $(((TREE+PAY)/1024/1024)) MiB (limit 64 MiB)"
[ $((TREE+PAY)) -lt $((60*1024*1024)) ] || echo "pack: WARNING: close to / over the 64 MiB device transfer limit" >&2
