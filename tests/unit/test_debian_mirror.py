"""`support/brokers/rabbitmq4.sh mirror`: the Debian mirror a new chroot is built from is the one
this machine's apt sources name (RENEWALS_APT_ETC points the script at a folder of our own)."""

import os
import re
import subprocess
from pathlib import Path

from support.services import CHROOT_BROKERS

MAIN = "http://mirror.example/debian"
SECURITY = "http://mirror.example/debian-security"
THIRD_PARTY = "https://vendor.example/apt"


def chosen(apt_etc: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the script's `mirror` command over the apt folder `apt_etc`, with only our variables."""
    variables = {"PATH": os.environ["PATH"], "RENEWALS_APT_ETC": str(apt_etc), **env}
    return subprocess.run(
        ["sh", str(CHROOT_BROKERS), "mirror"], env=variables, capture_output=True, text=True, timeout=30
    )


def apt_folder(tmp_path: Path, sources: dict[str, str]) -> Path:
    """An apt etc folder holding `sources` (paths relative to it, such as sources.list.d/x.sources)."""
    (tmp_path / "sources.list.d").mkdir()
    for name, text in sources.items():
        (tmp_path / name).write_text(text)
    return tmp_path


def test_the_main_archive_of_deb822_sources_is_chosen_over_security_and_third_parties(tmp_path: Path) -> None:
    """Among deb822 stanzas for a third party, Debian security, a disabled and a source-only archive, the enabled binary Debian archive is chosen."""
    folder = apt_folder(
        tmp_path,
        {
            "sources.list.d/a-vendor.sources": f"Types: deb\nURIs: {THIRD_PARTY}\nSuites: nodistro\n",
            "sources.list.d/debian.sources": (
                "# the security archive first, and commented-out lines\n"
                f"Types: deb\nURIs: {SECURITY}\nSuites: bookworm-security\nComponents: main\n\n"
                "types: deb\nuris: http://disabled.example/debian\nenabled: no\n\n"
                "Types: deb-src\nURIs: http://sources.example/debian\n\n"
                f"Types: deb deb-src\n# URIs: http://commented.example/debian\nURIs: {MAIN}/\n"
                "Suites: bookworm bookworm-updates\nComponents: main\n"
            ),
        },
    )
    result = chosen(folder)
    assert (result.returncode, result.stdout, result.stderr) == (0, f"{MAIN}\n", "")


def test_a_one_line_sources_list_entry_is_read_past_its_options(tmp_path: Path) -> None:
    """In the classic format, `deb [signed-by=...] URI suite components` gives its URI, skipping deb-src, comments and security lines."""
    folder = apt_folder(
        tmp_path,
        {
            "sources.list": (
                f"# deb {MAIN}-old bookworm main\n"
                "deb-src http://sources.example/debian bookworm main\n"
                f"deb {SECURITY} bookworm-security main\n"
                f"deb [arch=amd64 signed-by=/usr/share/keyrings/debian.gpg] {MAIN} bookworm main\n"
            ),
            "sources.list.d/vendor.list": f"deb {THIRD_PARTY} cloud-sdk main\n",
        },
    )
    result = chosen(folder)
    assert (result.returncode, result.stdout) == (0, f"{MAIN}\n"), result.stderr


def test_renewals_debian_mirror_overrides_the_apt_sources(tmp_path: Path) -> None:
    """RENEWALS_DEBIAN_MIRROR, when set, is the mirror, whatever apt's sources say."""
    folder = apt_folder(tmp_path, {"sources.list": f"deb {MAIN} bookworm main\n"})
    result = chosen(folder, RENEWALS_DEBIAN_MIRROR="http://other.example/debian")
    assert (result.returncode, result.stdout) == (0, "http://other.example/debian\n"), result.stderr


def test_without_a_debian_archive_the_script_says_in_one_line_which_variable_to_set(tmp_path: Path) -> None:
    """With only third-party and security sources, `mirror` exits 1 with one line naming RENEWALS_DEBIAN_MIRROR."""
    folder = apt_folder(
        tmp_path,
        {
            "sources.list": f"deb {SECURITY} bookworm-security main\n",
            "sources.list.d/vendor.sources": f"Types: deb\nURIs: {THIRD_PARTY}\n",
        },
    )
    result = chosen(folder)
    assert (result.returncode, result.stdout) == (1, "")
    assert len(result.stderr.splitlines()) == 1 and "RENEWALS_DEBIAN_MIRROR" in result.stderr, result.stderr


def test_the_script_names_no_package_host() -> None:
    """No URL with a host name is written in the script: the mirror comes from the machine."""
    assert re.findall(r"\b[a-z+]+://[\w.-]+\.[a-z]{2,}", CHROOT_BROKERS.read_text()) == []
