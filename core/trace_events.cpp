// core/trace_events.cpp — the trace's event table and its print-format renderer (see
// core/trace_event.h and tools/platform/README.md §7).
//
// Each event is described once: name, system, fields (names, C types and order of KVM's
// TP_STRUCT__entry where KVM has the event: arch/x86/kvm/trace.h and
// include/trace/events/kvm.h of Linux 6.x) and the print format in the syntax tracefs
// shows in an event's `format` file. The canonical text line is that format evaluated, so
// `trace-cmd report` on a trace.dat written from the same table prints the same text.
//
// Where KVM's own print format would print something other than pvsim's canonical text
// (which the golden traces pin), the format below differs from KVM's and says why.
//
// The renderer understands exactly the subset the table uses, compiled once per event into
// a flat program (literal pieces, conversions, an expression tree per argument):
//   conversions  %u %d %x %s with the flags '#' and '0', a width, a precision (also "*",
//                taken from an argument), and the length modifiers l / ll (64-bit; without
//                one, %d %u %x print the low 32 bits, as printf does with an int)
//   arguments    REC->field, integer and string literals, __get_str(field),
//                __get_dynamic_array_len(field) (a string's length including its NUL, as
//                a __data_loc word records it), __print_symbolic(expr, { value, "name" }, ...)
//                (an unlisted value prints as 0x%llx, as libtraceevent and the kernel do),
//                C's ?: (string or integer branches), ! and the binary operators
//                * / % + - << >> < <= > >= == != & ^ | && || with C's precedence, and
//                parentheses. A field reads as its bits zero-extended to 64 (what
//                libtraceevent reads from a binary record: a __s8 of -1 is 255 to it), and
//                arithmetic is on 64-bit unsigned values, which is all the table needs.
// Anything else in a print fmt is a programming error, reported when the table is compiled
// (tests/trace/ compiles every event).
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <deque>
#include <memory>
#include <stdexcept>

#include "core/trace_event.h"

namespace pvsim {

namespace {

// ---- the table ----------------------------------------------------------------------------

using T = TraceType;
constexpr const char* kStr = "char[]";  // a __string field: "__data_loc char[] name" in a format file

// VMX_EXIT_REASONS (arch/x86/include/uapi/asm/vmx.h) for the exits pvsim takes.
#define PVSIM_VMX_EXIT_REASONS                                                                         \
  "{ 0, \"EXCEPTION_NMI\" }, { 1, \"EXTERNAL_INTERRUPT\" }, { 2, \"TRIPLE_FAULT\" }, "                 \
  "{ 3, \"INIT_SIGNAL\" }, { 4, \"SIPI_SIGNAL\" }, { 7, \"INTERRUPT_WINDOW\" }, { 8, \"NMI_WINDOW\" }, " \
  "{ 10, \"CPUID\" }, { 12, \"HLT\" }, { 14, \"INVLPG\" }, { 16, \"RDTSC\" }, { 18, \"VMCALL\" }, "       \
  "{ 28, \"CR_ACCESS\" }, { 30, \"IO_INSTRUCTION\" }, { 31, \"MSR_READ\" }, { 32, \"MSR_WRITE\" }, "     \
  "{ 40, \"PAUSE_INSTRUCTION\" }, { 44, \"APIC_ACCESS\" }, { 48, \"EPT_VIOLATION\" }, { 51, \"RDTSCP\" }"

// kvm_trace_sym_exc (arch/x86/kvm/trace.h): the exceptions KVM names.
#define PVSIM_SYM_EXC                                                                                   \
  "{ 0, \"#DE\" }, { 1, \"#DB\" }, { 3, \"#BP\" }, { 4, \"#OF\" }, { 5, \"#BR\" }, { 6, \"#UD\" }, "      \
  "{ 7, \"#NM\" }, { 8, \"#DF\" }, { 10, \"#TS\" }, { 11, \"#NP\" }, { 12, \"#SS\" }, { 13, \"#GP\" }, "  \
  "{ 14, \"#PF\" }, { 16, \"#MF\" }, { 17, \"#AC\" }, { 18, \"#MC\" }"

// kvm_trace_symbol_apic without KVM's newest two, APIC_EFEAT (0x400) and APIC_ECTRL (0x410):
// pvsim's xAPIC has no extended registers and its canonical text prints those offsets as
// numbers.
#define PVSIM_SYM_APIC                                                                                   \
  "{ 0x20, \"APIC_ID\" }, { 0x30, \"APIC_LVR\" }, { 0x80, \"APIC_TASKPRI\" }, { 0x90, \"APIC_ARBPRI\" }, " \
  "{ 0xa0, \"APIC_PROCPRI\" }, { 0xb0, \"APIC_EOI\" }, { 0xc0, \"APIC_RRR\" }, { 0xd0, \"APIC_LDR\" }, "   \
  "{ 0xe0, \"APIC_DFR\" }, { 0xf0, \"APIC_SPIV\" }, { 0x100, \"APIC_ISR\" }, { 0x180, \"APIC_TMR\" }, "    \
  "{ 0x200, \"APIC_IRR\" }, { 0x280, \"APIC_ESR\" }, { 0x300, \"APIC_ICR\" }, { 0x310, \"APIC_ICR2\" }, "  \
  "{ 0x320, \"APIC_LVTT\" }, { 0x330, \"APIC_LVTTHMR\" }, { 0x340, \"APIC_LVTPC\" }, "                      \
  "{ 0x350, \"APIC_LVT0\" }, { 0x360, \"APIC_LVT1\" }, { 0x370, \"APIC_LVTERR\" }, "                        \
  "{ 0x380, \"APIC_TMICT\" }, { 0x390, \"APIC_TMCCT\" }, { 0x3e0, \"APIC_TDCR\" }, "                        \
  "{ 0x3f0, \"APIC_SELF_IPI\" }"

// kvm_deliver_mode (arch/x86/kvm/trace.h), indexed by the ICR's delivery-mode bits.
#define PVSIM_SYM_DELIVERY                                                                              \
  "{ 0x0, \"Fixed\" }, { 0x1, \"LowPrio\" }, { 0x2, \"SMI\" }, { 0x3, \"Res3\" }, { 0x4, \"NMI\" }, "     \
  "{ 0x5, \"INIT\" }, { 0x6, \"SIPI\" }, { 0x7, \"ExtINT\" }"

// "<what>: <detail>", the detail and its ": " left out when it is empty (its __data_loc
// length counts the NUL, so an empty string has length 1).
#define PVSIM_WHAT_DETAIL_FMT \
  "\"%s%s%s\", __get_str(what), __get_dynamic_array_len(detail) > 1 ? \": \" : \"\", __get_str(detail)"

// kvm_exit: KVM's TP_STRUCT__entry. Its format prints the reason through
// kvm_print_exit_reason, which picks VMX or SVM names by `isa` and appends VMX's flag bits;
// pvsim is VMX only (isa = KVM_ISA_VMX = 1) and sets no flag bits, so the format names the
// reason directly.
constexpr TraceFieldDesc kExitF[] = {
    {"exit_reason", T::U32, "unsigned int"}, {"guest_rip", T::U64, "unsigned long"}, {"isa", T::U32, "u32"},
    {"info1", T::U64, "u64"}, {"info2", T::U64, "u64"}, {"intr_info", T::U32, "u32"},
    {"error_code", T::U32, "u32"}, {"vcpu_id", T::U32, "unsigned int"}};
// kvm_entry of Linux 6.10+ (immediate_exit: KVM forced an exit right after entry; pvsim never does).
constexpr TraceFieldDesc kEntryF[] = {
    {"vcpu_id", T::U32, "unsigned int"}, {"rip", T::U64, "unsigned long"}, {"immediate_exit", T::U8, "bool"}};
constexpr TraceFieldDesc kMsrF[] = {
    {"write", T::U32, "unsigned"}, {"ecx", T::U32, "u32"}, {"data", T::U64, "u64"}, {"exception", T::U8, "u8"}};
constexpr TraceFieldDesc kCpuidF[] = {
    {"function", T::U32, "unsigned int"}, {"index", T::U32, "unsigned int"}, {"rax", T::U64, "unsigned long"},
    {"rbx", T::U64, "unsigned long"},     {"rcx", T::U64, "unsigned long"},   {"rdx", T::U64, "unsigned long"},
    {"found", T::U8, "bool"},             {"used_max_basic", T::U8, "bool"}};
constexpr TraceFieldDesc kPioF[] = {
    {"rw", T::U32, "unsigned int"}, {"port", T::U32, "unsigned int"}, {"size", T::U32, "unsigned int"},
    {"count", T::U32, "unsigned int"}, {"val", T::U32, "unsigned int"}};
// kvm_inj_exception of Linux 6.x (with `reinjected`). KVM prints the error code with
// __print_hex (its bytes); pvsim's text has " (0x<hex>)" after the name when the exception
// has one, written here as a precision taken from has_error: "%.0x" of 0 prints nothing.
constexpr TraceFieldDesc kInjExcF[] = {
    {"exception", T::U8, "u8"}, {"has_error", T::U8, "u8"}, {"error_code", T::U32, "u32"}, {"reinjected", T::U8, "bool"}};
// kvm_page_fault of Linux 6.x (vcpu_id and guest_rip added, 64-bit error code).
constexpr TraceFieldDesc kPfF[] = {
    {"vcpu_id", T::U32, "unsigned int"}, {"guest_rip", T::U64, "unsigned long"},
    {"fault_address", T::U64, "u64"}, {"error_code", T::U64, "u64"}};
constexpr TraceFieldDesc kHcF[] = {
    {"nr", T::U64, "unsigned long"}, {"a0", T::U64, "unsigned long"}, {"a1", T::U64, "unsigned long"},
    {"a2", T::U64, "unsigned long"}, {"a3", T::U64, "unsigned long"}};
// kvm_apic with the 64-bit value of Linux 6.x (an x2APIC ICR write is one 64-bit access).
constexpr TraceFieldDesc kApicF[] = {
    {"rw", T::U32, "unsigned int"}, {"reg", T::U32, "unsigned int"}, {"val", T::U64, "u64"}};
constexpr TraceFieldDesc kIpiF[] = {{"icr_low", T::U32, "__u32"}, {"dest_id", T::U32, "__u32"}};
constexpr TraceFieldDesc kAcceptF[] = {
    {"apicid", T::U32, "__u32"}, {"dm", T::U16, "__u16"}, {"tm", T::U16, "__u16"}, {"vec", T::U8, "__u8"}};
constexpr TraceFieldDesc kEoiF[] = {{"apicid", T::U32, "__u32"}, {"vector", T::S32, "int"}};
// kvm_inj_virq of Linux 6.x (soft for INTn, reinjected).
constexpr TraceFieldDesc kVirqF[] = {
    {"irq", T::U32, "unsigned int"}, {"soft", T::U8, "bool"}, {"reinjected", T::U8, "bool"}};
// kvm_pvclock_update: KVM passes REC->tsc_shift to %d, which libtraceevent (trace-cmd)
// prints as 255 for -1: it reads the __s8 zero-extended. pvsim's text has the C value, so
// the format sign-extends it by hand.
constexpr TraceFieldDesc kPvclockF[] = {
    {"vcpu_id", T::U32, "unsigned int"}, {"version", T::U32, "__u32"}, {"tsc_timestamp", T::U64, "__u64"},
    {"system_time", T::U64, "__u64"}, {"tsc_to_system_mul", T::U32, "__u32"}, {"tsc_shift", T::S8, "__s8"},
    {"flags", T::U8, "__u8"}};
constexpr TraceFieldDesc kTlbF[] = {{"vcpu_id", T::U32, "unsigned int"}, {"need_flush_tlb", T::U8, "bool"}};
// include/trace/events/kvm.h: kvm_async_get_page_class, kvm_async_pf_nopresent_ready, and
// kvm_async_pf_completed as of 3.13 (no pfn).
constexpr TraceFieldDesc kGetPageF[] = {{"gva", T::U64, "__u64"}, {"gfn", T::U64, "u64"}};
constexpr TraceFieldDesc kNpReadyF[] = {{"token", T::U64, "__u64"}, {"gva", T::U64, "__u64"}};
constexpr TraceFieldDesc kCompletedF[] = {{"address", T::U64, "unsigned long"}, {"gva", T::U64, "u64"}};
// pvsim's own events (core/trace.h says what each means).
constexpr TraceFieldDesc kPvExcF[] = {
    {"vector", T::U8, "u8"}, {"has_error", T::U8, "bool"}, {"error_code", T::U32, "u32"},
    {"rip", T::U64, "u64"}, {"cr2", T::U64, "u64"}};
constexpr TraceFieldDesc kStopF[] = {{"reason", T::Str, kStr}, {"detail", T::Str, kStr}};
constexpr TraceFieldDesc kWhatDetailF[] = {{"what", T::Str, kStr}, {"detail", T::Str, kStr}};
constexpr TraceFieldDesc kSchedOutF[] = {
    {"vcpu_id", T::U32, "unsigned int"}, {"pcpu", T::U32, "unsigned int"}, {"rip", T::U64, "u64"},
    {"why", T::Str, kStr}, {"until_ns", T::U64, "u64"}};
constexpr TraceFieldDesc kSchedInF[] = {
    {"vcpu_id", T::U32, "unsigned int"}, {"pcpu", T::U32, "unsigned int"}, {"rip", T::U64, "u64"},
    {"run_delay_ns", T::U64, "u64"}};
constexpr TraceFieldDesc kMarkerF[] = {{"text", T::Str, kStr}};

constexpr const char* kGetPageFmt = "\"gva = %#llx, gfn = %#llx\", REC->gva, REC->gfn";
constexpr const char* kNpReadyFmt = "\"token %#llx gva %#llx\", REC->token, REC->gva";
constexpr const char* kEoiFmt = "\"apicid %x vector %d\", REC->apicid, REC->vector";

namespace id = trace_ids;
const TraceEventDesc kTable[] = {
    {id::kvm_exit, "kvm", "kvm_exit", kExitF,
     "\"vcpu %u reason %s rip 0x%lx info1 0x%016llx info2 0x%016llx intr_info 0x%08x error_code 0x%08x\", "
     "REC->vcpu_id, __print_symbolic(REC->exit_reason, " PVSIM_VMX_EXIT_REASONS
     "), REC->guest_rip, REC->info1, REC->info2, REC->intr_info, REC->error_code"},
    {id::kvm_entry, "kvm", "kvm_entry", kEntryF,
     "\"vcpu %u, rip 0x%lx%s\", REC->vcpu_id, REC->rip, REC->immediate_exit ? \"[immediate exit]\" : \"\""},
    {id::kvm_msr, "kvm", "kvm_msr", kMsrF,
     "\"msr_%s %x = 0x%llx%s\", REC->write ? \"write\" : \"read\", REC->ecx, REC->data, "
     "REC->exception ? \" (#GP)\" : \"\""},
    {id::kvm_cpuid, "kvm", "kvm_cpuid", kCpuidF,
     "\"func %x idx %x rax %lx rbx %lx rcx %lx rdx %lx, cpuid entry %s%s\", REC->function, REC->index, REC->rax, "
     "REC->rbx, REC->rcx, REC->rdx, REC->found ? \"found\" : \"not found\", "
     "REC->used_max_basic ? \", used max basic\" : \"\""},
    // KVM's format has a space before the last %s, so a single access ends in a space.
    {id::kvm_pio, "kvm", "kvm_pio", kPioF,
     "\"pio_%s at 0x%x size %d count %d val 0x%x %s\", REC->rw ? \"write\" : \"read\", REC->port, REC->size, "
     "REC->count, REC->val, REC->count > 1 ? \"(...)\" : \"\""},
    {id::kvm_inj_exception, "kvm", "kvm_inj_exception", kInjExcF,
     "\"%s%s%.*x%s%s\", __print_symbolic(REC->exception, " PVSIM_SYM_EXC
     "), REC->has_error ? \" (0x\" : \"\", REC->has_error, REC->has_error ? REC->error_code : 0, "
     "REC->has_error ? \")\" : \"\", REC->reinjected ? \" [reinjected]\" : \"\""},
    {id::kvm_page_fault, "kvm", "kvm_page_fault", kPfF,
     "\"vcpu %u rip 0x%lx address 0x%016llx error_code 0x%llx\", REC->vcpu_id, REC->guest_rip, "
     "REC->fault_address, REC->error_code"},
    {id::kvm_hypercall, "kvm", "kvm_hypercall", kHcF,
     "\"nr 0x%lx a0 0x%lx a1 0x%lx a2 0x%lx a3 0x%lx\", REC->nr, REC->a0, REC->a1, REC->a2, REC->a3"},
    {id::kvm_apic, "kvm", "kvm_apic", kApicF,
     "\"apic_%s %s = 0x%llx\", REC->rw ? \"write\" : \"read\", __print_symbolic(REC->reg, " PVSIM_SYM_APIC
     "), REC->val"},
    // KVM prints the vector as (u8)REC->icr_low; the mask is the same number.
    {id::kvm_apic_ipi, "kvm", "kvm_apic_ipi", kIpiF,
     "\"dst %x vec %u (%s|%s|%s|%s|%s)\", REC->dest_id, REC->icr_low & 0xff, "
     "__print_symbolic((REC->icr_low >> 8 & 0x7), " PVSIM_SYM_DELIVERY
     "), (REC->icr_low & (1<<11)) ? \"logical\" : \"physical\", "
     "(REC->icr_low & (1<<14)) ? \"assert\" : \"de-assert\", (REC->icr_low & (1<<15)) ? \"level\" : \"edge\", "
     "__print_symbolic((REC->icr_low >> 18 & 0x3), { 0x0, \"dst\" }, { 0x1, \"self\" }, { 0x2, \"all\" }, "
     "{ 0x3, \"all-but-self\" })"},
    {id::kvm_apic_accept_irq, "kvm", "kvm_apic_accept_irq", kAcceptF,
     "\"apicid %x vec %u (%s|%s)\", REC->apicid, REC->vec, __print_symbolic((REC->dm >> 8 & 0x7), " PVSIM_SYM_DELIVERY
     "), REC->tm ? \"level\" : \"edge\""},
    {id::kvm_eoi, "kvm", "kvm_eoi", kEoiF, kEoiFmt},
    {id::kvm_inj_virq, "kvm", "kvm_inj_virq", kVirqF,
     "\"%s 0x%x%s\", REC->soft ? \"Soft/INTn\" : \"IRQ\", REC->irq, REC->reinjected ? \" [reinjected]\" : \"\""},
    {id::kvm_pvclock_update, "kvm", "kvm_pvclock_update", kPvclockF,
     "\"vcpu_id %u, pvclock { version %u, tsc_timestamp 0x%llx, system_time 0x%llx, tsc_to_system_mul 0x%x, "
     "tsc_shift %d, flags 0x%x }\", REC->vcpu_id, REC->version, REC->tsc_timestamp, REC->system_time, "
     "REC->tsc_to_system_mul, REC->tsc_shift > 127 ? REC->tsc_shift - 256 : REC->tsc_shift, REC->flags"},
    {id::kvm_pv_tlb_flush, "kvm", "kvm_pv_tlb_flush", kTlbF,
     "\"vcpu %u need_flush_tlb %s\", REC->vcpu_id, REC->need_flush_tlb ? \"true\" : \"false\""},
    {id::kvm_pv_eoi, "kvm", "kvm_pv_eoi", kEoiF, kEoiFmt},
    {id::kvm_try_async_get_page, "kvm", "kvm_try_async_get_page", kGetPageF, kGetPageFmt},
    {id::kvm_async_pf_repeated_fault, "kvm", "kvm_async_pf_repeated_fault", kGetPageF, kGetPageFmt},
    // The 2.6.38-3.x name of the same event class (the orig ABI profile prints it).
    {id::kvm_async_pf_doublefault, "kvm", "kvm_async_pf_doublefault", kGetPageF, kGetPageFmt},
    {id::kvm_async_pf_not_present, "kvm", "kvm_async_pf_not_present", kNpReadyF, kNpReadyFmt},
    {id::kvm_async_pf_ready, "kvm", "kvm_async_pf_ready", kNpReadyF, kNpReadyFmt},
    {id::kvm_async_pf_completed, "kvm", "kvm_async_pf_completed", kCompletedF,
     "\"gva %#llx address %#lx\", REC->gva, REC->address"},
    {id::pvsim_exception, "pvsim", "pvsim_exception", kPvExcF,
     "\"vector 0x%x (%s)%s%.*x rip 0x%llx cr2 0x%llx\", REC->vector, __print_symbolic(REC->vector, " PVSIM_SYM_EXC
     "), REC->has_error ? \" error_code 0x\" : \"\", REC->has_error, REC->has_error ? REC->error_code : 0, "
     "REC->rip, REC->cr2"},
    {id::pvsim_stop, "pvsim", "pvsim_stop", kStopF,
     "\"reason %s%s%s\", __get_str(reason), __get_dynamic_array_len(detail) > 1 ? \": \" : \"\", "
     "__get_str(detail)"},
    {id::pvsim_inj_nmi, "pvsim", "pvsim_inj_nmi", {}, "\"NMI\""},
    {id::pvsim_vcpu, "pvsim", "pvsim_vcpu", kWhatDetailF, PVSIM_WHAT_DETAIL_FMT},
    {id::pvsim_apf, "pvsim", "pvsim_apf", kWhatDetailF, PVSIM_WHAT_DETAIL_FMT},
    {id::pvsim_host, "pvsim", "pvsim_host", kWhatDetailF, PVSIM_WHAT_DETAIL_FMT},
    {id::pvsim_sched_out, "pvsim", "pvsim_sched_out", kSchedOutF,
     "\"vcpu %u pcpu %u rip 0x%llx %s until %llu.%09llu\", REC->vcpu_id, REC->pcpu, REC->rip, __get_str(why), "
     "REC->until_ns / 1000000000, REC->until_ns % 1000000000"},
    {id::pvsim_sched_in, "pvsim", "pvsim_sched_in", kSchedInF,
     "\"vcpu %u pcpu %u rip 0x%llx run_delay %llu\", REC->vcpu_id, REC->pcpu, REC->rip, REC->run_delay_ns"},
    {id::pvsim_steal, "pvsim", "pvsim_steal", kWhatDetailF, PVSIM_WHAT_DETAIL_FMT},
    {id::pvsim_pv_eoi, "pvsim", "pvsim_pv_eoi", kWhatDetailF, PVSIM_WHAT_DETAIL_FMT},
    {id::pvsim_action, "pvsim", "pvsim_action", kWhatDetailF, PVSIM_WHAT_DETAIL_FMT},
    {id::pvsim_marker, "pvsim", "pvsim_marker", kMarkerF, "\"%s\", __get_str(text)"},
};
static_assert(std::size(kTable) == id::count, "one table entry per trace_ids::Id");

// ---- the compiled print formats -----------------------------------------------------------

enum class Op : uint8_t {
  Num, Field, Str, StrField, DynLen, Not, Cond, Symbolic,
  // binary, in no particular order
  Mul, Div, Mod, Add, Sub, Shl, Shr, Lt, Le, Gt, Ge, Eq, Ne, And, Xor, Or, LAnd, LOr
};

struct Node {
  Op op = Op::Num;
  uint8_t field = 0;
  uint32_t a = 0, b = 0, c = 0;  // operands (node indices); Symbolic: a = value, b/c = symbol range
  uint64_t num = 0;
  std::string_view str;
};

struct Sym {
  uint64_t value;
  std::string_view name;
};

struct Conv {
  char kind = 0;  // 'd', 'u', 'x', 's'
  bool alt = false, zero = false, wide = false;
  int width = 0;
  int precision = -1;  // -1 none, -2 from an argument
};

struct Piece {
  std::string_view lit;  // printed before the conversion
  bool has_conv = false;
  Conv conv;
  uint32_t arg = 0, prec_arg = 0;  // node indices
};

// An evaluated argument: an integer, a string, or a __print_symbolic value no name matched.
struct Val {
  enum Kind : uint8_t { Int, Text, Unnamed } kind = Int;
  uint64_t u = 0;
  std::string_view s;
};

struct Program {
  std::vector<Piece> pieces;
  std::string_view tail;  // literal after the last conversion
  std::vector<Node> nodes;
  std::vector<Sym> syms;
  std::deque<std::string> strings;  // unescaped literals (stable addresses)
  std::vector<std::string> json_keys;  // ,"name":
  std::vector<uint8_t> json_kind;      // 0 unsigned, 1 signed, 2 bool, 3 string
};

[[noreturn]] void bad_fmt(const TraceEventDesc& d, size_t at, const std::string& what) {
  throw std::logic_error(fmt::format("trace event {}: print fmt at offset {}: {}", d.name, at, what));
}

class FmtCompiler {
 public:
  FmtCompiler(const TraceEventDesc& d, Program& p) : m_d(d), m_s(d.print_fmt), m_p(p) {}

  void compile() {
    ws();
    if (peek() != '"') fail("expected the format string");
    const std::string& f = string_lit();
    std::vector<std::pair<size_t, size_t>> pending;  // piece index, 1 or 2 arguments
    size_t lit_from = 0;
    size_t i = 0;
    while (i < f.size()) {
      if (f[i] != '%') {
        ++i;
        continue;
      }
      if (i + 1 < f.size() && f[i + 1] == '%') {
        // "%%": the literal so far plus one '%' (kept as its own piece without conversion).
        Piece pc;
        pc.lit = std::string_view(f).substr(lit_from, i + 1 - lit_from);
        m_p.pieces.push_back(pc);
        i += 2;
        lit_from = i;
        continue;
      }
      Piece pc;
      pc.lit = std::string_view(f).substr(lit_from, i - lit_from);
      pc.has_conv = true;
      ++i;
      Conv& c = pc.conv;
      for (; i < f.size() && (f[i] == '#' || f[i] == '0'); ++i) (f[i] == '#' ? c.alt : c.zero) = true;
      while (i < f.size() && f[i] >= '0' && f[i] <= '9') c.width = c.width * 10 + (f[i++] - '0');
      if (i < f.size() && f[i] == '.') {
        ++i;
        if (i < f.size() && f[i] == '*') {
          c.precision = -2;
          ++i;
        } else {
          c.precision = 0;
          while (i < f.size() && f[i] >= '0' && f[i] <= '9') c.precision = c.precision * 10 + (f[i++] - '0');
        }
      }
      int longs = 0;
      while (i < f.size() && f[i] == 'l') ++longs, ++i;
      if (longs > 2 || i >= f.size()) fail("unsupported conversion");
      c.wide = longs > 0;
      c.kind = f[i] == 'i' ? 'd' : f[i];
      if (c.kind != 'd' && c.kind != 'u' && c.kind != 'x' && c.kind != 's') fail("unsupported conversion");
      if (c.kind == 's' && (c.alt || c.zero || c.width || c.precision != -1 || longs)) fail("unsupported %s flags");
      ++i;
      lit_from = i;
      pending.push_back({m_p.pieces.size(), c.precision == -2 ? 2 : 1});
      m_p.pieces.push_back(pc);
    }
    m_p.tail = std::string_view(f).substr(lit_from);
    for (auto [piece, nargs] : pending) {
      ws();
      if (peek() != ',') fail("fewer arguments than conversions");
      ++m_i;
      if (nargs == 2) {
        m_p.pieces[piece].prec_arg = expr();
        ws();
        if (peek() != ',') fail("fewer arguments than conversions");
        ++m_i;
      }
      m_p.pieces[piece].arg = expr();
    }
    ws();
    if (m_i != m_s.size()) fail("more arguments than conversions, or text after the last one");
  }

 private:
  [[noreturn]] void fail(const std::string& what) const { bad_fmt(m_d, m_i, what); }
  char peek() const { return m_i < m_s.size() ? m_s[m_i] : '\0'; }
  void ws() {
    while (m_i < m_s.size() && (m_s[m_i] == ' ' || m_s[m_i] == '\t' || m_s[m_i] == '\n')) ++m_i;
  }
  bool take(std::string_view tok) {
    ws();
    if (m_s.substr(m_i, tok.size()) != tok) return false;
    m_i += tok.size();
    return true;
  }
  void expect(std::string_view tok) {
    if (!take(tok)) fail(fmt::format("expected '{}'", tok));
  }
  const std::string& string_lit() {
    ++m_i;  // the opening quote
    std::string out;
    for (;;) {
      if (m_i >= m_s.size()) fail("unterminated string");
      char c = m_s[m_i++];
      if (c == '"') break;
      if (c == '\\') {
        if (m_i >= m_s.size()) fail("unterminated string");
        c = m_s[m_i++];
        if (c == 'n') c = '\n';
        else if (c == 't') c = '\t';
        else if (c != '"' && c != '\\') fail("unsupported escape");
      }
      out += c;
    }
    return m_p.strings.emplace_back(std::move(out));
  }
  uint32_t add(Node n) {
    m_p.nodes.push_back(n);
    return static_cast<uint32_t>(m_p.nodes.size() - 1);
  }
  std::string ident() {
    ws();
    size_t from = m_i;
    while (m_i < m_s.size() && (std::isalnum(static_cast<unsigned char>(m_s[m_i])) || m_s[m_i] == '_')) ++m_i;
    if (from == m_i) fail("expected a name");
    return std::string(m_s.substr(from, m_i - from));
  }
  uint8_t field_named(const std::string& name) {
    const int k = trace_field_index(m_d, name);
    if (k < 0) fail(fmt::format("no field '{}'", name));
    return static_cast<uint8_t>(k);
  }
  uint64_t number() {
    ws();
    size_t from = m_i;
    uint64_t v = 0;
    if (m_s.substr(m_i, 2) == "0x") {
      m_i += 2;
      while (std::isxdigit(static_cast<unsigned char>(peek()))) {
        const char c = m_s[m_i++];
        v = v * 16 + static_cast<uint64_t>(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
      }
    } else {
      while (std::isdigit(static_cast<unsigned char>(peek()))) v = v * 10 + static_cast<uint64_t>(m_s[m_i++] - '0');
    }
    if (from == m_i) fail("expected a number");
    return v;
  }

  uint32_t expr() {
    const uint32_t cond = binary(0);
    if (!take("?")) return cond;
    const uint32_t yes = expr();
    expect(":");
    const uint32_t no = expr();
    Node n;
    n.op = Op::Cond;
    n.a = cond, n.b = yes, n.c = no;
    return add(n);
  }

  // Precedence climbing over C's binary operators, loosest first. The operator at the
  // cursor is read as a C lexer would (the longest token: "<<" is not "<").
  struct BinOp {
    int level;
    std::string_view tok;
    Op op;
  };
  static constexpr BinOp kOps[] = {
      {0, "||", Op::LOr}, {1, "&&", Op::LAnd}, {2, "|", Op::Or},  {3, "^", Op::Xor},  {4, "&", Op::And},
      {5, "==", Op::Eq},  {5, "!=", Op::Ne},   {6, "<=", Op::Le}, {6, ">=", Op::Ge},  {6, "<", Op::Lt},
      {6, ">", Op::Gt},   {7, "<<", Op::Shl},  {7, ">>", Op::Shr}, {8, "+", Op::Add}, {8, "-", Op::Sub},
      {9, "*", Op::Mul},  {9, "/", Op::Div},   {9, "%", Op::Mod}};
  static constexpr int kLevels = 10;

  const BinOp* op_here() {
    ws();
    const BinOp* best = nullptr;
    for (const BinOp& o : kOps)
      if (m_s.substr(m_i, o.tok.size()) == o.tok && (!best || o.tok.size() > best->tok.size())) best = &o;
    return best;
  }

  uint32_t binary(int level) {
    if (level == kLevels) return unary();
    uint32_t left = binary(level + 1);
    for (;;) {
      const BinOp* o = op_here();
      if (!o || o->level != level) return left;
      m_i += o->tok.size();
      Node n;
      n.op = o->op;
      n.a = left;
      n.b = binary(level + 1);
      left = add(n);
    }
  }

  uint32_t unary() {
    if (take("!")) {
      Node n;
      n.op = Op::Not;
      n.a = unary();
      return add(n);
    }
    return primary();
  }

  uint32_t primary() {
    ws();
    const char c = peek();
    if (c == '(') {
      ++m_i;
      const uint32_t e = expr();
      expect(")");
      return e;
    }
    if (c == '"') {
      Node n;
      n.op = Op::Str;
      n.str = string_lit();
      return add(n);
    }
    if (c >= '0' && c <= '9') {
      Node n;
      n.op = Op::Num;
      n.num = number();
      return add(n);
    }
    const std::string name = ident();
    Node n;
    if (name == "REC") {
      expect("->");
      n.field = field_named(ident());
      n.op = m_d.fields[n.field].type == TraceType::Str ? Op::StrField : Op::Field;
      // A field reads as its bits, zero-extended, as libtraceevent reads it from a record.
      static constexpr uint64_t kMask[] = {0xff, 0xffff, 0xffffffff, ~0ull, 0xff, 0xffff, 0xffffffff, ~0ull, 0};
      n.num = kMask[static_cast<unsigned>(m_d.fields[n.field].type)];
      return add(n);
    }
    if (name == "__get_str" || name == "__get_dynamic_array_len") {
      expect("(");
      n.field = field_named(ident());
      expect(")");
      if (m_d.fields[n.field].type != TraceType::Str) fail(name + " of a field that is not a string");
      n.op = name == "__get_str" ? Op::StrField : Op::DynLen;
      return add(n);
    }
    if (name == "__print_symbolic") {
      expect("(");
      n.op = Op::Symbolic;
      n.a = expr();
      n.b = static_cast<uint32_t>(m_p.syms.size());
      while (take(",")) {
        expect("{");
        Sym s;
        s.value = number();
        expect(",");
        ws();
        if (peek() != '"') fail("expected a symbol name");
        s.name = string_lit();
        expect("}");
        m_p.syms.push_back(s);
      }
      expect(")");
      n.c = static_cast<uint32_t>(m_p.syms.size());
      return add(n);
    }
    fail(fmt::format("unsupported '{}'", name));
  }

  const TraceEventDesc& m_d;
  std::string_view m_s;
  size_t m_i = 0;
  Program& m_p;
};

std::vector<Program> compile_all() {
  std::vector<Program> out(std::size(kTable));
  for (const TraceEventDesc& d : kTable) {
    Program& p = out[d.id];
    FmtCompiler(d, p).compile();
    for (const TraceFieldDesc& f : d.fields) {
      std::string key = ",";
      trace_append_json_string(key, f.name);
      key += ':';
      p.json_keys.push_back(std::move(key));
      p.json_kind.push_back(f.type == TraceType::Str ? 3 : trace_field_is_bool(f) ? 2 : trace_type_signed(f.type) ? 1 : 0);
    }
  }
  return out;
}

const std::vector<Program>& programs() {
  static const std::vector<Program> all = compile_all();
  return all;
}

Val eval(const Program& p, uint32_t at, std::span<const TraceValue> v) {
  const Node& n = p.nodes[at];
  const auto num = [&](uint32_t k) { return eval(p, k, v).u; };
  switch (n.op) {
    case Op::Num: return {Val::Int, n.num, {}};
    case Op::Field: return {Val::Int, v[n.field].u & n.num, {}};
    case Op::Str: return {Val::Text, 0, n.str};
    case Op::StrField: return {Val::Text, 0, v[n.field].s};
    case Op::DynLen: return {Val::Int, v[n.field].s.size() + 1, {}};
    case Op::Not: return {Val::Int, num(n.a) == 0, {}};
    case Op::Cond: return eval(p, num(n.a) ? n.b : n.c, v);
    case Op::Symbolic: {
      const uint64_t x = num(n.a);
      for (uint32_t k = n.b; k < n.c; ++k)
        if (p.syms[k].value == x) return {Val::Text, x, p.syms[k].name};
      return {Val::Unnamed, x, {}};
    }
    default: break;
  }
  const uint64_t a = num(n.a);
  if (n.op == Op::LAnd && !a) return {};
  if (n.op == Op::LOr && a) return {Val::Int, 1, {}};
  const uint64_t b = num(n.b);
  uint64_t r = 0;
  switch (n.op) {
    case Op::Mul: r = a * b; break;
    case Op::Div: r = b ? a / b : 0; break;
    case Op::Mod: r = b ? a % b : 0; break;
    case Op::Add: r = a + b; break;
    case Op::Sub: r = a - b; break;
    case Op::Shl: r = b < 64 ? a << b : 0; break;
    case Op::Shr: r = b < 64 ? a >> b : 0; break;
    case Op::Lt: r = a < b; break;
    case Op::Le: r = a <= b; break;
    case Op::Gt: r = a > b; break;
    case Op::Ge: r = a >= b; break;
    case Op::Eq: r = a == b; break;
    case Op::Ne: r = a != b; break;
    case Op::And: r = a & b; break;
    case Op::Xor: r = a ^ b; break;
    case Op::Or: r = a | b; break;
    case Op::LAnd:
    case Op::LOr: r = b != 0; break;
    default: break;
  }
  return {Val::Int, r, {}};
}

// printf's integer conversions, for the flags the table uses.
void append_int(std::string& out, uint64_t v, const Conv& c, int precision) {
  bool neg = false;
  if (!c.wide) v &= 0xffffffffu;
  if (c.kind == 'd') {
    const int64_t s = c.wide ? static_cast<int64_t>(v) : static_cast<int64_t>(static_cast<int32_t>(v));
    neg = s < 0;
    v = neg ? 0 - static_cast<uint64_t>(s) : static_cast<uint64_t>(s);
  }
  char buf[24];
  char* end = buf + sizeof buf;
  char* p = end;
  if (c.kind == 'x') {
    static constexpr char kHex[] = "0123456789abcdef";
    for (uint64_t x = v; x; x >>= 4) *--p = kHex[x & 15];
  } else {
    for (uint64_t x = v; x; x /= 10) *--p = static_cast<char>('0' + x % 10);
  }
  size_t digits = static_cast<size_t>(end - p);
  // No precision: at least one digit. A precision is the least number of digits ("%.0x" of
  // 0 prints nothing) and turns the '0' flag off.
  const size_t min_digits = precision < 0 ? 1 : static_cast<size_t>(precision);
  const size_t zeros = digits < min_digits ? min_digits - digits : 0;
  const bool prefix = c.alt && c.kind == 'x' && v != 0;
  const size_t body = (neg ? 1 : 0) + (prefix ? 2 : 0) + zeros + digits;
  const size_t pad = static_cast<size_t>(c.width) > body ? static_cast<size_t>(c.width) - body : 0;
  const bool zero_pad = c.zero && precision < 0;
  if (!zero_pad) out.append(pad, ' ');
  if (neg) out += '-';
  if (prefix) out += "0x";
  if (zero_pad) out.append(pad, '0');
  out.append(zeros, '0');
  out.append(p, digits);
}

void append_hex_u64(std::string& out, uint64_t v) {
  Conv c;
  c.kind = 'x';
  c.wide = true;
  out += "0x";
  append_int(out, v, c, -1);
}

void append_udec(std::string& out, uint64_t v) {
  char buf[24];
  char* end = buf + sizeof buf;
  char* p = end;
  do *--p = static_cast<char>('0' + v % 10);
  while (v /= 10);
  out.append(p, static_cast<size_t>(end - p));
}

void run_program(const Program& p, std::span<const TraceValue> v, std::string& out) {
  for (const Piece& pc : p.pieces) {
    out.append(pc.lit);
    if (!pc.has_conv) continue;
    const Val x = eval(p, pc.arg, v);
    if (pc.conv.kind == 's') {
      if (x.kind == Val::Text) out.append(x.s);
      else if (x.kind == Val::Unnamed) append_hex_u64(out, x.u);
      else append_udec(out, x.u);
      continue;
    }
    int precision = pc.conv.precision;
    if (precision == -2) precision = static_cast<int>(std::min<uint64_t>(eval(p, pc.prec_arg, v).u, 64));
    append_int(out, x.u, pc.conv, precision);
  }
  out.append(p.tail);
}

}  // namespace

std::span<const TraceEventDesc> trace_event_table() { return kTable; }

const TraceEventDesc* find_trace_event(std::string_view name) {
  for (const TraceEventDesc& d : kTable)
    if (name == d.name) return &d;
  return nullptr;
}

int trace_field_index(const TraceEventDesc& d, std::string_view field) {
  for (size_t k = 0; k < d.fields.size(); ++k)
    if (field == d.fields[k].name) return static_cast<int>(k);
  return -1;
}

bool trace_field_is_bool(const TraceFieldDesc& f) { return std::strcmp(f.c_type, "bool") == 0; }

void trace_render_text(const TraceEventDesc& d, std::span<const TraceValue> values, std::string& out) {
  run_program(programs()[d.id], values, out);
}

void trace_render_adhoc(const TraceEventDesc& d, std::span<const TraceValue> values, std::string& out) {
  Program p;
  FmtCompiler(d, p).compile();
  run_program(p, values, out);
}

void trace_render_head(Tick ts, unsigned vcpu, std::string& out) {
  // "CPU <v>/KVM-<v> [<v, 3 digits at least>] <s>.<ns, 9 digits>: "
  const uint64_t ns = ts.value();
  out += "CPU ";
  append_udec(out, vcpu);
  out += "/KVM-";
  append_udec(out, vcpu);
  out += " [";
  if (vcpu < 100) out += vcpu < 10 ? "00" : "0";
  append_udec(out, vcpu);
  out += "] ";
  append_udec(out, ns / 1'000'000'000u);
  out += '.';
  char frac[9];
  uint64_t f = ns % 1'000'000'000u;
  for (int k = 8; k >= 0; --k, f /= 10) frac[k] = static_cast<char>('0' + f % 10);
  out.append(frac, 9);
  out += ": ";
}

size_t trace_render_line(Tick ts, unsigned vcpu, const TraceEventDesc& d, std::span<const TraceValue> values,
                         std::string& out) {
  trace_render_head(ts, vcpu, out);
  const size_t body = out.size();
  out += d.name;
  out += ": ";
  run_program(programs()[d.id], values, out);
  out += '\n';
  return body;
}

void trace_append_json_string(std::string& out, std::string_view s) {
  out += '"';
  size_t from = 0;
  for (size_t k = 0; k < s.size(); ++k) {
    const auto u = static_cast<unsigned char>(s[k]);
    if (u >= 0x20 && s[k] != '"' && s[k] != '\\') continue;
    out.append(s.substr(from, k - from));
    from = k + 1;
    switch (s[k]) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default: {
        static constexpr char kHex[] = "0123456789abcdef";
        const char esc[6] = {'\\', 'u', '0', '0', kHex[u >> 4], kHex[u & 15]};
        out.append(esc, 6);
      }
    }
  }
  out.append(s.substr(from));
  out += '"';
}

void trace_render_json(Tick ts, unsigned vcpu, const TraceEventDesc& d, std::span<const TraceValue> values,
                       std::string& out) {
  const Program& p = programs()[d.id];
  out += "{\"ts_ns\":";
  append_udec(out, ts.value());
  out += ",\"vcpu\":";
  append_udec(out, vcpu);
  out += ",\"event\":\"";
  out += d.name;  // names are plain identifiers
  out += '"';
  for (size_t k = 0; k < d.fields.size(); ++k) {
    out += p.json_keys[k];
    const TraceValue& v = values[k];
    switch (p.json_kind[k]) {
      case 0: append_udec(out, v.u); break;
      case 1:
        if (static_cast<int64_t>(v.u) < 0) {
          out += '-';
          append_udec(out, 0 - v.u);
        } else {
          append_udec(out, v.u);
        }
        break;
      case 2: out += v.u ? "true" : "false"; break;
      default: trace_append_json_string(out, v.s); break;
    }
  }
  out += '}';
}

bool trace_glob_match(std::string_view glob, std::string_view name) {
  // Iterative matching with one backtrack point (the last '*').
  size_t g = 0, n = 0, star = std::string_view::npos, mark = 0;
  while (n < name.size()) {
    if (g < glob.size() && (glob[g] == '?' || glob[g] == name[n])) {
      ++g, ++n;
    } else if (g < glob.size() && glob[g] == '*') {
      star = g++;
      mark = n;
    } else if (star != std::string_view::npos) {
      g = star + 1;
      n = ++mark;
    } else {
      return false;
    }
  }
  while (g < glob.size() && glob[g] == '*') ++g;
  return g == glob.size();
}

std::optional<std::string> parse_trace_event_filter(std::string_view spec, std::vector<bool>& on) {
  on.assign(std::size(kTable), false);
  bool first = true;
  for (;;) {
    const size_t comma = spec.find(',');
    std::string_view term = spec.substr(0, comma);
    while (!term.empty() && term.front() == ' ') term.remove_prefix(1);
    while (!term.empty() && term.back() == ' ') term.remove_suffix(1);
    const bool remove = !term.empty() && term.front() == '-';
    const std::string_view glob = remove ? term.substr(1) : term;
    if (first && remove) on.assign(std::size(kTable), true);
    first = false;
    bool any = false;
    for (const TraceEventDesc& d : kTable)
      if (!glob.empty() && trace_glob_match(glob, d.name)) {
        on[d.id] = !remove;
        any = true;
      }
    if (!any) return std::string(term);
    if (comma == std::string_view::npos) return std::nullopt;
    spec.remove_prefix(comma + 1);
  }
}

}  // namespace pvsim
