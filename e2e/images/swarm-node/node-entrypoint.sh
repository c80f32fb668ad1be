#!/bin/sh
# Starts dockerd in a container, as Docker's own dind image does, in one
# that is not --privileged (see e2e/swarm.sh: every capability but
# CAP_SYS_RESOURCE, no seccomp or AppArmor profile, all devices): /sys and
# the cgroup mounts come read-only there, and the daemon must create its
# containers' cgroups below this container's own, so they are made writable
# (in this container's mount namespace only).
set -eu
if grep -q ' /sys sysfs ro[ ,]' /proc/mounts; then
    mount -o remount,rw /sys
fi
awk '($3 == "cgroup" || $3 == "cgroup2") && $4 ~ /^ro/ { print $2 }' /proc/mounts |
    while read -r cgroup; do
        mount -o remount,bind,rw "$cgroup" 2>/dev/null || mount -o remount,rw "$cgroup"
    done
if [ -d /sys/kernel/security ] && ! mountpoint -q /sys/kernel/security; then
    mount -t securityfs none /sys/kernel/security 2>/dev/null || true
fi
# cgroup v2: move this init into a child group so that the daemon may
# enable controllers for the groups it creates.
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    mkdir -p /sys/fs/cgroup/init
    xargs -rn1 </sys/fs/cgroup/cgroup.procs >/sys/fs/cgroup/init/cgroup.procs 2>/dev/null || true
    sed -e 's/ / +/g' -e 's/^/+/' </sys/fs/cgroup/cgroup.controllers \
        >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || true
fi
# Left over when the container was killed (a node failure) and started again.
rm -f /var/run/docker.pid /var/run/docker/containerd/containerd.pid
exec "$@"
