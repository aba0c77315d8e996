#!/usr/bin/env bash
# The arm64 job: the kiosk installed and run on Debian 12 arm64, emulated with qemu-user-static,
# as root on any x86-64 Debian machine. Two modes:
#
#   scripts/test-arm64.sh        (`make test-arm64`) the whole installer, as on a Pi:
#     1. a Debian 12 (bookworm) arm64 root from debootstrap, with the apt packages the installer
#        asks for (apt's python3-numpy 1.24 and python3-pil 9.4, as on Raspberry Pi OS) and a
#        desktop user `pi`;
#     2. scripts/install-pi.sh run in it for real, twice (the second run must change nothing),
#        from this clone mounted read-only (the installer must not write into a clone);
#   scripts/test-arm64.sh --ci   (`make test-arm64-ci`, run by .ci/run) the same checks of the
#   kiosk on arm64 without the installer, in minutes rather than hours where no root is cached:
#     1. the root from mmdebstrap in one apt pass (unsafe dpkg io, no docs, man pages, locales,
#        recommends or browser): the installer's apt packages but chromium;
#     2. the venv as the installer makes it (--system-site-packages, wheels only, with
#        pi/constraints.txt), but pip runs natively to fetch: x86 builds the kiosk's wheel and
#        downloads the aarch64 wheels, and pip in the root installs them offline;
#   then in both:
#     3. the kiosk-side tests that touch what arm64 can break (the scanner, badge tokens, the
#        event chain, the store, the rules) in that venv; CADRE_ARM64_TESTS=all for every
#        kiosk-side folder but the browser tests;
#     4. `kiosk decode` of the shared QR photos (../shared/data/qr-photos, or $CADRE_QR_PHOTOS)
#        and of badge pictures made here, compared with x86's texts, which must be identical;
#     5. `kiosk run` with the demo camera for a short while: /healthz, the screen, the lead page
#        and a preview frame answer, and SIGTERM stops it cleanly.
# Each root is kept in $CADRE_ARM64_CACHE (default /var/cache/cadre-kiosk) between runs and used
# through an overlay, so the cached root never changes. Each phase prints its seconds.
# Environment: CADRE_ARM64_CACHE, CADRE_QR_PHOTOS, CADRE_ARM64_TESTS, CADRE_DEBIAN_MIRROR
# (default: the Debian archive this machine's apt uses), PYTHON (x86 venv).
set -euo pipefail
# Braces: bash reads the whole script before running it, so a `git pull` or an edit of the clone
# while it runs cannot change what it does halfway.
{
cd "$(dirname "$0")/.."
REPO=$(pwd)
SUITE=bookworm
# Raise when the way the cached root is made changes: a new number makes a new root.
RECIPE=1
MODE=full
case "${1:-}" in
  "") ;;
  --ci) MODE=ci ;;
  *)
    echo "usage: $0 [--ci]" >&2
    exit 2
    ;;
esac
CACHE=${CADRE_ARM64_CACHE:-/var/cache/cadre-kiosk}
PHOTOS=${CADRE_QR_PHOTOS:-$REPO/../shared/data/qr-photos}
X86_PYTHON=${PYTHON:-$REPO/.venv/bin/python}
X86_KIOSK=$(dirname "$X86_PYTHON")/kiosk

say() { printf 'test-arm64: %s\n' "$*"; }
die() {
  printf 'test-arm64: FAILED: %s\n' "$*" >&2
  exit 1
}

[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, chroot, mounts, binfmt_misc): sudo make test-arm64"
[ -x "$X86_PYTHON" ] && [ -x "$X86_KIOSK" ] || die "no x86 venv with the kiosk at $X86_PYTHON (make setup-test makes it)"

# Every mount below lives in a mount namespace of this script's own and goes when it ends.
if [ "${CADRE_ARM64_NAMESPACE:-}" != 1 ]; then
  exec env CADRE_ARM64_NAMESPACE=1 unshare --mount --propagation private bash "$0" "$@"
fi

STARTED=$(date +%s.%N)
PHASE_STARTED=$STARTED
declare -a TIMES=()
phase_done() {
  local now
  now=$(date +%s.%N)
  local seconds
  seconds=$(awk -v a="$PHASE_STARTED" -v b="$now" 'BEGIN { printf "%.0f", b - a }')
  TIMES+=("$(printf '%6s s  %s' "$seconds" "$1")")
  say "[$seconds s] $1"
  PHASE_STARTED=$now
}

# --- host tools ------------------------------------------------------------------------------
host_tools() {
  local missing=()
  if [ "$MODE" = ci ]; then
    # arch-test: mmdebstrap checks with it that arm64 binaries run here.
    command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
    command -v arch-test >/dev/null || missing+=(arch-test)
  else
    command -v debootstrap >/dev/null || missing+=(debootstrap)
  fi
  [ -x /usr/libexec/qemu-binfmt/aarch64-binfmt-P ] || missing+=(qemu-user-static)
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing from apt: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
  # qemu-user-static registers aarch64 binaries with binfmt_misc through systemd-binfmt, which a
  # container does not run: mount binfmt_misc and register from the package's own binfmt.d file.
  # Its flag F opens the emulator now, so the chroot needs no copy of it.
  local binfmt=/proc/sys/fs/binfmt_misc
  if [ ! -e "$binfmt/register" ]; then
    mount -t binfmt_misc binfmt_misc "$binfmt" \
      || die "cannot mount binfmt_misc, so arm64 binaries cannot run here (a container without CAP_SYS_ADMIN, or a kernel without binfmt_misc?)"
  fi
  if [ ! -e "$binfmt/qemu-aarch64" ]; then
    local conf
    conf=$(ls /usr/lib/binfmt.d/qemu-aarch64*.conf 2>/dev/null | head -n 1)
    [ -n "$conf" ] || die "qemu-user-static has no binfmt.d file for aarch64"
    grep -v '^#' "$conf" >"$binfmt/register" || die "registering $conf with binfmt_misc failed"
    say "registered qemu-aarch64 with binfmt_misc ($conf)"
  fi
  if ! grep -qx enabled "$binfmt/qemu-aarch64"; then
    echo 1 >"$binfmt/qemu-aarch64"
  fi
}

# The Debian archive this machine's apt uses (a mirror that is known to be reachable here).
debian_mirror() {
  if [ -n "${CADRE_DEBIAN_MIRROR:-}" ]; then
    echo "$CADRE_DEBIAN_MIRROR"
    return
  fi
  local uri
  uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
    | awk '/^[[:space:]]*URIs:/ { for (i = 2; i <= NF; i++) print $i }
           /^[[:space:]]*deb[[:space:]]/ { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; break } }' \
    | grep -E '^https?://.*/debian/?$' | head -n 1)
  echo "${uri:-http://deb.debian.org/debian}"
}

# --- mounts of a root ---------------------------------------------------------------------------
# What a chroot needs to run apt, pip and the kiosk, and this clone read-only at /src/cadre-kiosk.
mount_inside() {
  local root=$1
  mount -t proc proc "$root/proc"
  mount -t sysfs sysfs "$root/sys"
  mount --rbind /dev "$root/dev"
  mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
  # An empty /run: systemd does not run in there, and the installer sees that.
  mount -t tmpfs tmpfs "$root/run"
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  # pip inside trusts what pip outside trusts (a machine may reach PyPI through its own CA).
  mkdir -p "$root/etc/ssl"
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/host-ca-certificates.crt" 2>/dev/null \
    || cp "$("$X86_PYTHON" -c 'import certifi; print(certifi.where())')" \
      "$root/etc/ssl/host-ca-certificates.crt"
  mkdir -p "$CACHE/pip" "$root/root/.cache/pip"
  mount --bind "$CACHE/pip" "$root/root/.cache/pip"
  mkdir -p "$root/src/cadre-kiosk"
  mount --bind "$REPO" "$root/src/cadre-kiosk"
  mount -o remount,bind,ro "$root/src/cadre-kiosk"
}

# Never delete through a mount (the clone and /dev are bound in there).
unmount_and_remove() {
  local folder=$1 root=$2
  umount -R "$root" 2>/dev/null || true
  for target in $(findmnt -rn -o TARGET | grep "^$root/" | sort -r); do
    umount -R "$target" 2>/dev/null || umount -l "$target" 2>/dev/null || true
  done
  if findmnt -rn -o TARGET | grep -q "^$folder"; then
    say "left $folder in place: something is still mounted under it" >&2
    return 1
  fi
  rm -rf "$folder"
}

ROOT=""
in_root() {
  chroot "$ROOT" /usr/bin/env -i \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
    PIP_CERT=/etc/ssl/host-ca-certificates.crt PIP_DEFAULT_TIMEOUT=180 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 "$@"
}

# --- the cached root ---------------------------------------------------------------------------
# Full mode: debootstrap gives Debian 12 arm64 with what the installer needs to run and systemd
# (for systemctl and systemd-analyze, as on the Pi); then the installer's packages step runs in it
# for real (for a USB camera: python3-picamera2 is Raspberry Pi OS's, not Debian's) and a desktop
# user `pi` is made, as Raspberry Pi OS's first boot does.
# CI mode: mmdebstrap installs the installer's packages but the browser (the tests here use none)
# in the same apt pass as the base system. The key changes with the package list.
ci_packages() {
  scripts/install-pi.sh --print-packages --camera usb | grep -vx chromium
  # Always there on Raspberry Pi OS, not in a minimal root: useradd for the kiosk's user, and
  # the time zones the kiosk's day and the tests read through zoneinfo.
  echo passwd tzdata | tr ' ' '\n'
}

root_prefix() {
  if [ "$MODE" = ci ]; then echo "arm64-ci-$SUITE-"; else echo "arm64-$SUITE-"; fi
}

cache_key() {
  {
    if [ "$MODE" = ci ]; then
      echo "recipe $RECIPE $SUITE ci"
      ci_packages
    else
      echo "recipe $RECIPE $SUITE"
      scripts/install-pi.sh --print-packages --camera usb
    fi
  } | sha256sum | cut -c1-12
}

# A root is made under a .partial name and renamed when whole, so a stopped run leaves no root
# that looks finished.
start_partial() {
  local partial=$1
  if [ -d "$partial" ]; then
    unmount_and_remove "$partial" "$partial" || die "cannot remove the unfinished $partial"
  fi
  mkdir -p "$partial"
}

build_root_debootstrap() {
  local final=$1 partial=$1.partial mirror
  mirror=$(debian_mirror)
  start_partial "$partial"
  say "debootstrap $SUITE arm64 from $mirror into $partial (slow: its second stage is emulated)"
  debootstrap --arch=arm64 --variant=minbase --include=systemd,procps,python3 \
    "$SUITE" "$partial" "$mirror" >"$CACHE/debootstrap.log" 2>&1 \
    || {
      tail -n 30 "$CACHE/debootstrap.log" >&2
      die "debootstrap failed (log: $CACHE/debootstrap.log)"
    }
  phase_done "debootstrap"
  ROOT=$partial
  mount_inside "$partial"
  say "the installer's packages step in the new root"
  in_root /src/cadre-kiosk/scripts/install-pi.sh --only packages --camera usb \
    | sed 's/^/    /' || die "the installer's packages step failed in the new root"
  in_root useradd --create-home --uid 1000 --shell /bin/bash pi
  in_root apt-get clean
  rm -f "$partial/etc/resolv.conf" "$partial/etc/ssl/host-ca-certificates.crt"
  umount -R "$partial/proc" "$partial/sys" "$partial/dev" "$partial/tmp" "$partial/run" \
    "$partial/root/.cache/pip" "$partial/src/cadre-kiosk" 2>/dev/null || true
  if findmnt -rn -o TARGET | grep -q "^$partial"; then
    die "something is still mounted in $partial"
  fi
  rmdir "$partial/src/cadre-kiosk" "$partial/src"
  ROOT=""
  mv "$partial" "$final"
  phase_done "apt packages of the installer"
}

# Most of a root's making is dpkg configuring packages under emulation (maintainer scripts,
# byte-compiling): mmdebstrap runs dpkg once for everything, and without fsyncs (force-unsafe-io,
# safe for a root that is renamed only once it is whole). Docs, man pages and locales are left out.
build_root_mmdebstrap() {
  local final=$1 partial=$1.partial mirror packages
  mirror=$(debian_mirror)
  packages=$(ci_packages | paste -sd, -)
  start_partial "$partial"
  # The kiosk's user and state folder, as the installer's user step makes them ($1: the root).
  # shellcheck disable=SC2016
  local hooks=(
    --customize-hook='chroot "$1" useradd --system --user-group --groups video --home-dir /var/lib/kiosk --shell /usr/sbin/nologin kiosk'
    --customize-hook='chroot "$1" install -d -o kiosk -g kiosk -m 0700 /var/lib/kiosk'
  )
  say "mmdebstrap $SUITE arm64 from $mirror into $partial with $packages"
  mmdebstrap --mode=root --arch=arm64 --variant=apt --include="$packages" \
    --dpkgopt=force-unsafe-io \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    "${hooks[@]}" \
    "$SUITE" "$partial" "$mirror" >"$CACHE/mmdebstrap.log" 2>&1 \
    || {
      tail -n 30 "$CACHE/mmdebstrap.log" >&2
      die "mmdebstrap failed (log: $CACHE/mmdebstrap.log)"
    }
  mv "$partial" "$final"
  phase_done "mmdebstrap with the installer's apt packages"
}

cached_root() {
  local base
  base=$CACHE/$(root_prefix)$(cache_key)
  mkdir -p "$CACHE"
  exec 9>"$CACHE/.lock"
  flock 9
  if [ -d "$base" ]; then
    say "cached root $base"
  else
    if [ "$MODE" = ci ]; then
      build_root_mmdebstrap "$base"
    else
      build_root_debootstrap "$base"
    fi
    # Roots of older recipes or package lists are no use any more.
    local old
    for old in "$CACHE/$(root_prefix)"*; do
      [ "$old" = "$base" ] || [ ! -d "$old" ] || rm -rf --one-file-system "$old"
    done
  fi
  flock -u 9
  BASE=$base
}

# --- one run's root: an overlay on the cached one ----------------------------------------------
WORK=""
KIOSK_PID=""
cleanup() {
  local status=$?
  if [ -n "$KIOSK_PID" ] && kill -0 "$KIOSK_PID" 2>/dev/null; then
    kill -KILL "$KIOSK_PID" 2>/dev/null || true
  fi
  if [ -n "$WORK" ] && [ -d "$WORK" ]; then
    unmount_and_remove "$WORK" "$WORK/root" || true
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'say "stopped by SIGINT"; exit 130' INT
trap 'say "stopped by SIGTERM"; exit 143' TERM
trap 'say "stopped by SIGHUP"; exit 129' HUP

prepare_root() {
  local base=$1
  WORK=$(mktemp -d /var/tmp/cadre-arm64.XXXXXX)
  ROOT=$WORK/root
  mkdir -p "$ROOT" "$WORK/upper" "$WORK/overlay-work"
  if ! mount -t overlay overlay \
    -o "lowerdir=$base,upperdir=$WORK/upper,workdir=$WORK/overlay-work" "$ROOT" 2>/dev/null; then
    say "no overlayfs here: copying the cached root"
    cp -a "$base/." "$ROOT/"
  fi
  mount_inside "$ROOT"
  if [ -d "$PHOTOS" ]; then
    # Where the tests look for them: ../shared/data/qr-photos beside the clone.
    mkdir -p "$ROOT/src/shared/data/qr-photos"
    mount --bind "$PHOTOS" "$ROOT/src/shared/data/qr-photos"
    mount -o remount,bind,ro "$ROOT/src/shared/data/qr-photos"
  fi
}

# --- checks ------------------------------------------------------------------------------------
expect_line() {
  local log=$1 text=$2
  grep -qF -- "$text" "$log" || die "the installer did not say '$text' ($log above)"
}

check_no_shadowing() {
  local site=$ROOT/opt/cadre-kiosk/venv/lib/python3.11/site-packages
  local shadowing
  shadowing=$(find "$site" -maxdepth 1 \( -iname 'numpy*' -o -iname 'pillow*' -o -name PIL \) -printf '%f ')
  [ -z "$shadowing" ] || die "the venv has its own numpy or Pillow, shadowing apt's: $shadowing"
}

run_installer() {
  local log=$WORK/install-$1.log
  say "scripts/install-pi.sh --camera usb --user pi (run $1)"
  if ! in_root /src/cadre-kiosk/scripts/install-pi.sh --camera usb --user pi >"$log" 2>&1; then
    cat "$log" >&2
    die "scripts/install-pi.sh failed on arm64 (run $1)"
  fi
  sed 's/^/    /' "$log"
}

check_install() {
  local second=$WORK/install-2.log
  # The second run finds everything done: nothing but the kiosk's own code is put in again.
  expect_line "$second" "all installed already"
  expect_line "$second" "user kiosk exists already"
  expect_line "$second" "kiosk is in group video already"
  expect_line "$second" "exists already (with the system's site-packages)"
  expect_line "$second" "/etc/systemd/system/kiosk.service is up to date"
  expect_line "$second" "systemd-analyze verify /etc/systemd/system/kiosk.service: no complaint"
  expect_line "$second" "/var/lib/kiosk/kiosk.toml exists already"
  expect_line "$second" "autostart is up to date"
  expect_line "$second" "numpy 1.24"
  expect_line "$second" "PIL 9.4"
  [ -L "$ROOT/etc/systemd/system/multi-user.target.wants/kiosk.service" ] \
    || die "kiosk.service is not enabled"
  in_root id -nG kiosk | tr ' ' '\n' | grep -qx video || die "user kiosk is not in group video"
  [ "$(in_root stat -c "%a %U" /var/lib/kiosk)" = "750 kiosk" ] || die "/var/lib/kiosk is not 0750 kiosk"
  local autostart=$ROOT/home/pi/.config/labwc/autostart
  [ "$(grep -c '>>> cadre-kiosk' "$autostart")" = 1 ] || die "the labwc autostart has not exactly one kiosk block"
  [ "$(in_root stat -c %U /home/pi/.config/labwc/autostart)" = pi ] || die "the labwc autostart is not pi's"
  check_no_shadowing
  say "install checked: a second run changed nothing; unit enabled and verified; apt's numpy and Pillow used"
}

# CI mode: the venv as scripts/install-pi.sh makes it, with pip's network and resolving done
# natively. pip download cannot know that the root has apt's numpy and Pillow, so it fetches
# aarch64 wheels of both too; pip in the root finds apt's good enough under pi/constraints.txt and
# leaves those wheels alone (check_no_shadowing makes sure).
fetch_wheels() {
  local wheels=$WORK/wheels log=$WORK/wheels.log
  local platforms=(--platform manylinux2014_aarch64) minor
  for minor in $(seq 17 36); do
    platforms+=(--platform "manylinux_2_${minor}_aarch64")
  done
  mkdir -p "$wheels" "$WORK/src"
  # From a copy, as the installer does: a build leaves build/ and *.egg-info in its source.
  tar -C "$REPO" \
    --exclude=./.git --exclude=./.venv --exclude=./build --exclude=./dist --exclude=./instance \
    --exclude='*.egg-info' --exclude=__pycache__ --exclude=.pytest_cache --exclude=./tests/artifacts \
    -cf - . | tar -C "$WORK/src" -xf -
  say "x86: the kiosk's wheel, and aarch64 wheels of its dependencies and the test tools"
  {
    export PIP_CACHE_DIR=$CACHE/pip-x86
    "$X86_PYTHON" -m pip wheel -q --no-deps --wheel-dir "$wheels" "$WORK/src" \
      && "$X86_PYTHON" -m pip download -q --only-binary=:all: \
        --python-version 3.11 --implementation cp --abi cp311 --abi abi3 --abi none \
        "${platforms[@]}" -c pi/constraints.txt --dest "$wheels" \
        "$wheels"/cadre_kiosk-*.whl pytest hypothesis
  } >"$log" 2>&1 || {
    cat "$log" >&2
    die "fetching the aarch64 wheels failed"
  }
  mkdir -p "$ROOT/tmp/wheels"
  mount --bind "$wheels" "$ROOT/tmp/wheels"
  mount -o remount,bind,ro "$ROOT/tmp/wheels"
}

install_venv() {
  local venv=/opt/cadre-kiosk/venv wheel
  wheel=$(cd "$ROOT/tmp/wheels" && ls cadre_kiosk-*.whl)
  say "$venv with --system-site-packages; pip install --no-index $wheel pytest hypothesis"
  in_root python3 -m venv --system-site-packages "$venv"
  # No .pyc files: compiling every module under emulation costs more than the tests import.
  in_root env PYTHONDONTWRITEBYTECODE=1 "$venv/bin/python" -m pip install -q --no-compile \
    --no-index --find-links /tmp/wheels --only-binary=:all: \
    -c /src/cadre-kiosk/pi/constraints.txt "/tmp/wheels/$wheel" pytest hypothesis \
    || die "pip install of the kiosk's wheel failed on arm64"
  check_no_shadowing
  in_root "$venv/bin/python" - <<'PY' || die "the venv cannot import what the kiosk needs"
import importlib
import sys

failed = False
for name in ["cv2", "zxingcpp", "pyzbar.pyzbar", "numpy", "PIL", "kiosk.app"]:
    module = importlib.import_module(name)
    where = module.__file__ or ""
    if name in ("numpy", "PIL"):
        origin = "apt" if where.startswith("/usr/lib/python3/dist-packages/") else where
        print(f"test-arm64: {name} {module.__version__} from {origin}")
        failed = failed or origin != "apt"
sys.exit(1 if failed else 0)
PY
}

run_tests() {
  if [ "$MODE" = full ]; then
    say "pytest and hypothesis into the venv (this throwaway root's only)"
    in_root /opt/cadre-kiosk/venv/bin/python -m pip install -q --only-binary=:all: \
      -c /src/cadre-kiosk/pi/constraints.txt pytest hypothesis
    phase_done "test tools installed"
  fi
  # What arm64 can break: the native wheels and apt's numpy and Pillow under the kiosk's own
  # code. The scanner (OpenCV, zxing-cpp, pyzbar, numpy), badge tokens and the event chain
  # (cryptography), the store (TinyDB, fsync, flock) and the check-in rules; CADRE_ARM64_TESTS=all
  # runs every kiosk-side folder (tests/kiosk_core, tests/scanner, tests/kiosk_web: ~300 tests,
  # minutes natively, more than an hour emulated). The default selection is ~130 tests, 12 s of
  # CPU natively. tests/sync drives a centre, which does not run on the Pi.
  local selection=(tests/scanner tests/test_badge_token.py tests/test_events.py
    tests/kiosk_core/test_kiosk_store.py tests/kiosk_core/test_kiosk_rules.py)
  if [ "${CADRE_ARM64_TESTS:-}" = all ]; then
    selection=(tests/kiosk_core tests/scanner tests/kiosk_web tests/test_badge_token.py tests/test_events.py)
  fi
  say "pytest ${selection[*]} -m 'not browser'"
  in_root sh -c 'cd /src/cadre-kiosk && exec "$@"' sh \
    env PYTHONDONTWRITEBYTECODE=1 HYPOTHESIS_STORAGE_DIRECTORY=/tmp/hypothesis \
    /opt/cadre-kiosk/venv/bin/python -m pytest -p no:cacheprovider -q -m "not browser" \
    --basetemp=/tmp/pytest "${selection[@]}" || die "the kiosk-side tests failed on arm64"
}

decode_both() {
  local cwd_host=$1 cwd_root=$2 name=$3
  shift 3
  # `kiosk decode` exits 1 when a file is no image: compare reports that file, so go on.
  (cd "$cwd_host" && "$X86_KIOSK" decode "$@") >"$WORK/$name-x86.jsonl" || true
  in_root sh -c 'cd "$1" && shift && exec /opt/cadre-kiosk/venv/bin/kiosk decode "$@"' sh \
    "$cwd_root" "$@" >"$WORK/$name-arm64.jsonl" || true
}

run_decode() {
  mkdir -p "$ROOT/tmp/badges"
  "$X86_PYTHON" scripts/arm64_decode.py make-badges "$ROOT/tmp/badges"
  local badges=()
  mapfile -t badges < <(cd "$ROOT/tmp" && ls badges/*.png badges/*.jpg)
  decode_both "$ROOT/tmp" /tmp badges "${badges[@]}"
  "$X86_PYTHON" scripts/arm64_decode.py compare "$WORK/badges-x86.jsonl" "$WORK/badges-arm64.jsonl" \
    --expected "$ROOT/tmp/badges/expected.json" || die "badge pictures decode differently on arm64"
  if [ -d "$PHOTOS" ]; then
    local photos=()
    mapfile -t photos < <("$X86_PYTHON" -c '
import json, sys
for item in json.load(open(sys.argv[1]))["items"]:
    print("qr-photos/" + item["image"])' "$PHOTOS/manifest.json")
    decode_both "$PHOTOS/.." /src/shared/data photos "${photos[@]}"
    "$X86_PYTHON" scripts/arm64_decode.py compare "$WORK/photos-x86.jsonl" "$WORK/photos-arm64.jsonl" \
      || die "the shared photos decode differently on arm64"
  else
    say "no shared photos at $PHOTOS (CADRE_QR_PHOTOS names them): compared the badge pictures only"
  fi
}

run_kiosk() {
  local port log=$WORK/kiosk-run.log
  port=$("$X86_PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  say "kiosk run (demo camera) as user kiosk on 127.0.0.1:$port"
  chroot --userspec=kiosk:kiosk "$ROOT" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/var/lib/kiosk \
    LANG=C.UTF-8 KIOSK_CAMERA_SOURCE=demo \
    /opt/cadre-kiosk/venv/bin/kiosk --instance /var/lib/kiosk run --host 127.0.0.1 --port "$port" \
    >"$log" 2>&1 &
  KIOSK_PID=$!
  if ! "$X86_PYTHON" - "$port" <<'PY'; then
import json
import sys
import time
import urllib.error
import urllib.request

base = f"http://127.0.0.1:{sys.argv[1]}"
deadline = time.monotonic() + 240
health = None
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen(base + "/healthz", timeout=5) as answer:
            health = json.load(answer)
        if health.get("ok"):
            break
    except (OSError, ValueError):
        pass
    time.sleep(1)
print(f"test-arm64: /healthz answered {health} after {time.monotonic() - deadline + 240:.0f} s")
if not (health and health.get("ok")):
    sys.exit(1)
for path, wanted in (("/", b"<html"), ("/lead", b"<html")):
    with urllib.request.urlopen(base + path, timeout=30) as answer:
        page = answer.read()
    if answer.status != 200 or wanted not in page.lower():
        sys.exit(f"test-arm64: {path} answered {answer.status} without a page")
    print(f"test-arm64: {path} answered 200, {len(page)} bytes")
with urllib.request.urlopen(base + "/preview.mjpg", timeout=30) as answer:
    start = answer.read(65536)
if b"\xff\xd8" not in start:
    sys.exit("test-arm64: /preview.mjpg sent no JPEG frame")
print("test-arm64: /preview.mjpg sends JPEG frames of the demo camera")
PY
    cat "$log" >&2
    die "kiosk run on arm64 did not answer as it should"
  fi
  kill -TERM "$KIOSK_PID"
  local status=0 waited=0
  while kill -0 "$KIOSK_PID" 2>/dev/null && [ "$waited" -lt 60 ]; do
    sleep 1
    waited=$((waited + 1))
  done
  wait "$KIOSK_PID" || status=$?
  KIOSK_PID=""
  if [ "$status" -ne 0 ]; then
    cat "$log" >&2
    die "kiosk run exited $status after SIGTERM"
  fi
  say "kiosk run stopped cleanly on SIGTERM after ${waited} s"
}

# --- the job -----------------------------------------------------------------------------------
host_tools
phase_done "host tools (qemu-user-static, binfmt, $([ "$MODE" = ci ] && echo mmdebstrap || echo debootstrap))"
cached_root
phase_done "arm64 root ready ($BASE)"
prepare_root "$BASE"
[ "$(in_root uname -m)" = aarch64 ] || die "the root does not run as aarch64"
in_root python3 -c 'import platform, sys; print("test-arm64: python", sys.version.split()[0], platform.machine())'
phase_done "root mounted"
if [ "$MODE" = ci ]; then
  fetch_wheels
  phase_done "wheels fetched on x86"
  install_venv
  phase_done "venv and wheels installed (emulated)"
else
  run_installer 1
  phase_done "installer, first run"
  run_installer 2
  check_install
  phase_done "installer, second run"
fi
run_tests
phase_done "kiosk-side tests (emulated)"
run_decode
phase_done "kiosk decode, x86 and arm64"
run_kiosk
phase_done "kiosk run with the demo camera"

say "times:"
printf '  %s\n' "${TIMES[@]}"
say "total $(awk -v a="$STARTED" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }') s: arm64 OK ($MODE mode)"
exit
}
