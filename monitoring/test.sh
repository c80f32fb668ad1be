#!/usr/bin/env bash
# Offline checks of the monitoring profile's configuration; needs Debian's
# `prometheus` package (promtool) and python3-yaml, no Docker:
#
#   monitoring/test.sh
#
# 1. prometheus.yml and alerts.yml are valid (promtool check), also as the
#    HA overlay mounts it, with the Patroni members, Redis members and
#    Sentinels of prometheus-ha/.
# 2. The alert unit tests pass (promtool test rules alerts.test.yml).
# 3. The tests can fail: for each alert, a copy of alerts.yml in which it can
#    never fire must fail one of its "fires" tests, and one in which it fires
#    whenever it should be quiet must fail one of its "stays quiet" tests;
#    a copy in which a recording rule gives nothing must fail some test.
# 4. Every query of the Grafana dashboards is valid PromQL (with its
#    variables filled in as e2e does), and every panel has one.
# 5. The console template renders: a throwaway Prometheus serves
#    /consoles/voting.html (no data: nothing to scrape here). Every link on it and every Prometheus address in the READMEs leads to
#    a path both Prometheus images serve: upstream's v2.42.0 serves its
#    React UI (/alerts, /targets, /graph...) and no classic pages, the
#    offline one (Debian's build) only the classic UI under /classic/ and
#    a redirect from /graph; both serve /consoles/ and /api/v1/
#    (upstream's web/web.go, v2.42.0). Each is asked of Debian's build here.
# 6. docker-compose.yml publishes Prometheus and Grafana on the host's
#    loopback unless MONITORING_BIND says otherwise, and Grafana lets nobody
#    in without logging in, admin's password from a secret file (Grafana's
#    image is not available here, so this is checked on the file).
# Whether each dashboard query returns data is checked by e2e/run.sh against
# the live stack (postgres-ha.json's against the HA variant's).
set -euo pipefail
cd "$(dirname "$0")"

fail() {
    echo "monitoring/test.sh: FAILED: $*" >&2
    exit 1
}
command -v promtool >/dev/null || fail "promtool is missing (apt-get install prometheus)"
python3 -c 'import yaml' 2>/dev/null || fail "python3-yaml is missing (apt-get install python3-yaml)"

scratch=$(mktemp -d /tmp/monitoring-test.XXXXXX)
prometheus_pid=
cleanup() {
    if [[ -n $prometheus_pid ]]; then
        kill "$prometheus_pid" 2>/dev/null || true
        wait "$prometheus_pid" 2>/dev/null || true
    fi
    rm -rf "$scratch"
}
trap cleanup EXIT

echo "--- promtool check config / rules"
# Its warnings that prometheus/ha/*.yml do not exist are expected: only the
# HA overlay mounts the Patroni and Redis targets there.
promtool check config prometheus/prometheus.yml
# As docker-compose.ha.yml mounts prometheus-ha/ over prometheus/ha/:
# promtool then reads the Patroni and Redis target files too.
mkdir "$scratch/ha"
cp prometheus/prometheus.yml prometheus/alerts.yml "$scratch/ha/"
cp -r prometheus-ha "$scratch/ha/ha"
promtool check config "$scratch/ha/prometheus.yml"
promtool check rules prometheus/alerts.yml

echo "--- promtool test rules"
promtool test rules prometheus/alerts.test.yml

echo "--- each alert's tests fail when it never fires, and when it always fires"
python3 - prometheus/alerts.yml "$scratch" <<'EOF'
import copy, os, sys, yaml
source, scratch = sys.argv[1], sys.argv[2]
rules = yaml.safe_load(open(source))
for g, group in enumerate(rules["groups"]):
    for r, rule in enumerate(group["rules"]):
        if "alert" not in rule:
            # A recording rule that gives nothing must break some test.
            mutant = copy.deepcopy(rules)
            mutant["groups"][g]["rules"][r]["expr"] = "vector(1) == 0"
            directory = os.path.join(scratch, "records", rule["record"])
            os.makedirs(directory)
            with open(os.path.join(directory, "alerts.yml"), "w") as f:
                yaml.safe_dump(mutant, f, sort_keys=False)
            continue
        # never: no result at all; always: unchanged while it fires, an
        # alert without labels while it would be quiet.
        for kind, expr in (("never", "vector(1) == 0"), ("always", f"({rule['expr']}) or on () vector(1)")):
            mutant = copy.deepcopy(rules)
            mutant["groups"][g]["rules"][r]["expr"] = expr
            directory = os.path.join(scratch, f"{rule['alert']}-{kind}")
            os.makedirs(directory)
            with open(os.path.join(directory, "alerts.yml"), "w") as f:
                yaml.safe_dump(mutant, f, sort_keys=False)
EOF
# The tests are named "<Alert> fires ..." and "<Alert> stays quiet ...".
for mutant in "$scratch"/*-never "$scratch"/*-always; do
    name=$(basename "$mutant")
    alert=${name%-*}
    case $name in
        *-never) expect="$alert fires" ;;
        *) expect="$alert stays quiet" ;;
    esac
    cp prometheus/alerts.test.yml "$mutant/"
    promtool test rules "$mutant/alerts.test.yml" >"$mutant/out" 2>&1 || true
    grep -q "name: $expect" "$mutant/out" ||
        fail "no test \"$expect ...\" fails when $alert $( [[ $name == *-never ]] && echo "can never fire" || echo "always fires")"
    echo "ok: \"$expect\" fails when $alert $( [[ $name == *-never ]] && echo "can never fire" || echo "always fires")"
done
for mutant in "$scratch"/records/*; do
    [[ -d $mutant ]] || continue
    record=$(basename "$mutant")
    cp prometheus/alerts.test.yml "$mutant/"
    if promtool test rules "$mutant/alerts.test.yml" >"$mutant/out" 2>&1; then
        fail "no test fails when the recording rule $record gives nothing"
    fi
    echo "ok: $(grep -c 'name: ' "$mutant/out" || true) tests fail when the recording rule $record gives nothing"
done

echo "--- every dashboard query is valid PromQL"
for dashboard in grafana/dashboards/*.json; do
python3 - "$dashboard" "$scratch/dashboard-rules.yml" <<'EOF'
import json, sys, yaml
dashboard = json.load(open(sys.argv[1]))
records, ids = [], set()
for panel in dashboard["panels"]:
    if panel["id"] in ids:
        sys.exit(f"panel id {panel['id']} is used twice")
    ids.add(panel["id"])
    if panel["type"] == "row":
        continue
    targets = panel.get("targets") or sys.exit(f"panel {panel['title']!r} has no query")
    for target in targets:
        if target.get("datasource", {}).get("uid") != "prometheus":
            sys.exit(f"panel {panel['title']!r} does not use the provisioned data source")
        # As e2e fills them in: Grafana's rate interval, and every replica.
        expr = target["expr"].replace("$__rate_interval", "1m").replace("$replica", ".+")
        records.append({"record": f"dashboard:panel_{panel['id']}_{target['refId']}", "expr": expr})
yaml.safe_dump({"groups": [{"name": "dashboard", "rules": records}]}, open(sys.argv[2], "w"))
print(f"{sys.argv[1]}: {len(records)} queries in {len(ids)} panels")
EOF
promtool check rules "$scratch/dashboard-rules.yml" >/dev/null
done

echo "--- the console template renders"
if command -v prometheus >/dev/null; then
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    libraries=/usr/share/doc/prometheus/examples/console_libraries
    [[ -f $libraries/prom.lib ]] || libraries=/usr/share/prometheus/console_libraries
    prometheus --config.file=prometheus/prometheus.yml --storage.tsdb.path="$scratch/data" \
        --web.listen-address="127.0.0.1:$port" --web.console.templates=prometheus/consoles \
        --web.console.libraries="$libraries" >"$scratch/prometheus.log" 2>&1 &
    prometheus_pid=$!
    for _ in $(seq 100); do
        curl -fsS "http://127.0.0.1:$port/-/ready" >/dev/null 2>&1 && break
        sleep 0.1
    done
    status=$(curl -sS -o "$scratch/voting.html" -w '%{http_code}' "http://127.0.0.1:$port/consoles/voting.html") ||
        fail "Prometheus did not start; its log: $(tail -5 "$scratch/prometheus.log")"
    [[ $status == 200 ]] || fail "/consoles/voting.html answered $status: $(head -c 500 "$scratch/voting.html")"
    grep -q 'id="throughput"' "$scratch/voting.html" || fail "/consoles/voting.html lacks its graphs"
    echo "ok: /consoles/voting.html renders"
    # Links within the page (#alerts) need no server; the rest, HTML
    # entities undone, must be a path both images serve and answer here.
    links=$({
        grep -oE '<a [^>]*href="[^"#][^"]*"' "$scratch/voting.html" | sed -E 's/.*href="([^"]*)"/\1/; s/&amp;/\&/g'
        grep -ohE 'http://localhost:9090/[^ )`"<]*' ../README.md README.md ../e2e/README.md | sed 's|^http://localhost:9090||'
    } | sort -u)
    [[ -n $links ]] || fail "no link found on the console page"
    for link in $links; do
        case $link in
            /graph | /graph\?* | /consoles/* | /api/v1/*) ;;
            *) fail "$link (on the console page or in a README) is not served by both Prometheus images" ;;
        esac
        status=$(curl -sS -L -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port$link")
        [[ $status == 200 ]] || fail "$link answered $status on Debian's Prometheus"
    done
    grep -q 'id="alerts"' "$scratch/voting.html" && grep -q 'id="targets"' "$scratch/voting.html" ||
        fail "/consoles/voting.html lacks its alerts or targets section"
    echo "ok: all $(wc -w <<<"$links") links (the console page's, the READMEs' Prometheus addresses) answer, on paths both images serve"
else
    echo "skipped: no prometheus binary (apt-get install prometheus)"
fi

echo "--- the compose profile: loopback only, Grafana behind its login"
python3 - ../docker-compose.yml <<'EOF'
import sys, yaml
services = yaml.safe_load(open(sys.argv[1]))["services"]
problems = []
for name, port in (("prometheus", "${PROMETHEUS_PORT:-9090}:9090"), ("grafana", "${GRAFANA_PORT:-3000}:3000")):
    ports = services[name].get("ports", [])
    if ports != [f"${{MONITORING_BIND:-127.0.0.1}}:{port}"]:
        problems.append(f"{name} is published as {ports}, not on ${{MONITORING_BIND:-127.0.0.1}} only")
grafana = services["grafana"]
env = grafana.get("environment", {})
if str(env.get("GF_AUTH_ANONYMOUS_ENABLED")).lower() != "false":
    problems.append(f"Grafana's anonymous access is {env.get('GF_AUTH_ANONYMOUS_ENABLED')!r}, not off")
if "GF_SECURITY_ADMIN_PASSWORD" in env:
    problems.append("Grafana's admin password is in its environment (a default, and shown by docker inspect)")
password_file = env.get("GF_SECURITY_ADMIN_PASSWORD__FILE", "")
secrets = [s if isinstance(s, str) else s["source"] for s in grafana.get("secrets", [])]
if not any(password_file == f"/run/secrets/{s}" for s in secrets):
    problems.append(f"Grafana's GF_SECURITY_ADMIN_PASSWORD__FILE ({password_file!r}) is none of its secrets {secrets}")
if problems:
    sys.exit("monitoring/test.sh: FAILED: " + "; ".join(problems))
print("ok: Prometheus and Grafana on ${MONITORING_BIND:-127.0.0.1}; Grafana: no anonymous access, admin's password from a secret")
EOF

echo "monitoring/test.sh: all checks passed"
