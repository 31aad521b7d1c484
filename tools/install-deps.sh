#!/usr/bin/env bash
# Install the Debian packages ubdm needs to build and test, plus any package
# names given as arguments. Idempotent: it only calls apt-get when something
# is missing. (The test VM's own packages are installed by tools/vm/fetch.sh.)
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  liburing-dev libfmt-dev libspdlog-dev libcli11-dev nlohmann-json3-dev libsystemd-dev
  libcpp-httplib-dev         # the opt-in Prometheus endpoint of ubdmd
  libsgutils2-dev            # SG_IO commands (INQUIRY, REPORT TARGET PORT GROUPS) of the alua prioritizer
  libgtest-dev libgmock-dev libbenchmark-dev
  clang libclang-rt-14-dev   # the fuzzers: libFuzzer and clang's ASan/UBSan runtimes
  libtsan2                   # the ThreadSanitizer build of the unit tests (gcc's runtime)
  util-linux   # losetup for the integration tests
  # The Debian package (tools/package.sh, tests/package/check.sh):
  dpkg-dev     # dpkg-shlibdeps, for the package's Depends
  help2man     # the man pages, made from the binaries' --help
  lintian      # checks the package against Debian policy
  systemd      # systemd-analyze verify, for the unit
  man-db       # man -l: the check renders the pages
  "$@"
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
  sudo_cmd=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -q
"${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
