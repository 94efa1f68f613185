#!/usr/bin/env bash
# Provides Debian trixie's libquickjs (QuickJS's static library and headers)
# for the guest FM client (scripts/build-fm-client.mjs), downloaded from the
# Debian mirror apt uses here and checked the way apt checks it: InRelease's
# signature against the Debian archive keyring, the Packages index's SHA256
# from InRelease, the .deb's SHA256 from the index. Cached; prints the
# directory (with usr/include/quickjs and usr/lib/<arch>/quickjs/libquickjs.a).
#
# Environment:
#   CXL_MHD_CACHE   cache dir (default ${XDG_CACHE_HOME:-$HOME/.cache}/cxl-mhd)
#   CXL_MHD_MIRROR  Debian mirror URL (default: taken from apt's configuration)
#   CXL_MHD_KEYRING keyring for InRelease (default /usr/share/keyrings/debian-archive-keyring.gpg)
set -euo pipefail

SUITE=trixie
PACKAGE=libquickjs
ARCH=amd64
CACHE="${CXL_MHD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cxl-mhd}"
OUT="$CACHE/quickjs"
KEYRING="${CXL_MHD_KEYRING:-/usr/share/keyrings/debian-archive-keyring.gpg}"

log() { printf '[quickjs] %s\n' "$*" >&2; }
die() { printf '[quickjs] error: %s\n' "$*" >&2; exit 1; }

if [[ -f "$OUT/.complete" ]]; then
  printf '%s\n' "$OUT"
  exit 0
fi

# shellcheck source=scripts/debian-mirror.sh
. "$(dirname "$0")/debian-mirror.sh"
mirror=$(debian_mirror) || die "no Debian mirror found in apt's configuration; set CXL_MHD_MIRROR=<url>"
for tool in gpgv xz dpkg-deb sha256sum; do
  command -v "$tool" >/dev/null || die "needs $tool"
done
[[ -f "$KEYRING" ]] || die "no Debian archive keyring at $KEYRING (package debian-archive-keyring; or set CXL_MHD_KEYRING)"

mkdir -p "$CACHE"
tmp=$(mktemp -d "$CACHE/.quickjs.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

if command -v curl >/dev/null; then
  get() { curl -fsSL --retry 3 -o "$2" "$1" || die "cannot download $1"; }
elif command -v wget >/dev/null; then
  get() { wget -q --tries=3 -O "$2" "$1" || die "cannot download $1"; }
else
  die "needs curl or wget"
fi
sha_ok() { [[ "$(sha256sum "$1" | cut -d' ' -f1)" == "$2" ]]; }

log "fetching $PACKAGE from $mirror ($SUITE)"
get "$mirror/dists/$SUITE/InRelease" "$tmp/InRelease"
gpgv --keyring "$KEYRING" --output "$tmp/Release" "$tmp/InRelease" 2>"$tmp/gpgv.log" ||
  { cat "$tmp/gpgv.log" >&2; die "InRelease of $SUITE does not verify against $KEYRING"; }
index=main/binary-$ARCH/Packages.xz
index_sha=$(awk -v f="$index" '/^SHA256:/{on=1; next} /^[^ ]/{on=0} on && $3==f {print $1; exit}' "$tmp/Release")
[[ -n "$index_sha" ]] || die "the $SUITE Release lists no $index"
get "$mirror/dists/$SUITE/$index" "$tmp/Packages.xz"
sha_ok "$tmp/Packages.xz" "$index_sha" || die "$index does not match its SHA256 in the signed Release"
read -r filename deb_sha version < <(xz -dc "$tmp/Packages.xz" | awk -v p="$PACKAGE" '
  /^Package: /{on=($2==p)} on && /^Filename: /{f=$2} on && /^SHA256: /{s=$2} on && /^Version: /{v=$2}
  /^$/ && on && f!="" {print f, s, v; exit}') || true
[[ -n "${filename:-}" && -n "${deb_sha:-}" ]] || die "$PACKAGE is not in $SUITE's $index"
get "$mirror/$filename" "$tmp/pkg.deb"
sha_ok "$tmp/pkg.deb" "$deb_sha" || die "$filename does not match its SHA256 in the Packages index"
dpkg-deb -x "$tmp/pkg.deb" "$tmp/root"
[[ -f "$tmp/root/usr/include/quickjs/quickjs.h" ]] || die "$filename has no usr/include/quickjs/quickjs.h"
printf '%s %s\n' "$PACKAGE" "$version" >"$tmp/root/.complete"
rm -rf "$OUT"
mv -T "$tmp/root" "$OUT"
log "$PACKAGE $version ready in $OUT"
printf '%s\n' "$OUT"
