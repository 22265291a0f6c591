"""The one table the bench prints: rows of baseline and secretshim samples."""


def pct(samples, q):
    s = sorted(samples)
    return s[int(q * (len(s) - 1))]


def median(samples):
    return pct(samples, 0.5)


def ms(seconds):
    return seconds * 1000.0


class Table:
    """Rows of (what, n, baseline samples, secretshim samples, per-unit divisor)."""

    def __init__(self):
        self.rows = []

    def pair(self, name, base, shim, per=None, base_name="runc", unit="ms"):
        self.rows.append(("pair", name, base, shim, per, base_name, unit))

    def single(self, name, samples, unit="ms", note=""):
        self.rows.append(("single", name, samples, note, unit))

    def text(self, name, value):
        self.rows.append(("text", name, value))

    def section(self, title):
        self.rows.append(("section", title))

    def render(self):
        out = []
        head = "%-52s %5s  %-22s  %-22s  %9s  %6s  %10s" % (
            "row", "runs", "baseline med/p90/p99", "secretshim med/p90/p99", "added", "ratio", "per secret")
        out.append(head)
        out.append("-" * len(head))
        for r in self.rows:
            if r[0] == "section":
                out.append("[%s]" % r[1])
            elif r[0] == "text":
                out.append("%-52s %s" % (r[1], r[2]))
            elif r[0] == "single":
                _, name, s, note, unit = r
                f = 1000.0 if unit == "ms" else 1.0
                out.append("%-52s %5d  %-22s  %-22s  %9s  %6s  %10s %s" % (
                    name, len(s), "", "%.3f/%.3f/%.3f" % (median(s) * f, pct(s, .9) * f, pct(s, .99) * f),
                    "", "", "", note))
            else:
                _, name, base, shim, per, base_name, unit = r
                f = 1000.0
                added = (median(shim) - median(base)) * f
                per_s = "%.4f" % (added / per) if per else ""
                out.append("%-52s %5d  %-22s  %-22s  %9.3f  %6.3f  %10s" % (
                    name, len(shim),
                    "%.2f/%.2f/%.2f" % (median(base) * f, pct(base, .9) * f, pct(base, .99) * f),
                    "%.2f/%.2f/%.2f" % (median(shim) * f, pct(shim, .9) * f, pct(shim, .99) * f),
                    added, median(shim) / median(base), per_s))
        out.append("times in ms; added = secretshim median - baseline median; ratio = secretshim / baseline median")
        return "\n".join(out)
