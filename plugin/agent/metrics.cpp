#include "plugin/agent/metrics.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>

namespace secretshim::plugin {

namespace {

// Seconds. A flush here takes ~0.1 ms for a few files (bench rows 2 and 6);
// the upper buckets catch a node under load or a view of many files.
std::vector<double> flushBounds() {
    return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};
}

constexpr std::array<Refusal, kRefusalKinds> kAllRefusals = {
    Refusal::notGranted, Refusal::unknownSecret, Refusal::limit,       Refusal::badRequest,
    Refusal::target,     Refusal::identity,      Refusal::unreachable, Refusal::other,
};

}  // namespace

const char* refusalLabel(Refusal reason) {
    switch (reason) {
    case Refusal::notGranted: return "not_granted";
    case Refusal::unknownSecret: return "unknown_secret";
    case Refusal::limit: return "limit";
    case Refusal::badRequest: return "bad_request";
    case Refusal::target: return "target";
    case Refusal::identity: return "identity";
    case Refusal::unreachable: return "unreachable";
    case Refusal::other: break;
    }
    return "other";
}

Refusal refusalOfGrant(const Error& error) {
    if (error.kind == ErrorKind::invalid) return Refusal::badRequest;
    if (error.kind != ErrorKind::posix) return Refusal::other;
    switch (error.code) {
    case EACCES: return Refusal::notGranted;
    case ENOENT: return Refusal::unknownSecret;
    case ENOTCONN: return Refusal::unreachable;
    default: return Refusal::other;
    }
}

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {
    std::sort(bounds_.begin(), bounds_.end());
}

void Histogram::observe(double value) {
    // The first bucket whose bound is >= value ("le": less or equal).
    const auto at = std::lower_bound(bounds_.begin(), bounds_.end(), value);
    ++counts_[static_cast<std::size_t>(at - bounds_.begin())];
    sum_ += value;
    ++count_;
}

AgentMetrics::AgentMetrics() : flushSeconds(flushBounds()) {}

std::string escapeLabelValue(std::string_view value) {
    std::string out;
    for (char c : value) {
        if (c == '\\')
            out += "\\\\";
        else if (c == '"')
            out += "\\\"";
        else if (c == '\n')
            out += "\\n";
        else
            out += c;
    }
    return out;
}

std::string escapeHelp(std::string_view help) {
    std::string out;
    for (char c : help) {
        if (c == '\\')
            out += "\\\\";
        else if (c == '\n')
            out += "\\n";
        else
            out += c;
    }
    return out;
}

std::string formatValue(double value) {
    if (std::isnan(value)) return "NaN";
    if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
    // Whole numbers (a revision, a bound of 1 s) in full, as counters are;
    // the rest as %g would with the fewest digits that read back the same
    // ("0.0001", "0.00015", "1e-05"): Go's client spells them so too.
    if (std::fabs(value) < 9007199254740992.0 && value == std::trunc(value))
        return std::to_string(static_cast<long long>(value));
    char buffer[64];
    const auto result = std::to_chars(buffer, buffer + sizeof buffer, value, std::chars_format::general);
    return std::string(buffer, result.ptr);
}

void MetricsText::family(std::string_view name, std::string_view type, std::string_view help) {
    text_.append("# HELP ").append(name).append(" ").append(escapeHelp(help)).append("\n");
    text_.append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

void MetricsText::series(std::string_view name, const Labels& labels) {
    text_.append(name);
    if (labels.empty()) return;
    text_ += '{';
    for (std::size_t i = 0; i < labels.size(); ++i) {
        if (i) text_ += ',';
        text_.append(labels[i].first).append("=\"").append(escapeLabelValue(labels[i].second)).append("\"");
    }
    text_ += '}';
}

void MetricsText::sample(std::string_view name, const Labels& labels, double value) {
    series(name, labels);
    text_.append(" ").append(formatValue(value)).append("\n");
}

void MetricsText::sample(std::string_view name, const Labels& labels, std::uint64_t value) {
    series(name, labels);
    text_.append(" ").append(std::to_string(value)).append("\n");
}

void MetricsText::histogram(std::string_view name, std::string_view help, const Histogram& h) {
    family(name, "histogram", help);
    const std::string base(name);
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < h.bounds().size(); ++i) {
        cumulative += h.counts()[i];
        sample(base + "_bucket", {{"le", formatValue(h.bounds()[i])}}, cumulative);
    }
    sample(base + "_bucket", {{"le", "+Inf"}}, h.count());
    sample(base + "_sum", {}, h.sum());
    sample(base + "_count", {}, h.count());
}

std::string renderAgentMetrics(const AgentMetrics& m, const HeldNow& held, std::string_view version) {
    MetricsText out;
    out.family("secretshim_build_info", "gauge", "The agent's version (the meson project version); always 1.");
    out.sample("secretshim_build_info", {{"version", version}}, std::uint64_t{1});
    out.family("secretshim_attaches_total", "counter",
               "Containers whose secrets were attached (the hook reported its mounts in place).");
    out.sample("secretshim_attaches_total", {}, m.attaches);
    out.family("secretshim_refusals_total", "counter",
               "Containers refused their secrets (the runtime does not start them), by reason.");
    for (const Refusal r : kAllRefusals)
        out.sample("secretshim_refusals_total", {{"reason", refusalLabel(r)}}, m.refusals[static_cast<std::size_t>(r)]);
    out.histogram("secretshim_flush_duration_seconds",
                  "Time to flush a container's view (every file zeroed, the view let go) once it stopped.",
                  m.flushSeconds);
    out.family("secretshim_views_held", "gauge", "Running containers whose secrets view the agent holds.");
    out.sample("secretshim_views_held", {}, std::uint64_t{held.views});
    out.family("secretshim_plaintext_bytes_held", "gauge",
               "Bytes of secrets in plaintext in the views of running containers and of containers being created.");
    out.sample("secretshim_plaintext_bytes_held", {}, std::uint64_t{held.bytes});
    out.family("secretshim_rotations_applied_total", "counter",
               "Files of running containers rewritten with a secret's new value (a rotation).");
    out.sample("secretshim_rotations_applied_total", {}, m.rotations);
    out.family("secretshim_grants_applied_total", "counter",
               "Files added to running containers by a grant applied live (cluster mode).");
    out.sample("secretshim_grants_applied_total", {}, m.grantsAdded);
    out.family("secretshim_revokes_total", "counter",
               "Files zeroed and removed from running containers by a revoked grant or an unassigned task.");
    out.sample("secretshim_revokes_total", {}, m.revokes);
    if (held.cluster) {
        out.family("secretshim_etcd_connected", "gauge",
                   "1 while the agent is connected to etcd and has read its prefix.");
        out.sample("secretshim_etcd_connected", {}, std::uint64_t{held.cluster->connected ? 1u : 0u});
        out.family("secretshim_etcd_revision", "gauge", "The last etcd revision the agent has applied.");
        out.sample("secretshim_etcd_revision", {}, static_cast<double>(held.cluster->revision));
    }
    return out.text();
}

}  // namespace secretshim::plugin
