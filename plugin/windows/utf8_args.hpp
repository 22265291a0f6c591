// The command line as UTF-8: mingw's argv is in the ANSI code page, which
// would turn a root path with other characters into "?".
#pragma once

#include <windows.h>
#include <shellapi.h>

#include <string>
#include <vector>

#include "platform/windows/utf16.hpp"

namespace secretshim::plugin {

class Utf8Args {
public:
    Utf8Args() {
        int count = 0;
        LPWSTR* wide = ::CommandLineToArgvW(::GetCommandLineW(), &count);
        for (int i = 0; wide != nullptr && i < count; ++i) strings_.push_back(platform::toUtf8(wide[i]));
        if (wide != nullptr) ::LocalFree(wide);
        for (std::string& s : strings_) pointers_.push_back(s.data());
        pointers_.push_back(nullptr);
    }
    int argc() const { return static_cast<int>(strings_.size()); }
    char** argv() { return pointers_.data(); }

private:
    std::vector<std::string> strings_;
    std::vector<char*> pointers_;
};

}  // namespace secretshim::plugin
