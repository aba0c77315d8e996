#!/usr/bin/env bash
# Installs the check-in kiosk on a Raspberry Pi running Raspberry Pi OS Bookworm (64-bit, with
# desktop), from a clone of this repository. Safe to run again: each step says what it changed or
# that it was already done, and a second run changes nothing but the kiosk's own code.
#
#   sudo scripts/install-pi.sh                     # the desktop user is the one who ran sudo
#   sudo scripts/install-pi.sh --user pi --camera usb
#   scripts/install-pi.sh --help
#
# Steps, in order (--only / --skip take their names):
#   packages  apt packages (python3-picamera2 and apt's numpy and Pillow, libzbar0, fonts, chromium)
#   user      the system user `kiosk` in group video, its state folder /var/lib/kiosk
#   venv      /opt/cadre-kiosk/venv with --system-site-packages; the kiosk built as a wheel from a
#             copy of this clone (nothing is written into the clone) and installed from wheels only,
#             with pi/constraints.txt; the update layout around it (the links current and good to
#             this venv, venvs/ for releases the centre offers later: docs/decisions.md)
#   unit      /etc/systemd/system/kiosk.service, checked with systemd-analyze verify, enabled
#   settings  /var/lib/kiosk/kiosk.toml with the camera, only when there is none
#   desktop   the desktop user logs in by itself to labwc, whose autostart opens Chromium full
#             screen on the kiosk screen; screen blanking off
#   start     (re)starts the service and waits for it to answer, on a running system only
#
# --root DIR installs into another root file system (an image being built), running programs
# there with chroot: the service is enabled but not started, and nothing else on this machine
# changes. Run inside an image build (sdm, a pi-gen stage, a chroot) the installer notices that
# systemd is not running and behaves the same way.
set -euo pipefail
# Braces: bash reads the whole script before running it, so a `git pull` or an edit of the clone
# while it runs cannot change what it does halfway.
{
umask 022

SOURCE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROOT=/
OPT=/opt/cadre-kiosk
VENV=$OPT/venv
DESKTOP_USER=""
CAMERA=picamera
ALLOW_OTHER_RELEASE=0
ALL_STEPS=(packages user venv unit settings desktop start)
ONLY=""
SKIP=""
SERVICE_USER=kiosk
STATE_DIR=/var/lib/kiosk
PORT=8080
UNIT_PATH=/etc/systemd/system/kiosk.service
AUTOSTART_BEGIN="# >>> cadre-kiosk: the kiosk screen (written by scripts/install-pi.sh; edits here are replaced)"
AUTOSTART_END="# <<< cadre-kiosk"

usage() {
  cat <<EOF
Usage: sudo scripts/install-pi.sh [options]

Installs the check-in kiosk on Raspberry Pi OS Bookworm from this clone ($SOURCE).

Options:
  --user NAME        desktop user who logs in by itself and shows the kiosk screen
                     [default: the user who ran sudo, else the user with uid 1000]
  --camera KIND      picamera (the camera module, default) or usb (a USB webcam, /dev/video0);
                     written to kiosk.toml only when there is none yet
  --root DIR         install into the root file system at DIR (an image being built) instead of
                     this system; the service is enabled, not started
  --only STEP,...    run only these steps: ${ALL_STEPS[*]}
  --skip STEP,...    run every step but these
  --allow-other-release
                     go on when the system is not Debian/Raspberry Pi OS 12 (bookworm); the
                     constraints in pi/constraints.txt are made for bookworm's apt numpy and Pillow
  --print-packages   print the apt packages the packages step installs for --camera, then exit
                     (the browser as chromium; chromium-browser on images older than late 2024)
  -h, --help         this text
EOF
}

say() { printf 'install-pi: %s\n' "$*"; }
warn() { printf 'install-pi: warning: %s\n' "$*" >&2; }
die() {
  printf 'install-pi: error: %s\n' "$*" >&2
  exit 1
}
usage_error() {
  printf 'install-pi: %s (see --help)\n' "$*" >&2
  exit 2
}
heading() { printf '\n== %s\n' "$*"; }

print_packages=0
while [ $# -gt 0 ]; do
  case "$1" in
    --user) [ $# -ge 2 ] || usage_error "--user needs a name"; DESKTOP_USER=$2; shift 2 ;;
    --user=*) DESKTOP_USER=${1#*=}; shift ;;
    --camera) [ $# -ge 2 ] || usage_error "--camera needs picamera or usb"; CAMERA=$2; shift 2 ;;
    --camera=*) CAMERA=${1#*=}; shift ;;
    --root) [ $# -ge 2 ] || usage_error "--root needs a folder"; ROOT=$2; shift 2 ;;
    --root=*) ROOT=${1#*=}; shift ;;
    --only) [ $# -ge 2 ] || usage_error "--only needs step names"; ONLY=$2; shift 2 ;;
    --only=*) ONLY=${1#*=}; shift ;;
    --skip) [ $# -ge 2 ] || usage_error "--skip needs step names"; SKIP=$2; shift 2 ;;
    --skip=*) SKIP=${1#*=}; shift ;;
    --allow-other-release) ALLOW_OTHER_RELEASE=1; shift ;;
    --print-packages) print_packages=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage_error "unknown option: $1" ;;
  esac
done

case "$CAMERA" in
  picamera | usb) ;;
  *) usage_error "--camera is picamera or usb, not '$CAMERA'" ;;
esac
for name in ${ONLY//,/ } ${SKIP//,/ }; do
  [[ " ${ALL_STEPS[*]} " == *" $name "* ]] || usage_error "no step '$name'; the steps are: ${ALL_STEPS[*]}"
done
if [ -n "$ONLY" ] && [ -n "$SKIP" ]; then
  usage_error "--only and --skip do not go together"
fi
if [ -n "$DESKTOP_USER" ] && ! [[ "$DESKTOP_USER" =~ ^[a-z_][a-z0-9_-]*$ ]]; then
  usage_error "--user '$DESKTOP_USER' is not a user name"
fi

# apt's picamera2 and simplejpeg are built against apt's numpy, and picamera2 was packaged with
# apt's Pillow: the venv sees both through --system-site-packages and pi/constraints.txt keeps pip
# from shadowing them. libzbar0: pyzbar's decoder. fonts-wqy-zenhei: the Chinese text on screen.
base_packages() {
  echo python3 python3-venv python3-numpy python3-pil libzbar0 fonts-wqy-zenhei curl
  [ "$CAMERA" = picamera ] && echo python3-picamera2
  return 0
}
if [ "$print_packages" = 1 ]; then
  { base_packages; echo chromium; } | tr ' ' '\n'
  exit 0
fi

wanted() {
  local name=$1
  if [ -n "$ONLY" ]; then
    [[ ",$ONLY," == *",$name,"* ]]
  else
    [[ ",$SKIP," != *",$name,"* ]]
  fi
}

[ "$(id -u)" -eq 0 ] || die "run as root: sudo $0 $*"
[ -d "$ROOT" ] || die "--root $ROOT is not a folder"
ROOT=$(cd "$ROOT" && pwd)
# R prefixes a path of the target for this process's eyes ("" when the target is this system).
R=${ROOT%/}

# Runs a program in the target system.
in_target() {
  if [ -z "$R" ]; then
    "$@"
  else
    chroot "$ROOT" "$@"
  fi
}

# The target is live when it is this system and systemd runs it: only then are services started
# and systemd asked to reload. In a chroot (sdm, pi-gen, the arm64 CI job) it is not.
live=0
if [ -z "$R" ] && [ -d /run/systemd/system ]; then
  live=1
  if command -v systemd-detect-virt >/dev/null && systemd-detect-virt --quiet --chroot; then
    live=0
  fi
fi

# A user's passwd entry in the target (name:x:uid:gid:gecos:home:shell), from its own files.
passwd_entry() {
  awk -F: -v name="$1" '$1 == name { print; exit }' "$R/etc/passwd" 2>/dev/null || true
}
uid1000_user() {
  awk -F: '$3 == 1000 { print $1; exit }' "$R/etc/passwd" 2>/dev/null || true
}

check_system() {
  local codename="" arch
  if [ -r "$R/etc/os-release" ]; then
    codename=$(. "$R/etc/os-release" && echo "${VERSION_CODENAME:-}")
  fi
  if [ "$codename" != bookworm ]; then
    if [ "$ALLOW_OTHER_RELEASE" = 1 ]; then
      warn "this system is '${codename:-unknown}', not bookworm: going on as asked"
    else
      die "this system is '${codename:-unknown}', not Raspberry Pi OS / Debian 12 (bookworm): pi/constraints.txt is made for bookworm's apt numpy 1.24 and Pillow 9.4 (--allow-other-release to go on anyway)"
    fi
  fi
  if arch=$(in_target dpkg --print-architecture 2>/dev/null); then
    case "$arch" in
      arm64) ;;
      armhf | armel) die "this is 32-bit Raspberry Pi OS ($arch): OpenCV and zxing-cpp have no wheels for it; install the 64-bit Raspberry Pi OS" ;;
      *) say "architecture $arch: not a Raspberry Pi, fine for trying the installer" ;;
    esac
  fi
}

# ---------------------------------------------------------------------------------------------
step_packages() {
  heading "packages"
  local wanted_packages=() missing=() p browser=""
  read -r -a wanted_packages <<<"$(base_packages | tr '\n' ' ')"
  # The browser's package is chromium since late 2024, chromium-browser before.
  if in_target dpkg-query -W -f='${Status}' chromium-browser 2>/dev/null | grep -q "install ok installed"; then
    browser=chromium-browser
  else
    browser=chromium
  fi
  wanted_packages+=("$browser")
  for p in "${wanted_packages[@]}"; do
    in_target dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    say "all installed already: ${wanted_packages[*]}"
    return
  fi
  say "installing from apt: ${missing[*]}"
  in_target apt-get update -qq || die "apt-get update failed: is the network there?"
  if [[ " ${missing[*]} " == *" python3-picamera2 "* ]] && ! in_target apt-cache show python3-picamera2 >/dev/null 2>&1; then
    die "python3-picamera2 is not in this system's apt sources (not Raspberry Pi OS?): for a USB webcam use --camera usb"
  fi
  if [ "$browser" = chromium ] && [[ " ${missing[*]} " == *" chromium "* ]] \
    && ! in_target apt-cache show chromium >/dev/null 2>&1; then
    missing=("${missing[@]/#chromium/chromium-browser}")
  fi
  in_target env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    "${missing[@]}" || die "apt-get install failed (see above)"
}

# ---------------------------------------------------------------------------------------------
step_user() {
  heading "user"
  if [ -n "$(passwd_entry "$SERVICE_USER")" ]; then
    say "user $SERVICE_USER exists already"
  else
    in_target useradd --system --user-group --home-dir "$STATE_DIR" --shell /usr/sbin/nologin \
      "$SERVICE_USER"
    say "user $SERVICE_USER made"
  fi
  # video: the camera module through libcamera (/dev/media*, /dev/dma_heap) and USB webcams.
  if in_target id -nG "$SERVICE_USER" | tr ' ' '\n' | grep -qx video; then
    say "$SERVICE_USER is in group video already"
  else
    in_target usermod -aG video "$SERVICE_USER"
    say "$SERVICE_USER added to group video"
  fi
  in_target install -d -o "$SERVICE_USER" -g "$SERVICE_USER" -m 0700 "$STATE_DIR"
}

# ---------------------------------------------------------------------------------------------
# A fresh copy of the clone without what a build or a venv leaves behind: an old build/ would put
# modules deleted since then into the wheel, and nothing is ever written into the clone itself.
copy_source() {
  local into=$1
  mkdir -p "$into"
  tar -C "$SOURCE" \
    --exclude=./.git --exclude=./.venv --exclude=./build --exclude=./dist --exclude=./instance \
    --exclude='*.egg-info' --exclude=__pycache__ --exclude=.pytest_cache --exclude=./tests/artifacts \
    -cf - . | tar -C "$into" -xf -
}

venv_is_usable() {
  [ -x "$R$VENV/bin/python" ] || return 1
  grep -qx 'include-system-site-packages = true' "$R$VENV/pyvenv.cfg" 2>/dev/null || return 1
  # A venv of another Python (after an OS upgrade) points at a python that is gone or different.
  [ "$(in_target "$VENV/bin/python" -c 'import sys; print(sys.version_info[:2])' 2>/dev/null)" \
    = "$(in_target python3 -c 'import sys; print(sys.version_info[:2])')" ]
}

step_venv() {
  heading "venv"
  if venv_is_usable; then
    say "$VENV exists already (with the system's site-packages)"
  else
    if [ -e "$R$VENV" ]; then
      say "$VENV is not a venv of this python3 with --system-site-packages: making it again"
      rm -rf "${R:?}$VENV"
    fi
    in_target python3 -m venv --system-site-packages "$VENV"
    say "$VENV made"
  fi

  local work pip_flags=(--disable-pip-version-check --no-input)
  work=$(mktemp -d "$R/var/tmp/cadre-kiosk-install.XXXXXX")
  # shellcheck disable=SC2064  # expand now: the trap must remove this very folder
  trap "rm -rf '$work'" EXIT
  copy_source "$work/src"
  local inside=${work#"$R"}
  say "building the kiosk's wheel from a copy of $SOURCE"
  in_target "$VENV/bin/python" -m pip wheel "${pip_flags[@]}" -q --no-deps \
    --wheel-dir "$inside/wheel" "$inside/src" || die "building the wheel failed (see above)"
  local wheel
  wheel=$(cd "$work/wheel" && ls cadre_kiosk-*.whl)
  # Wheels only: a Pi has no compiler, and a dependency without an arm64 wheel must fail here
  # rather than build for an hour. The kiosk's own wheel is put in again even when its version
  # did not change, so that a re-run installs the code of the clone as it is now.
  say "installing $wheel and its dependencies (wheels only, with pi/constraints.txt)"
  in_target "$VENV/bin/python" -m pip install "${pip_flags[@]}" -q --only-binary=:all: \
    -c "$inside/src/pi/constraints.txt" "$inside/wheel/$wheel" \
    || die "pip install failed (see above)"
  in_target "$VENV/bin/python" -m pip install "${pip_flags[@]}" -q --only-binary=:all: \
    --no-deps --force-reinstall "$inside/wheel/$wheel" || die "pip install of $wheel failed"
  rm -rf "$work"
  trap - EXIT

  # The venv must use apt's numpy and Pillow (what picamera2 was built and packaged with).
  in_target "$VENV/bin/python" - "$CAMERA" <<'PY' || die "the venv cannot import what the kiosk needs (see above)"
import importlib
import sys

camera = sys.argv[1]
problems = []
for name in ["cv2", "zxingcpp", "pyzbar.pyzbar", "numpy", "PIL", "kiosk.app"]:
    try:
        module = importlib.import_module(name)
    except Exception as exc:  # noqa: BLE001 - any failure to import is reported the same way
        problems.append(f"import {name}: {exc}")
        continue
    where = getattr(module, "__file__", "") or ""
    version = getattr(module, "__version__", "")
    if name in ("numpy", "PIL"):
        origin = "apt" if where.startswith("/usr/lib/python3/dist-packages/") else "the venv"
        print(f"install-pi:   {name} {version} from {origin}")
        if origin != "apt":
            problems.append(f"{name} comes from the venv and shadows apt's ({where})")
if camera == "picamera":
    try:
        import picamera2  # noqa: F401
        print("install-pi:   picamera2 imports")
    except Exception as exc:  # noqa: BLE001
        problems.append(f"import picamera2: {exc}")
for problem in problems:
    print(f"install-pi: error: {problem}", file=sys.stderr)
sys.exit(1 if problems else 0)
PY
  say "installed: $(in_target "$VENV/bin/kiosk" --help >/dev/null && in_target "$VENV/bin/python" -m pip show cadre-kiosk 2>/dev/null | awk '/^Version:/ { print "cadre-kiosk " $2 }')"
  update_layout
}

# Replaces a link of the update layout atomically (a new link, renamed over the old one), owned by
# the kiosk user, who moves it when it takes a release.
point_link() {
  local name=$1 target=$2
  ln -sfn "$target" "$R$OPT/.$name.new"
  in_target chown -h "$SERVICE_USER:$SERVICE_USER" "$OPT/.$name.new"
  mv -T "$R$OPT/.$name.new" "$R$OPT/$name"
}

# The layout kiosk/updates installs releases into (kiosk/updates/layout.py): the folder is
# root's with the sticky bit, so the kiosk user can add its own entries (venvs/, the links, its
# trial and memory) but never rename or remove root's venv and constraints. An install by hand is
# the version meant to run: both links point at it again, and any trial ends.
update_layout() {
  if [ -z "$(passwd_entry "$SERVICE_USER")" ]; then
    warn "no user $SERVICE_USER yet (the user step): the update layout is left for the next run"
    return
  fi
  install -d -m 1775 "$R$OPT"
  in_target chown "root:$SERVICE_USER" "$OPT"
  install -m 0644 "$SOURCE/pi/constraints.txt" "$R$OPT/constraints.txt"
  local folder
  for folder in venvs downloads; do
    install -d -m 0755 "$R$OPT/$folder"
    in_target chown "$SERVICE_USER:$SERVICE_USER" "$OPT/$folder"
  done
  point_link current venv
  point_link good venv
  rm -f "$R$OPT/trial.json"
  say "update layout: $OPT/current and $OPT/good -> venv; releases go to $OPT/venvs"
}

# ---------------------------------------------------------------------------------------------
unit_text() {
  # ExecStart runs $OPT/current/bin/kiosk (tests/kiosk_web/test_service_unit.py checks they agree).
  cat "$SOURCE/kiosk.service"
}

step_unit() {
  heading "unit"
  local unit="$R$UNIT_PATH"
  if [ -f "$unit" ] && cmp -s <(unit_text) "$unit"; then
    say "$UNIT_PATH is up to date"
  else
    install -d "$(dirname "$unit")"
    unit_text >"$unit.new"
    chmod 0644 "$unit.new"
    mv "$unit.new" "$unit"
    say "$UNIT_PATH written"
  fi
  # systemd-analyze verify checks the unit as installed, with its ExecStart in the layout: in a
  # clone it cannot pass, since /opt/cadre-kiosk/current/bin/kiosk is not there.
  if [ -x "$R/usr/bin/systemd-analyze" ]; then
    local out
    if ! out=$(in_target systemd-analyze verify "$UNIT_PATH" 2>&1) || [ -n "$out" ]; then
      printf '%s\n' "$out" >&2
      die "systemd-analyze verify $UNIT_PATH complained (above)"
    fi
    say "systemd-analyze verify $UNIT_PATH: no complaint"
  else
    say "systemd-analyze is not in the target: the unit is not verified"
  fi
  if [ "$live" = 1 ]; then
    systemctl daemon-reload
    systemctl enable --quiet kiosk.service
  else
    systemctl --root="$ROOT" enable --quiet kiosk.service
  fi
  say "kiosk.service enabled (starts at boot)"
}

# ---------------------------------------------------------------------------------------------
step_settings() {
  heading "settings"
  local file="$R$STATE_DIR/kiosk.toml"
  if [ -e "$file" ]; then
    say "$STATE_DIR/kiosk.toml exists already: left as it is"
    return
  fi
  [ -d "$R$STATE_DIR" ] || die "$STATE_DIR is missing: run the user step first"
  local camera_lines
  if [ "$CAMERA" = picamera ]; then
    camera_lines='camera_source = "picamera"'
  else
    camera_lines=$'camera_source = "usb"\ncamera_device = "0"'
  fi
  cat >"$file.new" <<EOF
# The kiosk's settings (docs/settings.md lists them all). Check with:
#   sudo -u $SERVICE_USER $VENV/bin/kiosk --instance $STATE_DIR check-config
$camera_lines
# The site lead's page stays locked until a PIN is set (kept only as a scrypt hash):
#   sudo -u $SERVICE_USER $VENV/bin/kiosk --instance $STATE_DIR set-pin
EOF
  chmod 0600 "$file.new"
  chown --reference="$R$STATE_DIR" "$file.new"
  mv "$file.new" "$file"
  say "$STATE_DIR/kiosk.toml written (camera: $CAMERA)"
}

# ---------------------------------------------------------------------------------------------
# The block the desktop user's labwc autostart gets. Chromium opens once the kiosk answers at all
# (a camera fault answers 503 and must still reach the screen, which says what is wrong). The
# autoplay flag lets the result sounds play without a first touch.
autostart_block() {
  local browser=$1
  cat <<EOF
$AUTOSTART_BEGIN
sh -c 'until curl -s -o /dev/null http://localhost:$PORT/healthz; do sleep 1; done; exec $browser --kiosk --noerrdialogs --disable-infobars --autoplay-policy=no-user-gesture-required http://localhost:$PORT/' &
$AUTOSTART_END
EOF
}

# The file without an earlier block of ours and without swayidle (which blanks the screen: this
# is what raspi-config's "screen blanking off" does for labwc), then our block.
rewrite_autostart() {
  local file=$1 browser=$2
  {
    if [ -f "$file" ]; then
      awk -v begin="$AUTOSTART_BEGIN" -v end="$AUTOSTART_END" '
        $0 == begin { skipping = 1; next }
        skipping && $0 == end { skipping = 0; next }
        skipping { next }
        /swayidle/ { next }
        { print }
      ' "$file"
    fi
    autostart_block "$browser"
  }
}

step_desktop() {
  heading "desktop"
  local user=$DESKTOP_USER entry home uid gid browser
  if [ -z "$user" ] && [ -z "$R" ] && [ -n "${SUDO_USER:-}" ] && [ "${SUDO_USER}" != root ]; then
    user=$SUDO_USER
  fi
  [ -n "$user" ] || user=$(uid1000_user)
  [ -n "$user" ] || die "no desktop user: name the one who logs in to the desktop with --user NAME"
  entry=$(passwd_entry "$user")
  [ -n "$entry" ] || die "desktop user '$user' does not exist (make it first, or name another with --user)"
  IFS=: read -r _ _ uid gid _ home _ <<<"$entry"
  if [ -z "$home" ] || [ "$home" = / ]; then
    die "desktop user '$user' has no home folder"
  fi

  # Auto-login to the labwc desktop, as raspi-config does it (Raspberry Pi OS only).
  if [ -x "$R/usr/bin/raspi-config" ]; then
    if [ -x "$R/usr/bin/labwc" ]; then
      in_target env SUDO_USER="$user" raspi-config nonint do_wayland W3
    fi
    in_target env SUDO_USER="$user" raspi-config nonint do_boot_behaviour B4
    say "desktop: $user logs in by itself (raspi-config do_boot_behaviour B4, labwc)"
  else
    warn "raspi-config is not here (not Raspberry Pi OS): set desktop auto-login for $user yourself"
  fi

  if [ -x "$R/usr/bin/chromium-browser" ] && ! [ -x "$R/usr/bin/chromium" ]; then
    browser=chromium-browser
  else
    browser=chromium
  fi
  local dir="$R$home/.config/labwc" file
  file="$dir/autostart"
  local new
  new=$(rewrite_autostart "$file" "$browser")
  if [ -f "$file" ] && [ "$(cat "$file")" = "$new" ]; then
    say "~$user/.config/labwc/autostart is up to date (Chromium full screen, no blanking)"
  else
    install -d -o "$uid" -g "$gid" "$R$home/.config" "$dir"
    printf '%s\n' "$new" >"$file.new"
    chown "$uid:$gid" "$file.new"
    mv "$file.new" "$file"
    say "~$user/.config/labwc/autostart written (Chromium full screen, no blanking)"
  fi
}

# ---------------------------------------------------------------------------------------------
step_start() {
  heading "start"
  if [ "$live" != 1 ]; then
    say "not a running system (an image or a chroot): kiosk.service starts at the next boot"
    return
  fi
  # restart, not start: a re-run must run the code it just installed.
  systemctl restart kiosk.service
  local waited=0
  until curl -s -o /dev/null "http://localhost:$PORT/healthz"; do
    sleep 1
    waited=$((waited + 1))
    if [ "$waited" -ge 120 ]; then
      journalctl -u kiosk.service -n 30 --no-pager >&2 || true
      die "the kiosk did not answer on port $PORT within 120 s (its log is above)"
    fi
  done
  say "the kiosk answers: $(curl -s "http://localhost:$PORT/healthz")"
}

# ---------------------------------------------------------------------------------------------
if [ -n "$R" ]; then
  say "installing into $ROOT from $SOURCE"
else
  say "installing from $SOURCE"
fi
check_system
for name in "${ALL_STEPS[@]}"; do
  if wanted "$name"; then
    "step_$name"
  fi
done

heading "done"
cat <<EOF
Still to do on this kiosk:
  - the lead's PIN:
      sudo -u $SERVICE_USER $VENV/bin/kiosk --instance $STATE_DIR set-pin
  - enrolment with the centre (the enrolment QR's text, or URL CODE --centre-key FINGERPRINT):
      sudo -u $SERVICE_USER $VENV/bin/kiosk --instance $STATE_DIR enroll 'CKE2|...'
EOF
if [ "$live" = 1 ]; then
  echo "  - a reboot, for the desktop to log in by itself and show the kiosk screen"
fi
exit
}
