#!/usr/bin/env python3
"""Static and live checks of ecrm's alert rules and Grafana dashboard (tests/monitoring/run.sh).

  monitoring_check.py static ALERTS DASHBOARD OPERATIONS_MD OUT_DIR
      Checks the rules' labels and annotations (severity, summary, description, a runbook_url
      whose anchor is a heading of OPERATIONS_MD) and the dashboard's structure (data source
      variable, namespace and instance variables, every panel on ${datasource}, unique ids, no
      overlapping panels, every selector filtered by $namespace and $instance), and that every
      relative link of OPERATIONS_MD leads to a file and heading that exist. Writes
      OUT_DIR/dashboard-rules.yaml (the dashboard's queries as recording rules, Grafana variables
      replaced, for `promtool check rules`) and OUT_DIR/selectors.json (every metric selector
      of both files). Exits 1 on a problem.

  monitoring_check.py live SELECTORS_JSON SCRAPE...
      Reads Prometheus text scrapes and checks that every metric named in SELECTORS_JSON is
      exposed by at least one of them (histograms by their family name: _bucket, _sum and
      _count are stripped), and that each selector's equality and regex matchers on ecrm's own
      labels (route, kind, reason, ...) match at least one exposed series. `up` is not an ecrm
      metric and is skipped. Prints the missing names one per line after "MISSING:" and exits 1
      if any is missing.

Needs python3 with PyYAML (Debian: python3-yaml).
"""

import json
import os
import re
import sys

import yaml

# Labels Prometheus attaches to every series of a target; ecrm itself never sets them.
TARGET_LABELS = {"job", "instance", "namespace", "pod", "service", "endpoint", "container", "node"}
NOT_ECRM = {"up"}

KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
            "bool", "offset", "atan2", "inf", "nan"}
AGGREGATORS = {"sum", "avg", "count", "min", "max", "stddev", "stdvar", "topk", "bottomk",
               "quantile", "count_values", "group", "limitk", "limit_ratio"}
LABEL_LIST_AFTER = {"by", "without", "on", "ignoring", "group_left", "group_right"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")

IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
NUMBER = re.compile(r"(0x[0-9A-Fa-f]+|[0-9][0-9A-Za-z_.]*(?:[eE][+-]?[0-9]+)?)")


class PromQLError(Exception):
    pass


def _read_string(expr, i):
    quote = expr[i]
    j = i + 1
    out = []
    while j < len(expr):
        c = expr[j]
        if c == "\\" and quote != "`" and j + 1 < len(expr):
            nxt = expr[j + 1]
            out.append({"n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'"}.get(nxt, "\\" + nxt))
            j += 2
            continue
        if c == quote:
            return "".join(out), j + 1
        out.append(c)
        j += 1
    raise PromQLError("unterminated string")


def _skip_ws(expr, i):
    while i < len(expr) and expr[i] in " \t\r\n":
        i += 1
    return i


def _parse_matchers(expr, i):
    """expr[i] == '{'. Returns ([(label, op, value)], index after '}')."""
    i += 1
    matchers = []
    while True:
        i = _skip_ws(expr, i)
        if i >= len(expr):
            raise PromQLError("unterminated label matchers")
        if expr[i] == "}":
            return matchers, i + 1
        if expr[i] == ",":
            i += 1
            continue
        m = IDENT.match(expr, i)
        if not m:
            raise PromQLError(f"bad label matcher at {expr[i:i + 20]!r}")
        label = m.group(0)
        i = _skip_ws(expr, m.end())
        op = next((o for o in ("=~", "!~", "!=", "=") if expr.startswith(o, i)), None)
        if op is None:
            raise PromQLError(f"bad label matcher operator after {label}")
        i = _skip_ws(expr, i + len(op))
        if i >= len(expr) or expr[i] not in "\"'`":
            raise PromQLError(f"label matcher {label} has no string value")
        value, i = _read_string(expr, i)
        matchers.append((label, op, value))


def _skip_parens(expr, i):
    """expr[i] == '('; returns the index after the matching ')' (label lists have no strings)."""
    depth = 0
    while i < len(expr):
        if expr[i] == "(":
            depth += 1
        elif expr[i] == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise PromQLError("unbalanced parentheses")


def selectors(expr):
    """Every vector selector of a PromQL expression, as (metric name, [(label, op, value)])."""
    out = []
    i = 0
    prev_ident = None  # a metric name whose label matchers may follow
    while i < len(expr):
        c = expr[i]
        if c in " \t\r\n":
            i += 1
            continue
        if c in "\"'`":
            _, i = _read_string(expr, i)
            prev_ident = None
            continue
        if c == "#":  # comment to end of line
            while i < len(expr) and expr[i] != "\n":
                i += 1
            continue
        if c == "{":
            matchers, i = _parse_matchers(expr, i)
            if prev_ident is not None:
                out[prev_ident] = (out[prev_ident][0], matchers)
            else:
                name = next((v for (l, o, v) in matchers if l == "__name__" and o == "="), None)
                if name is None:
                    raise PromQLError("a selector without a metric name")
                out.append((name, [m for m in matchers if m[0] != "__name__"]))
            prev_ident = None
            continue
        if c == "[":
            depth = 0
            while i < len(expr):
                if expr[i] == "[":
                    depth += 1
                elif expr[i] == "]":
                    depth -= 1
                    if depth == 0:
                        break
                i += 1
            i += 1
            continue
        if c.isdigit() or (c == "." and i + 1 < len(expr) and expr[i + 1].isdigit()):
            m = NUMBER.match(expr, i)
            i = m.end() if m else i + 1
            prev_ident = None
            continue
        m = IDENT.match(expr, i)
        if m:
            word = m.group(0)
            j = _skip_ws(expr, m.end())
            lower = word.lower()
            if lower in LABEL_LIST_AFTER:
                if j < len(expr) and expr[j] == "(":
                    j = _skip_parens(expr, j)
                i = j
                prev_ident = None
                continue
            if lower in KEYWORDS:
                i = m.end()
                prev_ident = None
                continue
            if j < len(expr) and expr[j] == "(":  # a function or an aggregation
                i = m.end()
                prev_ident = None
                continue
            if word in AGGREGATORS and IDENT.match(expr, j) and \
                    IDENT.match(expr, j).group(0) in ("by", "without"):
                i = m.end()
                prev_ident = None
                continue
            out.append((word, []))
            prev_ident = len(out) - 1
            i = m.end()
            continue
        prev_ident = None
        i += 1
    return out


# ---------------------------------------------------------------- static checks

def github_anchor(heading):
    """The anchor GitHub gives a Markdown heading."""
    text = re.sub(r"`", "", heading.strip()).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def markdown_anchors(path):
    anchors = set()
    in_code = False
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("```"):
                in_code = not in_code
                continue
            if in_code:
                continue
            m = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
            if m:
                anchors.add(github_anchor(m.group(1)))
            for a in re.findall(r'<a\s+(?:name|id)="([^"]+)"', line):
                anchors.add(a)
    return anchors


def grafana_to_promql(expr):
    expr = re.sub(r"\$__(rate_interval|interval|range)\b", "5m", expr)
    expr = re.sub(r"\$\{?__[a-z_]+\}?", "5m", expr)
    return re.sub(r"\$\{?[A-Za-z_][A-Za-z0-9_]*(?::[a-z]+)?\}?", ".*", expr)


def iter_panels(panels):
    for p in panels:
        yield p
        yield from iter_panels(p.get("panels", []))


def check_alerts(path, anchors, problems, found):
    with open(path, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    names = set()
    for group in doc.get("groups", []):
        for rule in group.get("rules", []):
            name = rule.get("alert") or rule.get("record")
            where = f"{os.path.basename(path)}: {name}"
            if "alert" in rule:
                if name in names:
                    problems.append(f"{where}: alert defined twice")
                names.add(name)
                labels = rule.get("labels") or {}
                ann = rule.get("annotations") or {}
                if labels.get("severity") not in ("critical", "warning", "info"):
                    problems.append(f"{where}: severity label must be critical, warning or info")
                for key in ("summary", "description", "runbook_url"):
                    if not ann.get(key):
                        problems.append(f"{where}: no {key} annotation")
                url = ann.get("runbook_url", "")
                m = re.fullmatch(r"docs/operations\.md#([a-z0-9_-]+)", url)
                if not m:
                    problems.append(f"{where}: runbook_url {url!r} is not docs/operations.md#anchor")
                elif m.group(1) not in anchors:
                    problems.append(f"{where}: docs/operations.md has no heading for #{m.group(1)}")
            try:
                for sel in selectors(rule["expr"]):
                    found.append({"source": where, "name": sel[0], "matchers": sel[1]})
            except PromQLError as e:
                problems.append(f"{where}: cannot read the expression: {e}")
    if not names:
        problems.append(f"{path}: no alerts")


def check_dashboard(path, out_dir, problems, found):
    with open(path, encoding="utf-8") as f:
        try:
            dash = json.load(f)
        except json.JSONDecodeError as e:
            problems.append(f"{path}: not JSON: {e}")
            return
    base = os.path.basename(path)
    if not isinstance(dash.get("schemaVersion"), int) or dash["schemaVersion"] < 36:
        problems.append(f"{base}: schemaVersion must be 36 or later")
    for key in ("title", "uid"):
        if not dash.get(key):
            problems.append(f"{base}: no {key}")
    variables = {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}
    ds = variables.get("datasource")
    if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        problems.append(f"{base}: needs a variable 'datasource' of type datasource, query prometheus")
    for name in ("namespace", "instance"):
        v = variables.get(name)
        if not v or v.get("type") != "query":
            problems.append(f"{base}: needs a query variable '{name}'")
            continue
        if (v.get("datasource") or {}).get("uid") != "${datasource}":
            problems.append(f"{base}: variable {name} must use ${{datasource}}")
        q = v.get("query")
        q = q.get("query", "") if isinstance(q, dict) else (q or "")
        m = re.fullmatch(r"\s*label_values\((.*),\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*", q)
        if not m or m.group(2) != name:
            problems.append(f"{base}: variable {name}: expected label_values(<selector>, {name})")
            continue
        try:
            for sel in selectors(grafana_to_promql(m.group(1))):
                found.append({"source": f"{base}: variable {name}", "name": sel[0],
                              "matchers": sel[1]})
        except PromQLError as e:
            problems.append(f"{base}: variable {name}: {e}")

    ids = set()
    boxes = []
    rules = []
    for p in iter_panels(dash.get("panels", [])):
        title = p.get("title", "?")
        where = f"{base}: panel {title!r}"
        pid = p.get("id")
        if pid in ids:
            problems.append(f"{where}: id {pid} used twice")
        ids.add(pid)
        g = p.get("gridPos") or {}
        if not all(isinstance(g.get(k), int) for k in ("x", "y", "w", "h")):
            problems.append(f"{where}: no gridPos")
        else:
            if g["x"] + g["w"] > 24:
                problems.append(f"{where}: wider than the 24-column grid")
            for other_title, o in boxes:
                if g["x"] < o["x"] + o["w"] and o["x"] < g["x"] + g["w"] and \
                        g["y"] < o["y"] + o["h"] and o["y"] < g["y"] + g["h"]:
                    problems.append(f"{where}: overlaps panel {other_title!r}")
            boxes.append((title, g))
        if p.get("type") == "row":
            continue
        if (p.get("datasource") or {}).get("uid") != "${datasource}":
            problems.append(f"{where}: data source must be ${{datasource}}")
        targets = p.get("targets") or []
        if not targets:
            problems.append(f"{where}: no queries")
        refids = set()
        for t in targets:
            if (t.get("datasource") or {}).get("uid") != "${datasource}":
                problems.append(f"{where}: query {t.get('refId')} must use ${{datasource}}")
            if t.get("refId") in refids:
                problems.append(f"{where}: refId {t.get('refId')} used twice")
            refids.add(t.get("refId"))
            expr = t.get("expr", "")
            if not expr.strip():
                problems.append(f"{where}: query {t.get('refId')} is empty")
                continue
            promql = grafana_to_promql(expr)
            rules.append({"record": f"dashboard:panel{pid}:{t.get('refId')}", "expr": promql})
            try:
                sels = selectors(promql)
            except PromQLError as e:
                problems.append(f"{where}: cannot read {expr!r}: {e}")
                continue
            for name, matchers in selectors(expr.replace("$__rate_interval", "5m")):
                labels = {(l, o, v) for (l, o, v) in matchers}
                for var in ("namespace", "instance"):
                    if (var, "=~", f"${var}") not in labels:
                        problems.append(f"{where}: {name} is not filtered by {var}=~\"${var}\"")
            for name, matchers in sels:
                found.append({"source": where, "name": name, "matchers": matchers})
    with open(os.path.join(out_dir, "dashboard-rules.yaml"), "w", encoding="utf-8") as f:
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, f, sort_keys=False,
                       width=1000)


def check_links(path, problems):
    """Every relative Markdown link of `path` names a file that exists, and a heading in it."""
    base = os.path.dirname(path)
    in_code = False
    with open(path, encoding="utf-8") as f:
        lines = f.readlines()
    for number, line in enumerate(lines, 1):
        if line.startswith("```"):
            in_code = not in_code
        if in_code:
            continue
        for target in re.findall(r"\]\(([^)\s]+)\)", line):
            if re.match(r"[a-z]+:", target):
                continue
            file, _, anchor = target.partition("#")
            full = os.path.normpath(os.path.join(base, file)) if file else path
            where = f"{os.path.basename(path)}:{number}: link {target}"
            if not os.path.exists(full):
                problems.append(f"{where}: no such file")
            elif anchor and full.endswith(".md") and anchor not in markdown_anchors(full):
                problems.append(f"{where}: no such heading")


def cmd_static(alerts, dashboard, operations, out_dir):
    problems, found = [], []
    anchors = markdown_anchors(operations) if os.path.exists(operations) else set()
    if not anchors:
        problems.append(f"{operations}: missing or without headings")
    else:
        check_links(operations, problems)
    check_alerts(alerts, anchors, problems, found)
    check_dashboard(dashboard, out_dir, problems, found)
    with open(os.path.join(out_dir, "selectors.json"), "w", encoding="utf-8") as f:
        json.dump(found, f, indent=1)
    for p in problems:
        print(p)
    names = sorted({s["name"] for s in found})
    print(f"{len(found)} selectors of {len(names)} metrics in the alerts and the dashboard")
    return 1 if problems else 0


# ---------------------------------------------------------------- live check

SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(\{(.*)\})?\s+\S+")
LABEL = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?')


def read_scrape(path, series, types):
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("# TYPE "):
                parts = line.split()
                if len(parts) >= 4:
                    types[parts[2]] = parts[3]
                continue
            if not line.strip() or line.startswith("#"):
                continue
            m = SAMPLE.match(line)
            if not m:
                continue
            labels = {}
            if m.group(3):
                for lm in LABEL.finditer(m.group(3)):
                    labels[lm.group(1)] = bytes(lm.group(2), "utf-8").decode("unicode_escape")
            series.setdefault(m.group(1), []).append(labels)


def family(name, types):
    for suffix in HISTOGRAM_SUFFIXES:
        base = name[: -len(suffix)]
        if name.endswith(suffix) and types.get(base) in ("histogram", "summary"):
            return base
    return name


def wanted_family(name):
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def matches(labels, matchers):
    for label, op, value in matchers:
        got = labels.get(label, "")
        if op == "=" and got != value:
            return False
        if op == "=~" and not re.fullmatch(value, got):
            return False
    return True


def cmd_live(selectors_json, scrapes):
    with open(selectors_json, encoding="utf-8") as f:
        found = json.load(f)
    series, types = {}, {}
    for path in scrapes:
        read_scrape(path, series, types)
    exposed = {}
    for name, label_sets in series.items():
        exposed.setdefault(family(name, types), []).extend(label_sets)
        exposed.setdefault(name, []).extend(label_sets)
    missing = {}
    unmatched = []
    for sel in found:
        name = sel["name"]
        if name in NOT_ECRM:
            continue
        key = name if name in series else wanted_family(name)
        if key not in exposed:
            missing.setdefault(key, set()).add(sel["source"])
            continue
        own = [tuple(m) for m in sel["matchers"]
               if m[0] not in TARGET_LABELS and m[1] in ("=", "=~") and "$" not in m[2]]
        if own and not any(matches(labels, own) for labels in exposed[key]):
            text = ", ".join(f'{l}{o}"{v}"' for l, o, v in own)
            unmatched.append(f"{sel['source']}: {name}{{{text}}} matches no exposed series")
    names = sorted({wanted_family(s["name"]) for s in found} - NOT_ECRM)
    print(f"{len(names) - len(missing)} of {len(names)} metrics named in the alerts and the "
          f"dashboard are exposed")
    for u in unmatched:
        print(u)
    if missing:
        print("MISSING:")
        for name in sorted(missing):
            print(f"  {name}    (used by {'; '.join(sorted(missing[name]))})")
    return 1 if missing or unmatched else 0


def main(argv):
    if len(argv) >= 6 and argv[1] == "static":
        return cmd_static(*argv[2:6])
    if len(argv) >= 4 and argv[1] == "live":
        return cmd_live(argv[2], argv[3:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
