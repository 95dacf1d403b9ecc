#!/usr/bin/env bash
# Builds the local node's images without a container engine or a registry:
# a root filesystem tarball (Debian's busybox-static, Kubernetes' pause, or
# an mmdebstrap of Debian packages) becomes one layer on the empty base
# (bin/mkimage, go-containerregistry), written as a docker-archive under
# bin/images/, which hack/dev-up.sh imports into the node's containerd.
#
#   localhost/sluice/pause:3.10    the pod sandbox
#   localhost/sluice/busybox:dev   Debian's busybox-static
#   localhost/sluice/python:dev    python3 with pandas and numpy (Debian)
#   localhost/sluice/webhook:dev   sluice's manager (bin/sluice-webhook)
#   localhost/sluice/scheduler:dev sluice's scheduler (bin/sluice-scheduler)
#   localhost/sluice/kfp-launcher:dev sluice's KFP launcher (bin/kfp-launcher)
#
# sluice's own images hold the static binary of bin/ (make build) and the
# passwd/group entries of user 65532, on the empty base: what hack/Dockerfile
# builds on a distroless base where a container engine runs.
# An image is rebuilt only when its inputs change (recorded next to it as
# bin/images/.NAME.inputs). usage: images.sh [NAME...] (default: the node's
# images, pause busybox python; `make images` builds all six)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/bin
IMAGES=$BIN/images
# Debian's own sources file of this machine: no mirror host is written here.
SOURCES=${SOURCES:-/etc/apt/sources.list.d/debian.sources}
PYTHON_PACKAGES=python3,python3-pandas,python3-numpy
log() { printf 'images: %s\n' "$*" >&2; }
die() {
	printf 'images: error: %s\n' "$*" >&2
	exit 1
}
mkdir -p "$IMAGES"

# The packer is sluice's own (hack/mkimage), built into bin/ when stale.
if [[ ! -x $BIN/mkimage || -n $(find "$ROOT/hack/mkimage" -name '*.go' -newer "$BIN/mkimage" -print -quit) ]]; then
	(cd "$ROOT" && CGO_ENABLED=0 go build -trimpath -o "$BIN/mkimage" ./hack/mkimage)
fi

# fresh NAME INPUTS: the image was built from exactly these inputs.
fresh() { [[ -s $IMAGES/$1.tar && "$(cat "$IMAGES/.$1.inputs" 2>/dev/null)" == "$2" ]]; }

# pack DIR TAR: a layer tarball of DIR, owned by root, in a stable order.
pack() { tar --numeric-owner --owner=0 --group=0 --sort=name -C "$1" -cf "$2" .; }

# image NAME REF INPUTS BUILD [mkimage flags...]: BUILD DIR makes the root
# filesystem in DIR; the image is packed from it unless already fresh.
image() {
	local name=$1 ref=$2 inputs=$3 build=$4 start=$SECONDS
	shift 4
	if fresh "$name" "$inputs"; then
		return
	fi
	log "building $ref"
	local dir=$IMAGES/$name.rootfs
	rm -rf "$dir" "$IMAGES/$name.rootfs.tar"
	mkdir -p "$dir"
	"$build" "$dir"
	[[ -s $IMAGES/$name.rootfs.tar ]] || pack "$dir" "$IMAGES/$name.rootfs.tar"
	"$BIN/mkimage" -layer "$IMAGES/$name.rootfs.tar" -ref "$ref" -o "$IMAGES/$name.tar" "$@" >/dev/null
	rm -rf "$dir" "$IMAGES/$name.rootfs.tar"
	echo "$inputs" >"$IMAGES/.$name.inputs"
	log "$ref: $(du -h "$IMAGES/$name.tar" | cut -f1) in $((SECONDS - start))s"
}

pause_rootfs() {
	[[ -x $BIN/pause ]] || die "bin/pause is missing: run bash hack/tools.sh"
	cp "$BIN/pause" "$1/pause"
}

busybox_rootfs() {
	local bb=/bin/busybox
	[[ -x $bb ]] || die "$bb is missing: apt-get install busybox-static"
	mkdir -p "$1"/{bin,etc,tmp,root,proc,sys,dev}
	cp "$bb" "$1/bin/busybox"
	local applet
	for applet in $("$bb" --list); do
		[[ $applet == busybox ]] || ln -s busybox "$1/bin/$applet"
	done
	printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$1/etc/passwd"
	printf 'root:x:0:\nnogroup:x:65534:\n' >"$1/etc/group"
	chmod 1777 "$1/tmp"
}

# sluice_rootfs DIR: the static binary bin/$SLUICE_BINARY and a non-root user.
sluice_rootfs() {
	local bin=$BIN/$SLUICE_BINARY
	[[ -x $bin ]] || die "bin/$SLUICE_BINARY is missing: run make build"
	if ldd "$bin" >/dev/null 2>&1; then
		die "bin/$SLUICE_BINARY is dynamically linked: an image on the empty base needs a static build (make build)"
	fi
	mkdir -p "$1/usr/local/bin" "$1/etc" "$1/tmp"
	cp "$bin" "$1/usr/local/bin/"
	printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$1/etc/passwd"
	printf 'root:x:0:\nnonroot:x:65532:\n' >"$1/etc/group"
	chmod 1777 "$1/tmp"
}

# Debian's Essential packages plus python3, pandas and numpy: no recommends,
# no documentation, man pages or locales, no apt lists; device nodes are
# left to the runtime (--skip=output/dev).
python_rootfs() {
	command -v mmdebstrap >/dev/null || die "mmdebstrap is missing: apt-get install mmdebstrap"
	mmdebstrap --variant=essential --include="$PYTHON_PACKAGES" \
		--aptopt='APT::Install-Recommends "false"' \
		--dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
		--dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
		--dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias' \
		--customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/*' \
		--skip=output/dev \
		"$SUITE" "$IMAGES/python.rootfs.tar" "$SOURCES" >"$IMAGES/python.mmdebstrap.log" 2>&1 ||
		die "mmdebstrap failed; see $IMAGES/python.mmdebstrap.log"
}

SUITE=$(. /etc/os-release && echo "$VERSION_CODENAME")
want=("$@")
((${#want[@]})) || want=(pause busybox python)
for w in "${want[@]}"; do
	case $w in
	pause) image pause localhost/sluice/pause:3.10 "$(cat "$BIN/.pause.version" 2>/dev/null)" pause_rootfs -entrypoint /pause ;;
	busybox) image busybox localhost/sluice/busybox:dev "$(dpkg-query -W -f '${Version}' busybox-static 2>/dev/null)" busybox_rootfs \
		-env PATH=/bin -cmd /bin/sh ;;
	python) image python localhost/sluice/python:dev "$SUITE $PYTHON_PACKAGES" python_rootfs \
		-env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin -env LANG=C.UTF-8 -cmd python3 ;;
	webhook | scheduler | kfp-launcher)
		SLUICE_BINARY=sluice-$w
		[[ $w != kfp-launcher ]] || SLUICE_BINARY=$w
		image "$w" "localhost/sluice/$w:dev" "$(sha256sum "$BIN/$SLUICE_BINARY" 2>/dev/null | cut -d' ' -f1)" sluice_rootfs \
			-entrypoint "/usr/local/bin/$SLUICE_BINARY" -user 65532:65532
		;;
	*) die "unknown image $w (known: pause busybox python webhook scheduler kfp-launcher)" ;;
	esac
done
