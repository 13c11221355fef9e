#!/usr/bin/env bash
# Installs what building and testing rl needs and is missing:
#   - libclang, as bindgen (through clang-sys, used by the redis-module crate) loads it at build time,
#     with clang's builtin headers (stddef.h ...) that it needs to parse redismodule.h: Debian's libclang-dev;
#   - redis-server and redis-cli on PATH: Debian's redis-server (which brings redis-tools).
# As root it uses apt-get; otherwise it prints the exact command and fails.
#
# libclang is searched exactly where and as clang-sys 1.x (runtime loading, Linux) searches it, so a file that only
# looks like libclang (libclang-cpp.so.14, libclangAST.a, a dangling link, a 32-bit library) does not count:
#   names   libclang.so, libclang-*.so, libclang.so.*, libclang-*.so.*, never a name containing "-cpp.";
#           the file must be a 64-bit ELF object;
#   where   only $LIBCLANG_PATH (a directory, or the library itself) when it is set; otherwise the lib directories
#           of `llvm-config --prefix` ($LLVM_CONFIG_PATH or llvm-config on PATH), $LD_LIBRARY_PATH, $LIBRARY_PATH,
#           then /usr/local/llvm*/lib*, /usr/local/lib*/*/*, /usr/local/lib*/*, /usr/local/lib*, /usr/lib*/*/*,
#           /usr/lib*/*, /usr/lib*.
# For tests: RL_DEPS_ROOT (default empty) is prefixed to the fixed directories above and to the builtin header
# directories, and every program (id, apt-get, llvm-config, redis-server, cargo) is looked up on PATH.
set -euo pipefail
shopt -s nullglob

root=${RL_DEPS_ROOT:-}

# True when $1 is a readable 64-bit ELF file (what clang-sys checks before it accepts a library).
is_elf64() {
    local header=
    [[ -f $1 && -r $1 ]] || return 1
    LC_ALL=C IFS= read -r -d '' -n 5 header <"$1" || true
    [[ $header == $'\x7fELF\x02' ]]
}

# Prints every libclang clang-sys would accept in directory $1, one a line.
libclang_in() {
    local dir=$1 file name
    [[ -d $dir ]] || return 0
    for file in "$dir"/libclang.so "$dir"/libclang-*.so "$dir"/libclang.so.* "$dir"/libclang-*.so.*; do
        name=${file##*/}
        [[ $name == *-cpp.* ]] && continue
        is_elf64 "$file" && printf '%s\n' "$file"
    done
    return 0
}

# Prints every libclang clang-sys would find, in its order of search.
find_libclang() {
    local dir prefix file dirs=()
    if [[ -n ${LIBCLANG_PATH:-} ]]; then
        # The variable names the library itself, or the one directory to search.
        if [[ -f $LIBCLANG_PATH ]]; then
            while IFS= read -r file; do
                [[ ${file##*/} == "${LIBCLANG_PATH##*/}" ]] && printf '%s\n' "$file"
            done < <(libclang_in "$(parent "$LIBCLANG_PATH")")
        else
            libclang_in "$LIBCLANG_PATH"
        fi
        return 0
    fi
    if prefix=$("${LLVM_CONFIG_PATH:-llvm-config}" --prefix 2>/dev/null) && [[ -n $prefix ]]; then
        prefix=${prefix%%$'\n'*}
        dirs+=("$prefix/bin" "$prefix/lib" "$prefix/lib64")
    fi
    IFS=: read -r -a file <<<"${LD_LIBRARY_PATH:-}" && dirs+=("${file[@]}")
    IFS=: read -r -a file <<<"${LIBRARY_PATH:-}" && dirs+=("${file[@]}")
    dirs+=("$root"/usr/local/llvm*/lib* "$root"/usr/local/lib*/*/* "$root"/usr/local/lib*/* "$root"/usr/local/lib*)
    dirs+=("$root"/usr/lib*/*/* "$root"/usr/lib*/* "$root"/usr/lib*)
    for dir in "${dirs[@]}"; do
        [[ -n $dir ]] && libclang_in "$dir"
    done
    return 0
}

# The directory part of path $1 (no external program: tests run with a PATH of stubs only).
parent() {
    if [[ $1 == */* ]]; then printf '%s\n' "${1%/*}"; else printf '.\n'; fi
}

# True when clang's builtin headers (its resource directory, shipped by libclang-common-*-dev on Debian) exist next
# to a library found, or in the usual places (Debian's libclang looks in /usr/include/clang/<version>/include).
# Without them libclang loads but redismodule.h fails: "fatal error: 'stddef.h' file not found".
has_builtin_headers() {
    local lib dir header
    for lib in "$@"; do
        dir=$(parent "$lib")
        for header in "$dir"/clang/*/include/stddef.h "$dir"/../lib*/clang/*/include/stddef.h; do
            [[ -f $header ]] && return 0
        done
    done
    for header in "$root"/usr/include/clang/*/include/stddef.h "$root"/usr/lib/llvm-*/lib*/clang/*/include/stddef.h \
        "$root"/usr/lib*/clang/*/include/stddef.h \
        "$root"/usr/local/lib*/clang/*/include/stddef.h "$root"/usr/local/llvm*/lib*/clang/*/include/stddef.h; do
        [[ -f $header ]] && return 0
    done
    return 1
}

libclang_ok() {
    local libs=()
    mapfile -t libs < <(find_libclang)
    [[ ${#libs[@]} -gt 0 ]] && has_builtin_headers "${libs[@]}"
}

redis_ok() {
    command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1
}

missing_packages() {
    missing=()
    libclang_ok || missing+=(libclang-dev)
    redis_ok || missing+=(redis-server)
}

command -v cargo >/dev/null 2>&1 || {
    echo "cargo not found: install Rust (https://rustup.rs) first" >&2
    exit 1
}

missing_packages
[[ ${#missing[@]} -eq 0 ]] && exit 0

cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y ${missing[*]}"
if ! command -v apt-get >/dev/null 2>&1; then
    echo "missing: ${missing[*]} (Debian package names), and there is no apt-get here." >&2
    echo "Install libclang (a libclang.so with clang's headers) and redis-server with your package manager," >&2
    echo "or set LIBCLANG_PATH to the directory holding libclang.so." >&2
    exit 1
fi
if [[ $(id -u) != 0 ]]; then
    echo "missing: ${missing[*]}. Run as root:" >&2
    echo "  sudo sh -c '$cmd'" >&2
    exit 1
fi

echo "installing: ${missing[*]}"
apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"

# The packages are installed: what the build needs must now be found, or the build would fail later, less clearly.
missing_packages
if [[ ${#missing[@]} -ne 0 ]]; then
    echo "still missing after apt-get install: ${missing[*]}" >&2
    echo "(libclang is searched where bindgen searches it; set LIBCLANG_PATH to the directory holding libclang.so)" >&2
    exit 1
fi
