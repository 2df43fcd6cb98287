""".env.example lists every setting the settings read from the environment."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
READ = re.compile(r"""(?:environ\.get|getenv|env_bool|env_int|env_list|env_float)\(\s*["']([A-Z][A-Z0-9_]*)["']""")


def test_env_example_lists_every_setting_read_from_the_environment():
    read = set(READ.findall((ROOT / "config" / "settings.py").read_text()))
    read |= set(READ.findall((ROOT / "config" / "metrics.py").read_text()))
    listed = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", (ROOT / ".env.example").read_text(), re.M))
    assert read and not read - listed, f"missing from .env.example: {sorted(read - listed)}"
