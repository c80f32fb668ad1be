# Shared by e2e/run.sh and e2e/swarm.sh (sourced): phases with their times,
# failing with one line, and a Docker engine that answers.
# The sourcing script sets E2E_NAME (the prefix of its output lines).

timings=()
phase_name=
phase_start=$SECONDS
# Starts the phase named $1, ending the one before.
phase() {
    end_phase
    phase_name=$1
    phase_start=$SECONDS
    printf '\n=== %s: %s (%s)\n' "$E2E_NAME" "$1" "$(date -u +%H:%M:%S)"
}
end_phase() {
    if [[ -n $phase_name ]]; then
        timings+=("$(printf '%-62s %5ss' "$phase_name" $((SECONDS - phase_start)))")
    fi
    phase_name=
}
print_timings() {
    printf '\n=== %s: time per phase\n' "$E2E_NAME"
    printf '%s\n' "${timings[@]}"
}
fail() {
    echo "$E2E_NAME: FAILED: $*" >&2
    exit 1
}

# Installs the Debian packages named (those missing, checked by the caller)
# with apt-get, as root.
install_packages() {
    (($#)) || return 0
    [[ $(id -u) == 0 ]] || fail "$* needed (run as root to install them)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "$@" >/dev/null
}

# Starts dockerd in the background unless one answers already.
ensure_dockerd() {
    docker info >/dev/null 2>&1 && return 0
    echo "starting dockerd (log: /var/log/dockerd-e2e.log)"
    nohup dockerd >/var/log/dockerd-e2e.log 2>&1 &
    for _ in $(seq 60); do
        docker info >/dev/null 2>&1 && return 0
        sleep 1
    done
    fail "dockerd did not start; see /var/log/dockerd-e2e.log"
}
