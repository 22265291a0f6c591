#include "mountfs/view_layout.hpp"

#include <algorithm>

namespace secretshim::mountfs {

bool ViewLayout::hasDirectoryMount() const {
    return std::any_of(entries.begin(), entries.end(),
                       [](const ViewEntry& e) { return e.inDirectory; });
}

Result<ViewLayout> planView(const std::vector<SecretRef>& refs) {
    if (auto ok = validateRefs(refs); !ok) return tl::unexpected(ok.error());
    const std::string prefix = std::string(kSecretsDir) + "/";
    ViewLayout layout;
    for (std::size_t i = 0; i < refs.size(); ++i) {
        ViewEntry entry{refs[i], {}, false};
        if (refs[i].target.rfind(prefix, 0) == 0) {
            const std::string relative = refs[i].target.substr(prefix.size());
            entry.inDirectory = true;
            entry.file = std::string(kViewDir) + "/" + relative;
            // Nested targets (target=a/b) need their parents inside the view.
            for (std::size_t slash = relative.find('/'); slash != std::string::npos;
                 slash = relative.find('/', slash + 1)) {
                std::string dir = std::string(kViewDir) + "/" + relative.substr(0, slash);
                if (std::find(layout.directories.begin(), layout.directories.end(), dir) ==
                    layout.directories.end())
                    layout.directories.push_back(std::move(dir));
            }
        } else {
            entry.file = std::string(kViewFiles) + "/" + std::to_string(i);
        }
        layout.entries.push_back(std::move(entry));
    }
    return layout;
}

}  // namespace secretshim::mountfs
