"""The platform lane's harness: a cgroup v2 QEMU guest and a private Docker daemon.

Test code only; nothing in edgebench's packages imports it."""
