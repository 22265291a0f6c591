// The agent's metrics, in Prometheus' text exposition format (0.0.4): what
// it counts (attaches, refusals by reason, flushes, live changes), and the
// writer that renders families with HELP and TYPE, escaped label values and
// cumulative histogram buckets. Only counts, sizes and times: no secret
// name, no container id, no identity ever becomes a label, so the series
// are a small fixed set and nothing an admin keeps private shows to whoever
// can reach the listener (docs/admin-guide.md, "Metrics").
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mountfs/base/error.hpp"

namespace secretshim::plugin {

// Why a container was refused its secrets: the label values of
// secretshim_refusals_total, one per place a refusal comes from.
enum class Refusal : unsigned char {
    notGranted,     // no grant of the secret (or of the cluster task) allows this identity
    unknownSecret,  // granted, but the node holds no such secret (or no copy of it)
    limit,          // over a limit: bytes, files, a task's max_containers, targets
    badRequest,     // a malformed request or annotation (references that collide too)
    target,         // the hook could not attach at a target in the container (or it cannot be laid out)
    identity,       // who the container is could not be established
    unreachable,    // cluster mode: the control plane cannot be asked
    other,          // anything else (a failed system call, a record that does not decrypt)
};
inline constexpr std::size_t kRefusalKinds = 8;
const char* refusalLabel(Refusal reason);
// What a source's refusal of a grant means, from the code it carries
// (secret_source.hpp): EACCES not granted, ENOENT no such secret, ENOTCONN
// the control plane unreachable; a validation failure is the request's.
Refusal refusalOfGrant(const Error& error);

// A histogram over fixed upper bounds; counts() per bucket (not
// cumulative), the last one above every bound (+Inf).
class Histogram {
public:
    explicit Histogram(std::vector<double> bounds);
    void observe(double value);
    const std::vector<double>& bounds() const { return bounds_; }
    const std::vector<std::uint64_t>& counts() const { return counts_; }
    double sum() const { return sum_; }
    std::uint64_t count() const { return count_; }

private:
    std::vector<double> bounds_;
    std::vector<std::uint64_t> counts_;
    double sum_ = 0;
    std::uint64_t count_ = 0;
};

// What the agent counts, on its io thread.
struct AgentMetrics {
    AgentMetrics();
    std::uint64_t attaches = 0;     // containers that got their secrets attached
    std::array<std::uint64_t, kRefusalKinds> refusals{};
    Histogram flushSeconds;         // a view's flush, from its start to its last file wiped
    std::uint64_t rotations = 0;    // files rewritten with a new value in a running container
    std::uint64_t grantsAdded = 0;  // files added to a running container (a grant applied live)
    std::uint64_t revokes = 0;      // files taken from a running container (a grant revoked, a task unassigned)

    void refused(Refusal reason) { ++refusals[static_cast<std::size_t>(reason)]; }
    void flushed(std::chrono::microseconds took) { flushSeconds.observe(static_cast<double>(took.count()) / 1e6); }
};

// What the agent holds now (its status op's figures).
struct HeldNow {
    std::size_t views = 0;  // running containers with a view
    std::size_t bytes = 0;  // plaintext in views, running and being created
    struct Cluster {
        bool connected = false;
        std::int64_t revision = 0;
    };
    std::optional<Cluster> cluster;  // cluster mode only
};

// The exposition format's writer: a family's HELP and TYPE, then its
// samples.
class MetricsText {
public:
    using Labels = std::vector<std::pair<std::string_view, std::string_view>>;
    void family(std::string_view name, std::string_view type, std::string_view help);
    void sample(std::string_view name, const Labels& labels, double value);
    void sample(std::string_view name, const Labels& labels, std::uint64_t value);
    // _bucket (cumulative, le="+Inf" last), _sum and _count.
    void histogram(std::string_view name, std::string_view help, const Histogram& h);
    const std::string& text() const { return text_; }

private:
    void series(std::string_view name, const Labels& labels);
    std::string text_;
};
// A label value's escapes (backslash, double quote, newline), and HELP's
// (backslash, newline).
std::string escapeLabelValue(std::string_view value);
std::string escapeHelp(std::string_view help);
// A float as the format spells it: shortest round-trip, +Inf, -Inf, NaN.
std::string formatValue(double value);

// The agent's whole page.
std::string renderAgentMetrics(const AgentMetrics& metrics, const HeldNow& held, std::string_view version);

}  // namespace secretshim::plugin
