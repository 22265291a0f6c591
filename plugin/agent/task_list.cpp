#include "plugin/agent/task_list.hpp"

namespace secretshim::plugin {

using nlohmann::json;

json taskListPage(const std::map<TaskKey, const std::vector<std::string>*>& secretsByKey,
                  const TaskPageStart& start, std::size_t budget) {
    auto it = secretsByKey.begin();
    if (start.afterBundle) {
        it = secretsByKey.upper_bound({start.after, *start.afterBundle});
    } else if (!start.after.empty()) {
        // Keys sort by id first: the tasks with that id are adjacent.
        for (it = secretsByKey.lower_bound({start.after, ""}); it != secretsByKey.end() && it->first.id == start.after;)
            ++it;
    }
    json list = json::array();
    std::size_t used = 2;  // []
    bool more = false;
    for (; it != secretsByKey.end(); ++it) {
        json entry = {{"id", it->first.id}, {"bundle", it->first.bundle}, {"secrets", *it->second}};
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
