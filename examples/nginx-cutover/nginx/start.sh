#!/bin/sh
# Runs the legacy NGINX as a mesh workload: renders legacy.conf for this workload (its app
# address, a folder of its own for the pid file and temp files), then runs NGINX in the
# foreground, so its agent supervises it (SIGTERM stops it; an exit restarts it).
set -eu
dir="${HEDDLE_WORKLOAD_DIR:?run by heddle up}/nginx"
mkdir -p "$dir/tmp"
sed -e "s|@ADDRESS@|${HEDDLE_APP_ADDRESS:?run by heddle up}|g" -e "s|@DIR@|$dir|g" \
    nginx/legacy.conf > "$dir/nginx.conf"
nginx=$(command -v nginx || echo /usr/sbin/nginx)  # sbin: not on every user's PATH
exec "$nginx" -e stderr -p "$dir" -c "$dir/nginx.conf" -g "daemon off; pid $dir/nginx.pid;"
