#!/usr/bin/env bash
# gitea.sh start | stop DIR — a throwaway Gitea on loopback for the forge tests.
#
#   hack/forge/gitea.sh start     starts Gitea (built by hack/forge/build-gitea.sh)
#                                 on 127.0.0.1 and a free port, with SQLite, in a
#                                 new folder; prints KEY=VALUE lines:
#                                 GITEA_URL, GITEA_USER, GITEA_PASSWORD,
#                                 GITEA_TOKEN (an admin's API token), GITEA_DIR
#   hack/forge/gitea.sh stop DIR  ends that Gitea and removes everything start
#                                 made: its processes, its folder, its user
#
# Gitea refuses to run as root: as root, start creates a system user of its
# own for this instance (deleted by stop) and runs Gitea as that user; as
# anyone else, Gitea runs as the caller. The binary is
# $EXPSYNC_GITEA_BIN or ~/.cache/expsync/gitea/v1.27.3/gitea.
set -euo pipefail

version=v1.27.3
bin=${EXPSYNC_GITEA_BIN:-$HOME/.cache/expsync/gitea/$version/gitea}
admin=expsync-admin

die() { echo "gitea.sh: $*" >&2; exit 1; }

as_user() { # as_user CMD...: run as the instance's user, in its environment
	local envs=(env -i "PATH=/usr/local/bin:/usr/bin:/bin" "HOME=$dir/home" "GITEA_WORK_DIR=$dir/work" "USER=$user")
	if [[ $(id -u) == 0 ]]; then
		runuser -u "$user" -- "${envs[@]}" "$@"
	else
		"${envs[@]}" "$@"
	fi
}

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_api URL: until /api/v1/version answers (Gitea takes ~10 s to start).
wait_api() {
	python3 - "$1" "$2" <<'PY'
import sys, time, urllib.request
url, pid = sys.argv[1], int(sys.argv[2])
import os
deadline = time.time() + 90
while time.time() < deadline:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit("gitea exited while starting")
    try:
        with urllib.request.urlopen(url + "api/v1/version", timeout=2) as r:
            if r.status == 200:
                sys.exit(0)
    except Exception:
        pass
    time.sleep(0.3)
sys.exit("gitea did not answer within 90 s")
PY
}

random_text() { python3 -c 'import secrets; print(secrets.token_hex(16))'; }

start() {
	[[ -x "$bin" ]] || die "no Gitea at $bin: build it with hack/forge/build-gitea.sh (about 14 minutes, once)"
	command -v git >/dev/null || die "git is needed by Gitea"
	dir=$(mktemp -d "${TMPDIR:-/tmp}/expsync-gitea.XXXXXX")
	# From here on, a failure (or an interrupt) removes what was made.
	trap 'if [[ -z "${started:-}" ]]; then stop_dir "$dir" >/dev/null 2>&1 || true; fi' EXIT
	user=$(id -un)
	if [[ $(id -u) == 0 ]]; then
		user="xg-$(basename "$dir" | cut -d. -f2 | tr 'A-Z' 'a-z')"
		useradd --system --no-create-home --home-dir "$dir/home" --shell /usr/sbin/nologin "$user"
		echo "$user" >"$dir/user"
	fi
	mkdir -p "$dir/bin" "$dir/work" "$dir/data" "$dir/repos" "$dir/log" "$dir/home"
	# The cache may sit in a home the instance's user cannot enter: link
	# (or copy) the binary and its assets into the instance's folder.
	local assets
	assets=$(dirname "$bin")
	ln "$bin" "$dir/bin/gitea" 2>/dev/null || cp "$bin" "$dir/bin/gitea"
	for d in options templates public; do
		cp -al "$assets/$d" "$dir/work/$d" 2>/dev/null || cp -r "$assets/$d" "$dir/work/$d"
	done
	local port url password
	port=$(free_port)
	url="http://127.0.0.1:$port/"
	password=$(random_text)
	cat >"$dir/app.ini" <<INI
APP_NAME = expsync test forge
RUN_USER = $user
RUN_MODE = prod
WORK_PATH = $dir/work

[database]
DB_TYPE = sqlite3
PATH = $dir/data/gitea.db

[server]
PROTOCOL = http
HTTP_ADDR = 127.0.0.1
HTTP_PORT = $port
ROOT_URL = $url
DISABLE_SSH = true
START_SSH_SERVER = false
OFFLINE_MODE = true
APP_DATA_PATH = $dir/data
LFS_START_SERVER = false

[security]
INSTALL_LOCK = true
SECRET_KEY = $(random_text)
INTERNAL_TOKEN = $(random_text)$(random_text)

[repository]
ROOT = $dir/repos

[log]
MODE = file
LEVEL = Warn
ROOT_PATH = $dir/log

[service]
DISABLE_REGISTRATION = true

[actions]
ENABLED = false

[mailer]
ENABLED = false

[session]
PROVIDER = memory

[cache]
ADAPTER = memory

[cron]
ENABLED = false

[indexer]
ISSUE_INDEXER_TYPE = db
REPO_INDEXER_ENABLED = false
INI
	if [[ $(id -u) == 0 ]]; then
		# Not the linked binary and assets: their inodes are the cache's.
		chown "$user" "$dir" "$dir/app.ini" "$dir/work"
		chown -R "$user" "$dir/data" "$dir/repos" "$dir/log" "$dir/home"
	fi
	chmod 0711 "$dir" # the instance's user owns it; others may not list it
	as_user "$dir/bin/gitea" migrate -c "$dir/app.ini" >"$dir/log/migrate.log" 2>&1 ||
		{ cat "$dir/log/migrate.log" >&2; die "gitea migrate failed"; }
	as_user "$dir/bin/gitea" admin user create --admin --username "$admin" --password "$password" \
		--email admin@expsync.invalid --must-change-password=false -c "$dir/app.ini" >"$dir/log/admin.log" 2>&1 ||
		{ cat "$dir/log/admin.log" >&2; die "gitea admin user create failed"; }
	local token
	token=$(as_user "$dir/bin/gitea" admin user generate-access-token --username "$admin" --token-name expsync-tests \
		--scopes all --raw -c "$dir/app.ini" 2>"$dir/log/token.log") ||
		{ cat "$dir/log/token.log" >&2; die "gitea admin user generate-access-token failed"; }
	# Its own session and process group: stop ends Gitea and its git
	# children with one signal to the group.
	setsid bash -c 'exec "$@"' _ "$0" __web "$dir" "$user" >"$dir/log/web.log" 2>&1 </dev/null &
	echo $! >"$dir/pid"
	if ! wait_api "$url" "$(cat "$dir/pid")"; then
		tail -n 20 "$dir/log/web.log" >&2
		die "gitea did not start (log above)"
	fi
	started=1
	{
		echo "GITEA_URL=$url"
		echo "GITEA_USER=$admin"
		echo "GITEA_PASSWORD=$password"
		echo "GITEA_TOKEN=$token"
		echo "GITEA_DIR=$dir"
	} | tee "$dir/env"
}

# stop_dir DIR: ends the instance's process group, deletes its user and folder.
stop_dir() {
	local d=$1 pgid i
	[[ -f "$d/app.ini" ]] || die "$d is not a folder gitea.sh start made"
	if [[ -f "$d/pid" ]]; then
		pgid=$(cat "$d/pid")
		kill -TERM -- "-$pgid" 2>/dev/null || true
		for i in $(seq 1 50); do
			kill -0 -- "-$pgid" 2>/dev/null || break
			sleep 0.2
		done
		kill -KILL -- "-$pgid" 2>/dev/null || true
	fi
	if [[ -f "$d/user" ]]; then
		userdel "$(cat "$d/user")" 2>/dev/null || true
	fi
	rm -rf "$d"
}

case "${1:-}" in
start) start ;;
stop)
	[[ -n "${2:-}" ]] || die "usage: $0 stop DIR"
	stop_dir "$2"
	;;
__web) # internal: the web server, as the instance's user
	dir=$2 user=$3
	as_user "$dir/bin/gitea" web -c "$dir/app.ini"
	;;
*) die "usage: $0 start | stop DIR" ;;
esac
