#!/bin/sh
# Before each run of `bench/run builders` (untimed), and once after them with `prune`:
#   bench/builders-clean.sh PROJECT_DIR [prune]
# Removes the images a run tagged (`benchbuilders_svc<N>`, on the daemon of DOCKER_HOST and
# on the TLS dockerd of BENCH_TLS_HOST, DOCKER_CERT_PATH: the pool leaves each image on the
# builder that built it) and writes a fresh nonce, distinct per service, into each service's
# context, which its Dockerfile copies before the timed RUN: every run is cold, and no
# service is a cache hit of another. With `prune`, it also empties both daemons' BuildKit
# caches (`docker builder prune -af`, as e2e-clean.sh: BuildKit records carry no project
# label to filter on; records in use by a running build stay), so nothing of these builds
# accumulates. localbase and the busybox images stay.
project=$1
services=$(cd "$project" && ls -d svc* 2>/dev/null)
tags=""
for svc in $services; do
	tags="$tags benchbuilders_$svc:latest"
done
# shellcheck disable=SC2086
docker image rm -f $tags >/dev/null 2>&1
# shellcheck disable=SC2086
DOCKER_TLS_VERIFY=1 docker -H "$BENCH_TLS_HOST" image rm -f $tags >/dev/null 2>&1
if [ "$2" = prune ]; then
	docker builder prune -af >/dev/null 2>&1
	DOCKER_TLS_VERIFY=1 docker -H "$BENCH_TLS_HOST" builder prune -af >/dev/null 2>&1
else
	nonce="$(date +%s%N)-$$"
	for svc in $services; do
		# one per service too: identical steps would be one build on BuildKit
		echo "$nonce-$svc" >"$project/$svc/nonce"
	done
fi
exit 0
