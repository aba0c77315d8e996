#!/usr/bin/env bash
# Checks that every dependency in pyproject.toml installs on a Raspberry Pi 4/5 running Raspberry
# Pi OS Bookworm (arm64, CPython 3.11, glibc 2.36) from wheels alone, with pi/constraints.txt
# applied as on the Pi. No compiler is needed on the Pi when this passes.
#   scripts/check-pi-wheels.sh            # needs network access to PyPI
# pip does not widen a --platform by itself, so every manylinux tag glibc 2.36 accepts is listed;
# pure-Python packages come as py3-none-any wheels, which are fine.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
[ -x "$python" ] || python=python3

mapfile -t requirements < <("$python" - <<'EOF'
import tomllib

with open("pyproject.toml", "rb") as f:
    for requirement in tomllib.load(f)["project"]["dependencies"]:
        print(requirement)
EOF
)

platforms=(--platform manylinux2014_aarch64)
for minor in $(seq 17 36); do
  platforms+=(--platform "manylinux_2_${minor}_aarch64")
done

download=$(mktemp -d)
trap 'rm -rf "$download"' EXIT
echo "check-pi-wheels: ${#requirements[@]} dependencies for linux aarch64, CPython 3.11, with pi/constraints.txt"
"$python" -m pip download --quiet --disable-pip-version-check \
  --only-binary=:all: --python-version 3.11 --implementation cp \
  --abi cp311 --abi abi3 --abi none \
  "${platforms[@]}" \
  -c pi/constraints.txt \
  --dest "$download" \
  "${requirements[@]}"

wheels=("$download"/*.whl)
native=0
for wheel in "${wheels[@]}"; do
  name=$(basename "$wheel")
  case "$name" in
    *-none-any.whl) ;;
    *aarch64*.whl) native=$((native + 1)); echo "  $name" ;;
    *) echo "check-pi-wheels: unexpected wheel $name" >&2; exit 1 ;;
  esac
done
echo "check-pi-wheels: ok, ${#wheels[@]} wheels ($native built for aarch64, the rest pure Python)"
