// What the store may be trusted with. The store has one owner, the build
// service's user; a compile host reads it and believes a file only when that
// owner wrote it and nobody else can have changed it since (docs/security.md).
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstddef>
#include <string>

#include "expected.hpp"
#include "store.hpp"

namespace clsi::venv {

// Owned by `owner` and writable by no one else (no group or other write bit).
bool owned_and_private(const struct stat& st, uid_t owner);

// The store's owner: the uid owning its root, which must be a directory that
// only that owner can write.
Expected<uid_t> store_owner(const std::string& root);

// Reads a small regular file without following a symlink and without blocking
// (a FIFO planted in its place is refused, not waited on), and only when it is
// owned_and_private. At most `max_bytes`; more is an error.
Expected<std::string> read_trusted_file(const std::string& path, uid_t owner,
                                        std::size_t max_bytes = 1 << 20);

// The service's start-up check: the store's root, its directories and every
// entry directly in them belong to `me` and are writable by nobody else. The
// error names the first path that is not, and the command that fixes it.
Expected<bool> check_store_ownership(const Store& store, uid_t me);

}  // namespace clsi::venv
