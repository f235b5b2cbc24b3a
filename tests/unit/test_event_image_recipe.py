"""The event image recipe as rendered for each kind of image: a pip image on a plain Python base,
and a conda image on a docker-stacks base. conda-forge is out of reach on the build machines, so
the conda recipe is checked here as text and never built (see the README)."""

import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BASE = "docker.io/library/python:3.12-slim-bookworm"


def render(tmp_path, image, name):
    overrides = tmp_path / f"{name}.json"
    overrides.write_text(json.dumps({"__event_image": image}))
    dest = tmp_path / f"{name}.Dockerfile"
    subprocess.run(
        [
            "ansible-playbook", str(ROOT / "tests/unit/render_template.yml"),
            "-e", "role=event_image",
            "-e", f"template_path={ROOT / 'templates/event-image/Dockerfile.j2'}",
            "-e", f"dest={dest}", "-e", f"@{overrides}",
        ],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return dest.read_text()


@pytest.fixture(scope="module")
def recipes(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("recipes")
    images = {
        "plain": {"name": "plain", "base": BASE},
        "pandas": {"name": "pandas", "base": BASE, "pip_packages": ["pandas==2.3.3", "geopandas>=1"],
                   "pip_requirements": "/x/requirements.txt", "apt_packages": ["gdal-bin"]},
        "geo": {"name": "geo", "base": "quay.io/jupyter/minimal-notebook:2025-11-10", "conda": True,
                "conda_environment": "/x/environment.yml"},
    }  # fmt: skip
    return {name: render(tmp_path, image, name) for name, image in images.items()}


def instructions(recipe):
    """The Dockerfile's instructions, continuation lines joined, comments left out."""
    joined = recipe.replace("\\\n", " ")
    return [" ".join(line.split()) for line in joined.splitlines() if line.strip() and not line.startswith("#")]


def test_pip_images_share_the_jupyter_stack_layers(recipes):
    plain, pandas = instructions(recipes["plain"]), instructions(recipes["pandas"])
    stack = [i for i in plain if "python3 -m venv --system-site-packages /opt/pophub/venv" in i]
    assert stack and stack[0] in pandas
    # Everything up to the stack is the same, so Docker builds it once for both images.
    cut = plain.index(stack[0]) + 2
    assert plain[:cut] == pandas[:cut]
    assert 'jupyterhub==6.1.1' in stack[0] and "nbgitpuller==1.3.0" in stack[0]


def test_the_event_packages_come_after_the_stack_and_are_quoted(recipes):
    pandas = instructions(recipes["pandas"])
    stack = next(n for n, i in enumerate(pandas) if "python3 -m venv" in i)
    apt = next(n for n, i in enumerate(pandas) if "apt-get install" in i)
    requirements = pandas.index("COPY requirements.txt /opt/pophub/requirements.txt")
    packages = pandas.index("RUN pip install --no-cache-dir pandas==2.3.3 'geopandas>=1'")
    assert stack < apt < requirements < packages
    assert "gdal-bin" in pandas[apt]


def test_participants_pip_goes_to_their_home_set_after_the_images_own_installs(recipes):
    pandas = instructions(recipes["pandas"])
    user_pip = pandas.index("ENV PIP_USER=1 PATH=$PATH:/home/jovyan/.local/bin")
    last_install = max(n for n, i in enumerate(pandas) if "pip install" in i)
    assert last_install < user_pip, "an image install after PIP_USER=1 would go to root's home"
    assert not any("PIP_USER" in i for i in instructions(recipes["geo"])), "conda images are left as they are"


def test_the_slow_iri_checker_goes_after_every_install(recipes):
    for name in ("pandas", "geo"):
        steps = instructions(recipes[name])
        uninstall = steps.index("RUN pip uninstall --yes --quiet rfc3987-syntax")
        assert uninstall > max(n for n, i in enumerate(steps) if "pip install" in i), name


def test_a_conda_image_gets_its_environment_file_then_the_pinned_stack(recipes):
    geo = instructions(recipes["geo"])
    assert "ENV PATH=/opt/conda/bin:$PATH" in geo
    update = geo.index("RUN mamba env update --name base --file /opt/pophub/environment.yml && mamba clean --all --yes")
    pins = next(n for n, i in enumerate(geo) if i.startswith("RUN pip install") and "jupyterhub==6.1.1" in i)
    assert geo.index("COPY environment.yml /opt/pophub/environment.yml") < update < pins
    assert not any("venv" in i for i in geo)


@pytest.mark.parametrize("name", ["plain", "pandas", "geo"])
def test_every_image_starts_through_the_start_script_and_is_labelled(recipes, name):
    recipe = instructions(recipes[name])
    assert recipe[-3:] == [
        f"LABEL org.pophub.image={name}",
        'ENTRYPOINT ["/usr/local/bin/pophub-start"]',
        'CMD ["jupyterhub-singleuser"]',
    ]
    assert "COPY pophub-start /usr/local/bin/pophub-start" in recipe
    # The start script drops to the user itself; the image does not switch user before it.
    assert [i for i in recipe if i.startswith("USER ")] == ["USER root"]
