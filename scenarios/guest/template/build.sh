#!/bin/sh
# Builds the template guest with gcc and binutils only, no CMake: the command of
# scenarios/guest/boot.md §5.2, which is what scenarios/CMakeLists.txt runs for every
# shipped guest (ctest docs.guest_template checks that the flags stay the same).
#
# usage: build.sh [OUTDIR]     writes OUTDIR/template.elf (default OUTDIR: this directory)
# environment: CC (default gcc; the flags are gcc's), OPT (default -O2; -O0 and -Os work too)
set -eu
export LC_ALL=C  # the runtime's sources are linked in byte order of their names, as CMake does

here=$(cd "$(dirname "$0")" && pwd)
lib=$here/../lib
out=${1:-$here}
cc=${CC:-gcc}
opt=${OPT:--O2}

mkdir -p "$out"
set -- "$lib"/*.c "$lib"/*.S "$here/main.c"
# Link to a temporary name and rename, so a reader never sees a half-written image.
"$cc" "$opt" \
  -std=gnu11 -ffreestanding -fno-pic -fno-pie -mno-red-zone -mgeneral-regs-only \
  -fno-stack-protector -fno-asynchronous-unwind-tables -fno-tree-loop-distribute-patterns \
  -fcf-protection=none -Wall -Wextra -I"$lib" \
  "$@" \
  -nostdlib -static -no-pie -Wl,-T,"$lib/guest.ld" -Wl,--build-id=none \
  -Wl,-z,max-page-size=4096 -Wl,-z,noexecstack -Wl,--no-warn-rwx-segments \
  -o "$out/template.elf.tmp"
mv "$out/template.elf.tmp" "$out/template.elf"
echo "$out/template.elf"
