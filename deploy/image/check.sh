#!/usr/bin/env bash
# Check the image `make image` built, without a container runtime (podman
# cannot run containers in our sandboxes: crun's setrlimit is refused).
#
#   deploy/image/check.sh IMAGE ARCHIVE      (make image-check)
#
# 1. buildah inspect: a numeric non-root user, entrypoint /beamgate, the
#    serve command, ports 2222 and 9102.
# 2. The OCI archive's layers: exactly /beamgate and the CA bundle (no
#    shell, nothing else).
# 3. The layers unpacked into a directory, and the binary run inside it with
#    chroot as uid/gid 65532 (root is needed for chroot only): `version`,
#    `help`, and, when an ssh client is installed, a `beamgate dev` gateway
#    answering an SSH login. The directory holds no libc and no loader, so
#    a binary that runs there is static.
# 4. The image's size.
#
# Needs buildah, python3 (to read the archive's JSON), tar, and root.
set -euo pipefail

image=${1:?usage: check.sh IMAGE ARCHIVE}
archive=${2:?usage: check.sh IMAGE ARCHIVE}
read -r -a buildah <<<"${BUILDAH:-buildah --storage-driver vfs}"
uid=65532
gid=65532

fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok   $*"; }

for cmd in "${buildah[0]}" python3 tar chroot; do
	command -v "$cmd" >/dev/null || fail "$cmd not found"
done
[ "$(id -u)" = 0 ] || fail "chroot needs root (run as root, or skip step 3)"
[ -f "$archive" ] || fail "no archive $archive (make image)"

work=$(mktemp -d)
pid=
cleanup() {
	if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT

# 1. The image's configuration.
echo "== buildah inspect $image"
"${buildah[@]}" inspect --type image "$image" >"$work/inspect.json"
# The OCI config's fields, one per line: user, entrypoint, cmd (JSON), ports.
mapfile -t cfg < <(python3 - "$work/inspect.json" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))["OCIv1"]["config"]
print(c.get("User", ""))
print(json.dumps(c.get("Entrypoint"), separators=(",", ":")))
print(json.dumps(c.get("Cmd"), separators=(",", ":")))
print(" ".join(sorted(c.get("ExposedPorts") or {})))
EOF
)
user=${cfg[0]} entrypoint=${cfg[1]} cmd=${cfg[2]} ports=${cfg[3]}
[[ $user =~ ^([0-9]+)(:([0-9]+))?$ ]] || fail "user \"$user\" is not numeric (runAsNonRoot cannot check a name)"
[ "${BASH_REMATCH[1]}" != 0 ] || fail "user \"$user\" is root"
[ "$user" = "$uid:$gid" ] || fail "user \"$user\", want $uid:$gid (deployment.yaml's runAsUser/runAsGroup)"
ok "user $user"
[ "$entrypoint" = '["/beamgate"]' ] || fail "entrypoint $entrypoint, want [\"/beamgate\"]"
ok "entrypoint $entrypoint"
[ "$cmd" = '["serve","--config","/etc/beamgate/beamgate.yaml"]' ] || fail "cmd $cmd"
ok "cmd $cmd"
for p in 2222/tcp 9102/tcp; do
	[[ " $ports " == *" $p "* ]] || fail "port $p not exposed (exposed: $ports)"
done
ok "exposed: $ports"

# 2. The layers, in the archive's manifest order.
echo "== $archive"
tar -xf "$archive" -C "$work"
mapfile -t layers < <(python3 - "$work" <<'EOF'
import json, sys
root = sys.argv[1]
blob = lambda d: f"{root}/blobs/{d.replace(':', '/', 1)}"
index = json.load(open(f"{root}/index.json"))
if len(index["manifests"]) != 1:
    sys.exit(f"index.json holds {len(index['manifests'])} manifests, want 1")
manifest = json.load(open(blob(index["manifests"][0]["digest"])))
for layer in manifest["layers"]:
    print(layer["mediaType"], blob(layer["digest"]), layer["size"])
EOF
)
[ "${#layers[@]}" -gt 0 ] || fail "no layers"
rootfs=$work/rootfs
mkdir -p "$rootfs"
unpacked=0
for l in "${layers[@]}"; do
	read -r media path size <<<"$l"
	case $media in
	*tar+gzip) z=-z ;;
	*tar+zstd) z=--zstd ;;
	*tar) z= ;;
	*) fail "layer media type $media" ;;
	esac
	echo "layer $(basename "$path") $media, $size bytes"
	tar -t $z -f "$path" | sed 's|^\./||' >>"$work/files"
	tar -x $z -f "$path" -C "$rootfs" --no-same-owner --numeric-owner
	unpacked=$((unpacked + $(tar -x $z -O -f "$path" | wc -c)))
done
files=$(grep -v '/$' "$work/files" | sort -u | tr '\n' ' ')
[ "$files" = "beamgate etc/ssl/certs/ca-certificates.crt " ] ||
	fail "layer files: $files; want only beamgate and etc/ssl/certs/ca-certificates.crt"
for sh in bin/sh bin/bash bin/busybox usr/bin/sh; do
	[ ! -e "$rootfs/$sh" ] || fail "/$sh in the image"
done
ok "files: $files(no /bin/sh, no other file)"
certs=$(grep -c 'BEGIN CERTIFICATE' "$rootfs/etc/ssl/certs/ca-certificates.crt" || true)
[ "$certs" -gt 0 ] || fail "the CA bundle holds no certificate"
ok "CA bundle: $certs certificates"
[ -x "$rootfs/beamgate" ] || fail "/beamgate is not executable"
if command -v go >/dev/null; then
	settings=$(go version -m "$rootfs/beamgate" | awk '$1 == "build" {print $2}' | grep -E '^(CGO_ENABLED|-trimpath)=' | tr '\n' ' ')
	[[ $settings == *CGO_ENABLED=0* ]] || fail "/beamgate not built with CGO_ENABLED=0 ($settings)"
	ok "build: $settings"
fi

# 3. Run it inside the image's files, as the image's user, with the
# image's (empty) environment.
echo "== chroot --userspec=$uid:$gid $rootfs"
chroot=$(command -v chroot)
run() { env -i "$chroot" --userspec="$uid:$gid" --groups="$gid" "$rootfs" "$@"; }
out=$(run /beamgate version) || fail "/beamgate version: $out"
[[ $out == beamgate\ * ]] || fail "/beamgate version printed: $out"
ok "/beamgate version: $out"
out=$(run /beamgate help) || fail "/beamgate help: $out"
[[ $out == *"serve --config FILE"* ]] || fail "/beamgate help printed: $out"
ok "/beamgate help: $(wc -l <<<"$out") lines ($(head -n 1 <<<"$out"))"
if run /bin/sh -c true 2>/dev/null; then fail "/bin/sh runs inside the image"; fi
ok "/bin/sh does not run inside the image"

if command -v ssh >/dev/null; then
	# A gateway from the image's binary alone: beamgate dev writes its
	# state (host key, audit log, a client key) as uid 65532 and answers
	# SSH on loopback.
	mkdir -p "$rootfs/state"
	chown "$uid:$gid" "$rootfs/state"
	port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	env -i "$chroot" --userspec="$uid:$gid" --groups="$gid" "$rootfs" /beamgate dev --state /state/dev --listen "127.0.0.1:$port" >"$work/dev.log" 2>&1 &
	pid=$!
	for _ in $(seq 100); do
		grep -q 'ssh front door listening' "$work/dev.log" && break
		kill -0 "$pid" 2>/dev/null || fail "beamgate dev exited: $(cat "$work/dev.log")"
		sleep 0.1
	done
	grep -q 'ssh front door listening' "$work/dev.log" || fail "beamgate dev did not listen: $(cat "$work/dev.log")"
	out=$(ssh -F none -i "$rootfs/state/dev/dev_ed25519" -p "$port" -o BatchMode=yes -o StrictHostKeyChecking=no \
		-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR dev@127.0.0.1 cookie) || fail "ssh dev@127.0.0.1 cookie: $out"
	[ -n "$out" ] || fail "ssh dev@127.0.0.1 cookie printed nothing"
	ok "beamgate dev (uid $uid, in the image) answered ssh: a ${#out}-character gateway cookie"
	kill -INT "$pid"
	wait "$pid" || true
	pid=
	owners=$(find "$rootfs/state/dev" -newer "$rootfs/beamgate" -printf '%u:%g\n' | sort -u | tr '\n' ' ')
	[ "$owners" = "$uid:$gid " ] || fail "state written as $owners, want $uid:$gid"
	ok "state written as $owners"
else
	echo "skip beamgate dev over ssh: no ssh client"
fi

# 4. Size.
echo "== size"
echo "archive $archive: $(stat -c %s "$archive") bytes (compressed layers)"
echo "files in the layers: $unpacked bytes"
"${buildah[@]}" images --format '{{.Name}}:{{.Tag}} {{.Size}}' "$image"
ok "image $image"
