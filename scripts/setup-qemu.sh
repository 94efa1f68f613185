#!/usr/bin/env bash
# Provides QEMU (and Debian guest kernels) for cxl-mhd, in one of two series:
#   11  QEMU 11.1 from trixie-backports, kernels 6.12 (trixie) and 7.3
#       (trixie-backports), numactl; root: $CACHE/trixie-backports-root
#   10  QEMU 10.0 from trixie, kernel 6.12; root: $CACHE/trixie-root
# `make setup QEMU=10` picks the series (CXL_MHD_QEMU_SERIES here).
#
# A host qemu-system-x86_64 of that series or newer is used as is. Otherwise
# a Debian root is debootstrapped into a cache directory outside the clone;
# QEMU then runs from it through the root's own dynamic loader (see
# src/qemu/binary.ts), no chroot needed. Safe to re-run: a complete root is
# recognised by its stamp.
#
# Environment:
#   CXL_MHD_QEMU_SERIES 11 or 10 (default 11)
#   CXL_MHD_CACHE   cache dir (default ${XDG_CACHE_HOME:-$HOME/.cache}/cxl-mhd)
#   CXL_MHD_QEMU    a qemu-system-x86_64 to use instead of the host's one (any QEMU >= 10.0)
#   CXL_MHD_MIRROR  Debian mirror URL (default: taken from apt's configuration)
set -euo pipefail

SERIES="${CXL_MHD_QEMU_SERIES:-11}"
SUITE=trixie
VARIANT=minbase
INCLUDE=qemu-system-x86,linux-image-amd64,ndctl,daxctl,busybox-static,kmod,qemu-guest-agent
case $SERIES in
  10)
    ROOT_NAME=$SUITE-root
    BACKPORTS=""
    MIN_MAJOR=10 MIN_MINOR=0
    ;;
  11)
    ROOT_NAME=$SUITE-backports-root
    INCLUDE=$INCLUDE,numactl
    # Installed from trixie-backports over the trixie root: QEMU 11.1 (and its
    # guest agent) and kernel 7.3; trixie's 6.12 kernel stays installed.
    BACKPORTS="qemu-system-x86 qemu-guest-agent linux-image-amd64"
    MIN_MAJOR=11 MIN_MINOR=1
    ;;
  *)
    printf '[setup] error: QEMU series "%s" is not 11 or 10 (make setup QEMU=11|10)\n' "$SERIES" >&2
    exit 2
    ;;
esac

CACHE="${CXL_MHD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cxl-mhd}"
ROOT="$CACHE/$ROOT_NAME"
STAMP_NAME=.cxl-mhd-root-ok
# The stamp carries the recipe, so changing the package list forces a rebuild
# instead of silently reusing a root that lacks a package.
STAMP_CONTENT="suite=$SUITE
variant=$VARIANT
include=$INCLUDE${BACKPORTS:+
backports=$BACKPORTS}"

log() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

# "QEMU emulator version 10.0.3 (Debian 1:10.0.3+ds-0+deb13u1)" -> "10.0.3"
qemu_version_of() {
  "$@" --version 2>/dev/null | sed -n 's/^QEMU emulator version \([0-9][0-9.]*\).*/\1/p' | head -n1
}

version_ok() {
  local major minor
  IFS=. read -r major minor _ <<<"$1"
  [[ -n "$major" && -n "$minor" ]] || return 1
  (( major > MIN_MAJOR || (major == MIN_MAJOR && minor >= MIN_MINOR) ))
}

root_qemu() {
  local dir=$1
  echo "$dir/lib64/ld-linux-x86-64.so.2" --library-path \
    "$dir/lib/x86_64-linux-gnu:$dir/usr/lib/x86_64-linux-gnu" \
    "$dir/usr/bin/qemu-system-x86_64"
}

# --- 1. an explicitly chosen or host QEMU that is new enough wins ----------
if [[ -n "${CXL_MHD_QEMU:-}" ]]; then
  override_root=$( (cd "$(dirname "$CXL_MHD_QEMU")/../.." 2>/dev/null && pwd -P) || true)
  if [[ -n "$override_root" && -e "$override_root/lib64/ld-linux-x86-64.so.2" && -f "$override_root/$STAMP_NAME" ]]; then
    # A debootstrapped root's QEMU only runs against that root's libraries.
    # shellcheck disable=SC2046
    v=$(qemu_version_of $(root_qemu "$override_root") || true)
  else
    v=$(qemu_version_of "$CXL_MHD_QEMU" || true)
  fi
  if [[ -n "$v" ]] && MIN_MAJOR=10 MIN_MINOR=0 version_ok "$v"; then
    log "using CXL_MHD_QEMU=$CXL_MHD_QEMU (QEMU $v); nothing to do"
    exit 0
  fi
  # An explicit choice that does not work is an error, not a hint: the tests
  # and the demo would refuse it too (src/qemu/binary.ts).
  die "CXL_MHD_QEMU=$CXL_MHD_QEMU is not a runnable QEMU >= 10.0 (version '${v:-unknown}'); fix or unset it"
fi
if host_qemu=$(command -v qemu-system-x86_64 2>/dev/null); then
  v=$(qemu_version_of "$host_qemu" || true)
  if [[ -n "$v" ]] && version_ok "$v"; then
    log "using host $host_qemu (QEMU $v); nothing to do"
    exit 0
  fi
  log "host $host_qemu is QEMU ${v:-unknown}, too old (need >= $MIN_MAJOR.$MIN_MINOR)"
else
  log "no host qemu-system-x86_64"
fi

# --- 2. the cached trixie root ----------------------------------------------
root_complete() {
  [[ -f "$ROOT/$STAMP_NAME" && "$(cat "$ROOT/$STAMP_NAME")" == "$STAMP_CONTENT" ]] || return 1
  [[ -x "$ROOT/usr/bin/qemu-system-x86_64" ]] || return 1
}

# Prints the root's QEMU version when the root is complete and that QEMU runs.
root_usable() {
  root_complete || return 1
  local v
  # shellcheck disable=SC2046
  v=$(qemu_version_of $(root_qemu "$ROOT") || true)
  [[ -n "$v" ]] && version_ok "$v" || return 1
  printf '%s\n' "$v"
}

if v=$(root_usable); then
  log "reusing $ROOT (QEMU $v); nothing to do"
  exit 0
fi
if [[ -e "$ROOT" ]]; then
  log "$ROOT is incomplete, from another recipe, or its QEMU does not run; rebuilding"
fi

# The clone must stay small and clean: refuse a cache inside it.
repo_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cache_real=$(realpath -m "$CACHE")
case "$cache_real/" in
  "$repo_dir/"*) die "cache dir $cache_real is inside the clone $repo_dir; set CXL_MHD_CACHE elsewhere" ;;
esac
mkdir -p "$CACHE"

[[ $(id -u) -eq 0 ]] || die "building the $SUITE root needs root (debootstrap creates device nodes and chroots); re-run as root, or install QEMU >= $MIN_MAJOR.$MIN_MINOR and put it on PATH / in CXL_MHD_QEMU"

# One builder at a time; the lock also makes leftover temp dirs safe to delete.
exec 9>"$CACHE/.setup.lock"
if ! flock -n 9; then
  log "another setup holds $CACHE/.setup.lock; waiting"
  flock 9
fi
if v=$(root_usable); then
  log "$ROOT was completed by a concurrent setup (QEMU $v); nothing to do"
  exit 0
fi

# Unmount anything debootstrap left mounted under $1 (an interrupted second
# stage leaves /proc or /sys mounted), then delete it without crossing mounts.
remove_tree() {
  local dir=$1 mnt
  [[ -e "$dir" ]] || return 0
  # Deepest first.
  while read -r mnt; do
    umount -l "$mnt" 2>/dev/null || true
  done < <(awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r)
  rm -rf --one-file-system "$dir"
}

for stale in "$CACHE/.$ROOT_NAME.tmp."* "$CACHE/.$ROOT_NAME.old."*; do
  [[ -e "$stale" ]] || continue
  log "removing leftover $stale from an interrupted run"
  remove_tree "$stale"
done

# --- 3. debootstrap ----------------------------------------------------------
if ! command -v debootstrap >/dev/null 2>&1; then
  log "installing debootstrap with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q debootstrap >/dev/null 2>&1; then
    log "apt-get install failed; running apt-get update and retrying"
    apt-get update -q >/dev/null || die "apt-get update failed"
    apt-get install -y -q debootstrap >/dev/null || die "apt-get install debootstrap failed"
  fi
fi

# shellcheck source=scripts/debian-mirror.sh
. "$(dirname "$0")/debian-mirror.sh"
mirror=$(debian_mirror) || die "no Debian mirror found in /etc/apt/sources.list{,.d/*.sources,.d/*.list}; set CXL_MHD_MIRROR=<url>"
log "mirror: $mirror (from apt configuration${CXL_MHD_MIRROR:+ / CXL_MHD_MIRROR})"

# Older debootstrap releases have no script for a newer suite; sid's works.
script_args=()
if [[ ! -e /usr/share/debootstrap/scripts/$SUITE ]]; then
  log "debootstrap has no $SUITE script; using sid's"
  script_args=(/usr/share/debootstrap/scripts/sid)
fi

keyring_args=()
if [[ -f /usr/share/keyrings/debian-archive-keyring.gpg ]]; then
  keyring_args=(--keyring=/usr/share/keyrings/debian-archive-keyring.gpg)
fi

tmp=$(mktemp -d "$CACHE/.$ROOT_NAME.tmp.XXXXXX")
chmod 755 "$tmp"  # mktemp's 0700 would become the root's own mode
cleanup() {
  local rc=$?
  if [[ -n "${tmp:-}" && -e "$tmp" ]]; then
    log "cleaning up partial root $tmp"
    remove_tree "$tmp"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "debootstrap $SUITE ($VARIANT + $INCLUDE) into $tmp; takes a few minutes and ~800 MB${BACKPORTS:+ (+ ~140 MB of backports)}"
debootstrap_log="$CACHE/debootstrap.log"
start=$SECONDS
if ! debootstrap --variant="$VARIANT" --include="$INCLUDE" "${keyring_args[@]}" \
      "$SUITE" "$tmp" "$mirror" "${script_args[@]}" >"$debootstrap_log" 2>&1; then
  tail -n 20 "$debootstrap_log" >&2 || true
  [[ -f "$tmp/debootstrap/debootstrap.log" ]] && tail -n 20 "$tmp/debootstrap/debootstrap.log" >&2
  die "debootstrap failed (full log: $debootstrap_log)"
fi
log "debootstrap finished in $((SECONDS - start)) s"

# --- 3b. the backports on top (series 11) -------------------------------------
if [[ -n "$BACKPORTS" ]]; then
  log "installing $BACKPORTS from $SUITE-backports"
  printf 'deb %s %s-backports main\n' "$mirror" "$SUITE" >"$tmp/etc/apt/sources.list.d/$SUITE-backports.list"
  [[ -f /etc/resolv.conf ]] && cp -L /etc/resolv.conf "$tmp/etc/resolv.conf"
  mount -t proc proc "$tmp/proc"
  # shellcheck disable=SC2086
  if ! { chroot "$tmp" apt-get update -q &&
         DEBIAN_FRONTEND=noninteractive chroot "$tmp" apt-get install -y -q --no-install-recommends -t "$SUITE-backports" $BACKPORTS; } \
       >>"$debootstrap_log" 2>&1; then
    umount -l "$tmp/proc" || true
    tail -n 20 "$debootstrap_log" >&2 || true
    die "installing $BACKPORTS from $SUITE-backports failed (full log: $debootstrap_log)"
  fi
  umount -l "$tmp/proc" || true
  chroot "$tmp" apt-get clean >/dev/null 2>&1 || true
fi

# Downloaded .debs are ~half the size and never needed again.
rm -f "$tmp"/var/cache/apt/archives/*.deb

# --- 4. check the result before publishing it --------------------------------
# shellcheck disable=SC2046
v=$(qemu_version_of $(root_qemu "$tmp") || true)
[[ -n "$v" ]] || die "QEMU in the new root does not run through its loader"
version_ok "$v" || die "QEMU in the new root is $v, need >= $MIN_MAJOR.$MIN_MINOR"
kernels=("$tmp"/boot/vmlinuz-*)
[[ -e "${kernels[0]}" ]] || die "no guest kernel in $tmp/boot"
log "new root has QEMU $v, kernels ${kernels[*]##*/}"

printf '%s\n' "$STAMP_CONTENT" >"$tmp/$STAMP_NAME"

# rename(2) cannot replace a non-empty directory, so an outdated root is moved
# aside first; in between, $ROOT is simply absent (never half-built).
if [[ -e "$ROOT" ]]; then
  old="$CACHE/.$ROOT_NAME.old.$$"
  mv -T "$ROOT" "$old"
  mv -T "$tmp" "$ROOT"
  tmp=""
  remove_tree "$old"
else
  mv -T "$tmp" "$ROOT"
  tmp=""
fi
log "ready: $ROOT ($(du -sh "$ROOT" 2>/dev/null | cut -f1))"
