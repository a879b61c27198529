#!/bin/sh
# The `network` system service: DHCP on every eth* interface, one busybox udhcpc each, in the
# foreground, with the event script that configures the interface and writes resolv.conf.
set -- $(cd /sys/class/net && ls -d eth* 2>/dev/null)
if [ $# -eq 0 ]; then
  echo "network: no eth* interface"
  exit 1
fi
echo "network: DHCP on $*"
# This shell is PID 1 of the container's pid namespace, where signals without a handler are
# dropped: pass SIGTERM on to the clients (udhcpc releases nothing, keeping the lease) and go.
trap 'kill $pids 2>/dev/null; wait; exit 0' TERM INT
pids=
for i in "$@"; do
  udhcpc -f -i "$i" -t 10 -T 2 -s /usr/share/udhcpc/default.script &
  pids="$pids $!"
done
wait
