"""The grading profile, resolved once: names spelled once, parameters merged, files found,
an unknown profile refused up front, and the JSON copy stage 2's checks read."""

from __future__ import annotations

import json
import re
from dataclasses import FrozenInstanceError, replace
from pathlib import Path

import pytest

from deepgrade.errors import DeepgradeError, InputError
from deepgrade.exercise import PROFILES, ExerciseSpec, load_exercise, load_spec
from deepgrade.grade import GradeSettings
from deepgrade.profiles import GradingProfile, resolve_profile

ROOT = Path(__file__).resolve().parents[1]

SPEC = """\
name = "tiny"
title = "A tiny exercise"
notebook = "tiny.ipynb"
datasets = ["signs"]
artifacts = ["answers.json"]
[profiles.smoke]
data = "synth"
cell_timeout_s = 30
notebook_timeout_s = 60
memory_mb = 1024
artifact_cap_mb = 2
gpus = 0.25
parameters = { EPOCHS = 2, SEED = 0 }
thresholds = { test_accuracy = 0.5 }
[profiles.smoke.data_sizes]
signs = { n_train = 24, n_test = 12 }
"""


@pytest.fixture
def spec(tmp_path: Path) -> ExerciseSpec:
    directory = tmp_path / "tiny"
    directory.mkdir()
    (directory / "spec.toml").write_text(SPEC)
    return load_spec(directory)


def test_parameters_are_the_profiles_then_the_overrides_then_profile(spec: ExerciseSpec) -> None:
    profile = resolve_profile(spec, "smoke", {"SEED": 3, "EXTRA": "x"}, data_files=())
    assert dict(profile.parameters) == {"EPOCHS": 2, "SEED": 3, "EXTRA": "x", "PROFILE": "smoke"}
    assert dict(spec.profile("smoke").parameters) == {"EPOCHS": 2, "SEED": 0}  # untouched
    assert (profile.name, profile.exercise, profile.gpus) == ("smoke", "tiny", 0.25)
    assert dict(profile.thresholds) == {"test_accuracy": 0.5}
    assert profile.spec.memory_mb == 1024
    with pytest.raises(FrozenInstanceError):
        profile.data_files = ()  # type: ignore[misc]
    with pytest.raises(TypeError):
        profile.parameters["SEED"] = 9  # type: ignore[index]


def test_an_unknown_profile_is_refused_naming_the_spec_and_the_known_ones(
    spec: ExerciseSpec,
) -> None:
    with pytest.raises(InputError) as info:
        resolve_profile(spec, "full")
    assert info.value.path == spec.directory / "spec.toml"
    assert "no profile 'full' (known: smoke)" in str(info.value)


def test_profile_is_not_an_override(spec: ExerciseSpec) -> None:
    with pytest.raises(DeepgradeError, match="PROFILE is set from the profile name"):
        resolve_profile(spec, "smoke", {"PROFILE": "full"}, data_files=())


def test_data_files_come_from_the_cache_at_the_profiles_sizes(
    spec: ExerciseSpec, tmp_path: Path
) -> None:
    from deepgrade import datasets

    profile = resolve_profile(spec, "smoke", cache=tmp_path / "cache")
    assert [f.name for f in profile.data_files] == list(datasets.FILES["signs"])
    assert all(f.is_file() and (tmp_path / "cache") in f.parents for f in profile.data_files)
    assert profile.model_files == () and profile.files == profile.data_files


def test_look_alike_runs_a_real_data_profile_on_the_synthetic_data_at_real_sizes(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "tiny"
    directory.mkdir()
    full = "[profiles.full]\n" + SPEC.split("[profiles.smoke]\n")[1].split("[profiles.smoke.")[0]
    (directory / "spec.toml").write_text(SPEC + full.replace('data = "synth"', 'data = "real"'))
    real = load_spec(directory)
    cache = tmp_path / "cache"
    with pytest.raises(DeepgradeError, match="datasets import"):
        resolve_profile(real, "full", cache=cache)  # the real files were never imported
    profile = resolve_profile(real, "full", cache=cache, look_alike=True)
    assert profile.spec.data == "synth" and profile.to_json()["profile"]["data"] == "synth"
    assert profile.spec == replace(real.profile("full"), data="synth")  # nothing else moves
    assert {f.parent for f in profile.data_files} == {cache / "signs" / "synth"}  # real sizes
    smoke = resolve_profile(real, "smoke", cache=cache, look_alike=True)
    assert smoke.spec == real.profile("smoke")  # a synthetic profile is already a look-alike


def test_the_checks_copy_holds_no_host_path_and_reads_back(
    spec: ExerciseSpec, tmp_path: Path
) -> None:
    files = (tmp_path / "host" / "train.h5", tmp_path / "host" / "test.h5")
    model = tmp_path / "elsewhere" / "resnet1.keras"
    profile = resolve_profile(spec, "smoke", {"SEED": 7}, data_files=files, model_files=[model])
    path = profile.write(tmp_path / "profile.json")
    assert str(tmp_path) not in path.read_text()
    back = GradingProfile.read(path, Path("/data"))
    assert back.spec == profile.spec
    assert dict(back.parameters) == dict(profile.parameters)
    assert back.data_files == (Path("/data/train.h5"), Path("/data/test.h5"))
    assert back.model_files == (Path("/data/resnet1.keras"),)
    assert back.exercise == "tiny"


@pytest.mark.parametrize(
    "text",
    ["not json", "[]", '{"exercise": "tiny"}', '{"exercise": "tiny", "profile": {"name": 1}}'],
)
def test_a_broken_profile_file_names_the_file(tmp_path: Path, text: str) -> None:
    path = tmp_path / "profile.json"
    path.write_text(text)
    with pytest.raises(InputError) as info:
        GradingProfile.read(path, tmp_path)
    assert info.value.path == path


def test_a_profile_file_with_bad_limits_is_refused(spec: ExerciseSpec, tmp_path: Path) -> None:
    path = resolve_profile(spec, "smoke", data_files=()).write(tmp_path / "profile.json")
    data = json.loads(path.read_text())
    data["profile"]["memory_mb"] = -1
    path.write_text(json.dumps(data))
    with pytest.raises(InputError, match="memory_mb must be positive"):
        GradingProfile.read(path, tmp_path)


def test_settings_refuse_another_exercises_profile(spec: ExerciseSpec, tmp_path: Path) -> None:
    signs = load_exercise(ROOT / "autograder", "signs_cnn")
    other = resolve_profile(spec, "smoke", data_files=())
    with pytest.raises(DeepgradeError, match="the tiny profile cannot grade signs_cnn"):
        GradeSettings(signs, other, tmp_path / "release.ipynb", tmp_path)
    GradeSettings(signs, replace(other, exercise="signs_cnn"), tmp_path / "r.ipynb", tmp_path)


def test_gpus_must_be_a_fraction_of_one_gpu(tmp_path: Path) -> None:
    directory = tmp_path / "tiny"
    directory.mkdir()
    for bad in ("2", "-0.5", '"half"', "true"):
        (directory / "spec.toml").write_text(SPEC.replace("gpus = 0.25", f"gpus = {bad}"))
        with pytest.raises(InputError, match="gpus is the fraction of one GPU"):
            load_spec(directory)


def test_the_keras_backends_thresholds_replace_the_profiles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cost measured against a plain predict differs by backend: the backend in use picks its
    own threshold, once, and the checks' copy holds the merged value only."""
    directory = tmp_path / "tiny"
    directory.mkdir()
    overrides = "backend_thresholds = { jax = { test_accuracy = 0.4 } }\n[profiles.smoke.data"
    (directory / "spec.toml").write_text(SPEC.replace("[profiles.smoke.data", overrides))
    spec = load_spec(directory)
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    on_jax = resolve_profile(spec, "smoke", data_files=())
    assert dict(on_jax.thresholds) == {"test_accuracy": 0.4}
    back = GradingProfile.read(on_jax.write(tmp_path / "profile.json"), tmp_path)
    assert dict(back.thresholds) == {"test_accuracy": 0.4}
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    assert dict(resolve_profile(spec, "smoke", data_files=()).thresholds) == {"test_accuracy": 0.5}
    monkeypatch.delenv("KERAS_BACKEND")
    assert dict(resolve_profile(spec, "smoke", data_files=()).thresholds) == {"test_accuracy": 0.5}


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("{ jaxx = { test_accuracy = 0.4 } }", "'jaxx', not a Keras backend"),
        ("{ jax = { test_loss = 0.4 } }", "names ['test_loss'], which are not in its thresholds"),
        ("{ jax = 0.4 }", "must map Keras backends to tables of numbers"),
    ],
)
def test_backend_thresholds_are_checked_against_the_backends_and_the_thresholds(
    tmp_path: Path, table: str, message: str
) -> None:
    directory = tmp_path / "tiny"
    directory.mkdir()
    text = SPEC.replace(
        "[profiles.smoke.data", f"backend_thresholds = {table}\n[profiles.smoke.data"
    )
    (directory / "spec.toml").write_text(text)
    with pytest.raises(InputError, match=re.escape(message)) as info:
        load_spec(directory)
    assert info.value.path == directory / "spec.toml"


def test_the_profile_names_are_spelled_once() -> None:
    """Everything else imports exercise.PROFILES; a second spelling would drift."""
    quoted = "|".join(rf"""["']{name}["']""" for name in PROFILES)
    tuple_of_names = re.compile(rf"\(\s*({quoted})\s*,\s*({quoted})\s*,?\s*\)")
    found = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "src").rglob("*.py"))
        for _ in tuple_of_names.finditer(path.read_text(encoding="utf-8"))
    ]
    assert found == ["src/deepgrade/exercise.py"]


def test_the_cli_offers_exactly_the_profiles() -> None:
    from deepgrade.cli import build_parser

    parser = build_parser()
    commands = {
        ("grade", "SUBS", "--exercise", "x"),
        ("check-solutions",),
        ("models", "train", "resnet1"),
    }
    for command in commands:
        for name in PROFILES:
            args = parser.parse_args([*command, "--profile", name])
            assert args.profile == name
        with pytest.raises(SystemExit):
            parser.parse_args([*command, "--profile", "huge"])
