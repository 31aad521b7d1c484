#!/usr/bin/env bash
# Build the Debian package ubdm_<version>_<arch>.deb from a configured build
# tree: `cmake --install --prefix /usr --strip` into a staging directory,
# the package's metadata beside it, then `dpkg-deb --build`.
#
#   tools/package.sh [BUILD_DIR [OUT_DIR]]
#
#   BUILD_DIR  a configured CMake tree (default build/release); its ubdmd,
#              ubdmsetup and man pages (target `man`, help2man) are brought
#              up to date first
#   OUT_DIR    where the .deb goes (default build/package); OUT_DIR/stage is
#              the tree it was made from
#
# The version is the one CMakeLists.txt's project() gives the build tree
# (CMAKE_PROJECT_VERSION), the one the binaries print. The maintainer is
# packaging/debian/control.in's unless UBDM_MAINTAINER is set. Dates (man
# pages, changelog, file times) come from SOURCE_DATE_EPOCH, by default the
# last commit's, so one tree gives one package. Prints the .deb's path on
# stdout (the build's progress goes to stderr).
# tests/package/check.sh checks the result (tools/test.sh runs both).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build/release}
out=${2:-$root/build/package}
mkdir -p "$out"
# Absolute: dpkg-shlibdeps runs in a directory of its own.
out=$(cd "$out" && pwd)
jobs=${UBDM_JOBS:-$(nproc)}
die() { echo "package: $*" >&2; exit 1; }

for tool in cmake dpkg-deb dpkg-shlibdeps help2man gzip; do
  command -v "$tool" >/dev/null || die "$tool not found (tools/install-deps.sh installs it)"
done
[ -f "$build/CMakeCache.txt" ] || die "$build is not a configured build tree (cmake -S . -B $build)"
version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$build/CMakeCache.txt")
[ -n "$version" ] || die "no CMAKE_PROJECT_VERSION in $build/CMakeCache.txt (project() without VERSION?)"
arch=$(dpkg --print-architecture)
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH=$(git -C "$root" log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH
umask 022

# Progress goes to stderr: stdout is the .deb's path alone.
cmake --build "$build" -j "$jobs" --target ubdmd ubdmsetup man >&2

stage=$out/stage
rm -rf "$stage"
mkdir -p "$stage"
DESTDIR=$stage cmake --install "$build" --prefix /usr --strip >/dev/null
# What dh_strip and dh_compress would do: --strip leaves the compiler's
# .comment and .note sections; Debian ships man pages gzipped.
strip --remove-section=.comment --remove-section=.note "$stage"/usr/sbin/*
gzip -9nf "$stage"/usr/share/man/man8/*.8
# The overrides of lintian's tags that do not apply (the file says why).
install -D -m 0644 "$root/packaging/debian/lintian-overrides" "$stage/usr/share/lintian/overrides/ubdm"

# Debian's documentation files: the licence, in the machine-readable
# format, its text taken from LICENSE (the lines after its Copyright line);
# a changelog (a native package's is changelog.gz), one entry for this build.
doc=$stage/usr/share/doc/ubdm
mkdir -p "$doc"
copyright=$(sed -n 's/^Copyright (c) //p' "$root/LICENSE" | head -n 1)
[ -n "$copyright" ] || die "LICENSE has no 'Copyright (c)' line"
{
  sed "s/@COPYRIGHT@/$copyright/" "$root/packaging/debian/copyright.in"
  sed '1,/^Copyright (c)/d' "$root/LICENSE" | sed '/./,$!d' | sed 's/^$/./; s/^/ /'
} >"$doc/copyright"

maintainer=${UBDM_MAINTAINER:-$(sed -n 's/^Maintainer: //p' "$root/packaging/debian/control.in")}
[ -n "$maintainer" ] || die "no maintainer: set UBDM_MAINTAINER or a Maintainer: line in packaging/debian/control.in"
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=''
if [ "$commit" != unknown ] && ! git -C "$root" diff --quiet HEAD 2>/dev/null; then
  dirty=' plus uncommitted changes'
fi
{
  printf 'ubdm (%s) unstable; urgency=medium\n\n' "$version"
  printf '  * Built from the ubdm tree at commit %s%s.\n\n' "$commit" "$dirty"
  printf ' -- %s  %s\n' "$maintainer" "$(LC_ALL=C date -u -R -d "@$SOURCE_DATE_EPOCH")"
} | gzip -9n >"$doc/changelog.gz"

# The control files. Depends: the libraries the binaries link, as
# dpkg-shlibdeps finds them (it reads a debian/control, hence the scratch one).
meta=$stage/DEBIAN
mkdir -p "$meta"
shl=$(mktemp -d)
trap 'rm -rf "$shl"' EXIT
mkdir "$shl/debian"
printf 'Source: ubdm\n\nPackage: ubdm\nArchitecture: any\n' >"$shl/debian/control"
depends=$(cd "$shl" && dpkg-shlibdeps -O "$stage/usr/sbin/ubdmd" "$stage/usr/sbin/ubdmsetup" |
  sed -n 's/^shlibs:Depends=//p')
[ -n "$depends" ] || die "dpkg-shlibdeps found no dependencies"
installed_size=$(du -s -k --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s|^Maintainer: .*|Maintainer: $maintainer|" \
    -e "s/@INSTALLED_SIZE@/$installed_size/" -e "s/@DEPENDS@/$depends/" \
    "$root/packaging/debian/control.in" >"$meta/control"
# Every file under /etc is a conffile (there are none today: maps.d ships
# empty); dpkg then keeps the administrator's edits across upgrades.
if [ -d "$stage/etc" ]; then
  (cd "$stage" && find etc -type f | sort | sed 's|^|/|') >"$meta/conffiles"
  [ -s "$meta/conffiles" ] || rm -f "$meta/conffiles"
fi
(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\n' | LC_ALL=C sort | xargs -d '\n' md5sum) \
  >"$meta/md5sums"
find "$stage" -type d -exec chmod 0755 {} +
find "$stage" -type f -exec chmod 0644 {} +
chmod 0755 "$stage"/usr/sbin/*
find "$stage" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

deb=$out/ubdm_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
echo "$deb"
