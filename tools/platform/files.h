// tools/platform/files.h — reading inputs and writing outputs without surprises.
//
// Inputs (scenario files, guest images, golden traces) must be regular files of bounded
// size: a scenario path of /dev/zero must not read until memory runs out, and a directory
// or a FIFO is named as what it is instead of "not found".
//
// Outputs (--trace, --trace-jsonl, bench --json, golden rewrites) never destroy data:
//  - a regular file (or a path that does not exist yet) is written to a temporary file in
//    the same directory and renamed over the target only when complete, so a failed or
//    interrupted run leaves the old file (or nothing) behind, never half a file; a
//    symbolic link to a regular file is followed, so the link survives;
//  - "-" is standard output, and a FIFO, a pipe or a character device (/dev/stdout,
//    /dev/null, a terminal) is written directly: renaming over it would replace the device
//    node or the /dev/stdout symlink with a regular file;
//  - everything is checked before the run starts (empty path, directory, missing parent
//    directory, no permission, the same file as an input or as another output), so a bad
//    path costs a second, not the whole run;
//  - temporaries are removed on SIGINT, SIGTERM and SIGHUP (install_cleanup_handlers).
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <vector>

namespace pvsim {

// An input or output path that cannot be used; what() is "PATH: problem" (escaped for one line).
class FileError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// "a directory", "a FIFO", "a character device", ... for a path that exists and is not a
// regular file (after following symbolic links); nullopt for a regular file; "missing"
// when nothing is there (the caller words that case); "not accessible (reason)" when the
// path cannot be followed (a symbolic-link loop, a component that is not a directory).
std::optional<std::string> non_regular_kind(const std::filesystem::path& p);

// The whole content of a regular file of at most `max_bytes` bytes. `what` names the file's
// role in messages ("scenario file", "image", "golden trace"). Throws FileError:
//   "PATH: cannot open scenario file: No such file or directory"
//   "PATH: scenario file is a directory, not a regular file"
//   "PATH: scenario file is larger than 16 MiB (16777216 bytes)"
std::string read_regular_file(const std::filesystem::path& p, uint64_t max_bytes, const std::string& what);

// "16 MiB" for 16777216, "1000 bytes" for 1000: for limits in messages.
std::string size_words(uint64_t bytes);

// One output of a run. open() checks the path and creates the temporary (or opens the
// device); commit() makes the output visible; destruction without commit() removes the
// temporary. Not copyable.
class OutputFile {
 public:
  OutputFile();
  ~OutputFile();
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  // A file the run reads, and its role in messages ("the scenario file", "the guest image").
  struct Input {
    std::filesystem::path path;
    std::string role;
  };
  // `option` names the command-line option in messages ("--trace"). Writing any of
  // `inputs` is refused, and so is a target that one of `others` (outputs opened before
  // this one) already writes. Throws FileError.
  void open(const std::string& path, const std::string& option, const std::vector<Input>& inputs,
            const std::vector<const OutputFile*>& others);
  bool is_open() const;
  std::ostream* stream();
  // Flushes; renames the temporary over the target for regular files. Throws FileError.
  void commit();
  // Drops the temporary (also done by the destructor).
  void discard();
  const std::string& path() const;
  bool is_stdout() const;
  // Identity of the final target (device, inode) once open, to detect two options naming
  // the same file.
  bool same_target(const OutputFile& o) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> m;
};

// Installs SIGINT/SIGTERM/SIGHUP handlers that delete every OutputFile temporary still
// pending and then exit with 128 + the signal number (130, 143, 129), the status a shell
// reports for a process killed by that signal. Call once, early in main().
void install_cleanup_handlers();

}  // namespace pvsim
