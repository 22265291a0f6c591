// What --version prints: the meson project version, and the commit the
// program was built from where the build knew it (a git checkout of this
// very tree), e.g. "0.1.0 (git 7131673)"; a build from a tarball or a
// package build without .git says "0.1.0".
#pragma once

namespace secretshim {

const char* versionString();

}  // namespace secretshim
