#!/bin/sh
# Makes the next e2e build cold: removes the images the e2e builds tag (compose's `image:`
# names, and `benche2e_<service>` from `balena-compose build -p benche2e`); removing the last
# tag of an image also deletes its untagged intermediate parents, the classic builder's cache.
# BuildKit keeps its cache apart from images: `docker builder prune` empties it (every unused
# record of the daemon, not only ours: BuildKit records carry no project label to filter on;
# records in use by a running build stay). Nothing else on the daemon is touched; localbase
# stays.
for svc in svc0 svc1 svc2; do
	docker image rm -f "bench-e2e-$svc:latest" "benche2e_$svc:latest" "benche2e_$svc" \
		"benche2e-keep_$svc" >/dev/null 2>&1
done
docker builder prune -af >/dev/null 2>&1
exit 0
