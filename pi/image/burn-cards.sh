#!/usr/bin/env bash
# Burns kiosk cards from the image pi/image/make-image.sh made, one after another on one card
# writer, each with its own host name (kiosk-001, kiosk-002, ...), with `sdm --burn`. Several
# writers: one of these per writer, each with its own --first (docs/pi-image.md).
#
#   sudo pi/image/burn-cards.sh --image kiosk.img --device /dev/sdb --first 1 --count 250
#
# Each card is listed in cards.tsv (host name, device, time): write the host name on the Pi.
set -euo pipefail

IMAGE=""
DEVICE=""
FIRST=1
COUNT=1
PREFIX=kiosk-
LIST=cards.tsv
SDM=${SDM:-/usr/local/sdm/sdm}

usage() {
  cat <<EOF
Usage: sudo pi/image/burn-cards.sh --image KIOSK.img --device /dev/sdX [options]

  --image FILE     the image from pi/image/make-image.sh
  --device DEV     the card writer (a removable disk; everything on the card is replaced)
  --first N        number of the first card [default: $FIRST]
  --count N        how many cards [default: $COUNT]
  --prefix TEXT    host names are PREFIX + the number in three digits [default: $PREFIX]
  --list FILE      where the burned cards are listed [default: $LIST]
  -h, --help       this text
EOF
}
die() {
  printf 'burn-cards: error: %s\n' "$*" >&2
  exit 1
}
usage_error() {
  printf 'burn-cards: %s (see --help)\n' "$*" >&2
  exit 2
}

while [ $# -gt 0 ]; do
  case "$1" in
    --image) IMAGE=${2:-}; shift 2 || usage_error "--image needs a file" ;;
    --device) DEVICE=${2:-}; shift 2 || usage_error "--device needs a disk" ;;
    --first) FIRST=${2:-}; shift 2 || usage_error "--first needs a number" ;;
    --count) COUNT=${2:-}; shift 2 || usage_error "--count needs a number" ;;
    --prefix) PREFIX=${2:-}; shift 2 || usage_error "--prefix needs a text" ;;
    --list) LIST=${2:-}; shift 2 || usage_error "--list needs a file" ;;
    -h | --help) usage; exit 0 ;;
    *) usage_error "unknown option: $1" ;;
  esac
done
[ -n "$IMAGE" ] || usage_error "--image is needed"
[ -n "$DEVICE" ] || usage_error "--device is needed"
[[ "$FIRST" =~ ^[0-9]+$ && "$COUNT" =~ ^[1-9][0-9]*$ ]] || usage_error "--first and --count are numbers"
[[ "$PREFIX" =~ ^[a-z0-9-]*$ ]] || usage_error "--prefix may hold a-z, 0-9 and - only (a host name)"

[ "$(id -u)" -eq 0 ] || die "run as root: sudo $0 ..."
[ -x "$SDM" ] || die "sdm is not installed at $SDM (see docs/pi-image.md)"
[ -f "$IMAGE" ] || die "no image at $IMAGE"
[ -b "$DEVICE" ] || die "$DEVICE is not a disk"
# Never the machine's own disk: only a removable or USB disk with nothing of it mounted.
if [ "$(lsblk -dno RM "$DEVICE")" != 1 ] && [ "$(lsblk -dno TRAN "$DEVICE")" != usb ]; then
  die "$DEVICE is neither removable nor on USB: is it really the card writer?"
fi

for number in $(seq "$FIRST" $((FIRST + COUNT - 1))); do
  name=$(printf '%s%03d' "$PREFIX" "$number")
  read -r -p "Card for $name in $DEVICE? Enter burns it, q stops: " answer </dev/tty
  [ "$answer" != q ] || break
  if lsblk -no MOUNTPOINT "$DEVICE" | grep -q .; then
    die "something on $DEVICE is mounted (a desktop may have opened the card): unmount it and start again from --first $number"
  fi
  started=$(date +%s)
  "$SDM" --burn "$DEVICE" --hostname "$name" --expand-root "$IMAGE" \
    || die "burning $name failed; start again from --first $number"
  sync
  printf '%s\t%s\t%s\n' "$name" "$DEVICE" "$(date -Iseconds)" >>"$LIST"
  echo "burn-cards: $name done in $(($(date +%s) - started)) s; write '$name' on its Pi"
done
