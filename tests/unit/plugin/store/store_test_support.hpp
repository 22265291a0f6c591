// Helpers for the store's unit tests: a throwaway directory under /tmp and
// raw file access.
#pragma once

#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "tests/support/temp_dir.hpp"

namespace secretshim::plugin::test {

using secretshim::test::TempDir;

inline std::vector<unsigned char> readBytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Rewrites a file in place, keeping its inode, owner and mode.
inline void writeBytesInPlace(const std::string& path, const std::vector<unsigned char>& bytes) {
    std::filesystem::resize_file(path, 0);
    std::fstream out(path, std::ios::binary | std::ios::in | std::ios::out);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

inline bool containsBytes(const std::vector<unsigned char>& haystack, std::string_view needle) {
    return std::search(haystack.begin(), haystack.end(), needle.begin(), needle.end()) != haystack.end();
}

inline std::span<const unsigned char> bytesOf(std::string_view s) {
    return {reinterpret_cast<const unsigned char*>(s.data()), s.size()};
}

// Compared in code, never printed: a failing CHECK shows only "false".
inline bool sameBytes(std::span<const unsigned char> a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), bytesOf(b).begin());
}

}  // namespace secretshim::plugin::test
