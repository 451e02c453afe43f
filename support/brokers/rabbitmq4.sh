#!/bin/sh
# RabbitMQ 4.x nodes for the test matrix, each in a Debian chroot beside the host's broker.
#
# The host (Debian bookworm) ships RabbitMQ 3.10.8; its glibc is too old for the Erlang that 4.x
# needs, so each 4.x node runs from Debian's own packages inside a minimal Debian chroot:
#   4.0  Debian 13 "trixie" (rabbitmq-server 4.0.x, Erlang 27), AMQP on 127.0.0.1:5690
#   4.3  Debian "forky"     (rabbitmq-server 4.3.x, Erlang 29), AMQP on 127.0.0.1:5691
#
# Usage: support/brokers/rabbitmq4.sh setup|start|stop|status|root|ctl VERSION [ARGS...]
#        support/brokers/rabbitmq4.sh up          (setup + start of every version; what CI runs)
#        support/brokers/rabbitmq4.sh mirror      (the Debian mirror a new chroot is built from)
#
# The chroots live outside the clone, in $RENEWALS_BROKERS_DIR (default /var/cache/renewal-routing/brokers),
# and are reused: a machine builds each one once (a few minutes: debootstrap and apt), later runs only start it.
# Needs root (chroot, mount). Traps met on this machine: forky needs debootstrap's sid script, apt in the
# chroot needs Check-Valid-Until=false, the chroot needs /etc/hosts, and everything runs as the chroot's
# `rabbitmq` user through runuser so the node and its CLI share one Erlang cookie.
#
# A chroot is built from the Debian mirror this machine's apt already uses (`mirror` prints it):
# the first enabled `deb` source whose URI is a Debian archive (its path ends in /debian, so not
# debian-security nor a third party's), read from $RENEWALS_APT_ETC (default /etc/apt):
# sources.list.d/*.sources (deb822), then sources.list and sources.list.d/*.list.
# RENEWALS_DEBIAN_MIRROR, if set, is used instead.
set -eu

DIR=${RENEWALS_BROKERS_DIR:-/var/cache/renewal-routing/brokers}
APT_ETC=${RENEWALS_APT_ETC:-/etc/apt}
VERSIONS="4.0 4.3"

usage() { echo "usage: $0 setup|start|stop|status|root|ctl VERSION [ARGS...] | up | mirror" >&2; exit 2; }

# The URIs of enabled `deb` sources, in apt's files' order: deb822 stanzas, then one-line entries.
deb_uris() {
    for FILE in "$APT_ETC"/sources.list.d/*.sources; do
        [ -f "$FILE" ] || continue
        awk '
            function flush() { if (types ~ /(^| )deb( |$)/ && enabled != "no" && uris != "") print uris
                               types = ""; uris = ""; enabled = "" }
            /^[ \t]*#/ { next }
            /^[ \t]*$/ { flush(); next }
            tolower($1) == "types:" { $1 = ""; types = $0 " " }
            tolower($1) == "uris:" { $1 = ""; uris = $0 }
            tolower($1) == "enabled:" { enabled = tolower($2) }
            END { flush() }' "$FILE" | tr ' \t' '\n\n'
    done
    for FILE in "$APT_ETC/sources.list" "$APT_ETC"/sources.list.d/*.list; do
        [ -f "$FILE" ] || continue
        # deb [options] URI SUITE COMPONENTS...: the URI is the first word after the options.
        sed -n 's/^[ \t]*deb[ \t]\{1,\}\(\[[^]]*\][ \t]*\)\{0,1\}\([^ \t]\{1,\}\).*/\2/p' "$FILE"
    done
}

mirror() {
    if [ -n "${RENEWALS_DEBIAN_MIRROR:-}" ]; then echo "$RENEWALS_DEBIAN_MIRROR"; return 0; fi
    FOUND=$(deb_uris | grep -E '^[a-z+]+://[^/]+(/.*)?/debian/?$' | head -n 1 || true)
    if [ -z "$FOUND" ]; then
        echo "no Debian archive among the apt sources in $APT_ETC: set RENEWALS_DEBIAN_MIRROR to a Debian mirror's URL" >&2
        exit 1
    fi
    echo "${FOUND%/}"
}

pick() {  # VERSION -> SUITE PORT NODE ROOT
    case "$1" in
    4.0) SUITE=trixie; PORT=5690 ;;
    4.3) SUITE=forky; PORT=5691 ;;
    *) echo "unknown RabbitMQ version '$1': choose one of $VERSIONS" >&2; exit 2 ;;
    esac
    NODE="rabbit-$SUITE@localhost"
    ROOT="$DIR/$SUITE"
}

as_rabbitmq() { chroot "$ROOT" /usr/sbin/runuser -u rabbitmq -- env HOME=/var/lib/rabbitmq "$@"; }
ctl() { as_rabbitmq /usr/lib/rabbitmq/bin/rabbitmqctl -n "$NODE" "$@"; }

mount_proc() { mountpoint -q "$ROOT/proc" || mount -t proc proc "$ROOT/proc"; }

setup() {
    if [ ! -x "$ROOT/usr/lib/rabbitmq/bin/rabbitmq-server" ]; then
        command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; }
        mkdir -p "$DIR"
        if [ ! -x "$ROOT/usr/bin/apt-get" ]; then
            MIRROR=$(mirror)
            rm -rf "$ROOT.partial"
            debootstrap --variant=minbase "$SUITE" "$ROOT.partial" "$MIRROR" /usr/share/debootstrap/scripts/sid
            rm -rf "$ROOT" && mv "$ROOT.partial" "$ROOT"
        fi
        printf '127.0.0.1\tlocalhost\n::1\tlocalhost\n' > "$ROOT/etc/hosts"
        printf '#!/bin/sh\nexit 101\n' > "$ROOT/usr/sbin/policy-rc.d"; chmod +x "$ROOT/usr/sbin/policy-rc.d"
        mount_proc
        chroot "$ROOT" apt-get -qq -o Acquire::Check-Valid-Until=false update
        DEBIAN_FRONTEND=noninteractive chroot "$ROOT" apt-get install -y -qq --no-install-recommends rabbitmq-server >/dev/null
    fi
    # Each node its own name, ports and only the management plugin (the tests set policies through it).
    cat > "$ROOT/etc/rabbitmq/rabbitmq-env.conf" <<EOC
NODENAME=$NODE
NODE_IP_ADDRESS=127.0.0.1
NODE_PORT=$PORT
DIST_PORT=$((PORT + 20000))
ERL_EPMD_ADDRESS=127.0.0.1
export ERL_FLAGS="-kernel inet_dist_use_interface {127,0,0,1}"
EOC
    printf '[].\n' > "$ROOT/etc/rabbitmq/enabled_plugins"
    echo "RabbitMQ $VERSION ready in $ROOT"
}

not_started() {
    echo "RabbitMQ $VERSION did not start; its log ends:" >&2
    tail -n 20 "$ROOT/var/log/rabbitmq/startup_log" >&2
    [ ! -f "$ROOT/var/log/rabbitmq/$NODE.log" ] || tail -n 20 "$ROOT/var/log/rabbitmq/$NODE.log" >&2
    exit 1
}

start() {
    mount_proc
    if ctl -q ping >/dev/null 2>&1; then echo "$NODE already running on 127.0.0.1:$PORT"; return 0; fi
    setsid chroot "$ROOT" /usr/sbin/runuser -u rabbitmq -- env HOME=/var/lib/rabbitmq \
        /usr/lib/rabbitmq/bin/rabbitmq-server >"$ROOT/var/log/rabbitmq/startup_log" 2>&1 </dev/null &
    SERVER=$!
    # `await_startup` gives up at once ("node not running at all") until the new node has registered
    # with epmd, which can take longer than the CLI's own start on a busy machine: wait until the
    # node answers (or its process dies, or 180 s pass), then for the broker inside it to boot.
    DEADLINE=$(($(date +%s) + 180))
    until ctl -q ping >/dev/null 2>&1; do
        kill -0 "$SERVER" 2>/dev/null && [ "$(date +%s)" -lt "$DEADLINE" ] || not_started
        sleep 1
    done
    ctl -q await_startup --timeout 180 >/dev/null 2>&1 || not_started
    echo "$NODE up on 127.0.0.1:$PORT ($(ctl -q eval 'rabbit_misc:version().' | tr -d '"'))"
}

[ $# -ge 1 ] || usage
COMMAND=$1; shift
case "$COMMAND" in
mirror)
    mirror ;;
up)
    for VERSION in $VERSIONS; do pick "$VERSION"; setup; start; done ;;
setup|start|stop|status|root|ctl)
    [ $# -ge 1 ] || usage
    VERSION=$1; shift; pick "$VERSION"
    case "$COMMAND" in
    setup) setup ;;
    start) start ;;
    stop) ctl -q stop ;;
    root) echo "$ROOT" ;;  # where the version's chroot is (support/chroot_node.py starts nodes of its own there)
    status) ctl -q ping >/dev/null 2>&1 && echo "$NODE running on 127.0.0.1:$PORT" || { echo "$NODE not running"; exit 1; } ;;
    ctl) ctl "$@" ;;
    esac ;;
*) usage ;;
esac
