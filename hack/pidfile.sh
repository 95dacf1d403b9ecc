# shellcheck shell=bash
# Processes the dev scripts start and track by pidfile. Sourced by
# hack/dev-up.sh and hack/dev-down.sh, which define log().

# running PIDFILE [MATCH]: true when the pidfile names a live process (whose
# command line contains MATCH, when given: a reused PID is not ours).
running() {
	local pid
	[[ -s $1 ]] || return 1
	pid=$(<"$1")
	[[ $pid =~ ^[0-9]+$ && -r /proc/$pid/cmdline ]] || return 1
	[[ -z ${2:-} ]] && return 0
	tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$2"
}

# stop_pidfile PIDFILE [MATCH]: TERM the process (if running PIDFILE MATCH),
# KILL it after 10 s, and remove the pidfile.
stop_pidfile() {
	local pidfile=$1 match=${2:-} pid
	if running "$pidfile" "$match"; then
		pid=$(<"$pidfile")
		log "stopping $(basename "$pidfile" .pid) (pid $pid)"
		kill "$pid" 2>/dev/null || true
		for _ in $(seq 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.2
		done
		kill -9 "$pid" 2>/dev/null || true
	fi
	rm -f "$pidfile"
}
