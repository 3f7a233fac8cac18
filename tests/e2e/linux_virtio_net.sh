#!/usr/bin/env bash
# tests/e2e/linux_virtio_net.sh VMBT SOURCE_DIR MODE
#
# Debian's i386 kernel with a virtio-net NIC on user-mode networking (`--net user`, libslirp;
# issue 10), under bt, with the one-shot busybox initramfs (scripts/get-debian-guest --oneshot).
# The guest's udhcpc must get QEMU's lease, 10.0.2.15, from libslirp's DHCP server; then
#   MODE wget:    the guest fetches a random file from an HTTP server (python3 -m http.server) on
#                 the host's loopback as http://10.0.2.2:PORT/ and prints its sha256; the oracle is
#                 the host's sha256 of the file.
#   MODE hostfwd: the guest listens on port 7777 (busybox nc -l) behind
#                 hostfwd=tcp::HOSTPORT-:7777; the host connects to 127.0.0.1:HOSTPORT and must
#                 read the token it passed the guest on the kernel command line.
# Exit status: 0 pass, 1 fail, 77 skipped (no python3, or no guest: Debian's archive unreachable).
set -u
# shellcheck source=tests/e2e/oneshot_guest_lib.sh
source "$(dirname "$0")/oneshot_guest_lib.sh"
vmbt=$1
src=$2
mode=$3
name=linux.bt.virtio_net${mode/wget/}
[[ $mode == hostfwd ]] && name=linux.bt.virtio_net_hostfwd
fail() { echo "FAIL $name: $*"; exit 1; }

command -v python3 >/dev/null || { echo "SKIP $name: python3 is not installed"; exit 77; }

commands='arg() { sed -n "s/.*vmbt\.$1=\([^ ]*\).*/\1/p" /proc/cmdline; }
ifconfig lo 127.0.0.1 up
timeout 60 udhcpc -i eth0 -n -q -t 5 -T 2 >/dev/null 2>&1 || echo udhcpc-failed
echo "guest-ip=$(ifconfig eth0 | sed -n "s/.*inet addr:\([0-9.]*\).*/\1/p")"
if [ "$(arg mode)" = wget ]; then
  echo "guest-sha256=$(wget -q -O - http://10.0.2.2:$(arg port)/file | sha256sum | cut -d" " -f1)"
fi
if [ "$(arg mode)" = hostfwd ]; then
  echo NC-LISTENING
  timeout 60 nc -l -p 7777 -e echo "token=$(arg token)"
  echo "nc-ended=$?"
fi'
oneshot_guest "$name" "$src" "$commands"

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
show() { echo "--- stdout tail:"; tail -20 "$work/out.txt"; echo "--- stderr:"; head -40 "$work/err"; }
want() { grep -q -- "$1" "$work/out.txt" || { show; fail "$2: no '$1' on the console"; }; }

if [[ $mode == wget ]]; then
  mkdir "$work/www"
  head -c 300000 /dev/urandom >"$work/www/file"
  want_sha=$(sha256sum "$work/www/file" | cut -d' ' -f1)
  port=$(free_port)
  python3 -m http.server --bind 127.0.0.1 --directory "$work/www" "$port" >"$work/http.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 50); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null && break
    sleep 0.1
  done
  timeout -k 10 300 "$vmbt" run --engine bt --kernel "$kernel" --initrd "$img" \
    --append "console=ttyS0 vmbt.mode=wget vmbt.port=$port" --net user --stats \
    </dev/null >"$work/out" 2>"$work/err"
  status=$?
  tr -d '\r' <"$work/out" >"$work/out.txt"
  [[ $status -eq 0 ]] || { show; fail "the run ended with status $status"; }
  want "guest-ip=10.0.2.15" "DHCP (libslirp's lease)"
  want "guest-sha256=$want_sha" "the file the guest fetched differs from the host's"
  grep -Eq "virtio.net0.rx_packets +[1-9]" "$work/err" || { show; fail "no rx_packets in --stats"; }
  echo "ok $name: DHCP lease 10.0.2.15, 300000 bytes over HTTP from the host, sha256 equal"
  exit 0
fi

[[ $mode == hostfwd ]] || fail "unknown mode '$mode'"
token=$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')
hostport=$(free_port)
timeout -k 10 300 "$vmbt" run --engine bt --kernel "$kernel" --initrd "$img" \
  --append "console=ttyS0 vmbt.mode=hostfwd vmbt.token=$token" \
  --net "user,hostfwd=tcp::$hostport-:7777" --stats </dev/null >"$work/out" 2>"$work/err" &
vm=$!
pids+=($vm)
for _ in $(seq 1200); do
  grep -q NC-LISTENING "$work/out" 2>/dev/null && break
  kill -0 $vm 2>/dev/null || break
  sleep 0.1
done
sleep 0.5  # nc is started right after the marker
reply=$(python3 - "$hostport" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), 10)
s.settimeout(20)
data = b""
while True:
    chunk = s.recv(4096)
    if not chunk:
        break
    data += chunk
print(data.decode(errors="replace").strip())
PY
)
wait $vm
status=$?
tr -d '\r' <"$work/out" >"$work/out.txt"
[[ $status -eq 0 ]] || { show; fail "the run ended with status $status"; }
want "guest-ip=10.0.2.15" "DHCP (libslirp's lease)"
[[ $reply == "token=$token" ]] || { show; fail "the host read '$reply' through hostfwd, not 'token=$token'"; }
want "nc-ended=0" "the guest's nc"
echo "ok $name: the host reached the guest's port 7777 through hostfwd 127.0.0.1:$hostport"
