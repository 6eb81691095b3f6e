#!/bin/sh
# orch-start-sshd: start sshd in an orch image so a launcher on the head node
# (horovodrun, mpirun) can reach this container without a password.
#
# All nodes of a pool run the same image, whose build generated one client key and
# authorized it (as Batch Shipyard's MPI images did); every container therefore trusts
# the others. To use a per-job key instead, put the same private key on every node and
# point ORCH_SSH_KEY_FILE at it: it replaces the image's key and becomes the only
# authorized key. The client config makes plain `ssh host` use the port below.
#
# Usage: orch-start-sshd [--port N] [--foreground] [-- COMMAND...]
#   Without --foreground sshd runs in the background; the script returns once sshd
#   answers on the port, then execs COMMAND if one is given.
set -eu

port=23
foreground=0
while [ $# -gt 0 ]; do
    case "$1" in
        --port) port="$2"; shift 2 ;;
        --foreground) foreground=1; shift ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        --) shift; break ;;
        *) break ;;
    esac
done

ssh_dir="${HOME:-/root}/.ssh"
key="$ssh_dir/id_ed25519"
mkdir -p /run/sshd "$ssh_dir"
chmod 700 "$ssh_dir"
[ -f /etc/ssh/ssh_host_ed25519_key ] || ssh-keygen -A >/dev/null

if [ -n "${ORCH_SSH_KEY_FILE:-}" ]; then
    [ -f "$ORCH_SSH_KEY_FILE" ] || { echo "orch-start-sshd: ORCH_SSH_KEY_FILE=$ORCH_SSH_KEY_FILE not found" >&2; exit 1; }
    cp "$ORCH_SSH_KEY_FILE" "$key"
    chmod 600 "$key"
    ssh-keygen -y -f "$key" > "$key.pub"
    cp "$key.pub" "$ssh_dir/authorized_keys"
elif [ ! -f "$key" ]; then
    ssh-keygen -q -t ed25519 -N '' -f "$key"
    cp "$key.pub" "$ssh_dir/authorized_keys"
fi
chmod 600 "$ssh_dir/authorized_keys"

cat > "$ssh_dir/config" <<EOF
Host *
    Port $port
    IdentityFile $key
    StrictHostKeyChecking no
    UserKnownHostsFile /dev/null
    LogLevel ERROR
EOF
chmod 600 "$ssh_dir/config"

if [ "$foreground" -eq 1 ]; then
    exec /usr/sbin/sshd -D -e -p "$port"
fi
/usr/sbin/sshd -p "$port"
tries=0
until ssh-keyscan -p "$port" -T 1 127.0.0.1 >/dev/null 2>&1; do
    tries=$((tries + 1))
    if [ "$tries" -ge 30 ]; then
        echo "orch-start-sshd: sshd is not answering on port $port" >&2
        exit 1
    fi
    sleep 1
done
if [ $# -gt 0 ]; then
    exec "$@"
fi
