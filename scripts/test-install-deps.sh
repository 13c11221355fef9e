#!/usr/bin/env bash
# Tests scripts/install-deps.sh against fake file system roots and a PATH holding only stubs: nothing is installed and
# the real apt-get is never reachable. Each case builds a root (RL_DEPS_ROOT) and a bin directory, runs the script with
# an empty environment and checks its exit status, what the stub apt-get was asked, and what the script printed.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
script=$here/install-deps.sh
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir_bin=$(command -v mkdir)
chmod_bin=$(command -v chmod)
failures=0
n=0

# A file clang-sys accepts as a library: a 64-bit ELF header is what it checks.
elf64() { mkdir -p "$(dirname "$1")" && printf '\177ELF\002\001\001\000' >"$1"; }
elf32() { mkdir -p "$(dirname "$1")" && printf '\177ELF\001\001\001\000' >"$1"; }
# clang's builtin headers, as libclang-common-*-dev ships them.
headers() { mkdir -p "$1/clang/14.0.6/include" && : >"$1/clang/14.0.6/include/stddef.h"; }
# A program on the stub PATH.
program() { printf '#!%s\nexit 0\n' "$BASH" >"$bin/$1" && chmod +x "$bin/$1"; }

# A fresh case: an empty root, a bin directory with cargo, id (answering $2, a uid) and an apt-get that records its
# arguments and, on `install`, installs (as Debian's packages would) what it is asked to unless $1 is "inert".
new_case() {
    n=$((n + 1))
    root=$work/$n/root
    bin=$work/$n/bin
    log=$work/$n/apt-get.log
    mkdir -p "$root" "$bin"
    : >"$log"
    program cargo
    printf '#!%s\necho %s\n' "$BASH" "$2" >"$bin/id"
    chmod +x "$bin/id"
    cat >"$bin/apt-get" <<EOF
#!$BASH
echo "DEBIAN_FRONTEND=\${DEBIAN_FRONTEND:-} \$*" >>"$log"
[ "$1" = inert ] && exit 0
[ "\$1" = install ] || exit 0
for package in "\$@"; do
    case \$package in
    libclang-dev)
        "$mkdir_bin" -p "$root/usr/lib/llvm-14/lib/clang/14.0.6/include"
        printf '\177ELF\002' >"$root/usr/lib/llvm-14/lib/libclang-14.so.1"
        : >"$root/usr/lib/llvm-14/lib/clang/14.0.6/include/stddef.h" ;;
    redis-server)
        printf '#!$BASH\n' >"$bin/redis-server"; printf '#!$BASH\n' >"$bin/redis-cli"
        "$chmod_bin" +x "$bin/redis-server" "$bin/redis-cli" ;;
    esac
done
EOF
    chmod +x "$bin/apt-get"
}

# Runs the script in the current case; extra NAME=VALUE arguments go into its environment.
run() {
    set +e
    env -i PATH="$bin" RL_DEPS_ROOT="$root" "$@" "$BASH" "$script" >"$work/$n/out" 2>&1
    status=$?
    set -e
}

check() {
    local name=$1 want_status=$2 want_log=$3 want_out=${4:-}
    local ok=1
    if [[ $want_status == 0 && $status != 0 ]] || [[ $want_status != 0 && $status == 0 ]]; then ok=0; fi
    [[ $(cat "$log") == "$want_log" ]] || ok=0
    [[ -z $want_out ]] || grep -qF -- "$want_out" "$work/$n/out" || ok=0
    if [[ $ok == 1 ]]; then
        echo "ok   $name"
    else
        failures=$((failures + 1))
        echo "FAIL $name: exit $status (want $([[ $want_status == 0 ]] && echo 0 || echo 'non-zero'))"
        echo "  apt-get was asked:"
        sed 's/^/    /' "$log"
        echo "  wanted:"
        printf '%s\n' "$want_log" | sed 's/^/    /'
        [[ -z $want_out ]] || echo "  wanted in the output: $want_out"
        echo "  output:"
        sed 's/^/    /' "$work/$n/out"
    fi
}

both="DEBIAN_FRONTEND= update
DEBIAN_FRONTEND=noninteractive install -y libclang-dev redis-server"
clang_only="DEBIAN_FRONTEND= update
DEBIAN_FRONTEND=noninteractive install -y libclang-dev"
redis_only="DEBIAN_FRONTEND= update
DEBIAN_FRONTEND=noninteractive install -y redis-server"

new_case installs 0
run
check "nothing present: installs libclang-dev and redis-server" 0 "$both" "installing: libclang-dev redis-server"

new_case installs 0
elf64 "$root/usr/lib/llvm-14/lib/libclang-cpp.so.14"
ln -s ../llvm-14/lib/libclang-cpp.so.14 "$root/usr/lib/x86_64-linux-gnu/libclang-cpp.so.14" 2>/dev/null ||
    { mkdir -p "$root/usr/lib/x86_64-linux-gnu" && ln -s ../llvm-14/lib/libclang-cpp.so.14 "$root/usr/lib/x86_64-linux-gnu/libclang-cpp.so.14"; }
elf64 "$root/usr/lib/llvm-14/lib/libclangAST.a"
elf64 "$root/usr/lib/llvm-14/lib/libclang-cpp.so"
headers "$root/usr/lib/llvm-14/lib"
program redis-server
program redis-cli
run
check "only libclang-cpp (and libclang*.a) present: still installs libclang-dev" 0 "$clang_only"

for name in libclang.so libclang-14.so libclang.so.1 libclang-14.so.1; do
    for dir in usr/lib/llvm-14/lib usr/lib/x86_64-linux-gnu usr/lib64 usr/local/lib usr/local/llvm17/lib; do
        new_case installs 0
        elf64 "$root/$dir/$name"
        headers "$root/usr/lib/llvm-14/lib"
        program redis-server
        program redis-cli
        run
        check "real libclang present ($dir/$name): installs nothing" 0 ""
    done
done

new_case installs 0
elf64 "$root/usr/lib/x86_64-linux-gnu/libclang-14.so.14.0.6"
ln -s libclang-14.so.14.0.6 "$root/usr/lib/x86_64-linux-gnu/libclang-14.so.1"
headers "$root/usr/lib/llvm-14/lib"
run
check "real libclang present, redis missing: installs redis-server only" 0 "$redis_only"

new_case installs 0
elf64 "$root/usr/lib/llvm-14/lib/libclang.so.1"
headers "$root/usr/lib/llvm-14/lib"
program redis-server
run
check "redis-server present but not redis-cli: installs redis-server" 0 "$redis_only"

new_case installs 0
elf64 "$root/usr/lib/llvm-14/lib/libclang.so.1"
program redis-server
program redis-cli
run
check "libclang without clang's builtin headers (libclang1 alone): installs libclang-dev" 0 "$clang_only"

new_case installs 0
elf64 "$root/usr/lib/x86_64-linux-gnu/libclang-14.so.1"
mkdir -p "$root/usr/include/clang/14.0.6/include"
: >"$root/usr/include/clang/14.0.6/include/stddef.h"
program redis-server
program redis-cli
run
check "libclang with the headers where Debian's libclang looks (/usr/include/clang): installs nothing" 0 ""

new_case installs 0
elf32 "$root/usr/lib/llvm-14/lib/libclang.so.1"
mkdir -p "$root/usr/lib/x86_64-linux-gnu"
ln -s ../llvm-14/lib/libclang-14.so.1 "$root/usr/lib/x86_64-linux-gnu/libclang-14.so.1"
headers "$root/usr/lib/llvm-14/lib"
program redis-server
program redis-cli
run
check "a 32-bit libclang and a dangling link do not count: installs libclang-dev" 0 "$clang_only"

new_case installs 0
elf64 "$root/usr/lib/llvm-14/lib/libclang.so.1"
headers "$root/usr/lib/llvm-14/lib"
program redis-server
program redis-cli
run LIBCLANG_PATH="$root/opt/empty"
check "LIBCLANG_PATH set: only that directory is searched (and apt-get cannot fill it)" 1 "$clang_only" \
    "still missing after apt-get install: libclang-dev"

new_case installs 0
elf64 "$root/opt/llvm/lib/libclang-17.so"
headers "$root/opt/llvm/lib"
program redis-server
program redis-cli
run LIBCLANG_PATH="$root/opt/llvm/lib"
check "libclang in LIBCLANG_PATH (and nowhere else): installs nothing" 0 ""

new_case installs 0
elf64 "$root/opt/llvm/lib/libclang.so"
headers "$root/opt/llvm/lib"
program redis-server
program redis-cli
run LD_LIBRARY_PATH="/nowhere:$root/opt/llvm/lib"
check "libclang in LD_LIBRARY_PATH: installs nothing" 0 ""

new_case installs 1000
run
check "not root: prints the command, fails, runs nothing" 1 "" \
    "sudo sh -c 'apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y libclang-dev redis-server'"

new_case inert 0
run
check "apt-get installs nothing usable: fails after installing" 1 "$both" "still missing after apt-get install"

new_case installs 0
rm "$bin/apt-get"
run
check "no apt-get: says what is missing and fails" 1 "" "missing: libclang-dev redis-server"

new_case installs 0
rm "$bin/cargo"
run
check "no cargo: fails before anything else" 1 "" "cargo not found"

if [[ $failures -ne 0 ]]; then
    echo "install-deps: $failures of $n cases failed" >&2
    exit 1
fi
echo "install-deps: all $n cases passed"
