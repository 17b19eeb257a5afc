#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace shapebridge::testing {

// A child process for tests that kill and restart the service. Its stdout and stderr go to
// `log_path` (appended). The destructor kills it with SIGKILL if it still runs.
class Subprocess {
 public:
  Subprocess(std::vector<std::string> argv, std::string log_path);
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;
  ~Subprocess();

  pid_t pid() const { return pid_; }
  bool running();
  // Sends `signal` and waits for the exit; returns the wait status.
  int Kill(int signal);
  // Waits up to `timeout_ms` for the exit; returns the wait status, or -1 on timeout.
  int Wait(int timeout_ms);

 private:
  pid_t pid_ = -1;
  int status_ = 0;
  bool exited_ = false;
};

// Runs a shell command to its end: its exit code (-1 when it did not exit normally) and what it
// printed on stdout and stderr.
struct CommandOutput {
  int exit_code = -1;
  std::string text;
};
CommandOutput RunCommand(const std::string& command);

// Path of the shapebridge binary under test.
std::string ShapebridgeBinary();

}  // namespace shapebridge::testing
