// Invariant checks shared by the fuzzers. A broken invariant prints what
// broke and aborts: libFuzzer reports the abort as a crash and saves the
// input, which becomes a file under <fuzzer>/regressions/.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace secretshim::fuzz {

// Where the checks report. The agent fuzzer points stderr elsewhere to
// silence the agent's per-request log and keeps the real one here.
inline std::FILE*& reportStream() {
    static std::FILE* stream = stderr;
    return stream;
}

[[noreturn]] inline void broken(const char* file, int line, const char* what, std::string_view detail) {
    std::fprintf(reportStream(), "%s:%d: invariant broken: %s", file, line, what);
    if (!detail.empty()) std::fprintf(reportStream(), " [%.*s]", static_cast<int>(detail.size()), detail.data());
    std::fputc('\n', reportStream());
    std::fflush(reportStream());
    std::abort();
}

// SECRETSHIM_FUZZ_LAX_ERRORS=1 skips the one-line check below, to fuzz
// past a known multi-line message before it is fixed.
inline bool laxErrors() {
    static const bool lax = std::getenv("SECRETSHIM_FUZZ_LAX_ERRORS") != nullptr;
    return lax;
}

// Error messages go to one line on stderr or into a JSON reply: no line
// breaks and no NUL, which would cut the line short in C strings.
inline bool isOneLine(std::string_view message) {
    if (message.empty()) return false;
    return laxErrors() || message.find_first_of(std::string_view("\n\r\0", 3)) == std::string_view::npos;
}

// Well-formed UTF-8 (no overlong forms, surrogates or code points past
// U+10FFFF): what YAML and JSON can carry without changing it.
inline bool isUtf8(std::string_view s) {
    for (std::size_t i = 0; i < s.size();) {
        const auto c = static_cast<unsigned char>(s[i]);
        std::size_t n = 0;
        char32_t cp = 0;
        if (c < 0x80) {
            ++i;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (i + n >= s.size()) return false;  // cut short
        for (std::size_t k = 1; k <= n; ++k) {
            const auto d = static_cast<unsigned char>(s[i + k]);
            if ((d & 0xc0) != 0x80) return false;
            cp = (cp << 6) | (d & 0x3f);
        }
        if ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)))
            return false;
        i += n + 1;
    }
    return true;
}

// Control characters printed as '?' so a broken invariant's detail stays readable.
inline std::string printable(std::string_view s, std::size_t limit = 200) {
    std::string out;
    for (char c : s.substr(0, limit)) {
        const auto u = static_cast<unsigned char>(c);
        out += u < 0x20 || u == 0x7f ? '?' : c;
    }
    if (s.size() > limit) out += "...";
    return out;
}

}  // namespace secretshim::fuzz

#define FUZZ_CHECK(cond) ((cond) ? void(0) : ::secretshim::fuzz::broken(__FILE__, __LINE__, #cond, {}))
#define FUZZ_CHECK_MSG(cond, detail) \
    ((cond) ? void(0) : ::secretshim::fuzz::broken(__FILE__, __LINE__, #cond, ::secretshim::fuzz::printable(detail)))
