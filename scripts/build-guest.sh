#!/usr/bin/env bash
# Builds the cxl-mhd guest image: a kernel and an initramfs, both taken from
# a Debian root that scripts/setup-qemu.sh debootstraps (kernel 6.12 by
# default, 7.3 with KERNEL=7.3; busybox-static, kmod, ndctl's `cxl`, `daxctl`,
# qemu-guest-agent's `qemu-ga`, and `numactl` where the root has it), plus guest/init as /init,
# guest/cxl-mhd (runs the host's Node + the project's CLI over 9p; also
# installed as `node`), guest/cxl-mhd-devdax (memdev or tag -> region ->
# /dev/daxX.Y) and guest/daxpoke.c, daxstream.c, daxatomic.c (static tools
# for /dev/daxX.Y) compiled here; this checkout's guest FM client
# (dist/guest/cxl-mhd-fm from make build) as /usr/bin/cxl-mhd-fm.
#
# Output (see docs/guest.md), one image per checkout, because the image
# names the checkout that built it (/etc/cxl-mhd-project: the host path whose
# dist/ the guest's /bin/cxl-mhd runs; cxlmhd.project= on the kernel command
# line overrides it):
#   $CACHE/checkouts/<key>/vmlinuz              <key>: hash of this checkout's path (and the kernel, unless 6.12)
#   $CACHE/checkouts/<key>/initramfs.cpio.gz    the shared base + a small cpio with /etc/cxl-mhd-project and cxl-mhd-fm
#   $CACHE/checkouts/<key>/project              the checkout's path
#   $CACHE/checkouts/<key>/.stamp               hash of the inputs + the checkout's path + its cxl-mhd-fm's hash
# The project-independent base is built once for all checkouts with the same
# inputs:
#   $CACHE/guest/{vmlinuz,initramfs.cpio.gz,contents.txt,.stamp}   ($CACHE/guest-<kernel>/ for another kernel)
# Each of these directories is a symlink to a versioned directory, switched
# atomically: the paths above always hold a complete image, old or new. A
# checkout's image is a full copy, so a base rebuilt for another checkout's
# inputs never changes it; images of checkouts that no longer exist are removed.
#
# Environment:
#   CXL_MHD_CACHE        cache dir (default ${XDG_CACHE_HOME:-$HOME/.cache}/cxl-mhd)
#   CXL_MHD_GUEST_KERNEL the kernel's release prefix, 6.12 (default) or 7.3 (`make guest KERNEL=7.3`)
#   CXL_MHD_GUEST_ROOT   root to take everything from (default: the first of the
#                        QEMU series' root and the other one that has that kernel)
#   CXL_MHD_QEMU_SERIES  11 or 10: whose root is tried first (default 11)
#   CC                   C compiler for daxpoke (default gcc; must link -static)
# Options:
#   --force              rebuild even if the stamp matches
#   --print-dir          print this checkout's output directory and exit
set -euo pipefail

CACHE="${CXL_MHD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cxl-mhd}"
KERNEL="${CXL_MHD_GUEST_KERNEL:-6.12}"
[[ "$KERNEL" =~ ^[0-9]+\.[0-9]+$ ]] || { printf '[guest] error: kernel "%s" must look like 6.12 or 7.3\n' "$KERNEL" >&2; exit 2; }
# The kernel's root: given, else the QEMU series' root, else the other one (the first that has the kernel).
if [[ -n "${CXL_MHD_GUEST_ROOT:-}" ]]; then
  ROOT=$CXL_MHD_GUEST_ROOT
else
  case "${CXL_MHD_QEMU_SERIES:-11}" in
    10) roots=("$CACHE/trixie-root" "$CACHE/trixie-backports-root") ;;
    *) roots=("$CACHE/trixie-backports-root" "$CACHE/trixie-root") ;;
  esac
  ROOT=${roots[0]}
  for r in "${roots[@]}"; do
    if [[ -f "$r/.cxl-mhd-root-ok" ]] && compgen -G "$r/boot/vmlinuz-$KERNEL.*" >/dev/null; then ROOT=$r; break; fi
  done
fi
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
PROJECT=$(cd "$HERE/.." && pwd -P)
CHECKOUTS="$CACHE/checkouts"
# 6.12 keeps the names it always had; another kernel gets its own base and per-checkout image.
if [[ "$KERNEL" == 6.12 ]]; then
  BASE_NAME=guest
  KEY=$(printf '%s' "$PROJECT" | sha256sum | cut -c1-16)
else
  BASE_NAME=guest-$KERNEL
  KEY=$(printf '%s|%s' "$PROJECT" "$KERNEL" | sha256sum | cut -c1-16)
fi
OUT="$CACHE/$BASE_NAME"
MINE="$CHECKOUTS/$KEY"
GUEST_SRC="$PROJECT/guest"
CC="${CC:-gcc}"
MULTIARCH=x86_64-linux-gnu

# Modules wanted in the image (their modules.dep dependencies come along).
# Built into the Debian 6.12 kernel, so absent here on purpose: cxl_core,
# cxl_port, dax, virtio_pci, virtio_console.
MODULES=(
  cxl_acpi cxl_pci cxl_mem cxl_pmem   # CXL bus: ACPI root (CFMWS), type-3 memdevs, pmem bridge
  dax_cxl device_dax kmem dax_hmem    # DAX: region -> daxX.Y, /dev/daxX.Y, system-RAM mode
  9p 9pnet_virtio                     # virtfs shares (hostroot, scenario)
  virtio_rng                          # entropy early (Node start-up)
)
# Root packages whose versions are part of the stamp.
PACKAGES=(busybox-static kmod ndctl daxctl libcxl1 libdaxctl1 qemu-guest-agent numactl)

log() { printf '[guest] %s\n' "$*"; }
die() { printf '[guest] error: %s\n' "$*" >&2; exit 1; }

force=0
for arg in "$@"; do
  case $arg in
    --force) force=1 ;;
    --print-dir) printf '%s\n' "$MINE"; exit 0 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $arg" ;;
  esac
done

# --- inputs -----------------------------------------------------------------
[[ -d "$ROOT" ]] || die "no guest root at $ROOT; run scripts/setup-qemu.sh (make qemu) first"
for f in init cxl-mhd cxl-mhd-devdax daxpoke.c daxstream.c daxatomic.c; do
  [[ -f "$GUEST_SRC/$f" ]] || die "missing $GUEST_SRC/$f"
done
LDSO="$ROOT/lib64/ld-linux-x86-64.so.2"
[[ -e "$LDSO" ]] || die "$ROOT has no $MULTIARCH loader (lib64/ld-linux-x86-64.so.2)"
LIBPATH="$ROOT/lib/$MULTIARCH:$ROOT/usr/lib/$MULTIARCH"
in_root() { "$LDSO" --library-path "$LIBPATH" "$@"; }

# The newest kernel that has both an image and a module tree.
kver=""
while IFS= read -r v; do
  [[ "$v" == "$KERNEL".* && -f "$ROOT/boot/vmlinuz-$v" && -f "$ROOT/lib/modules/$v/modules.dep" ]] && kver=$v
done < <(for d in "$ROOT"/lib/modules/*/; do [[ -d "$d" ]] && basename "$d"; done | sort -V)
if [[ -z "$kver" ]]; then
  hint="is linux-image-amd64 installed?"
  [[ "$KERNEL" == 6.12 ]] || hint="kernel $KERNEL comes with the QEMU 11 root: make setup QEMU=11"
  die "no kernel $KERNEL (boot/vmlinuz-$KERNEL.* + lib/modules/$KERNEL.*) in $ROOT; $hint"
fi
MODDIR="$ROOT/lib/modules/$kver"
BUSYBOX="$ROOT/usr/bin/busybox"
[[ -x "$BUSYBOX" ]] || BUSYBOX="$ROOT/bin/busybox"
[[ -x "$BUSYBOX" ]] || die "no busybox in $ROOT (busybox-static)"
for b in usr/bin/kmod usr/bin/cxl usr/bin/daxctl usr/sbin/qemu-ga; do
  [[ -x "$ROOT/$b" ]] || die "no $b in $ROOT (packages kmod, ndctl, daxctl, qemu-guest-agent; re-run make setup)"
done

pkg_versions() {
  local p
  for p in "${PACKAGES[@]}"; do
    awk -v p="$p" '$1=="Package:"{on=($2==p)} on&&$1=="Version:"{print p"="$2; exit}' \
      "$ROOT/var/lib/dpkg/status"
  done
}

# Everything that decides the image's content.
stamp=$(
  {
    printf 'kernel=%s\n' "$kver"
    printf 'modules=%s\n' "${MODULES[*]}"
    pkg_versions
    sha256sum "$HERE/build-guest.sh" | cut -d' ' -f1
    # fm-main.c reaches the image as part of this checkout's client (the overlay), not the shared base.
    (cd "$GUEST_SRC" && find . -type f ! -name '*~' ! -name fm-main.c -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
    "$CC" --version 2>/dev/null | head -n1 || true
  } | sha256sum | cut -d' ' -f1
)
# This checkout's guest FM client (make build: scripts/build-fm-client.mjs) goes into its overlay.
FM_CLIENT="$PROJECT/dist/guest/cxl-mhd-fm"
[[ -x "$FM_CLIENT" ]] || die "no guest FM client at $FM_CLIENT; run make build"
mine_stamp="$stamp $PROJECT $(sha256sum "$FM_CLIENT" | cut -c1-16)"
complete() { # dir, stamp: the dir holds a complete image for that stamp
  [[ -f "$1/.stamp" && "$(cat "$1/.stamp")" == "$2" && -f "$1/vmlinuz" && -f "$1/initramfs.cpio.gz" ]]
}
if [[ $force == 0 ]] && complete "$MINE" "$mine_stamp"; then
  log "up to date: $MINE (kernel $kver, project $PROJECT)"
  exit 0
fi

mkdir -p "$CACHE"
# One build at a time (tests may call this concurrently); the loser re-checks.
if command -v flock >/dev/null 2>&1 && [[ -z "${CXL_MHD_GUEST_LOCKED:-}" ]]; then
  CXL_MHD_GUEST_LOCKED=1 exec flock "$CACHE/.guest.lock" bash "$HERE/build-guest.sh" "$@"
fi

# Atomically points symlink $1 at the versioned directory $2 (a sibling).
switch_link() {
  ln -s "${2##*/}" "$1.link.$$"
  mv -T "$1.link.$$" "$1"
}

# This checkout's image: the base plus a second (gzip'd) cpio archive with
# /etc/cxl-mhd-project and this checkout's guest FM client, /usr/bin/cxl-mhd-fm.
# The kernel unpacks concatenated archives in order.
publish_checkout() {
  mkdir -p "$CHECKOUTS"
  local t final
  t=$(mktemp -d "$CHECKOUTS/.tmp.XXXXXX")
  chmod 755 "$t"
  mkdir -p "$t/overlay/etc" "$t/overlay/usr/bin"
  chmod 755 "$t/overlay" "$t/overlay/etc" "$t/overlay/usr" "$t/overlay/usr/bin"
  printf '%s\n' "$PROJECT" >"$t/overlay/etc/cxl-mhd-project"
  install -m 0755 "$FM_CLIENT" "$t/overlay/usr/bin/cxl-mhd-fm"
  (cd "$t/overlay" && printf '%s\n' etc etc/cxl-mhd-project usr usr/bin usr/bin/cxl-mhd-fm | "$BUSYBOX" cpio -o -H newc -R 0:0 2>/dev/null) \
    | gzip -6 -n >"$t/project.cpio.gz"
  cat "$OUT/initramfs.cpio.gz" "$t/project.cpio.gz" >"$t/initramfs.cpio.gz"
  cp "$OUT/vmlinuz" "$t/vmlinuz"
  printf '%s\n' "$PROJECT" >"$t/project"
  printf '%s\n' "$mine_stamp" >"$t/.stamp"
  rm -rf "$t/overlay" "$t/project.cpio.gz"
  # Unique per build, so a forced rebuild never removes what the link shows.
  final="$CHECKOUTS/.$KEY-$(printf '%s' "$mine_stamp" | sha256sum | cut -c1-16)-${t##*.}"
  mv -T "$t" "$final"
  [[ -d "$MINE" && ! -L "$MINE" ]] && rm -rf "$MINE"
  switch_link "$MINE" "$final"
  local d p
  for d in "$CHECKOUTS/.$KEY"-*; do
    [[ "$d" == "$final" ]] || rm -rf "$d"
  done
  # Images of checkouts that are gone (temporary clones) go too.
  for d in "$CHECKOUTS"/*; do
    [[ -L "$d" && "$d" != "$MINE" ]] || continue
    p=$(cat "$d/project" 2>/dev/null || true)
    if [[ -z "$p" || ! -f "$p/guest/init" ]]; then
      rm -rf "$CHECKOUTS/$(readlink "$d")" "$d"
    fi
  done
  log "ready: $MINE (project $PROJECT)"
}

if [[ $force == 0 ]] && complete "$OUT" "$stamp"; then
  log "base up to date: $OUT (kernel $kver)"
  publish_checkout
  exit 0
fi

# --- build the base in a temporary directory next to the output ----------------
tmp=$(mktemp -d "$CACHE/.guest.tmp.XXXXXX")
chmod 755 "$tmp"
cleanup() {
  local rc=$?
  [[ -n "${tmp:-}" && -d "$tmp" ]] && rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "building from $ROOT (kernel $kver) into $OUT"
S="$tmp/initramfs"
mkdir -p "$S"/usr/{bin,sbin,lib/"$MULTIARCH",lib64} \
         "$S"/{dev,proc,sys,tmp,run,root,mnt,host,scenario,etc,var}
# merged /usr, like the root it comes from
ln -s usr/bin "$S/bin"
ln -s usr/sbin "$S/sbin"
ln -s usr/lib "$S/lib"
ln -s usr/lib64 "$S/lib64"
chmod 1777 "$S/tmp"

# Guest path of a file of the root: the root's /lib is /usr/lib, etc.
guest_path() {
  local p=${1#"$ROOT"}
  case $p in
    /lib/*|/lib64/*|/bin/*|/sbin/*) p="/usr$p" ;;
  esac
  printf '%s\n' "$p"
}

# --- programs and their libraries --------------------------------------------
cp "$BUSYBOX" "$S/usr/bin/busybox"
cp "$ROOT/usr/bin/kmod" "$ROOT/usr/bin/cxl" "$ROOT/usr/bin/daxctl" "$S/usr/bin/"
# numactl (membind to a CXL node onlined as System RAM) where the root has it: the QEMU 11 root does.
progs=(bin/kmod bin/cxl bin/daxctl sbin/qemu-ga)
if [[ -x "$ROOT/usr/bin/numactl" ]]; then
  cp "$ROOT/usr/bin/numactl" "$S/usr/bin/"
  progs+=(bin/numactl)
fi
# The QEMU guest agent: /init starts it when cxlmhd.agent=1 (the scenario runner's way in).
cp "$ROOT/usr/sbin/qemu-ga" "$S/usr/sbin/qemu-ga"
for t in modprobe insmod rmmod lsmod modinfo depmod; do
  ln -s ../bin/kmod "$S/usr/sbin/$t"
done
ln -s ../sbin/lsmod "$S/usr/bin/lsmod"
napplets=0
while IFS= read -r a; do
  dest=$(guest_path "/$a")
  [[ -e "$S$dest" || -L "$S$dest" ]] && continue    # kmod and our own tools win
  mkdir -p "$(dirname "$S$dest")"
  ln -s /usr/bin/busybox "$S$dest"
  napplets=$((napplets + 1))
done < <("$BUSYBOX" --list-full)
log "busybox: $napplets applets"

# Shared libraries, resolved by the root's own loader against the root's
# libraries only. kmod 34 dlopen()s liblzma/libzstd (not in NEEDED), so those
# are added by name; with in-kernel decompression they are a fallback.
declare -A libs=()
add_lib() {
  local src=$1
  case $src in "$ROOT"/*) ;; *) die "library $src resolved outside $ROOT" ;; esac
  libs["$src"]=1
}
for b in "${progs[@]}"; do
  out=$(in_root --list "$ROOT/usr/$b") || die "$LDSO --list $b failed: $out"
  if grep -q 'not found' <<<"$out"; then
    die "$b: missing libraries in $ROOT: $(grep 'not found' <<<"$out" | tr -s ' \t' ' ')"
  fi
  while read -r path; do add_lib "$path"; done < <(
    awk '$2=="=>" && $3 ~ /^\// {print $3} $1 ~ /^\// && $2 ~ /^\(/ {print $1}' <<<"$out" | grep -v 'ld-linux' || true)
done
for extra in liblzma.so.5 libzstd.so.1; do
  for d in "$ROOT/usr/lib/$MULTIARCH" "$ROOT/lib/$MULTIARCH"; do
    if [[ -e "$d/$extra" ]]; then add_lib "$d/$extra"; break; fi
  done
done
for src in "${!libs[@]}"; do
  dest=$(guest_path "$src")
  mkdir -p "$(dirname "$S$dest")"
  cp -L "$src" "$S$dest"
done
cp -L "$LDSO" "$S/usr/lib/$MULTIARCH/ld-linux-x86-64.so.2"
ln -s "../lib/$MULTIARCH/ld-linux-x86-64.so.2" "$S/usr/lib64/ld-linux-x86-64.so.2"
log "libraries: ${#libs[@]} + loader"

# --- kernel modules -----------------------------------------------------------
# modules.dep lines: "kernel/a/b.ko.xz: dep1.ko.xz dep2.ko.xz" (already transitive).
declare -A mods=()
norm() { local n=${1##*/}; n=${n%%.ko*}; printf '%s\n' "${n//-/_}"; }
for m in "${MODULES[@]}"; do
  want=$(norm "$m")
  line=$(awk -v w="$want" '{ p=$1; sub(":$","",p); n=p; sub(".*/","",n); sub("\\.ko.*","",n); gsub("-","_",n); if (n==w) {print; exit} }' "$MODDIR/modules.dep")
  if [[ -z "$line" ]]; then
    if grep -Eq "/${want//_/[-_]}\.ko\$" "$MODDIR/modules.builtin"; then
      log "module $m is built into $kver; skipped"
      continue
    fi
    die "module $m not found in $MODDIR/modules.dep"
  fi
  for p in ${line/:/ }; do mods["$p"]=1; done
done
for p in "${!mods[@]}"; do
  mkdir -p "$(dirname "$S/usr/lib/modules/$kver/$p")"
  cp "$MODDIR/$p" "$S/usr/lib/modules/$kver/$p"
done
for f in modules.order modules.builtin modules.builtin.modinfo; do
  [[ -f "$MODDIR/$f" ]] && cp "$MODDIR/$f" "$S/usr/lib/modules/$kver/"
done
# depmod on the subset, so modprobe's indexes list only modules that exist.
if ! in_root --argv0 depmod "$ROOT/usr/bin/kmod" -b "$S/usr" "$kver" 2>"$tmp/depmod.err"; then
  cat "$tmp/depmod.err" >&2
  die "depmod failed"
fi
[[ -s "$S/usr/lib/modules/$kver/modules.dep" ]] || die "depmod wrote no modules.dep"
log "modules: ${#mods[@]} files for: ${MODULES[*]}"

# --- our own files ------------------------------------------------------------
install -m 0755 "$GUEST_SRC/init" "$S/init"
install -m 0755 "$GUEST_SRC/cxl-mhd" "$S/usr/bin/cxl-mhd"
ln -s cxl-mhd "$S/usr/bin/node"     # the same wrapper, running the host's Node itself
install -m 0755 "$GUEST_SRC/cxl-mhd-devdax" "$S/usr/bin/cxl-mhd-devdax"
for tool in daxpoke daxstream daxatomic; do
  "$CC" -std=c11 -O2 -Wall -Wextra -static -o "$S/usr/bin/$tool" "$GUEST_SRC/$tool.c" \
    || die "cannot build $tool with $CC -static (needs the C library's static archive, libc6-dev)"
  strip "$S/usr/bin/$tool" 2>/dev/null || true
done
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$S/etc/passwd"
printf 'root:x:0:\n' >"$S/etc/group"
ln -s /proc/mounts "$S/etc/mtab"
printf '%s\n' "$kver" >"$S/etc/cxlmhd-kernel"
# The kernel's built-in initramfs already has /dev/console; adding it here as
# well makes the image independent of that (possible only as root).
if [[ $(id -u) == 0 ]]; then
  mknod -m 600 "$S/dev/console" c 5 1
  mknod -m 666 "$S/dev/null" c 1 3
fi

# Smoke test on the host: the copied programs start against the copied libraries.
for b in bin/cxl bin/daxctl bin/kmod sbin/qemu-ga; do
  "$S/usr/lib/$MULTIARCH/ld-linux-x86-64.so.2" --library-path "$S/usr/lib/$MULTIARCH" \
    "$S/usr/$b" --version >/dev/null 2>&1 || die "$b does not start from the staged libraries"
done

# --- archive ----------------------------------------------------------------
log "packing initramfs"
(cd "$S" && find . -mindepth 1 | LC_ALL=C sort | "$BUSYBOX" cpio -o -H newc -R 0:0 2>/dev/null) \
  | gzip -6 -n >"$tmp/initramfs.cpio.gz"
cp "$ROOT/boot/vmlinuz-$kver" "$tmp/vmlinuz"
{
  printf 'kernel %s\n' "$kver"
  pkg_versions | sed 's/^/package /'
  for p in "${!mods[@]}"; do norm "$p"; done | sort | sed 's/^/module /'
  (cd "$S" && find . -mindepth 1 ! -type d | LC_ALL=C sort | sed 's/^\./file /')
} >"$tmp/contents.txt"
printf '%s\n' "$stamp" >"$tmp/.stamp"
rm -rf "$S" "$tmp/depmod.err"

# Publish: $OUT is a symlink to a versioned directory, switched by rename(2),
# so a reader always finds a complete image (old or new) at the same paths.
final="$CACHE/.$BASE_NAME@${stamp:0:16}"
rm -rf "$final"
mv -T "$tmp" "$final"
tmp=""
if [[ -d "$OUT" && ! -L "$OUT" ]]; then
  rm -rf "$OUT"                       # a plain directory from an older layout
fi
switch_link "$OUT" "$final"
for d in "$CACHE/.$BASE_NAME@"*; do
  [[ "$d" == "$final" ]] || rm -rf "$d"
done
# Bases named the older way (.guest-<stamp>), which no link points to any more.
[[ "$BASE_NAME" == guest ]] && rm -rf "$CACHE"/.guest-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]*
log "base ready: $OUT/vmlinuz ($(du -h "$OUT/vmlinuz" | cut -f1)), $OUT/initramfs.cpio.gz ($(du -h "$OUT/initramfs.cpio.gz" | cut -f1))"
publish_checkout
