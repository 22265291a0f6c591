#include "plugin/agent/task_list.hpp"

namespace secretshim::plugin {

using nlohmann::json;

json taskListPage(const std::map<std::string, const std::vector<std::string>*>& secretsById,
                  const std::string& after, std::size_t budget) {
    json list = json::array();
    std::size_t used = 2;  // []
    bool more = false;
    for (auto it = after.empty() ? secretsById.begin() : secretsById.upper_bound(after); it != secretsById.end();
         ++it) {
        json entry = {{"id", it->first}, {"secrets", *it->second}};
        const std::size_t size = entry.dump().size() + 1;  // and a comma
        if (!list.empty() && used + size > budget) {
            more = true;
            break;
        }
        used += size;
        list.push_back(std::move(entry));
    }
    return {{"ok", true}, {"tasks", std::move(list)}, {"more", more}};
}

}  // namespace secretshim::plugin
