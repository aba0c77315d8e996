#!/usr/bin/env bash
# Makes the kiosk's card image from a Raspberry Pi OS Bookworm image (64-bit, with desktop) with
# sdm (github.com/gitbls/sdm, installed in /usr/local/sdm), baking in scripts/install-pi.sh: the
# image boots straight into the kiosk screen, waiting for its enrolment. docs/pi-image.md says
# why sdm and how to make 500 cards from the image.
#
#   sudo pi/image/make-image.sh --base 2024-11-19-raspios-bookworm-arm64.img --out kiosk.img \
#       --password-hash "$(mkpasswd --method=SHA-512 --rounds=4096)"
#
# The base image is left as it is; the output is a copy customised in place by sdm. The code put
# in is this clone's HEAD commit (git archive), never uncommitted changes or build leftovers.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BASE=""
OUT=""
DESKTOP_USER=kiosk-admin
PASSWORD_HASH=""
CAMERA=picamera
TIMEZONE=Asia/Shanghai
WIFI_COUNTRY=CN
EXTRA_PLUGINS=""
XMB=3072
PRINT_ONLY=0
SDM=${SDM:-/usr/local/sdm/sdm}

usage() {
  cat <<EOF
Usage: sudo pi/image/make-image.sh --base RASPIOS.img --out KIOSK.img --password-hash HASH [options]

  --base FILE          Raspberry Pi OS Bookworm 64-bit with desktop, unpacked (.img, not .img.xz)
  --out FILE           the kiosk image to write (a copy of --base, customised)
  --password-hash HASH the desktop user's password, hashed: mkpasswd --method=SHA-512 --rounds=4096
  --user NAME          the desktop user, logged in by itself [default: $DESKTOP_USER]
  --camera KIND        picamera or usb [default: $CAMERA]
  --timezone ZONE      [default: $TIMEZONE]
  --wifi-country CC    [default: $WIFI_COUNTRY]
  --plugins FILE       more sdm plugin lines for every card (Wi-Fi, SSH keys, ...), see sdm's
                       Docs/Plugins.md
  --xmb MB             how much sdm grows the image for the packages and the venv [default: $XMB]
  --print              print the sdm plugin list and command instead of running them
  -h, --help           this text
EOF
}
die() {
  printf 'make-image: error: %s\n' "$*" >&2
  exit 1
}
usage_error() {
  printf 'make-image: %s (see --help)\n' "$*" >&2
  exit 2
}
say() { printf 'make-image: %s\n' "$*"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --base) BASE=${2:-}; shift 2 || usage_error "--base needs a file" ;;
    --out) OUT=${2:-}; shift 2 || usage_error "--out needs a file" ;;
    --user) DESKTOP_USER=${2:-}; shift 2 || usage_error "--user needs a name" ;;
    --password-hash) PASSWORD_HASH=${2:-}; shift 2 || usage_error "--password-hash needs a hash" ;;
    --camera) CAMERA=${2:-}; shift 2 || usage_error "--camera needs picamera or usb" ;;
    --timezone) TIMEZONE=${2:-}; shift 2 || usage_error "--timezone needs a zone" ;;
    --wifi-country) WIFI_COUNTRY=${2:-}; shift 2 || usage_error "--wifi-country needs a code" ;;
    --plugins) EXTRA_PLUGINS=${2:-}; shift 2 || usage_error "--plugins needs a file" ;;
    --xmb) XMB=${2:-}; shift 2 || usage_error "--xmb needs a number" ;;
    --print) PRINT_ONLY=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage_error "unknown option: $1" ;;
  esac
done

[ -n "$BASE" ] || usage_error "--base is needed"
[ -n "$OUT" ] || usage_error "--out is needed"
[ -n "$PASSWORD_HASH" ] || usage_error "--password-hash is needed (mkpasswd --method=SHA-512 --rounds=4096)"
[[ "$PASSWORD_HASH" == '$'* ]] || usage_error "--password-hash takes a hash from mkpasswd, not a password"
[[ "$DESKTOP_USER" =~ ^[a-z_][a-z0-9_-]*$ ]] || usage_error "--user '$DESKTOP_USER' is not a user name"
case "$CAMERA" in picamera | usb) ;; *) usage_error "--camera is picamera or usb, not '$CAMERA'" ;; esac
[[ "$XMB" =~ ^[0-9]+$ ]] || usage_error "--xmb is a number of MB"
# sdm separates plugin arguments with | and plugins with ~: neither may appear in a value.
for value in "$DESKTOP_USER" "$PASSWORD_HASH" "$TIMEZONE" "$WIFI_COUNTRY"; do
  [[ "$value" != *"|"* && "$value" != *"~"* ]] || usage_error "'$value' has a | or ~, which sdm cannot pass"
done
[ -z "$EXTRA_PLUGINS" ] || [ -f "$EXTRA_PLUGINS" ] || die "--plugins $EXTRA_PLUGINS is not a file"
case "$BASE" in
  *.xz | *.zip) die "$BASE is packed: unxz it first (sdm works on the .img)" ;;
esac
[[ "$(basename "$BASE")" == *bookworm* ]] \
  || say "note: '$(basename "$BASE")' does not say bookworm; the installer refuses other releases"

WORK=$(mktemp -d /var/tmp/cadre-image.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

# The source as committed, with the commit it came from.
commit=$(git -C "$REPO" rev-parse HEAD 2>/dev/null) || die "$REPO is not a git clone"
if [ -n "$(git -C "$REPO" status --porcelain --untracked-files=no)" ]; then
  say "note: uncommitted changes are not put in the image (it gets HEAD, ${commit:0:12})"
fi
mkdir -p "$WORK/cadre-kiosk"
git -C "$REPO" archive --format=tar HEAD | tar -x -C "$WORK/cadre-kiosk"
echo "$commit" >"$WORK/cadre-kiosk/SOURCE_COMMIT"

# Run by sdm's runscript plugin in the image's post-install phase (after every apt step and the
# user plugin), in systemd-nspawn: the installer sees no running systemd and only enables.
cat >"$WORK/cadre-install.sh" <<EOF
#!/bin/bash
set -euo pipefail
exec /usr/local/src/cadre-kiosk/scripts/install-pi.sh --user $DESKTOP_USER --camera $CAMERA
EOF
chmod 0755 "$WORK/cadre-install.sh"

# The plugin list: one desktop user instead of the first-boot wizard, the country's settings, the
# source, the installer.
cat >"$WORK/plugins" <<EOF
user:deluser=pi
user:adduser=$DESKTOP_USER|password-hash=$PASSWORD_HASH
disables:piwiz
L10n:timezone=$TIMEZONE|wificountry=$WIFI_COUNTRY
copydir:from=$WORK/cadre-kiosk|to=/usr/local/src
runscript:script=$WORK/cadre-install.sh|runphase=post-install|stdout=/etc/sdm/assets/cadre-install.log|stderr=/etc/sdm/assets/cadre-install.log
EOF
if [ -n "$EXTRA_PLUGINS" ]; then
  grep -v '^[[:space:]]*\(#\|$\)' "$EXTRA_PLUGINS" >>"$WORK/plugins"
fi

# --autologin: sdm sets the boot behaviour last, at the end of post-install; without it, it
# would undo the installer's desktop auto-login (B4) with B3. --regen-ssh-host-keys: no two cards
# share SSH host keys. --restart: the first boot ends with a restart into the kiosk screen.
sdm_command=("$SDM" --customize --plugin "@$WORK/plugins" --extend --xmb "$XMB" --autologin
  --regen-ssh-host-keys --restart --batch --logwidth 200 "$OUT")

if [ "$PRINT_ONLY" = 1 ]; then
  echo "# sdm plugins ($WORK/plugins):"
  sed 's/password-hash=[^|]*/password-hash=<hash>/' "$WORK/plugins"
  echo "# run in the image by the runscript plugin ($WORK/cadre-install.sh):"
  cat "$WORK/cadre-install.sh"
  echo "# then: cp --sparse=always $BASE $OUT"
  echo "# then: ${sdm_command[*]}"
  exit 0
fi

[ "$(id -u)" -eq 0 ] || die "run as root: sudo $0 ..."
[ -x "$SDM" ] || die "sdm is not installed at $SDM (see docs/pi-image.md), or name it with SDM=..."
[ -f "$BASE" ] || die "no base image at $BASE"
[ ! -e "$OUT" ] || die "$OUT exists already: remove it or name another --out"

say "copying $BASE to $OUT"
cp --sparse=always "$BASE" "$OUT"
say "customising $OUT with sdm (kiosk source ${commit:0:12}); this takes a while"
"${sdm_command[@]}" || die "sdm --customize failed: its log is /etc/sdm/history in the image"

# A check of what sdm left: the installer's work must be in the image.
loop=$(losetup --find --show --partscan --read-only "$OUT")
mnt=$WORK/mnt
mkdir -p "$mnt"
status=0
if mount -o ro "${loop}p2" "$mnt"; then
  for path in /opt/cadre-kiosk/venv/bin/kiosk /opt/cadre-kiosk/current/bin/kiosk \
    /opt/cadre-kiosk/good/bin/kiosk /etc/systemd/system/kiosk.service \
    /etc/systemd/system/multi-user.target.wants/kiosk.service \
    "/home/$DESKTOP_USER/.config/labwc/autostart" /var/lib/kiosk/kiosk.toml; do
    if [ ! -e "$mnt$path" ]; then
      say "missing in the image: $path"
      status=1
    fi
  done
  if [ "$status" = 1 ] && [ -f "$mnt/etc/sdm/assets/cadre-install.log" ]; then
    tail -n 40 "$mnt/etc/sdm/assets/cadre-install.log" >&2
  fi
  umount "$mnt"
else
  say "could not mount the image's root partition to check it"
  status=1
fi
losetup -d "$loop"
[ "$status" = 0 ] || die "the image is not complete (above)"
say "done: $OUT (kiosk ${commit:0:12}); burn cards with pi/image/burn-cards.sh"
