#!/bin/sh
# Builds and installs Asterisk 22 with its bundled pjproject, trimmed to
# what res_pjsip_isp and its tests use, into $ASTERISK_PREFIX (default
# /opt/asterisk-22), headers included. Does nothing when that prefix
# already holds this version built with this module list.
#
#	scripts/asterisk.sh		build and install when needed
#	scripts/asterisk.sh --check	exit 0 when installed, 1 when not
#	scripts/asterisk.sh --if-sources
#					build when needed and the sources are
#					there; without them say so and exit 0,
#					unless ISP_REQUIRE_ASTERISK=1 (CI)
#
# Sources come from $ISP_VENDOR_DIR, by default ../shared/vendor beside
# the repository when that exists: asterisk-22.10.1.tar.gz and
# pjproject-2.17.tar.bz2, checked against its SHA256SUMS. Asterisk's
# configure takes pjproject from a download cache (and checks its md5
# against third-party/pjproject/*.md5), so nothing is downloaded.
#
# Everything built lives outside the tree, under $ISP_CACHE_DIR (default
# /var/cache/ispd): the unpacked sources and the build log
# (asterisk-build.log). A build takes about 3 minutes on two cores.
set -eu

AST_VERSION=22.10.1
PJ_VERSION=2.17
PREFIX=${ASTERISK_PREFIX:-/opt/asterisk-22}
top=$(cd "$(dirname "$0")/.." && pwd)
cache=${ISP_CACHE_DIR:-/var/cache/ispd}
if [ -z "${ISP_VENDOR_DIR:-}" ] && [ -d "$top/../shared/vendor" ]; then
	ISP_VENDOR_DIR=$top/../shared/vendor
fi

# The modules of the trimmed build. The PJSIP stack and what chan_pjsip
# needs (res_pjsip_session, res_pjsip_pubsub), the registrar (for a
# stray REGISTER and the benchmark's Asterisk-as-registrar), Path,
# MWI (to show only one instance sends it), sorcery's wizards,
# the dialplan (pbx_config, app_dial), device states over AMI, a codec,
# RTP and a timer.
MODULES="OPTIONAL_API res_pjproject res_pjsip res_pjsip_session
    res_pjsip_pubsub chan_pjsip res_pjsip_registrar res_pjsip_path
    res_pjsip_authenticator_digest res_pjsip_outbound_authenticator_digest
    res_pjsip_endpoint_identifier_user res_pjsip_endpoint_identifier_ip
    res_pjsip_sdp_rtp res_pjsip_nat res_pjsip_caller_id res_pjsip_mwi
    res_pjsip_mwi_body_generator res_pjsip_exten_state
    res_pjsip_pidf_body_generator res_pjsip_logger res_pjsip_rfc3326
    res_sorcery_memory res_sorcery_config res_sorcery_astdb
    res_sorcery_memory_cache res_rtp_asterisk res_timing_timerfd
    res_manager_devicestate res_http_websocket res_crypto
    pbx_config app_dial app_echo func_devstate func_strings func_callerid
    func_pjsip_contact func_pjsip_aor func_pjsip_endpoint
    codec_ulaw bridge_simple bridge_native_rtp format_wav"

stamp_text() {
	printf 'asterisk %s pjproject %s\nmodules %s\n' "$AST_VERSION" \
	    "$PJ_VERSION" "$(echo $MODULES)"
}
stamp=$PREFIX/.ispd-build

installed() {
	[ -f "$stamp" ] && [ "$(cat "$stamp")" = "$(stamp_text)" ] &&
	    [ -x "$PREFIX/sbin/asterisk" ] &&
	    [ -f "$PREFIX/include/asterisk.h" ] &&
	    [ -f "$PREFIX/include/pjproject/pjsip.h" ]
}

if [ "${1:-}" = "--check" ]; then
	installed
	exit
fi
if installed; then
	exit 0
fi

say() { echo "asterisk.sh: $*"; }
die() { echo "asterisk.sh: $*" >&2; exit 1; }

if [ "${1:-}" = "--if-sources" ] && [ "${ISP_REQUIRE_ASTERISK:-0}" != 1 ] &&
    [ ! -f "${ISP_VENDOR_DIR:-/nonexistent}/asterisk-$AST_VERSION.tar.gz" ]; then
	echo "asterisk.sh: *** no Asterisk in $PREFIX and no sources (set" \
	    "ISP_VENDOR_DIR): the Asterisk module's tests will be SKIPPED ***" >&2
	exit 0
fi

[ -n "${ISP_VENDOR_DIR:-}" ] && [ -d "$ISP_VENDOR_DIR" ] ||
    die "no sources: set ISP_VENDOR_DIR to the folder with asterisk-$AST_VERSION.tar.gz, pjproject-$PJ_VERSION.tar.bz2 and SHA256SUMS"
ast_tar=asterisk-$AST_VERSION.tar.gz
pj_tar=pjproject-$PJ_VERSION.tar.bz2
for f in $ast_tar $pj_tar SHA256SUMS; do
	[ -f "$ISP_VENDOR_DIR/$f" ] || die "$ISP_VENDOR_DIR/$f is missing"
done
say "verifying sources in $ISP_VENDOR_DIR"
(cd "$ISP_VENDOR_DIR" && grep -E " ($ast_tar|$pj_tar)\$" SHA256SUMS |
    sha256sum -c --quiet -) || die "checksums of $ISP_VENDOR_DIR do not match SHA256SUMS"
[ "$(grep -cE " ($ast_tar|$pj_tar)\$" "$ISP_VENDOR_DIR/SHA256SUMS")" -eq 2 ] ||
    die "SHA256SUMS in $ISP_VENDOR_DIR does not list both tarballs"

"$top/scripts/deps.sh" asterisk

mkdir -p "$cache/downloads"
log=$cache/asterisk-build.log
: >"$log"
say "building Asterisk $AST_VERSION into $PREFIX (log: $log)"
cp "$ISP_VENDOR_DIR/$pj_tar" "$cache/downloads/$pj_tar"
src=$cache/asterisk-$AST_VERSION
rm -rf "$src"
tar -xzf "$ISP_VENDOR_DIR/$ast_tar" -C "$cache"

step() {	# phase command...
	say "$1"
	shift
	if ! (cd "$src" && "$@") >>"$log" 2>&1; then
		tail -n 30 "$log" >&2
		die "failed: $* (whole log: $log)"
	fi
}

step "configure" ./configure --prefix="$PREFIX" --libdir="$PREFIX/lib" \
    --with-download-cache="$cache/downloads" --with-pjproject-bundled \
    --with-jansson-bundled=no --disable-xmldoc --without-dahdi \
    --without-pri --without-ss7 --without-openr2
step "menuselect" make menuselect.makeopts
# shellcheck disable=SC2086
enable=$(for m in $MODULES; do printf -- '--enable %s ' "$m"; done)
# shellcheck disable=SC2086
step "menuselect: only the modules listed" menuselect/menuselect \
    --disable-all $enable --disable BUILD_NATIVE menuselect.makeopts
step "make (about 3 minutes)" make -j"$(nproc)" NOISY_BUILD=
rm -rf "$PREFIX"
step "install" make install
step "install headers" make install-headers
# res_pjsip.h includes pjproject's headers, which Asterisk's
# install-headers leaves out: an out-of-tree PJSIP module needs them,
# with the bundled build's config_site.h and its defines.
say "install pjproject headers"
mkdir -p "$PREFIX/include/pjproject"
for d in pjlib pjlib-util pjnath pjmedia pjsip; do
	cp -R "$src/third-party/pjproject/source/$d/include/." "$PREFIX/include/pjproject/"
done
sed -n 's/^PJPROJECT_INCLUDE=//p' "$src/makeopts" | tr ' ' '\n' |
    grep '^-D' | tr '\n' ' ' >"$PREFIX/include/pjproject/cflags"
stamp_text >"$stamp"
say "installed Asterisk $AST_VERSION in $PREFIX"
