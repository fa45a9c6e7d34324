#!/bin/sh
# Makes the next `balena-compose build -p benche2e` of the e2e project a cached build rather
# than a no-op: moves each `benche2e_<service>` tag to `benche2e-keep_<service>`, so the image
# and its parents (the classic builder's cache) stay while the build finds no image of the
# service's name and sends its context; BuildKit's cache is not tied to images and stays
# anyway. e2e-clean.sh removes the kept tags too.
for svc in svc0 svc1 svc2; do
	if docker image inspect "benche2e_$svc" >/dev/null 2>&1; then
		docker tag "benche2e_$svc" "benche2e-keep_$svc" &&
			docker image rm "benche2e_$svc" >/dev/null 2>&1
	fi
done
exit 0
