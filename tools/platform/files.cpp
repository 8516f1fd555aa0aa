#include "tools/platform/files.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fstream>
#include <iostream>

#include "tools/platform/text.h"

namespace pvsim {

namespace fs = std::filesystem;

namespace {

std::string shown(const fs::path& p) { return escape_display(p.string(), 400); }

const char* kind_of_mode(mode_t m) {
  if (S_ISDIR(m)) return "a directory";
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISSOCK(m)) return "a socket";
  if (S_ISREG(m)) return nullptr;
  return "not a regular file";
}

// ---- temporaries to delete when a signal ends the process --------------------------------
// The handler may run at any instruction, so the registry is a fixed array of C strings
// whose `used` flag is set after the name is complete and cleared before it is reused;
// the handler only reads it and calls unlink(2) and _exit(2), both async-signal-safe
// (signal-safety(7)).
constexpr int kMaxTemps = 16;
struct TempSlot {
  char path[4096];
  volatile std::sig_atomic_t used;
};
TempSlot g_temps[kMaxTemps];

int register_temp(const std::string& path) {
  if (path.size() >= sizeof(g_temps[0].path)) return -1;
  for (int i = 0; i < kMaxTemps; ++i)
    if (!g_temps[i].used) {
      std::memcpy(g_temps[i].path, path.c_str(), path.size() + 1);
      std::atomic_signal_fence(std::memory_order_seq_cst);
      g_temps[i].used = 1;
      return i;
    }
  return -1;
}

void unregister_temp(int slot) {
  if (slot >= 0) g_temps[slot].used = 0;
}

extern "C" void cleanup_and_exit(int sig) {
  for (auto& t : g_temps)
    if (t.used) ::unlink(t.path);
  const char* msg = sig == SIGINT    ? "pvsim: interrupted (SIGINT); unfinished output files removed\n"
                    : sig == SIGTERM ? "pvsim: terminated (SIGTERM); unfinished output files removed\n"
                                     : "pvsim: hangup (SIGHUP); unfinished output files removed\n";
  ssize_t ignored = ::write(STDERR_FILENO, msg, std::strlen(msg));
  (void)ignored;
  ::_exit(128 + sig);
}

}  // namespace

std::optional<std::string> non_regular_kind(const fs::path& p) {
  struct stat st;
  if (::stat(p.c_str(), &st) != 0) {
    if (errno == ENOENT) return std::string("missing");
    return fmt::format("not accessible ({})", std::strerror(errno));  // ELOOP, EACCES, ENOTDIR ...
  }
  if (const char* k = kind_of_mode(st.st_mode)) return std::string(k);
  return std::nullopt;
}

std::string size_words(uint64_t bytes) {
  if (bytes >= (1ull << 30) && bytes % (1ull << 30) == 0) return fmt::format("{} GiB", bytes >> 30);
  if (bytes >= (1ull << 20) && bytes % (1ull << 20) == 0) return fmt::format("{} MiB", bytes >> 20);
  if (bytes >= (1ull << 10) && bytes % (1ull << 10) == 0) return fmt::format("{} KiB", bytes >> 10);
  return fmt::format("{} bytes", bytes);
}

std::string read_regular_file(const fs::path& p, uint64_t max_bytes, const std::string& what) {
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer. The type is
  // checked on the open descriptor, so nothing can swap the file in between.
  const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) throw FileError(fmt::format("{}: cannot open {}: {}", shown(p), what, std::strerror(errno)));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st;
  if (::fstat(fd, &st) != 0) throw FileError(fmt::format("{}: cannot read {}: {}", shown(p), what, std::strerror(errno)));
  if (const char* k = kind_of_mode(st.st_mode))
    throw FileError(fmt::format("{}: {} is {}, not a regular file", shown(p), what, k));
  if (static_cast<uint64_t>(st.st_size) > max_bytes)
    throw FileError(fmt::format("{}: {} is larger than {} ({} bytes)", shown(p), what, size_words(max_bytes),
                                static_cast<uint64_t>(st.st_size)));
  std::string out;
  out.resize(static_cast<size_t>(st.st_size));
  size_t got = 0;
  // The file may change while we read: never read more than the limit, whatever it says.
  for (;;) {
    if (got == out.size()) {
      if (out.size() > max_bytes) break;
      out.resize(std::min<uint64_t>(max_bytes + 1, out.size() + 65536));
    }
    const ssize_t n = ::read(fd, out.data() + got, out.size() - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw FileError(fmt::format("{}: cannot read {}: {}", shown(p), what, std::strerror(errno)));
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  out.resize(got);
  if (got > max_bytes)
    throw FileError(fmt::format("{}: {} is larger than {}", shown(p), what, size_words(max_bytes)));
  return out;
}

// ---- OutputFile ----------------------------------------------------------------------------

struct OutputFile::Impl {
  enum class Mode { Closed, Stdout, Direct, Temp } mode = Mode::Closed;
  std::string path;    // as given
  std::string option;  // "--trace"
  fs::path target;     // Temp: the file the rename replaces (symlinks resolved)
  fs::path temp;       // Temp: the temporary
  int slot = -1;       // signal-cleanup registry slot of `temp`
  bool has_id = false;
  dev_t dev = 0;
  ino_t ino = 0;
  std::string canonical;  // target identity when it does not exist yet
  mode_t file_mode = 0666;
  std::ofstream out;

  [[noreturn]] void fail(const std::string& problem) const {
    throw FileError(fmt::format("{} {}: {}", option, shown(path), problem));
  }
};

OutputFile::OutputFile() : m(std::make_unique<Impl>()) {}
OutputFile::~OutputFile() { discard(); }

bool OutputFile::is_open() const { return m->mode != Impl::Mode::Closed; }
const std::string& OutputFile::path() const { return m->path; }
bool OutputFile::is_stdout() const { return m->mode == Impl::Mode::Stdout; }

std::ostream* OutputFile::stream() {
  switch (m->mode) {
    case Impl::Mode::Closed: return nullptr;
    case Impl::Mode::Stdout: return &std::cout;
    default: return &m->out;
  }
}

bool OutputFile::same_target(const OutputFile& o) const {
  if (!is_open() || !o.is_open()) return false;
  if (is_stdout() || o.is_stdout()) return is_stdout() && o.is_stdout();
  if (m->has_id && o.m->has_id) return m->dev == o.m->dev && m->ino == o.m->ino;
  return !m->has_id && !o.m->has_id && m->canonical == o.m->canonical;
}

void OutputFile::open(const std::string& path, const std::string& option, const std::vector<Input>& inputs,
                      const std::vector<const OutputFile*>& others) {
  Impl& x = *m;
  x.path = path;
  x.option = option;
  if (path.empty()) throw FileError(fmt::format("{}: the file name is empty", option));
  if (path.find('\0') != std::string::npos) x.fail("the file name contains a NUL character");
  if (path == "-") {
    x.mode = Impl::Mode::Stdout;
  } else {
    struct stat st;
    struct stat lst;
    if (::stat(path.c_str(), &st) == 0) {
      if (S_ISDIR(st.st_mode)) x.fail("is a directory");
      if (S_ISBLK(st.st_mode)) x.fail("is a block device; refusing to write a trace onto it");
      if (S_ISSOCK(st.st_mode)) x.fail("is a socket");
      x.has_id = true;
      x.dev = st.st_dev;
      x.ino = st.st_ino;
      if (S_ISREG(st.st_mode)) {
        if (::access(path.c_str(), W_OK) != 0) x.fail(fmt::format("cannot write: {}", std::strerror(errno)));
        std::error_code ec;
        x.target = fs::canonical(path, ec);  // follow symlinks: replace the file, keep the link
        if (ec) x.fail(fmt::format("cannot resolve: {}", ec.message()));
        x.file_mode = st.st_mode & 07777;
        x.mode = Impl::Mode::Temp;
      } else {
        x.mode = Impl::Mode::Direct;  // FIFO, pipe, character device: write in place
      }
    } else if (errno == ENOENT && ::lstat(path.c_str(), &lst) == 0) {
      x.fail("is a symbolic link to nothing");
    } else if (errno == ENOENT) {
      const fs::path parent = fs::path(path).parent_path().empty() ? fs::path(".") : fs::path(path).parent_path();
      struct stat pst;
      if (::stat(parent.c_str(), &pst) != 0)
        x.fail(fmt::format("directory {} does not exist", shown(parent)));
      if (!S_ISDIR(pst.st_mode)) x.fail(fmt::format("{} is not a directory", shown(parent)));
      std::error_code ec;
      x.target = fs::weakly_canonical(path, ec);
      if (ec) x.fail(fmt::format("cannot resolve: {}", ec.message()));
      x.canonical = x.target.string();
      const mode_t mask = ::umask(0);
      ::umask(mask);
      x.file_mode = 0666 & ~mask;
      x.mode = Impl::Mode::Temp;
    } else {
      x.fail(std::strerror(errno));
    }
  }
  // Never overwrite what the run reads.
  if (x.has_id)
    for (const Input& in : inputs) {
      struct stat ist;
      if (::stat(in.path.c_str(), &ist) == 0 && ist.st_dev == x.dev && ist.st_ino == x.ino &&
          x.mode != Impl::Mode::Direct)
        x.fail(fmt::format("is {} ({}); refusing to overwrite an input", in.role, shown(in.path)));
    }
  for (const OutputFile* o : others)
    if (o && same_target(*o))
      x.fail(x.mode == Impl::Mode::Stdout ? fmt::format("{} already writes to standard output", o->m->option)
                                          : fmt::format("is the same file as {} {}", o->m->option, shown(o->path())));
  if (x.mode == Impl::Mode::Direct) {
    x.out.open(path, std::ios::binary | std::ios::out);
    if (!x.out) x.fail(fmt::format("cannot open for writing: {}", std::strerror(errno)));
  } else if (x.mode == Impl::Mode::Temp) {
    std::string tmpl = x.target.string() + ".partial.XXXXXX";
    const int fd = ::mkstemp(tmpl.data());
    if (fd < 0) x.fail(fmt::format("cannot create a file in {}: {}", shown(x.target.parent_path()), std::strerror(errno)));
    x.temp = tmpl;
    x.slot = register_temp(tmpl);
    ::fchmod(fd, x.file_mode);
    ::close(fd);
    x.out.open(x.temp, std::ios::binary | std::ios::out | std::ios::trunc);
    if (!x.out) {
      discard();
      x.fail(fmt::format("cannot open for writing: {}", std::strerror(errno)));
    }
  }
}

void OutputFile::commit() {
  Impl& x = *m;
  switch (x.mode) {
    case Impl::Mode::Closed: return;
    case Impl::Mode::Stdout:
      std::cout.flush();
      if (!std::cout) x.fail("writing to standard output failed");
      return;
    case Impl::Mode::Direct:
      x.out.flush();
      if (!x.out) x.fail("write failed");
      x.out.close();
      return;
    case Impl::Mode::Temp: {
      x.out.flush();
      const bool ok = static_cast<bool>(x.out);
      x.out.close();
      if (!ok || !x.out) {
        discard();
        x.fail(fmt::format("write failed (disk full?); nothing written"));
      }
      if (::rename(x.temp.c_str(), x.target.c_str()) != 0) {
        const int e = errno;
        discard();
        x.fail(fmt::format("cannot rename the finished file into place: {}", std::strerror(e)));
      }
      unregister_temp(x.slot);
      x.slot = -1;
      x.temp.clear();  // renamed into place: nothing left to discard
      return;
    }
  }
}

void OutputFile::discard() {
  Impl& x = *m;
  if (x.mode == Impl::Mode::Temp && !x.temp.empty()) {
    if (x.out.is_open()) x.out.close();
    unregister_temp(x.slot);
    x.slot = -1;
    std::error_code ec;
    fs::remove(x.temp, ec);
    x.temp.clear();
  }
}

void install_cleanup_handlers() {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = cleanup_and_exit;
  sigemptyset(&sa.sa_mask);
  // Block the other two while one runs, so the cleanup runs once.
  for (int s : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&sa.sa_mask, s);
  for (int s : {SIGINT, SIGTERM, SIGHUP}) {
    struct sigaction old;
    // A shell runs background jobs with SIGINT ignored; keep it that way (POSIX: a program
    // should not catch a signal it inherited as ignored).
    if (::sigaction(s, nullptr, &old) == 0 && old.sa_handler == SIG_IGN) continue;
    ::sigaction(s, &sa, nullptr);
  }
}

}  // namespace pvsim
