"""A fake machine for kiosk/fleet.py: the files and the command a Raspberry Pi would answer."""

from __future__ import annotations

from pathlib import Path

PI_OS_RELEASE = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\n'


class FakeMachine:
    """Files by path, the output of commands by argv (None: the command is not there), and a
    disk of `disk_total` bytes with `disk_free` free."""

    def __init__(
        self,
        files: dict[str, str] | None = None,
        commands: dict[tuple[str, ...], str] | None = None,
        disk: tuple[int, int] | None = (32 * 2**30, 20 * 2**30),
    ) -> None:
        self.files = dict(files or {})
        self.commands = dict(commands or {})
        self.disk = disk
        self.ran: list[tuple[str, ...]] = []

    def read_text(self, path: Path) -> str | None:
        return self.files.get(str(path))

    def list_dir(self, path: Path) -> list[str]:
        prefix = str(path).rstrip("/") + "/"
        return sorted({p[len(prefix) :].split("/")[0] for p in self.files if p.startswith(prefix)})

    def run(self, argv: tuple[str, ...]) -> str | None:
        self.ran.append(argv)
        return self.commands.get(argv)

    def disk_usage(self, path: Path) -> tuple[int, int] | None:
        return self.disk

    def tree_bytes(self, path: Path) -> int | None:
        total = 0
        for file in Path(path).rglob("*"):
            if file.is_file():
                total += file.stat().st_size
        return total


def raspberry_pi(
    temp_c: float = 52.0,
    throttled: int = 0,
    disk: tuple[int, int] = (32 * 2**30, 20 * 2**30),
) -> FakeMachine:
    """A Pi 4 on Raspberry Pi OS Bookworm: a cpu-thermal zone (after a cooler sensor that must
    not be taken for it), vcgencmd, the board's model with the firmware's trailing NUL."""
    return FakeMachine(
        files={
            "/etc/os-release": PI_OS_RELEASE,
            "/proc/uptime": "93784.52 180000.11\n",
            "/proc/device-tree/model": "Raspberry Pi 4 Model B Rev 1.4\x00",
            "/sys/class/thermal/thermal_zone0/type": "rp1_adc\n",
            "/sys/class/thermal/thermal_zone0/temp": "31000\n",
            "/sys/class/thermal/cooling_device0/type": "fan\n",
            "/sys/class/thermal/thermal_zone1/type": "cpu-thermal\n",
            "/sys/class/thermal/thermal_zone1/temp": f"{int(temp_c * 1000)}\n",
        },
        commands={("vcgencmd", "get_throttled"): f"throttled=0x{throttled:x}\n"},
        disk=disk,
    )
