"""Fetching server jars from Maven Central into the cache (outside git).

Each component has a pom under `infra/maven/<component>/`. A fetch copies the pom's
dependency closure into `<cache>/<component>-<version>/lib` and writes a marker once complete,
so an interrupted fetch is redone instead of leaving a half-filled classpath.
"""

from __future__ import annotations

import shutil
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from infra.toolchain import Java, find_maven
from streamwatch.errors import ConfigurationError

MAVEN_DIR = Path(__file__).parent / "maven"
JAVA_SRC_DIR = Path(__file__).parent / "java"
_POM_NS = {"m": "http://maven.apache.org/POM/4.0.0"}


@dataclass(frozen=True)
class Artifact:
    """One fetchable server: its pom and the pom property that names its version."""

    component: str
    version_property: str

    @property
    def pom(self) -> Path:
        return MAVEN_DIR / self.component / "pom.xml"

    @property
    def version(self) -> str:
        """The version the pom pins (what runs)."""
        root = ET.parse(self.pom).getroot()
        node = root.find(f"m:properties/m:{self.version_property}", _POM_NS)
        if node is None or not node.text:
            raise ConfigurationError(f"{self.pom} has no <{self.version_property}> property")
        return node.text.strip()

    def home(self, cache_dir: Path) -> Path:
        return cache_dir / f"{self.component}-{self.version}"

    def lib(self, cache_dir: Path) -> Path:
        return self.home(cache_dir) / "lib"

    def is_fetched(self, cache_dir: Path) -> bool:
        return (self.home(cache_dir) / ".complete").is_file()


KAFKA = Artifact("kafka", "kafka.version")
OPENSEARCH = Artifact("opensearch", "opensearch.runner.version")
# Elastic's integ-test zip: the pom's one dependency is the zip itself (unpacked at launch).
ELASTICSEARCH = Artifact("elasticsearch", "elasticsearch.version")


def fetch(artifact: Artifact, cache_dir: Path, log: Path) -> Path:
    """Fetch `artifact`'s jars unless already complete; returns its lib directory."""
    if artifact.is_fetched(cache_dir):
        return artifact.lib(cache_dir)
    mvn = find_maven()
    home = artifact.home(cache_dir)
    if home.exists():
        shutil.rmtree(home)
    lib = artifact.lib(cache_dir)
    lib.mkdir(parents=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.run(
            [
                str(mvn),
                "-B",
                "-q",
                "-f",
                str(artifact.pom),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={lib}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if proc.returncode != 0:
        raise ConfigurationError(
            f"fetching {artifact.component} {artifact.version} with Maven failed "
            f"(exit {proc.returncode}); see {log}"
        )
    (home / ".complete").write_text(artifact.version)
    return lib


def compile_launcher(java: Java, lib: Path, cache_dir: Path, name: str) -> Path:
    """Compile `infra/java/<name>.java` against `lib`; returns the class directory."""
    src = JAVA_SRC_DIR / f"{name}.java"
    out_dir = cache_dir / "launchers" / name
    compiled = out_dir / f"{name}.class"
    if compiled.is_file() and compiled.stat().st_mtime >= src.stat().st_mtime:
        return out_dir
    javac = java.executable.parent / "javac"
    if not javac.is_file():
        raise ConfigurationError(f"{javac} not found: a full JDK (with javac) is needed")
    out_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [str(javac), "-d", str(out_dir), "-cp", f"{lib}/*", str(src)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise ConfigurationError(f"compiling {src.name} failed:\n{proc.stderr[-2000:]}")
    return out_dir
