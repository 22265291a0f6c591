// The metrics page in Prometheus' text format: escapes, histogram buckets,
// the agent's families, and what a source's refusal counts as.
#include <doctest/doctest.h>

#include <cerrno>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "plugin/agent/metrics.hpp"

using namespace secretshim;
using namespace secretshim::plugin;

namespace {

std::vector<std::string> linesOf(const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
}

bool hasLine(const std::string& text, const std::string& line) {
    for (const auto& l : linesOf(text))
        if (l == line) return true;
    return false;
}

}  // namespace

TEST_CASE("a label value escapes backslash, double quote and newline, and nothing else") {
    CHECK(escapeLabelValue("plain") == "plain");
    CHECK(escapeLabelValue("a\\b") == "a\\\\b");
    CHECK(escapeLabelValue("say \"hi\"") == "say \\\"hi\\\"");
    CHECK(escapeLabelValue("two\nlines") == "two\\nlines");
    CHECK(escapeLabelValue("tab\there {x}=,") == "tab\there {x}=,");
    CHECK(escapeHelp("a\\b \"q\"\nc") == "a\\\\b \"q\"\\nc");  // HELP leaves quotes alone
}

TEST_CASE("a sample with labels: name{k=\"v\",...} value, each value escaped") {
    MetricsText out;
    out.family("x_total", "counter", "Some help\nwith a newline.");
    out.sample("x_total", {{"a", "1"}, {"b", "q\"\\\n"}}, std::uint64_t{7});
    out.sample("y", {}, 0.5);
    CHECK(out.text() ==
          "# HELP x_total Some help\\nwith a newline.\n"
          "# TYPE x_total counter\n"
          "x_total{a=\"1\",b=\"q\\\"\\\\\\n\"} 7\n"
          "y 0.5\n");
}

TEST_CASE("floats as the format spells them") {
    CHECK(formatValue(1) == "1");
    CHECK(formatValue(0.0001) == "0.0001");
    CHECK(formatValue(2.5) == "2.5");
    CHECK(formatValue(1234567) == "1234567");
    CHECK(formatValue(0.00015) == "0.00015");
    CHECK(formatValue(1e-05) == "1e-05");
    CHECK(formatValue(0) == "0");
    CHECK(formatValue(123456789012.0) == "123456789012");
    CHECK(formatValue(std::numeric_limits<double>::infinity()) == "+Inf");
    CHECK(formatValue(-std::numeric_limits<double>::infinity()) == "-Inf");
    CHECK(formatValue(std::numeric_limits<double>::quiet_NaN()) == "NaN");
}

TEST_CASE("a histogram's buckets are cumulative, a bound includes its value, +Inf is the count") {
    Histogram h({0.5, 0.125, 1});  // sorted by the histogram
    h.observe(0.125);  // le 0.125 (inclusive)
    h.observe(0.25);   // le 0.5
    h.observe(0.5);    // le 0.5
    h.observe(3);      // only +Inf
    CHECK(h.count() == 4);
    CHECK(h.sum() == 3.875);
    MetricsText out;
    out.histogram("t_seconds", "A time.", h);
    CHECK(out.text() ==
          "# HELP t_seconds A time.\n"
          "# TYPE t_seconds histogram\n"
          "t_seconds_bucket{le=\"0.125\"} 1\n"
          "t_seconds_bucket{le=\"0.5\"} 3\n"
          "t_seconds_bucket{le=\"1\"} 3\n"
          "t_seconds_bucket{le=\"+Inf\"} 4\n"
          "t_seconds_sum 3.875\n"
          "t_seconds_count 4\n");
}

TEST_CASE("an empty histogram renders every bucket at 0") {
    MetricsText out;
    out.histogram("e", "Empty.", Histogram({1}));
    CHECK(hasLine(out.text(), "e_bucket{le=\"1\"} 0"));
    CHECK(hasLine(out.text(), "e_bucket{le=\"+Inf\"} 0"));
    CHECK(hasLine(out.text(), "e_sum 0"));
    CHECK(hasLine(out.text(), "e_count 0"));
}

TEST_CASE("the agent's page: every family with HELP and TYPE, every refusal reason, flushes in seconds") {
    AgentMetrics m;
    m.attaches = 3;
    m.refused(Refusal::notGranted);
    m.refused(Refusal::notGranted);
    m.refused(Refusal::limit);
    m.flushed(std::chrono::microseconds(150));  // 0.00015 s: in le="0.00025"
    m.rotations = 4;
    m.grantsAdded = 5;
    m.revokes = 6;
    const std::string text = renderAgentMetrics(m, {2, 4096, std::nullopt}, "1.2.3");
    for (const char* family : {"secretshim_build_info", "secretshim_attaches_total", "secretshim_refusals_total",
                               "secretshim_flush_duration_seconds", "secretshim_views_held",
                               "secretshim_plaintext_bytes_held", "secretshim_rotations_applied_total",
                               "secretshim_grants_applied_total", "secretshim_revokes_total"}) {
        CAPTURE(family);
        CHECK(text.find(std::string("# HELP ") + family + " ") != std::string::npos);
        CHECK(text.find(std::string("# TYPE ") + family + " ") != std::string::npos);
    }
    CHECK(hasLine(text, "secretshim_build_info{version=\"1.2.3\"} 1"));
    CHECK(hasLine(text, "secretshim_attaches_total 3"));
    CHECK(hasLine(text, "secretshim_refusals_total{reason=\"not_granted\"} 2"));
    CHECK(hasLine(text, "secretshim_refusals_total{reason=\"limit\"} 1"));
    for (const char* zero : {"unknown_secret", "bad_request", "target", "identity", "unreachable", "other"})
        CHECK(hasLine(text, std::string("secretshim_refusals_total{reason=\"") + zero + "\"} 0"));
    CHECK(hasLine(text, "secretshim_flush_duration_seconds_bucket{le=\"0.0001\"} 0"));
    CHECK(hasLine(text, "secretshim_flush_duration_seconds_bucket{le=\"0.00025\"} 1"));
    CHECK(hasLine(text, "secretshim_flush_duration_seconds_bucket{le=\"+Inf\"} 1"));
    CHECK(hasLine(text, "secretshim_flush_duration_seconds_sum 0.00015"));
    CHECK(hasLine(text, "secretshim_flush_duration_seconds_count 1"));
    CHECK(hasLine(text, "secretshim_views_held 2"));
    CHECK(hasLine(text, "secretshim_plaintext_bytes_held 4096"));
    CHECK(hasLine(text, "secretshim_rotations_applied_total 4"));
    CHECK(hasLine(text, "secretshim_grants_applied_total 5"));
    CHECK(hasLine(text, "secretshim_revokes_total 6"));
    // Local mode: no etcd families.
    CHECK(text.find("secretshim_etcd") == std::string::npos);
    // Every line is a comment or a sample, and the page ends with a newline.
    CHECK(text.back() == '\n');
    for (const auto& line : linesOf(text)) CHECK((line.rfind("# ", 0) == 0 || line.rfind("secretshim_", 0) == 0));
}

TEST_CASE("cluster mode adds etcd's connection state and revision") {
    const std::string up = renderAgentMetrics(AgentMetrics{}, {0, 0, HeldNow::Cluster{true, 123456789}}, "v");
    CHECK(hasLine(up, "# TYPE secretshim_etcd_connected gauge"));
    CHECK(hasLine(up, "secretshim_etcd_connected 1"));
    CHECK(hasLine(up, "secretshim_etcd_revision 123456789"));
    const std::string down = renderAgentMetrics(AgentMetrics{}, {0, 0, HeldNow::Cluster{false, 7}}, "v");
    CHECK(hasLine(down, "secretshim_etcd_connected 0"));
    CHECK(hasLine(down, "secretshim_etcd_revision 7"));
}

TEST_CASE("a version with quotes or backslashes stays one escaped label value") {
    const std::string text = renderAgentMetrics(AgentMetrics{}, {}, "1.0\"x\\y");
    CHECK(hasLine(text, "secretshim_build_info{version=\"1.0\\\"x\\\\y\"} 1"));
}

TEST_CASE("a source's refusal counts by its code; a validation failure is the request's") {
    CHECK(refusalOfGrant(errorWith(EACCES, "secret \"a\" is not granted to x")) == Refusal::notGranted);
    CHECK(refusalOfGrant(errorWith(ENOENT, "secret \"a\" has no copy")) == Refusal::unknownSecret);
    CHECK(refusalOfGrant(errorWith(ENOTCONN, "control plane unreachable")) == Refusal::unreachable);
    CHECK(refusalOfGrant(Error{ErrorKind::invalid, 0, "bad spec"}) == Refusal::badRequest);
    CHECK(refusalOfGrant(errorWith(EBADMSG, "does not decrypt")) == Refusal::other);
    CHECK(refusalOfGrant(Error{ErrorKind::win32, 5, "x"}) == Refusal::other);
    CHECK(std::string(refusalLabel(Refusal::notGranted)) == "not_granted");
    CHECK(std::string(refusalLabel(Refusal::other)) == "other");
}
