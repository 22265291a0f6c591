#include "mountfs/view_layout.hpp"

#include <algorithm>

namespace secretshim::mountfs {

namespace {

// The longest path the kernel resolves (PATH_MAX less the NUL): every file
// of a view is reached by its path from the tmpfs root.
constexpr std::size_t kMaxViewPath = 4095;

std::string_view areaOf(const ViewEntry& entry) { return entry.inDirectory ? kViewDir : kViewFiles; }

}  // namespace

std::string pathInArea(const ViewEntry& entry) {
    const std::string prefix = std::string(kSecretsDir) + "/";
    return entry.ref.target.substr(entry.inDirectory ? prefix.size() : 1);
}

std::vector<std::string> parentsInArea(const ViewEntry& entry) {
    const std::string relative = pathInArea(entry);
    std::vector<std::string> parents;
    for (std::size_t slash = relative.find('/'); slash != std::string::npos; slash = relative.find('/', slash + 1))
        parents.push_back(relative.substr(0, slash));
    return parents;
}

bool ViewLayout::hasDirectoryMount() const {
    return std::any_of(entries.begin(), entries.end(),
                       [](const ViewEntry& e) { return e.inDirectory; });
}

Result<ViewLayout> planView(const std::vector<SecretRef>& refs) {
    if (auto ok = validateRefs(refs); !ok) return propagate(ok);
    const std::string prefix = std::string(kSecretsDir) + "/";
    ViewLayout layout;
    for (std::size_t i = 0; i < refs.size(); ++i) {
        ViewEntry entry{refs[i], {}, false};
        entry.inDirectory = refs[i].target.rfind(prefix, 0) == 0;
        // A file's place follows from its target alone, never from its
        // position among the references: a view found again from its tmpfs
        // root (an agent restarted from the fd store) knows each file from the
        // references it holds, whatever was added or revoked in between.
        const std::string area(areaOf(entry));
        entry.file = area + "/" + pathInArea(entry);
        // Only a target outside /run/secrets can get there (a target is at
        // most kMaxViewPath bytes, and dir/ is shorter than /run/secrets/).
        if (entry.file.size() > kMaxViewPath)
            return fail("target " + quote(refs[i].target) + " of secret " + quote(refs[i].source) +
                        " is too long for a file outside " + std::string(kSecretsDir) + " (at most " +
                        std::to_string(kMaxViewPath - area.size()) + " bytes)");
        // Nested targets (target=a/b, /etc/app/key) need their parents inside the view.
        for (const std::string& parent : parentsInArea(entry)) {
            std::string dir = area + "/" + parent;
            if (std::find(layout.directories.begin(), layout.directories.end(), dir) == layout.directories.end())
                layout.directories.push_back(std::move(dir));
        }
        layout.entries.push_back(std::move(entry));
    }
    return layout;
}

}  // namespace secretshim::mountfs
