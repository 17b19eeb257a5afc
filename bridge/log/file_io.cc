#include "bridge/log/file_io.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace shapebridge::fileio {

absl::Status ErrnoError(std::string_view what, const std::string& path) {
  const int err = errno;
  const auto code = err == ENOSPC                     ? absl::StatusCode::kResourceExhausted
                    : (err == EACCES || err == EPERM) ? absl::StatusCode::kPermissionDenied
                                                      : absl::StatusCode::kInternal;
  return absl::Status(code, absl::StrCat(std::string(what), " ", path, ": ", std::strerror(err)));
}

absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("cannot open", path);
  std::string data;
  char buffer[1 << 16];
  while (true) {
    const ssize_t n = read(fd, buffer, sizeof(buffer));
    if (n < 0) {
      if (errno == EINTR) continue;
      absl::Status s = ErrnoError("cannot read", path);
      close(fd);
      return s;
    }
    if (n == 0) break;
    data.append(buffer, static_cast<size_t>(n));
  }
  close(fd);
  return data;
}

absl::Status WriteAll(int fd, std::string_view data, std::string_view what,
                      const std::string& path) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(what, path);
    }
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

void SyncDirectory(const std::string& dir) {
  const int dir_fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    (void)fsync(dir_fd);
    close(dir_fd);
  }
}

}  // namespace shapebridge::fileio
