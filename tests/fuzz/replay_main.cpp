// tests/fuzz/replay_main.cpp — the standalone driver for builds without libFuzzer.
//
// In the normal g++ builds (Release, and ASan+UBSan with -DPVSIM_SANITIZE=ON) every fuzz
// target links with this main instead of libFuzzer's, so the seed corpus and every
// committed regression input run once through the same LLVMFuzzerTestOneInput on every
// build (tests/fuzz/README.md). It takes the same command line as a libFuzzer binary in
// replay mode: files and directories (each regular file in a directory, in name order;
// no recursion); arguments starting with '-' are libFuzzer options and are ignored.
// A finding is a crash (abort, sanitizer report, uncaught exception), exactly as under
// libFuzzer; the line naming the input comes first so the log says which one it was.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

namespace fs = std::filesystem;

bool read_file(const fs::path& p, std::vector<uint8_t>& out) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return false;
  out.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return !in.bad();
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<fs::path> inputs;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (!arg.empty() && arg[0] == '-') continue;  // a libFuzzer flag such as -runs=0
    std::error_code ec;
    if (fs::is_directory(arg, ec)) {
      std::vector<fs::path> files;
      for (const auto& e : fs::directory_iterator(arg, ec))
        if (e.is_regular_file(ec)) files.push_back(e.path());
      if (ec) {
        std::fprintf(stderr, "fuzz replay: cannot list %s: %s\n", arg.c_str(), ec.message().c_str());
        return 2;
      }
      std::sort(files.begin(), files.end());
      inputs.insert(inputs.end(), files.begin(), files.end());
    } else if (fs::is_regular_file(arg, ec)) {
      inputs.emplace_back(arg);
    } else {
      std::fprintf(stderr, "fuzz replay: %s is neither a file nor a directory\n", arg.c_str());
      return 2;
    }
  }
  // An empty corpus would make the replay test pass without checking anything.
  if (inputs.empty()) {
    std::fprintf(stderr, "fuzz replay: no inputs (usage: %s FILE|DIR...)\n", argc ? argv[0] : "replay");
    return 2;
  }
  std::vector<uint8_t> data;
  for (const fs::path& p : inputs) {
    if (!read_file(p, data)) {
      std::fprintf(stderr, "fuzz replay: cannot read %s\n", p.c_str());
      return 2;
    }
    std::fprintf(stderr, "fuzz replay: %s (%zu bytes)\n", p.c_str(), data.size());
    std::fflush(stderr);
    // A heap copy of exactly the input's size, as libFuzzer passes it, so ASan sees a read
    // one byte past the end (a std::vector's capacity may be larger).
    std::unique_ptr<uint8_t[]> exact(new uint8_t[data.size() ? data.size() : 1]);
    std::copy(data.begin(), data.end(), exact.get());
    LLVMFuzzerTestOneInput(exact.get(), data.size());
  }
  std::printf("fuzz replay: %zu inputs ran without a finding\n", inputs.size());
  return 0;
}
