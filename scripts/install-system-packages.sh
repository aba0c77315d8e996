#!/usr/bin/env bash
# Installs the Debian packages the project needs, only those missing. Usage:
#   scripts/install-system-packages.sh run    # what the kiosk and the centre need at run time
#   scripts/install-system-packages.sh test   # plus what the test suite needs
set -euo pipefail
mode=${1:-run}

# libzbar0: pyzbar's decoder. fonts-wqy-zenhei: the TrueType CJK font embedded in badge PDFs;
# fonts-hanazono: its fallbacks for rare name characters (HanaMinA, HanaMinB: CJK Extensions B-F).
packages=(libzbar0 fonts-wqy-zenhei fonts-hanazono python3-venv)
if [ "$mode" = test ] || [ "$mode" = demo ]; then
  # chromium: the kiosk screen in the demo and the browser tests. postgresql: the central store
  # tests against PostgreSQL. systemd: systemd-analyze verify on kiosk.service.
  packages+=(chromium fonts-noto-color-emoji postgresql systemd)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing from apt: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
