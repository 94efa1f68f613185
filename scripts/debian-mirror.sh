# shellcheck shell=bash
# Sourced by scripts/setup-qemu.sh and scripts/fetch-quickjs.sh: which Debian
# mirror to download from.
# The mirror comes from this machine's apt configuration: it is the one known
# to be reachable here, and a mirror host name must never be baked into the repo.
host_codename() {
  # shellcheck disable=SC1091
  (. /etc/os-release 2>/dev/null && printf '%s\n' "${VERSION_CODENAME:-}")
}

mirror_from_deb822() {
  local codename=$1 f
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f "$f" ]] || continue
    # Stanzas are blank-line separated; keys are case-insensitive.
    awk -v want="$codename" '
      function flush() {
        if (enabled && types ~ /(^|[ \t])deb([ \t]|$)/ && uris != "") {
          n = split(suites, s, /[ \t]+/)
          for (i = 1; i <= n; i++) if (s[i] == want) { split(uris, u, /[ \t]+/); print u[1]; exit }
        }
        types = ""; suites = ""; uris = ""; enabled = 1
      }
      BEGIN { enabled = 1 }
      /^[ \t]*$/ { flush(); next }
      /^[ \t]*#/ { next }
      {
        line = $0; key = tolower(line); sub(/:.*/, "", key); sub(/^[^:]*:[ \t]*/, "", line)
        if (key == "types") types = line
        else if (key == "suites") suites = line
        else if (key == "uris") uris = line
        else if (key == "enabled" && tolower(line) == "no") enabled = 0
      }
      END { flush() }
    ' "$f"
  done | head -n1
}

mirror_from_list() {
  local codename=$1
  # "deb [opts] URI suite components..."
  cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
    sed -e 's/#.*//' -e 's/\[[^]]*\]//' |
    awk -v want="$codename" '$1 == "deb" && $3 == want { print $2; exit }'
}

# debian_mirror: CXL_MHD_MIRROR, else the first mirror apt uses for this
# host's release (or bookworm, trixie); no trailing slash. Fails if none.
debian_mirror() {
  local mirror="${CXL_MHD_MIRROR:-}" codename suite
  if [[ -z "$mirror" ]]; then
    codename=$(host_codename)
    for suite in ${codename:+"$codename"} bookworm trixie; do
      mirror=$(mirror_from_deb822 "$suite")
      [[ -n "$mirror" ]] || mirror=$(mirror_from_list "$suite")
      [[ -n "$mirror" ]] && break
    done
  fi
  [[ -n "$mirror" ]] || return 1
  printf '%s\n' "${mirror%/}"
}
