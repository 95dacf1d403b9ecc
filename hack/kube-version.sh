#!/usr/bin/env bash
# The Kubernetes version sluice pins, and the -ldflags that stamp it into a
# kube binary (k8s.io/component-base/version): without the stamp a binary
# reports v0.0.0-master and kwokctl picks flags for the wrong version.
# Sourced by hack/tools.sh and hack/build-scheduler.sh; run, it prints the
# ldflags (the Makefile's KUBE_LDFLAGS).
#
# Every binary of bin/ built from sluice's module (the kube tools, sluice's
# scheduler, manager and helpers) is built the same way, `CGO_ENABLED=0 go
# build -trimpath`: static, as Kubernetes' own release binaries are (so they
# go into images on an empty base as they are), and sharing one build
# configuration, so that a package they have in common is compiled once.
# KUBE_BUILD stamps that configuration next to the version.
KUBE_VERSION=v1.37.2
KUBE_BUILD=$KUBE_VERSION+static
_kube_minor=${KUBE_VERSION#v*.}
_kube_minor=${_kube_minor%%.*}
_kube_major=${KUBE_VERSION#v}
_kube_major=${_kube_major%%.*}
_V=k8s.io/component-base/version
KUBE_LDFLAGS="-s -w -X $_V.gitVersion=$KUBE_VERSION -X $_V.gitMajor=$_kube_major -X $_V.gitMinor=$_kube_minor -X $_V.gitTreeState=clean"
unset _V _kube_major _kube_minor
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
	echo "$KUBE_LDFLAGS"
fi
