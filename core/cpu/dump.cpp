// core/cpu/dump.cpp — register dump in the shape of QEMU's `-d cpu` / `info registers`.
#include <fmt/format.h>

#include "core/cpu/core.h"

namespace pvsim::cpu {

namespace {
std::string flag_letters(uint64_t f) {
  // QEMU prints D O S Z A P C ('-' when clear) after the RFL value.
  std::string s = "[";
  s += (f & fl::DF) ? 'D' : '-';
  s += (f & fl::OF) ? 'O' : '-';
  s += (f & fl::SF) ? 'S' : '-';
  s += (f & fl::ZF) ? 'Z' : '-';
  s += (f & fl::AF) ? 'A' : '-';
  s += (f & fl::PF) ? 'P' : '-';
  s += (f & fl::CF) ? 'C' : '-';
  s += ']';
  return s;
}
std::string seg_line(const char* name, const SegmentCache& s) {
  // QEMU shows the descriptor flags word: access byte at bits 15:8, flags at 23:20.
  const uint32_t flags = (static_cast<uint32_t>(s.attrs & 0xff) << 8) |
                         (static_cast<uint32_t>((s.attrs >> 12) & 0xf) << 20);
  return fmt::format("{}={:04x} {:016x} {:08x} {:08x} DPL={}\n", name, s.selector, s.base, s.limit,
                     flags, (s.attrs >> 5) & 3);
}
}  // namespace

std::string Core::dump() const {
  std::string o;
  o += fmt::format("RAX={:016x} RBX={:016x} RCX={:016x} RDX={:016x}\n", gpr[0], gpr[3], gpr[1],
                   gpr[2]);
  o += fmt::format("RSI={:016x} RDI={:016x} RBP={:016x} RSP={:016x}\n", gpr[6], gpr[7], gpr[5],
                   gpr[4]);
  o += fmt::format("R8 ={:016x} R9 ={:016x} R10={:016x} R11={:016x}\n", gpr[8], gpr[9], gpr[10],
                   gpr[11]);
  o += fmt::format("R12={:016x} R13={:016x} R14={:016x} R15={:016x}\n", gpr[12], gpr[13], gpr[14],
                   gpr[15]);
  o += fmt::format("RIP={:016x} RFL={:08x} {} CPL={} II={} A20=1 SMM=0 HLT={}\n", rip,
                   (flags_value() & fl::kDefined) | fl::Reserved1, flag_letters(flags_value()), cpl,
                   inhibit_at == insns ? 1 : 0, halted ? 1 : 0);
  static const char* const names[6] = {"ES ", "CS ", "SS ", "DS ", "FS ", "GS "};
  for (unsigned s = 0; s < 6; ++s) o += seg_line(names[s], seg[s]);
  o += seg_line("LDT", ldtr);
  o += seg_line("TR ", tr);
  o += fmt::format("GDT=     {:016x} {:08x}\n", gdtr.base, gdtr.limit);
  o += fmt::format("IDT=     {:016x} {:08x}\n", idtr.base, idtr.limit);
  o += fmt::format("CR0={:08x} CR2={:016x} CR3={:016x} CR4={:08x}\n", cr0, cr2, cr3, cr4);
  o += fmt::format("EFER={:016x} CR8={:x} KERNEL_GS_BASE={:016x}\n", efer, get_cr8(),
                   kernel_gs_base);
  o += fmt::format("TSC={:016x} cycles={} instructions={}\n", guest_tsc(), cycles, insns);
  return o;
}

}  // namespace pvsim::cpu
