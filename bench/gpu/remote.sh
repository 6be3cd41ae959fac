#!/usr/bin/env bash
# Runs ON the lent GPU machine, from the repo root of the copied tree (device `run` tool):
#   run(carry=[".gpu", ".gl"], command="bash bench/gpu/remote.sh bench/gpu/probe.mjs [args...]")
# Needs the payload from bench/gpu/pack.sh. Logs go to $OUT (remote.log = everything, env.txt = setup facts).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
OUT="${OUT:-/tmp/kiln-out}"; mkdir -p "$OUT"
# bench/cli.mjs writes its report.{json,md,svg} here by default, so they come back with the logs.
export KILN_BENCH_OUT="${KILN_BENCH_OUT:-$OUT}"
say() { echo "[remote] $*"; }
main() {
[ -f .gpu/node.xz ] || { say "no .gpu/node.xz: run bench/gpu/pack.sh here and carry [\".gpu\", \".gl\"]"; return 2; }
[ $# -ge 1 ] || { say "usage: bash bench/gpu/remote.sh SCRIPT [ARGS...]"; return 2; }

# 1. Vulkan (and GL/EGL) loaders: only if the image has no libvulkan.so.1.
local vkfrom="image's own"
if ! ldconfig -p | grep 'libvulkan\.so\.1 ' >/dev/null; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig; vkfrom="unpacked from .gl"
fi
say "libvulkan: $(ldconfig -p | grep 'libvulkan\.so\.1 ' | head -1 | sed 's/.*=> //') ($vkfrom)"

# 2. Node and dawn.node.
if [ ! -x /tmp/node ]; then xz -dc .gpu/node.xz > /tmp/node.tmp && chmod +x /tmp/node.tmp && mv /tmp/node.tmp /tmp/node; fi
DN=.gpu/webgpu/dist/linux-x64/dawn.node
[ -f "$DN" ] || xz -dc "$DN.xz" > "$DN"
say "node $(/tmp/node --version)"
# dawn.node needs GLIBCXX_3.4.30 (gcc 12+); use the packed libstdc++ only if the system's is older.
SYS_CXX="$(ldconfig -p | awk '/libstdc\+\+\.so\.6 .*x86-64/ && !found {print $NF; found = 1}')"
if [ -z "$SYS_CXX" ] || ! grep -qa GLIBCXX_3.4.30 "$SYS_CXX"; then
  say "system libstdc++ ($SYS_CXX) lacks GLIBCXX_3.4.30: using .gpu/lib"
  export LD_LIBRARY_PATH="$ROOT/.gpu/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi

# 3. Module resolution: scripts anywhere under the repo root find node_modules/{webgpu,wgsl_reflect}.
mkdir -p node_modules
for m in webgpu wgsl_reflect; do
  if [ -d ".gpu/$m" ] && [ ! -e "node_modules/$m" -o -L "node_modules/$m" ]; then ln -sfn "../.gpu/$m" "node_modules/$m"; fi
done
# kiln's build output is git-ignored, so it only arrives inside .gpu/.
[ -d .gpu/dist ] && [ ! -e dist ] && ln -s .gpu/dist dist
[ -d .gpu/kernels ] && [ ! -e kernels ] && ln -s .gpu/kernels kernels
# bench/cli.mjs --peers: the slim tfjs copy from pack.sh (there is no network here to install it).
[ -d .gpu/peers/node_modules ] && [ -d bench/peers ] && [ ! -e bench/peers/node_modules ] && ln -s ../../.gpu/peers/node_modules bench/peers/node_modules

# 4. Vulkan ICD. The NVIDIA container hook puts it under /usr/local/nvidia, outside the loader's search path.
ICD=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -f "$ICD" ]; then
  export VK_DRIVER_FILES="$ICD"
else
  say "no $ICD; searching for nvidia_icd.json:"
  FOUND="$(timeout 30 find / -xdev \( -path /proc -o -path /sys \) -prune -o -name 'nvidia_icd*.json' -print 2>/dev/null | head -5)"
  [ -n "$FOUND" ] && echo "$FOUND" | sed 's/^/[remote]   /' || say "  (none found; the loader's default search applies)"
  FIRST="$(echo "$FOUND" | head -1)"
  [ -n "$FIRST" ] && export VK_DRIVER_FILES="$FIRST"
fi
say "VK_DRIVER_FILES=${VK_DRIVER_FILES:-<unset>}"
if [ -f "${VK_DRIVER_FILES:-}" ]; then
  say "ICD json: $(tr -s ' \n' ' ' < "$VK_DRIVER_FILES")"
  LIBP="$(sed -n 's/.*"library_path" *: *"\([^"]*\)".*/\1/p' "$VK_DRIVER_FILES")"
  [ -n "$LIBP" ] && say "ICD library: $LIBP -> $(ldconfig -p | grep -F "$LIBP" | head -1 | sed 's/.*=> //')"
fi
export __EGL_VENDOR_LIBRARY_FILENAMES="${__EGL_VENDOR_LIBRARY_FILENAMES:-/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json}"

# 5. GPU summary.
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv 2>&1 | sed 's/^/[remote] /'
{ uname -a; cat /etc/os-release 2>/dev/null | head -2; echo "VK_DRIVER_FILES=${VK_DRIVER_FILES:-}"; echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"; } > "$OUT/env.txt"

# 6. The kiln script.
say "run: /tmp/node $*"
local t0=$EPOCHREALTIME rc
/tmp/node "$@"; rc=$?
say "exit $rc after $(awk "BEGIN{printf \"%.2f\", $EPOCHREALTIME - $t0}") s"
if [ $rc -ne 0 ]; then
  say "failed: Vulkan loader debug of a bare adapter request -> \$OUT/loader-debug.log"
  VK_LOADER_DEBUG=error,warn,driver timeout 60 /tmp/node bench/gpu/adapter.mjs > "$OUT/loader-debug.log" 2>&1
  tail -40 "$OUT/loader-debug.log"
fi
return $rc
}
main "$@" 2>&1 | tee -a "$OUT/remote.log"
exit "${PIPESTATUS[0]}"
