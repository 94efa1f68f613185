#!/usr/bin/env bash
# Installs the host-side clients the tests drive that this project did not
# write: Debian's redfishtool and python3-sushy (Redfish) and chromium (the
# pool page, driven headless by playwright-core with the system browser).
# Safe to re-run: packages already present are left alone.
set -euo pipefail
PKGS=(redfishtool python3-sushy chromium)
log() { printf '[setup-host] %s\n' "$*"; }
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  log "missing ${missing[*]}; run as root (or: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
log "installing ${missing[*]} with apt-get"
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; then
  log "apt-get install failed; running apt-get update and retrying"
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
