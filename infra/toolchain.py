"""Finding Java and Maven, with a clear error when either is missing."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from streamwatch.errors import ConfigurationError


@dataclass(frozen=True)
class Java:
    """A JDK executable and its major version."""

    executable: Path
    major: int


def find_java(java_home: Path | None, minimum: int) -> Java:
    """The `java` to run a server with: `java_home`, else $JAVA_HOME, else PATH."""
    candidates: list[Path] = []
    if java_home is not None:
        candidates.append(java_home / "bin" / "java")
    elif os.environ.get("JAVA_HOME"):
        candidates.append(Path(os.environ["JAVA_HOME"]) / "bin" / "java")
    on_path = shutil.which("java")
    if on_path and java_home is None:
        candidates.append(Path(on_path))
    for exe in candidates:
        if exe.is_file() and os.access(exe, os.X_OK):
            major = java_major_version(exe)
            if major >= minimum:
                return Java(exe, major)
            raise ConfigurationError(
                f"{exe} is Java {major}; Java {minimum} or newer is needed "
                "(set STREAMWATCH_KAFKA_JAVA_HOME / STREAMWATCH_OPENSEARCH_JAVA_HOME or JAVA_HOME)"
            )
    raise ConfigurationError(
        f"Java {minimum}+ not found (looked at {', '.join(map(str, candidates)) or 'PATH'}); "
        "install a JDK (e.g. `apt-get install openjdk-17-jdk-headless`) or set JAVA_HOME"
    )


def java_major_version(exe: Path) -> int:
    """Major version reported by `java -version` (8 for 1.8)."""
    try:
        out = subprocess.run(
            [str(exe), "-version"], capture_output=True, text=True, timeout=30, check=False
        ).stderr
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigurationError(f"cannot run {exe} -version: {exc}") from exc
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        raise ConfigurationError(f"cannot tell the Java version of {exe}: {out.strip()[:200]}")
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def find_maven() -> Path:
    """The `mvn` executable on PATH."""
    mvn = shutil.which("mvn")
    if not mvn:
        raise ConfigurationError(
            "Maven (`mvn`) not found on PATH; it fetches Kafka and OpenSearch from Maven "
            "Central (install it with `apt-get install maven`)"
        )
    return Path(mvn)
