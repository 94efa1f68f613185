#!/usr/bin/env bash
# `make install` / `make uninstall`: puts the built checkout under
# $DESTDIR$PREFIX the way a package would. Layout:
#   $BINDIR/cxl-mhd                  wrapper: exec $NODE .../dist/src/cli/main.js
#   $LIBDIR/cxl-mhd/                 package.json, dist/src, dist/guest/cxl-mhd-fm (the static guest FM client, to copy into guests), the addon, production node_modules
#   $UNITDIR/cxl-mhd@.service        the systemd template unit
#   $SYSUSERSDIR/cxl-mhd.conf        the cxl-mhd user, for systemd-sysusers
#   $DOCDIR/                         pool.conf.example, operations.md
# The package dir is assembled beside its target and renamed into place, so a
# failed install leaves the previous one (or nothing) behind.
set -euo pipefail
cd "$(dirname "$0")/.."
action=${1:?install or uninstall}
: "${PREFIX:=/usr/local}" "${DESTDIR:=}"
: "${BINDIR:=$PREFIX/bin}" "${LIBDIR:=$PREFIX/lib}" "${UNITDIR:=$PREFIX/lib/systemd/system}"
: "${SYSUSERSDIR:=$PREFIX/lib/sysusers.d}" "${DOCDIR:=$PREFIX/share/doc/cxl-mhd}"
: "${CREATE_USER:=auto}"
for d in PREFIX BINDIR LIBDIR UNITDIR SYSUSERSDIR DOCDIR; do
  case ${!d} in /*) ;; *) echo "install: $d must be an absolute path (got '${!d}')" >&2; exit 2 ;; esac
done
pkg=$LIBDIR/cxl-mhd
bin=$BINDIR/cxl-mhd
unit=$UNITDIR/cxl-mhd@.service
sysusers=$SYSUSERSDIR/cxl-mhd.conf
systemd_running() { [ -z "$DESTDIR" ] && [ -d /run/systemd/system ]; }

if [ "$action" = uninstall ]; then
  rm -rf "$DESTDIR$pkg" "$DESTDIR$DOCDIR"
  rm -f "$DESTDIR$bin" "$DESTDIR$unit" "$DESTDIR$sysusers"
  if systemd_running; then systemctl daemon-reload || true; fi
  echo "removed cxl-mhd from $DESTDIR$PREFIX (kept: /etc/cxl-mhd, /var/lib/cxl-mhd, the cxl-mhd user, pools in /dev/shm)"
  exit 0
fi

node=${NODE:-$(command -v node || true)}
[ -x "$node" ] || { echo "install: no node to run cxl-mhd with (set NODE=/path/to/node)" >&2; exit 1; }
for f in dist/src/cli/main.js dist/guest/cxl-mhd-fm native/build/Release/cxl_mhd.node; do
  [ -e "$f" ] || { echo "install: $f is missing; run 'make build' first" >&2; exit 1; }
done

mkdir -p "$DESTDIR$LIBDIR"
stage=$(mktemp -d "$DESTDIR$LIBDIR/.cxl-mhd.XXXXXX")
trap 'rm -rf "$stage"' EXIT
echo "install: assembling $DESTDIR$pkg"
cp package.json package-lock.json "$stage/"
mkdir -p "$stage/dist/guest" "$stage/native/build/Release"
cp -r dist/src "$stage/dist/"
cp dist/guest/cxl-mhd-fm "$stage/dist/guest/"
cp native/build/Release/cxl_mhd.node "$stage/native/build/Release/"
# The locked production dependencies only; the addon is already built. The
# npm_config_* of an outer npm run (global, prefix) must not leak in.
(cd "$stage" && env $(env | sed -n 's/^\(npm_config_[^=]*\)=.*/-u \1/p') \
  npm ci --omit=dev --ignore-scripts --no-audit --no-fund --prefer-offline --loglevel=error)
chmod -R u=rwX,go=rX "$stage"

rm -rf "$DESTDIR$pkg.old"
[ -e "$DESTDIR$pkg" ] && mv "$DESTDIR$pkg" "$DESTDIR$pkg.old"
mv "$stage" "$DESTDIR$pkg"
trap - EXIT
rm -rf "$DESTDIR$pkg.old"

install -d "$DESTDIR$BINDIR" "$DESTDIR$UNITDIR" "$DESTDIR$SYSUSERSDIR" "$DESTDIR$DOCDIR"
sq() { printf "'%s'" "${1//\'/\'\\\'\'}"; } # one word for sh
{
  echo '#!/bin/sh'
  echo "# Installed by cxl-mhd's make install: the installed copy, run by the node it was built for."
  echo "exec $(sq "$node") $(sq "$pkg/dist/src/cli/main.js") \"\$@\""
} >"$DESTDIR$bin.tmp"
chmod 0755 "$DESTDIR$bin.tmp"
mv "$DESTDIR$bin.tmp" "$DESTDIR$bin"
sed -e "s|@BINDIR@|$BINDIR|g" -e "s|@DOCDIR@|$DOCDIR|g" 'packaging/cxl-mhd@.service.in' >"$DESTDIR$unit.tmp"
chmod 0644 "$DESTDIR$unit.tmp"
mv "$DESTDIR$unit.tmp" "$DESTDIR$unit"
install -m 0644 packaging/cxl-mhd.sysusers "$DESTDIR$sysusers"
install -m 0644 packaging/pool.conf.example docs/operations.md "$DESTDIR$DOCDIR/"
echo "install: $DESTDIR$bin, $DESTDIR$unit"

# The service user: created now only on the real system, as root, with
# systemd-sysusers; a staged (DESTDIR) install leaves it to the package.
if [ "$CREATE_USER" = yes ] || { [ "$CREATE_USER" = auto ] && [ -z "$DESTDIR" ] && [ "$(id -u)" = 0 ] && command -v systemd-sysusers >/dev/null; }; then
  systemd-sysusers "$sysusers"
  echo "install: user cxl-mhd: $(id cxl-mhd)"
fi
if systemd_running; then systemctl daemon-reload || true; fi
exit 0
