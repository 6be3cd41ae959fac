#!/usr/bin/env bash
# Provisions what kiln needs to run WebGPU on this machine: a Vulkan driver Dawn can use, and
# Debian's chromium (headless browser tests, and its SwiftShader Vulkan driver).
# Idempotent; does nothing that is already done; skips the software drivers when a hardware
# Vulkan driver is already installed. Needs root (or sudo) only for what is missing.
set -u
log() { printf '[kiln setup] %s\n' "$*" >&2; }

LVP=/usr/share/vulkan/icd.d/lvp_icd.json
SWS=/usr/lib/chromium/vk_swiftshader_icd.json

have_hw_icd() {
  for d in /usr/share/vulkan/icd.d /etc/vulkan/icd.d /usr/local/nvidia/share/vulkan/icd.d; do
    [ -d "$d" ] || continue
    for f in "$d"/*.json; do
      [ -e "$f" ] || continue
      case "$(basename "$f")" in lvp_*|*swiftshader*|*virtio*) ;; *) return 0 ;; esac
    done
  done
  return 1
}

lvp_ok() {
  # Dawn rejects bookworm's Mesa 22; only a Mesa >= 23 lavapipe is useful.
  [ -f "$LVP" ] || return 1
  local v
  v=$(dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null) || return 1
  [ "${v%%.*}" -ge 23 ] 2>/dev/null
}

need_chromium=1; [ -x /usr/bin/chromium ] && [ -f "$SWS" ] && need_chromium=0
need_lvp=1; lvp_ok && need_lvp=0
[ "${KILN_SKIP_BROWSER:-}" = 1 ] && need_chromium=0
if have_hw_icd && [ "${KILN_FORCE_SOFTWARE:-}" != 1 ]; then
  need_lvp=0
fi
if [ $need_chromium = 0 ] && [ $need_lvp = 0 ]; then
  log "nothing to install"; exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  log "no apt-get here: install a Vulkan driver (Mesa lavapipe >= 23 or SwiftShader) and chromium by hand"
  exit 0
fi
SUDO=; [ "$(id -u)" != 0 ] && SUDO=sudo
export DEBIAN_FRONTEND=noninteractive

if [ $need_lvp = 1 ] && [ -f /etc/debian_version ] && grep -q '^12' /etc/debian_version; then
  if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    log "adding Debian bookworm-backports as an apt source (for Mesa lavapipe 25)"
    printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      | $SUDO tee /etc/apt/sources.list.d/kiln-backports.sources >/dev/null
  fi
fi
log "apt-get update"
$SUDO apt-get update -qq >/dev/null 2>&1 || log "apt-get update failed (continuing)"
if [ $need_lvp = 1 ]; then
  log "installing mesa-vulkan-drivers (lavapipe) from bookworm-backports"
  $SUDO apt-get install -y -qq -t bookworm-backports mesa-vulkan-drivers >/dev/null 2>&1 \
    || log "lavapipe from backports failed; will rely on SwiftShader"
fi
if [ $need_chromium = 1 ]; then
  log "installing chromium (headless browser tests, SwiftShader)"
  $SUDO apt-get install -y -qq chromium >/dev/null 2>&1 || log "chromium install failed"
fi
lvp_ok && log "lavapipe: $LVP"
[ -f "$SWS" ] && log "SwiftShader: $SWS"
exit 0
