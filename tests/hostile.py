"""The hostile spec corpus: files a careless or malicious author may put in ``dags/specs/``.

Small ones are committed in ``tests/fixtures/hostile/``; big, binary or demo-derived ones are
written here at test time (a 50 MB file is not worth a commit). :func:`write_corpus` returns,
per file name, a fragment its one error message must contain.
"""

from __future__ import annotations

import random
from pathlib import Path

from tests.conftest import demo_spec

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "hostile"

#: Values of the "secrets" the corpus tries to read (set them in the environment under test).
JWT_SECRET = "hostile-jwt-secret-6f2b"
PASSWORD = "hostile-password-9c1d"
SECRET_ENV = {"AIRFLOW__API_AUTH__JWT_SECRET": JWT_SECRET, "CTFLOW_TEST_PASSWORD": PASSWORD}

NESTED = "expected at most 50 levels"
TOO_MANY = "aliases expand to more than"
RECURSIVE = "refers to itself"
NOT_UTF8 = "not UTF-8 text"

#: Committed files and the fragment each one's error names.
COMMITTED = {
    "alias_bomb_7_levels.yaml": TOO_MANY,
    "alias_bomb_9_levels.yaml": TOO_MANY,
    "alias_bomb_wide.yaml": TOO_MANY,
    "recursive_alias.yaml": RECURSIVE,
    "recursive_alias_mapping.yaml": RECURSIVE,
}


def nested(depth: int) -> str:
    """``pipeline: [[[...]]]`` nested ``depth`` deep (the 100,000 one is 200 KB)."""
    return "pipeline: " + "[" * depth + "]" * depth + "\n"


def write_corpus(folder: Path, *, outside: Path) -> dict[str, str]:
    """Write every hostile file into ``folder``; ``outside`` is a folder beside it (the target
    of the symlink out). Returns ``{file name: fragment of its error}``."""
    folder.mkdir(parents=True, exist_ok=True)
    outside.mkdir(parents=True, exist_ok=True)
    expected = dict(COMMITTED)
    for name in COMMITTED:
        (folder / name).write_bytes((FIXTURES / name).read_bytes())
    for depth in (500, 10_000, 100_000):
        (folder / f"nested_{depth}.yaml").write_text(nested(depth))
        expected[f"nested_{depth}.yaml"] = NESTED
    (folder / "nested_mappings_1000.yaml").write_text("a:\n" + "".join(" " * i + "b:\n" for i in range(1, 1000)))
    expected["nested_mappings_1000.yaml"] = NESTED

    noise = random.Random(11)
    (folder / "random_bytes.yaml").write_bytes(b"\xff" + bytes(noise.randrange(256) for _ in range(4096)))
    expected["random_bytes.yaml"] = NOT_UTF8
    latin1 = demo_spec(("owner: data-science-flights", "owner: équipe-données"))
    (folder / "latin1.yaml").write_bytes(latin1.encode("latin-1"))
    expected["latin1.yaml"] = NOT_UTF8
    (folder / "nul_bytes.yaml").write_text(demo_spec(("owner: data-science-flights", "owner: data\0science")))
    expected["nul_bytes.yaml"] = "NUL"
    with (folder / "huge_50mb.yaml").open("w") as out:
        out.write(demo_spec())
        line = "# " + "x" * 1021 + "\n"
        for _ in range(50 * 1024):
            out.write(line)
    expected["huge_50mb.yaml"] = "larger than"

    secrets = demo_spec(
        ("pipeline: flight_delay", "pipeline: secret_reader"),
        ("description: Will", "description: ${AIRFLOW__API_AUTH__JWT_SECRET} ${CTFLOW_TEST_PASSWORD} Will"),
        ("owner: data-science-flights", "owner: ${CTFLOW_TEST_PASSWORD:-nobody}"),
    )
    (folder / "secret_refs.yaml").write_text(secrets)
    expected["secret_refs.yaml"] = "${AIRFLOW__API_AUTH__JWT_SECRET} is not allowed"
    traversal = demo_spec(("pipeline: flight_delay", "pipeline: traversal"),
                          ("entities: feature_repo/data/flights.parquet", "entities: ../../../../etc/passwd"))
    (folder / "path_traversal.yaml").write_text(traversal)
    expected["path_traversal.yaml"] = "outside the project"
    absolute = demo_spec(("pipeline: flight_delay", "pipeline: absolute"),
                         ("entities: feature_repo/data/flights.parquet", "entities: /etc/passwd"))
    (folder / "absolute_path.yaml").write_text(absolute)
    expected["absolute_path.yaml"] = "outside the project"

    target = outside / "elsewhere.yaml"
    target.write_text(demo_spec(("pipeline: flight_delay", "pipeline: elsewhere")))
    (folder / "symlink_out.yaml").symlink_to(target)
    expected["symlink_out.yaml"] = "symbolic link"
    return expected
